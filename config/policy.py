"""The Headscale ACL policy as typed data, its rendering, and Headscale's own policy checks.

Headscale has no JSON Schema for its policy (components.md 2.4); the shape here follows
docs/ref/acls.md of the pinned Headscale (0.28.0) and the checks mirror what its policy loader
rejects (hscontrol/policy/v2/types.go `Policy.validate` and `parseAlias` @ v0.28.0). The stack always
adds what the remote-access path needs (an admin group, the router's tag owner, the LAN rule and
the route auto-approver) in `render_policy`; the config adds anything else. No `acls` at all would
mean allow-all in Headscale, so the rendered policy always carries at least the admin rule: default
deny for everything else.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from config import pins
from config.problems import has_unavailable, parsed, per_item, present

_GROUP = re.compile(r"^group:[a-z0-9][a-z0-9-]*$")
_TAG = re.compile(r"^tag:[a-z0-9][a-z0-9-]*$")
# Headscale treats anything containing '@' as a user (parseAlias `isUser`): 'alice@' matches the
# user named alice, 'alice@example.com' an OIDC user by e-mail.
_USER = re.compile(r"^[a-z0-9][a-z0-9._-]*@([a-z0-9-]+(\.[a-z0-9-]+)+)?$")
# Host aliases may contain dots ('nas.home'), never '@' or ':' (parseAlias `isHost`).
_HOST_ALIAS = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")
# strconv.Atoi's syntax: an optional sign, then decimal digits (Go strconv/atoi.go).
_ATOI = re.compile(r"[+-]?[0-9]+")

# Autogroups Headscale 0.28 accepts, per position (types.go autogroupForSrc / autogroupForDst).
AUTOGROUPS_FOR_SRC = frozenset({"autogroup:member", "autogroup:tagged"})
AUTOGROUPS_FOR_DST = frozenset(
    {"autogroup:internet", "autogroup:member", "autogroup:tagged", "autogroup:self"}
)
# Tailscale's address ranges (CGNAT v4, ULA v6), also Headscale's default prefixes; a policy
# address inside them names tailnet nodes. The one definition: components/shared/common.py uses it too.
TAILNET_IPV4 = ipaddress.IPv4Network("100.64.0.0/10")
TAILNET_IPV6 = ipaddress.IPv6Network("fd7a:115c:a1e0::/48")


def _group_name(value: str) -> str:
    if not _GROUP.fullmatch(value):
        raise ValueError("must look like 'group:admins'")
    return value


def _tag_name(value: str) -> str:
    if not _TAG.fullmatch(value):
        raise ValueError("must look like 'tag:servers' (lowercase)")
    return value


def _owner(value: str) -> str:
    if not (_GROUP.fullmatch(value) or _TAG.fullmatch(value) or _USER.fullmatch(value)):
        raise ValueError("must be a user 'alice@', a 'group:…' or a 'tag:…'")
    return value


def _member(value: str) -> str:
    # Headscale rejects nested groups: members are users only (types.go Groups.UnmarshalJSON).
    if not _USER.fullmatch(value):
        raise ValueError("must be a user written with a trailing '@', e.g. 'alice@'")
    return value


def _host_alias(value: str) -> str:
    if not _HOST_ALIAS.fullmatch(value) or _is_ip_literal(value):
        # An alias that parses as an address would be read as that address, not the alias.
        raise ValueError("must be a lowercase name, e.g. 'nas' or 'nas.home' (not an address)")
    return value


# --- Headscale's parser for destinations, ports and protocols ------------------------------
# Each function mirrors one function of juanfont/headscale@v0.28.0 (hscontrol/policy/v2/utils.go and
# types.go) and raises with Headscale's own words, so the config refuses exactly what the policy
# loader refuses; tests/config/test_headscale_parser.py replays Headscale's test tables against them.

PortRange = tuple[int, int]
ANY_PORT: PortRange = (0, 65535)  # tailcfg.PortRangeAny


def split_destination(value: str) -> tuple[str, str]:
    """`splitDestinationAndPort` (utils.go): split at the last ':'."""
    index = value.rfind(":")
    if index == -1:
        raise ValueError("input must contain a colon character separating destination and port")
    if index == 0:
        raise ValueError("input cannot start with a colon character")
    if index == len(value) - 1:
        raise ValueError("input cannot end with a colon character")
    return value[:index], value[index + 1 :]


def _parse_port(text: str) -> int:
    """`parsePort` (utils.go)."""
    if not _ATOI.fullmatch(text):
        raise ValueError("invalid port number")
    port = int(text)
    if port < 0 or port > 65535:
        raise ValueError("port number out of range")
    return port


def parse_ports(text: str) -> tuple[PortRange, ...]:
    """`parsePortRange` (utils.go): '*', or a comma list of ports and 'first-last' ranges."""
    if text == "*":
        return (ANY_PORT,)
    ranges: list[PortRange] = []
    for part in text.split(","):
        if "-" in part:
            # Headscale drops empty pieces, so '80--90' is 80-90 while '80-' and '-90' are errors.
            pieces = [p for p in part.split("-") if p != ""]
            if len(pieces) != 2:
                raise ValueError("invalid port range format")
            first, last = _parse_port(pieces[0]), _parse_port(pieces[1])
            if first > last:
                raise ValueError("invalid port range: first port is greater than last port")
            ranges.append((first, last))
        else:
            port = _parse_port(part)
            if port < 1:
                raise ValueError("first port must be >0, or use '*' for wildcard")
            ranges.append((port, port))
    return tuple(ranges)


# Protocol names Headscale accepts in an ACL's `proto`, with their IANA numbers (types.go
# `Protocol.validate` and `parseProtocol`). 'ipv6-icmp' and 'fc' are defined there but missing from
# `validate`, so Headscale refuses them; they are not listed. An omitted proto means TCP and UDP.
PROTOCOLS: Mapping[str, tuple[int, ...]] = {
    "icmp": (1, 58),
    "igmp": (2,),
    "ipv4": (4,),
    "ip-in-ip": (4,),
    "tcp": (6,),
    "egp": (8,),
    "igp": (9,),
    "udp": (17,),
    "gre": (47,),
    "esp": (50,),
    "ah": (51,),
    "sctp": (132,),
}
DEFAULT_PROTOCOLS: tuple[int, ...] = (6, 17)
# Protocols that carry ports; any other proto takes only '*' (validateProtocolPortCompatibility).
PORT_PROTOCOLS = frozenset({"tcp", "udp", "sctp"})


def _protocol(value: str) -> str:
    """`Protocol.UnmarshalJSON` + `validate` (types.go): case-insensitive names or 1-255."""
    name = value.lower()
    if name in PROTOCOLS:
        return name
    if name == "*":
        raise ValueError(
            'proto name "*" not known; use protocol number 0-255 or protocol name (icmp, tcp, '
            "udp, etc.)"
        )
    if name == "0" or (len(name) > 1 and name[0] == "0"):
        raise ValueError(f'leading 0 not permitted in protocol number "{name}"')
    if not _ATOI.fullmatch(name):
        raise ValueError(
            f"invalid protocol {name!r}: must be a known protocol name "
            f"({', '.join(sorted(PROTOCOLS))}) or valid protocol number 0-255"
        )
    if not 0 <= int(name) <= 255:
        raise ValueError(f"protocol number {int(name)} out of range (0-255)")
    return name


def protocol_numbers(proto: str | None) -> tuple[int, ...]:
    """The IANA numbers a rule's proto covers (`parseProtocol`)."""
    if not proto:
        return DEFAULT_PROTOCOLS
    return PROTOCOLS.get(proto) or (int(proto),)


def _destination(value: str) -> str:
    try:
        if ":" not in value:  # AliasWithPorts.UnmarshalJSON checks this before splitting
            raise ValueError('hostport must contain a colon (":")')
        parse_ports(split_destination(value)[1])
    except ValueError as error:
        raise ValueError(
            f"must be '<target>:<ports>' with ports '*', 'N', 'N-M' or a comma list of them "
            f"(1-65535), e.g. '192.168.0.0/24:*' or 'tag:web:80,443'; Headscale refuses it: {error}"
        ) from None
    return value


def _test_destination(value: str) -> str:
    try:
        _, port = split_destination(value)
        ranges = parse_ports(port)
    except ValueError as error:
        raise ValueError(f"must be '<app, host, IP or CIDR>:<port>': {error}") from None
    if port == "*" or len(ranges) != 1 or ranges[0][0] != ranges[0][1]:
        raise ValueError(
            "must name one port, e.g. 'grafana:443' (a test is one connection attempt)"
        )
    return value


GroupName = Annotated[str, AfterValidator(_group_name)]
TagName = Annotated[str, AfterValidator(_tag_name)]
Owner = Annotated[str, AfterValidator(_owner)]
Member = Annotated[str, AfterValidator(_member)]
HostAlias = Annotated[str, AfterValidator(_host_alias)]
Destination = Annotated[str, AfterValidator(_destination)]
Protocol = Annotated[str, AfterValidator(_protocol)]
TestDestination = Annotated[str, AfterValidator(_test_destination)]


class _PolicyModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class AclRule(_PolicyModel):
    action: Literal["accept"] = Field(
        default="accept", description="Only 'accept': everything not accepted is denied."
    )
    src: list[str] = Field(min_length=1, description="Users, groups, tags, hosts or CIDRs.")
    dst: list[Destination] = Field(min_length=1, description="'<target>:<ports>' entries.")
    proto: Protocol | None = Field(
        default=None,
        description="IP protocol, e.g. 'tcp', 'udp', 'icmp' or a number 1-255; default: TCP and UDP.",
    )

    @model_validator(mode="after")
    def _ports_need_a_port_protocol(self) -> AclRule:
        # validateProtocolPortCompatibility (types.go @ v0.28.0): only TCP, UDP and SCTP (and the
        # default) may name ports; any other proto takes '*' only.
        if self.proto is not None and self.proto not in PORT_PROTOCOLS:
            for entry in self.dst:
                if parse_ports(split_destination(entry)[1]) != (ANY_PORT,):
                    raise ValueError(
                        f'protocol "{self.proto}" does not support specific ports; only "*" is '
                        f"allowed (dst {entry!r})"
                    )
        return self


class PolicyTest(_PolicyModel):
    """One access test in the Tailscale/Headscale `tests` shape, checked offline before deploy."""

    src: str = Field(description="Who connects: a user 'alice@', a 'group:…' or a 'tag:…'.")
    proto: Literal["tcp", "udp", "sctp"] | None = Field(
        default=None, description="Protocol of the attempt; default: TCP."
    )
    accept: list[TestDestination] = Field(
        default_factory=list,
        description="'<app, host alias, IP or CIDR>:<port>' that src must reach.",
    )
    deny: list[TestDestination] = Field(
        default_factory=list,
        description="'<app, host alias, IP or CIDR>:<port>' that src must not reach.",
    )

    @model_validator(mode="after")
    def _asserts_something(self) -> PolicyTest:
        # Headscale 0.29 refuses an entry without assertions (policy/v2/types.go validateTests).
        if not self.accept and not self.deny:
            raise ValueError("needs at least one 'accept' or 'deny' entry")
        return self


class AclPolicy(_PolicyModel):
    """Extra policy on top of what the stack always adds (see module docstring)."""

    groups: dict[GroupName, list[Member]] = Field(
        default_factory=dict, description="Groups of users, e.g. {'group:family': ['alice@']}."
    )
    tag_owners: dict[TagName, list[Owner]] = Field(
        default_factory=dict, description="Who may assign each tag, e.g. {'tag:web': ['alice@']}."
    )
    hosts: dict[HostAlias, ipaddress.IPv4Network] = Field(
        default_factory=dict, description="Names for networks, e.g. {'nas': '192.168.0.5/32'}."
    )
    acls: list[AclRule] = Field(
        default_factory=list,
        description="Accept rules added after the built-in admin rule. Every app is also a host "
        "alias (its name, at Traefik's IP), so 'grafana:443' grants the app's network path.",
    )
    tests: list[PolicyTest] = Field(
        default_factory=list,
        description="Access tests ({src, accept, deny}); a failing one is a config error.",
    )


ADMIN_GROUP = "group:admins"


def headscale_version(image: str = pins.HEADSCALE_IMAGE) -> tuple[int, ...]:
    """The pinned Headscale release as numbers, from the image tag ('…:0.28.0' -> (0, 28, 0))."""
    tag = image.rpartition(":")[2].removeprefix("v").split("-")[0]
    return tuple(int(part) for part in tag.split("."))


def evaluates_tests(version: tuple[int, ...]) -> bool:
    """Whether Headscale reads a `tests` block. 0.28 has no such field and decodes the policy with
    `RejectUnknownMembers`, so a `tests` key makes it refuse the whole policy (`unknown field
    "tests"`; juanfont/headscale@v0.28.0 hscontrol/policy/v2/types.go `Policy`, `unmarshalPolicy`,
    test case "disallow-unsupported-fields"). 0.29 added `Policy.Tests` (policy/v2/test.go)."""
    return version >= (0, 29)


def _emittable_test_destination(entry: str, hosts: Mapping[str, str]) -> bool:
    """Headscale 0.29 refuses CIDR test destinations, raw or through a multi-address host alias
    (juanfont/headscale@v0.29.2 hscontrol/policy/v2/types.go `validateTestDestination`); those
    stay offline-only checks."""
    target = entry.rpartition(":")[0]
    if "/" in target:
        return False
    prefix = hosts.get(target)
    return prefix is None or prefix.endswith("/32")


def render_tests(policy: AclPolicy, hosts: Mapping[str, str]) -> list[dict[str, Any]]:
    """The `tests` block as Headscale >= 0.29 reads it (apps are host aliases there too)."""
    block: list[dict[str, Any]] = []
    for test in policy.tests:
        entry: dict[str, Any] = {"src": test.src}
        if test.proto is not None:
            entry["proto"] = test.proto
        for key in ("accept", "deny"):
            kept = [d for d in getattr(test, key) if _emittable_test_destination(d, hosts)]
            if kept:
                entry[key] = kept
        if "accept" in entry or "deny" in entry:
            block.append(entry)
    return block


def render_policy(
    policy: AclPolicy,
    *,
    admin_user: str,
    router_tag: str,
    subnet_routes: Sequence[ipaddress.IPv4Network],
    app_hosts: Mapping[str, ipaddress.IPv4Address] | None = None,
    emit_tests: bool | None = None,
) -> dict[str, Any]:
    """The policy document Headscale loads (JSON is valid HuJSON), with sorted maps.

    `app_hosts` names each app's address (Traefik's IP) as a host alias, so rules and tests can
    say 'grafana:443'. `emit_tests` defaults to whether the pinned Headscale evaluates tests.
    """
    groups: dict[str, list[str]] = {ADMIN_GROUP: [f"{admin_user}@"]}
    for name, members in policy.groups.items():
        groups[name] = sorted(set(groups.get(name, [])) | set(members))
    tag_owners: dict[str, list[str]] = {router_tag: [ADMIN_GROUP]}
    for tag, owners in policy.tag_owners.items():
        tag_owners[tag] = sorted(set(tag_owners.get(tag, [])) | set(owners))
    routes = sorted(str(r) for r in subnet_routes)
    # Since Headscale 0.29 '*' in dst no longer covers subnet routes (components.md 2.4), so the
    # LAN is named explicitly; the tailnet itself stays reachable for admins through '*:*'.
    admin_rule: dict[str, Any] = {
        "action": "accept",
        "src": [ADMIN_GROUP],
        "dst": ["*:*", *(f"{r}:*" for r in routes)],
    }
    acls = [admin_rule] + [_render_rule(rule) for rule in policy.acls]
    hosts = {name: f"{ip}/32" for name, ip in (app_hosts or {}).items()}
    hosts.update({name: str(net) for name, net in policy.hosts.items()})
    document: dict[str, Any] = {
        "groups": dict(sorted(groups.items())),
        "tagOwners": dict(sorted(tag_owners.items())),
        "hosts": dict(sorted(hosts.items())),
        "acls": acls,
        # A route advertised by a node carrying the router tag is approved without a click
        # (docs/ref/routes.md "Automatically approve routes of a subnet router").
        "autoApprovers": {"routes": {r: [router_tag] for r in routes}},
    }
    if emit_tests is None:
        emit_tests = evaluates_tests(headscale_version())
    if emit_tests and (tests := render_tests(policy, document["hosts"])):
        document["tests"] = tests
    return document


def _render_rule(rule: AclRule) -> dict[str, Any]:
    rendered: dict[str, Any] = {"action": rule.action, "src": list(rule.src), "dst": list(rule.dst)}
    if rule.proto is not None:
        rendered["proto"] = rule.proto
    return rendered


# --- Headscale's own checks ------------------------------------------------------------------

# (key path under remoteAccess.policy, offending value, what would be valid)
PolicyProblem = tuple[str, str, str]


def reference_problems(
    policy: AclPolicy,
    *,
    defined_groups: Iterable[str],
    owned_tags: Iterable[str],
    defined_hosts: Iterable[str] | None = (),
) -> Iterator[PolicyProblem]:
    """What Headscale's policy loader would reject about names: undefined groups, tags without
    an owner, undefined host aliases, autogroups in the wrong place, unknown selectors and
    circular tag ownership (types.go `Policy.validate`, policy.go `flattenTagOwners` @ v0.28.0).

    `defined_groups`/`owned_tags`/`defined_hosts` include what `render_policy` always adds;
    `defined_hosts` None: not all known, so no name is called an undefined host. Each entry is
    checked on its own: one that failed validation (config/loader.py `partial_config`) hides no
    other entry's problem.
    """
    groups = set(defined_groups) | set(policy.groups)
    tags = set(owned_tags) | set(policy.tag_owners)
    hosts_known = defined_hosts is not None
    hosts = set(policy.hosts) | set(defined_hosts or ())

    def check(
        path: str, ref: str, *, where: Literal["owner", "src", "dst"]
    ) -> Iterator[PolicyProblem]:
        if ref.startswith("group:"):
            if ref not in groups:
                yield path, ref, f"names an undefined group; defined: {sorted(groups)}"
        elif ref.startswith("tag:"):
            if ref not in tags:
                yield path, ref, f"names a tag without an owner in tagOwners; owned: {sorted(tags)}"
        elif where == "owner":
            return  # the model admits only users, groups and tags as owners
        elif ref.startswith("autogroup:"):
            allowed = AUTOGROUPS_FOR_SRC if where == "src" else AUTOGROUPS_FOR_DST
            if ref not in allowed:
                yield (
                    path,
                    ref,
                    f"is not an autogroup Headscale accepts in {where}; use {sorted(allowed)}",
                )
        elif not _is_selector(ref, hosts):
            if _HOST_ALIAS.fullmatch(ref):
                if hosts_known:
                    yield path, ref, f"names an undefined host; defined in hosts: {sorted(hosts)}"
            else:
                yield (
                    path,
                    ref,
                    "must be '*', a user 'alice@', 'group:…', 'tag:…', 'autogroup:…', a host alias "
                    "or an IP/CIDR",
                )

    owners_of = {tag: [o for _, o in parsed(owners)] for tag, owners in policy.tag_owners.items()}
    for tag, owners in policy.tag_owners.items():
        for k, owner in parsed(owners):
            yield from check(f"tagOwners.{tag}[{k}]", owner, where="owner")
    yield from _tag_cycles(owners_of)
    for i, rule in present(policy.acls):
        with per_item():
            for k, src in parsed(rule.src):
                yield from check(f"acls[{i}].src[{k}]", src, where="src")
        with per_item():
            for k, dst in parsed(rule.dst):
                yield from check(f"acls[{i}].dst[{k}]", dst.rpartition(":")[0], where="dst")


def _tag_cycles(tag_owners: Mapping[str, Sequence[str]]) -> Iterator[PolicyProblem]:
    """Tags owned (directly or through other tags) by themselves: Headscale refuses the policy
    with "circular reference detected" (policy.go flattenTags)."""
    reported: set[str] = set()
    for start in sorted(tag_owners):
        stack: list[tuple[str, tuple[str, ...]]] = [(start, (start,))]
        while stack:
            tag, chain = stack.pop()
            for owner in tag_owners.get(tag, ()):
                if not owner.startswith("tag:"):
                    continue
                if owner == start and start not in reported:
                    reported.add(start)
                    yield (
                        f"tagOwners.{start}",
                        " -> ".join((*chain, owner)),
                        "tag ownership must not be circular (Headscale rejects the policy)",
                    )
                elif owner not in chain:
                    stack.append((owner, (*chain, owner)))


def address_problems(
    policy: AclPolicy, *, subnet_routes: Sequence[ipaddress.IPv4Network]
) -> Iterator[PolicyProblem]:
    """Addresses no node can deliver to: a host or ACL destination outside every advertised
    subnet route and outside the tailnet. Headscale accepts such a policy, but the rule is dead:
    only the subnet router carries LAN traffic, and only for the routes it advertises."""
    routes = list(subnet_routes)

    def reachable(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
        if isinstance(net, ipaddress.IPv6Network):
            return net.subnet_of(TAILNET_IPV6)
        return net.subnet_of(TAILNET_IPV4) or any(net.subnet_of(r) for r in routes)

    expected = (
        f"must lie inside an advertised subnet route ({', '.join(str(r) for r in routes)}) "
        f"or the tailnet ({TAILNET_IPV4})"
    )
    for name in sorted(policy.hosts):
        net = policy.hosts[name]
        if not has_unavailable(net) and not reachable(net):
            yield f"hosts.{name}", str(net), expected
    for i, rule in present(policy.acls):
        with per_item():
            for k, dst in parsed(rule.dst):
                target = dst.rpartition(":")[0]
                if _is_ip_literal(target) and not reachable(
                    ipaddress.ip_network(target, strict=False)
                ):
                    yield f"acls[{i}].dst[{k}]", dst, expected


def _is_ip_literal(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _is_selector(value: str, hosts: set[str]) -> bool:
    return value == "*" or bool(_USER.fullmatch(value)) or value in hosts or _is_ip_literal(value)


def document_problems(document: Mapping[str, Any]) -> list[PolicyProblem]:
    """Headscale's reference checks over a whole rendered policy document, including the
    autoApprovers it adds (every approver tag owned, every approver group defined)."""
    policy = AclPolicy.model_validate(
        {k: v for k, v in document.items() if k in ("groups", "tagOwners", "hosts", "acls")}
    )
    problems = list(reference_problems(policy, defined_groups=(), owned_tags=()))
    approvers = document.get("autoApprovers", {})
    for route, names in sorted(approvers.get("routes", {}).items()):
        for k, approver in enumerate(names):
            path = f"autoApprovers.routes.{route}[{k}]"
            if approver.startswith("tag:") and approver not in policy.tag_owners:
                problems.append((path, approver, "names a tag without an owner in tagOwners"))
            if approver.startswith("group:") and approver not in policy.groups:
                problems.append((path, approver, "names an undefined group"))
    return problems
