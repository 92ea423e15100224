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

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

_GROUP = re.compile(r"^group:[a-z0-9][a-z0-9-]*$")
_TAG = re.compile(r"^tag:[a-z0-9][a-z0-9-]*$")
# Headscale treats anything containing '@' as a user (parseAlias `isUser`): 'alice@' matches the
# user named alice, 'alice@example.com' an OIDC user by e-mail.
_USER = re.compile(r"^[a-z0-9][a-z0-9._-]*@([a-z0-9-]+(\.[a-z0-9-]+)+)?$")
# Host aliases may contain dots ('nas.home'), never '@' or ':' (parseAlias `isHost`).
_HOST_ALIAS = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")
_PORTS = re.compile(r"^(\*|\d{1,5}(-\d{1,5})?(,\d{1,5}(-\d{1,5})?)*)$")

# Autogroups Headscale 0.28 accepts, per position (types.go autogroupForSrc / autogroupForDst).
AUTOGROUPS_FOR_SRC = frozenset({"autogroup:member", "autogroup:tagged"})
AUTOGROUPS_FOR_DST = frozenset(
    {"autogroup:internet", "autogroup:member", "autogroup:tagged", "autogroup:self"}
)
# Tailscale's address ranges (CGNAT v4, ULA v6), also Headscale's default prefixes; a policy
# address inside them names tailnet nodes. The one definition: components/common.py uses it too.
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


def _destination(value: str) -> str:
    target, sep, ports = value.rpartition(":")
    if not sep or not target or not _PORTS.fullmatch(ports):
        raise ValueError("must be '<target>:<ports>', e.g. '192.168.0.0/24:*' or 'tag:web:443'")
    return value


GroupName = Annotated[str, AfterValidator(_group_name)]
TagName = Annotated[str, AfterValidator(_tag_name)]
Owner = Annotated[str, AfterValidator(_owner)]
Member = Annotated[str, AfterValidator(_member)]
HostAlias = Annotated[str, AfterValidator(_host_alias)]
Destination = Annotated[str, AfterValidator(_destination)]


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
        default_factory=list, description="Accept rules added after the built-in admin rule."
    )


ADMIN_GROUP = "group:admins"


def render_policy(
    policy: AclPolicy,
    *,
    admin_user: str,
    router_tag: str,
    subnet_routes: Sequence[ipaddress.IPv4Network],
) -> dict[str, Any]:
    """The policy document Headscale loads (JSON is valid HuJSON), with sorted maps."""
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
    acls = [admin_rule] + [
        {"action": rule.action, "src": list(rule.src), "dst": list(rule.dst)}
        for rule in policy.acls
    ]
    return {
        "groups": dict(sorted(groups.items())),
        "tagOwners": dict(sorted(tag_owners.items())),
        "hosts": {name: str(net) for name, net in sorted(policy.hosts.items())},
        "acls": acls,
        # A route advertised by a node carrying the router tag is approved without a click
        # (docs/ref/routes.md "Automatically approve routes of a subnet router").
        "autoApprovers": {"routes": {r: [router_tag] for r in routes}},
    }


# --- Headscale's own checks ------------------------------------------------------------------

# (key path under remoteAccess.policy, offending value, what would be valid)
PolicyProblem = tuple[str, str, str]


def reference_problems(
    policy: AclPolicy, *, defined_groups: Iterable[str], owned_tags: Iterable[str]
) -> Iterator[PolicyProblem]:
    """What Headscale's policy loader would reject about names: undefined groups, tags without
    an owner, undefined host aliases, autogroups in the wrong place, unknown selectors and
    circular tag ownership (types.go `Policy.validate`, policy.go `flattenTagOwners` @ v0.28.0).

    `defined_groups`/`owned_tags` include what `render_policy` always adds.
    """
    groups = set(defined_groups) | set(policy.groups)
    tags = set(owned_tags) | set(policy.tag_owners)
    hosts = set(policy.hosts)

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
                yield path, ref, f"names an undefined host; defined in hosts: {sorted(hosts)}"
            else:
                yield (
                    path,
                    ref,
                    "must be '*', a user 'alice@', 'group:…', 'tag:…', 'autogroup:…', a host alias "
                    "or an IP/CIDR",
                )

    for tag, owners in policy.tag_owners.items():
        for k, owner in enumerate(owners):
            yield from check(f"tagOwners.{tag}[{k}]", owner, where="owner")
    yield from _tag_cycles(policy.tag_owners)
    for i, rule in enumerate(policy.acls):
        for k, src in enumerate(rule.src):
            yield from check(f"acls[{i}].src[{k}]", src, where="src")
        for k, dst in enumerate(rule.dst):
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
    for name, net in sorted(policy.hosts.items()):
        if not reachable(net):
            yield f"hosts.{name}", str(net), expected
    for i, rule in enumerate(policy.acls):
        for k, dst in enumerate(rule.dst):
            target = dst.rpartition(":")[0]
            if _is_ip_literal(target) and not reachable(ipaddress.ip_network(target, strict=False)):
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
