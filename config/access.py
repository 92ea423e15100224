"""Who reaches what over the tailnet: a small, pure evaluator of the policy document this stack renders.

It answers "can principal P open a connection to address A on port N?" with Headscale policy v2
semantics at the pinned tag (juanfont/headscale@v0.28.0 hscontrol/policy/v2): how `filter.go`
`compileFilterRules` resolves each ACL's sources and destinations (types.go `*.Resolve`), how
`policyutil/reduce.go` `ReduceFilterRules` hands a subnet router the rules for addresses of its
approved routes, and how `policy.go` `NodeCanApproveRoute` approves an advertised route
(autoApprovers). tests/config/test_access.py replays cases of Headscale's own tests against it.

Principals are symbolic, because node addresses are assigned at run time:
- a user `alice@` is an untagged device of alice (tagged devices lose their user's identity in
  policy v2: `Username.Resolve` skips tagged nodes), plus any device alice may tag with a tag she
  owns (`NodeCanHaveTag`: the flattened tagOwners) — owning a tag is reaching what the tag reaches;
- a group is a user who is a member of that group only (what membership grants);
- a tag is a device carrying that tag only.
A source given as an address matches a principal for certain only when it covers all of Tailscale's
range (every node's address is in it); a narrower tailnet prefix may or may not hold the device's
address, so it yields "partial", never "allow".

What the network layer cannot tell apart, this cannot either: every app is served by Traefik on
one LoadBalancer IP and port 443, so reaching one app's address is reaching all of them. The app's
own login decides who gets in beyond that (README, "Who reaches what").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

from config.model import HomelabConfig
from config.policy import (
    ANY_PORT,
    PORT_PROTOCOLS,
    TAILNET_IPV4,
    TAILNET_IPV6,
    PolicyProblem,
    PortRange,
    parse_ports,
    protocol_numbers,
    render_policy,
    split_destination,
)
from config.problems import per_item, present

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Status = Literal["allow", "partial", "deny"]
HTTPS_PORT = 443


class _Match(IntEnum):
    NO = 0
    MAYBE = 1
    YES = 2


@dataclass(frozen=True)
class Principal:
    """A user 'alice@', a group 'group:family' or a tag 'tag:web'."""

    name: str

    @property
    def kind(self) -> Literal["user", "group", "tag"]:
        if self.name.startswith("group:"):
            return "group"
        if self.name.startswith("tag:"):
            return "tag"
        return "user"


# A user no rule, group or tag owner names: what every tailnet member gets without being granted.
UNNAMED_USER = Principal("(a user no rule names)@")


@dataclass(frozen=True)
class _Identity:
    """One device a principal may use: untagged (its user and groups) or carrying one tag."""

    user: str | None
    groups: frozenset[str]
    tag: str | None
    label: str


@dataclass(frozen=True)
class Verdict:
    """The answer for one principal and destination, with the rendered rules that grant it."""

    status: Status
    rules: tuple[int, ...] = ()
    via: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Destination:
    """Addresses and ports a connection goes to; `ports` (first, last)."""

    label: str
    network: ipaddress.IPv4Network
    ports: PortRange


@dataclass(frozen=True)
class Tailnet:
    """A rendered policy document plus the one fact it does not hold: the routes each subnet
    router (known by its tag) advertises."""

    document: Mapping[str, Any]
    advertised: Mapping[str, tuple[ipaddress.IPv4Network, ...]] = field(default_factory=dict)

    @property
    def acls(self) -> list[Mapping[str, Any]]:
        return list(self.document.get("acls") or [])

    @property
    def groups(self) -> Mapping[str, list[str]]:
        return self.document.get("groups") or {}

    @property
    def hosts(self) -> dict[str, Network]:
        return {
            name: ipaddress.ip_network(value, strict=False)
            for name, value in (self.document.get("hosts") or {}).items()
        }

    def approved_routes(self) -> list[ipaddress.IPv4Network]:
        """Advertised routes the policy auto-approves for their router: a route inside an
        autoApprovers prefix (`prefix.Bits() <= route.Bits() && prefix.Overlaps(route)`) that
        names the router's tag (policy.go `NodeCanApproveRoute`). Only tags can approve a
        tagged router: users and groups resolve to untagged devices only."""
        approvers = (self.document.get("autoApprovers") or {}).get("routes") or {}
        approved: list[ipaddress.IPv4Network] = []
        for tag, routes in sorted(self.advertised.items()):
            for route in routes:
                for prefix_text, names in approvers.items():
                    prefix = ipaddress.ip_network(prefix_text, strict=False)
                    if (
                        isinstance(prefix, ipaddress.IPv4Network)
                        and prefix.prefixlen <= route.prefixlen
                        and prefix.overlaps(route)
                        and tag in names
                    ):
                        approved.append(route)
                        break
        return approved

    def tag_owners(self, tag: str) -> set[str]:
        """Users and groups who may put `tag` on a device, through tags owning tags
        (policy.go `flattenTags`; a cycle owns nothing, Headscale refuses it anyway)."""
        owners: set[str] = set()
        seen: set[str] = set()
        stack = [tag]
        table = self.document.get("tagOwners") or {}
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            for owner in table.get(current, []):
                (stack.append if owner.startswith("tag:") else owners.add)(owner)
        return owners

    def identities(self, principal: Principal) -> list[_Identity]:
        if principal.kind == "tag":
            return [_Identity(None, frozenset(), principal.name, principal.name)]
        if principal.kind == "group":
            user, groups = None, frozenset({principal.name})
        else:
            user = principal.name
            groups = frozenset(g for g, members in self.groups.items() if user in members)
        found = [_Identity(user, groups, None, principal.name)]
        for tag in sorted(self.document.get("tagOwners") or {}):
            owners = self.tag_owners(tag)
            if (user is not None and user in owners) or owners & groups:
                found.append(
                    _Identity(None, frozenset(), tag, f"{tag} (a tag {principal.name} owns)")
                )
        return found

    # --- matching -----------------------------------------------------------------------

    def _source_match(self, entry: str, who: _Identity) -> _Match:
        """Whether a rule source holds the identity's device (types.go `*.Resolve`)."""
        tagged = who.tag is not None
        if entry == "*":
            return _Match.YES
        if entry.startswith("group:"):
            return _Match.YES if not tagged and entry in who.groups else _Match.NO
        if entry.startswith("tag:"):
            return _Match.YES if entry == who.tag else _Match.NO
        if entry == "autogroup:member":
            return _Match.NO if tagged else _Match.YES
        if entry == "autogroup:tagged":
            return _Match.YES if tagged else _Match.NO
        if entry.startswith("autogroup:"):
            return _Match.NO  # internet/self are refused as sources (validateAutogroupForSrc)
        if "@" in entry:
            return _Match.YES if not tagged and entry == who.user else _Match.NO
        network = self._network(entry)
        if network is None:
            return _Match.NO
        # Every node holds one address of each Tailscale range (the project keeps Headscale's
        # default prefixes), so only a source covering a whole range surely holds the device.
        ranges: tuple[Network, ...] = (TAILNET_IPV4, TAILNET_IPV6)
        if any(_contains(network, r) for r in ranges):
            return _Match.YES
        return _Match.MAYBE if any(network.overlaps(r) for r in ranges) else _Match.NO

    def _network(self, target: str) -> Network | None:
        hosts = self.hosts
        if target in hosts:
            return hosts[target]
        try:
            return ipaddress.ip_network(target, strict=False)
        except ValueError:
            return None

    def _destination_networks(self, target: str) -> tuple[list[Network], list[Network]]:
        """(surely covered, maybe covered) addresses of a rule destination."""
        if target == "*":
            # Asterix.Resolve: all of IPv4 and IPv6, so in 0.28 '*' also covers subnet routes.
            return [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")], []
        if target == "autogroup:internet":
            return [], []  # util.TheInternet excludes private and Tailscale ranges: never the LAN
        if target.startswith(("group:", "tag:", "autogroup:")) or "@" in target:
            # Devices: some addresses of the Tailscale ranges, which ones is decided at run time.
            return [], [TAILNET_IPV4, TAILNET_IPV6]
        network = self._network(target)
        return ([network], []) if network is not None else ([], [])

    def reach(
        self,
        principal: Principal,
        destination: Destination,
        proto: str = "tcp",
        *,
        sure_sources_only: bool = False,
    ) -> Verdict:
        """Whether `principal` reaches every address and port of `destination`.

        `sure_sources_only` ignores rules whose source only may hold the principal's device (a
        narrow tailnet address the author meant for a particular device)."""
        wanted = protocol_numbers(proto)
        deliverable: list[Network] = [TAILNET_IPV4, *self.approved_routes()]
        target = destination.network
        sure: list[Network] = []
        maybe: list[Network] = []
        rules: set[int] = set()
        via: set[str] = set()
        for identity in self.identities(principal):
            for index, rule in enumerate(self.acls):
                rule_proto = rule.get("proto")
                if not set(protocol_numbers(rule_proto)) & set(wanted):
                    continue
                match = max(
                    (self._source_match(s, identity) for s in rule.get("src", [])),
                    default=_Match.NO,
                )
                if match is _Match.NO or (sure_sources_only and match is _Match.MAYBE):
                    continue
                carries_ports = rule_proto is None or rule_proto in PORT_PROTOCOLS
                granted = False
                for entry in rule.get("dst", []):
                    dst_target, port_text = split_destination(entry)
                    ranges = parse_ports(port_text) if carries_ports else (ANY_PORT,)
                    full_ports = any(_port_covers(r, destination.ports) for r in ranges)
                    some_ports = any(_port_overlaps(r, destination.ports) for r in ranges)
                    if not some_ports:
                        continue
                    definite, possible = self._destination_networks(dst_target)
                    overlapping = [n for n in definite + possible if n.overlaps(target)]
                    if not overlapping:
                        continue
                    granted = True
                    if match is _Match.YES and full_ports:
                        sure.extend(n for n in definite if n.overlaps(target))
                        maybe.extend(n for n in possible if n.overlaps(target))
                    else:
                        maybe.extend(overlapping)
                if granted:
                    rules.add(index)
                    via.add(identity.label)
        reachable_sure = _intersect(sure, deliverable)
        if _covers(reachable_sure, target):
            return Verdict("allow", tuple(sorted(rules)), tuple(sorted(via)))
        reachable_any = _intersect(sure + maybe, deliverable)
        if any(n.overlaps(target) for n in reachable_any):
            note = "only some addresses or ports, or only if run-time addresses fall that way"
            return Verdict("partial", tuple(sorted(rules)), tuple(sorted(via)), note)
        if rules and not any(n.overlaps(target) for n in deliverable):
            return Verdict("deny", tuple(sorted(rules)), (), "granted but not routed")
        return Verdict("deny", note="no rule grants it")


# --- sets of networks --------------------------------------------------------------------------


def _contains(outer: Network, inner: Network) -> bool:
    return outer.version == inner.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def _intersect(networks: Iterable[Network], within: Sequence[Network]) -> list[Network]:
    result: list[Network] = []
    for network in networks:
        for bound in within:
            if network.version != bound.version or not network.overlaps(bound):
                continue
            result.append(network if _contains(bound, network) else bound)
    return result


def _covers(networks: Sequence[Network], target: Network) -> bool:
    remaining: list[Network] = [target]
    for network in networks:
        next_remaining: list[Network] = []
        for piece in remaining:
            if piece.version != network.version or not piece.overlaps(network):
                next_remaining.append(piece)
            elif not _contains(network, piece):
                next_remaining.extend(piece.address_exclude(network))  # type: ignore[arg-type]
        remaining = next_remaining
        if not remaining:
            return True
    return not remaining


def _port_covers(rule: PortRange, wanted: PortRange) -> bool:
    return rule[0] <= wanted[0] and wanted[1] <= rule[1]


def _port_overlaps(rule: PortRange, wanted: PortRange) -> bool:
    return rule[0] <= wanted[1] and wanted[0] <= rule[1]


# --- the stack's view ----------------------------------------------------------------------------


def app_host_aliases(config: HomelabConfig) -> dict[str, ipaddress.IPv4Address]:
    """Every private or public web host but Headscale's own, by name, at the address MagicDNS
    gives it (Traefik's LoadBalancer IP): host aliases in the policy, so 'grafana:443' is an ACL
    destination and a test destination."""
    return {
        host.name: config.network.traefik_ip
        for host in config.exposed_hosts()
        if host.name != "headscale"
    }


def stack_policy_document(config: HomelabConfig) -> dict[str, Any]:
    """The policy document the stack ships (components/remote_access/headscale.py mounts exactly this)."""
    remote = config.remote_access
    return render_policy(
        remote.policy,
        admin_user=remote.admin_user,
        router_tag=remote.router.tag,
        subnet_routes=config.subnet_routes,
        app_hosts=app_host_aliases(config),
    )


def stack_tailnet(config: HomelabConfig) -> Tailnet:
    return Tailnet(
        stack_policy_document(config),
        {config.remote_access.router.tag: tuple(config.subnet_routes)},
    )


def web_destinations(
    hosts: Mapping[str, ipaddress.IPv4Address], fqdns: Mapping[str, str]
) -> list[Destination]:
    return [
        Destination(
            f"{fqdns.get(name, name)}:{HTTPS_PORT}",
            ipaddress.IPv4Network(ip),
            (HTTPS_PORT, HTTPS_PORT),
        )
        for name, ip in sorted(hosts.items(), key=lambda item: fqdns.get(item[0], item[0]))
    ]


def lan_destinations(routes: Iterable[ipaddress.IPv4Network]) -> list[Destination]:
    return [Destination(f"LAN {route} (any port)", route, ANY_PORT) for route in sorted(routes)]


def principals(tailnet: Tailnet, extra: Iterable[str] = ()) -> list[Principal]:
    """Every user, group and tag the document names (plus `extra`), users first."""
    document = tailnet.document
    names: set[str] = set(extra)
    names.update(document.get("groups") or {})
    for members in (document.get("groups") or {}).values():
        names.update(members)
    for tag, owners in (document.get("tagOwners") or {}).items():
        names.add(tag)
        names.update(owners)
    for rule in tailnet.acls:
        for entry in rule.get("src", []):
            if "@" in entry or entry.startswith(("group:", "tag:")):
                names.add(entry)
        for entry in rule.get("dst", []):
            target = split_destination(entry)[0]
            if "@" in target or target.startswith(("group:", "tag:")):
                names.add(target)
    order = {"user": 0, "group": 1, "tag": 2}
    return sorted((Principal(n) for n in names), key=lambda p: (order[p.kind], p.name))


def rule_label(index: int) -> str:
    """A rendered rule by its config key: rule 0 is the stack's admin rule (render_policy)."""
    return "the built-in admin rule" if index == 0 else f"remoteAccess.policy.acls[{index - 1}]"


def describe(verdict: Verdict) -> str:
    if verdict.status == "deny":
        return f"denies it ({verdict.note})"
    rules = ", ".join(rule_label(i) for i in verdict.rules)
    what = "allows it" if verdict.status == "allow" else f"allows part of it ({verdict.note})"
    return f"{what}, through {rules} as {', '.join(verdict.via)}"


# --- checks over a config ----------------------------------------------------------------------


def _test_target(
    config: HomelabConfig, tailnet: Tailnet, target: str
) -> ipaddress.IPv4Network | None:
    hosts = tailnet.hosts
    if target in hosts:
        network = hosts[target]
        return network if isinstance(network, ipaddress.IPv4Network) else None
    try:
        return ipaddress.IPv4Network(target, strict=False)
    except ValueError:
        return None


def test_problems(config: HomelabConfig) -> Iterator[PolicyProblem]:
    """`remoteAccess.policy.tests`: every accept must be allowed, every deny denied."""
    if not all(r.subnet_of(config.network.lan_cidr) for r in config.subnet_routes):
        return  # routing is broken (config/rules.py subnet_routes_in_lan): nothing to evaluate
    tailnet = stack_tailnet(config)
    groups = set(tailnet.groups)
    tags = set(tailnet.document.get("tagOwners") or {})
    for i, test in enumerate(config.remote_access.policy.tests):
        principal = Principal(test.src)
        known = (
            (principal.kind == "group" and test.src in groups)
            or (principal.kind == "tag" and test.src in tags)
            or (principal.kind == "user" and test.src.endswith("@") and test.src.count("@") == 1)
        )
        if not known:
            yield (
                f"tests[{i}].src",
                test.src,
                f"must be a user 'alice@', a defined group ({sorted(groups)}) or an owned tag "
                f"({sorted(tags)})",
            )
            continue
        proto = test.proto or "tcp"
        for key in ("accept", "deny"):
            for j, entry in enumerate(getattr(test, key)):
                target, port_text = split_destination(entry)
                network = _test_target(config, tailnet, target)
                if network is None:
                    yield (
                        f"tests[{i}].{key}[{j}]",
                        entry,
                        f"names no app or host alias ({sorted(tailnet.hosts)}) and is no IPv4 "
                        "address or CIDR",
                    )
                    continue
                port = int(port_text)
                verdict = tailnet.reach(principal, Destination(entry, network, (port, port)), proto)
                if key == "accept" and verdict.status != "allow":
                    yield (
                        f"tests[{i}].accept[{j}]",
                        entry,
                        f"test {i} expects {test.src} to reach it, but the policy {describe(verdict)}",
                    )
                if key == "deny" and verdict.status != "deny":
                    shared = ""
                    if network == ipaddress.IPv4Network(config.network.traefik_ip):
                        shared = (
                            f"; every web host shares Traefik's IP {config.network.traefik_ip} "
                            "and port 443, so the network cannot keep one out while letting "
                            "another in: leave that to the app's own login"
                        )
                    yield (
                        f"tests[{i}].deny[{j}]",
                        entry,
                        f"test {i} expects {test.src} not to reach it, but the policy "
                        f"{describe(verdict)}{shared}",
                    )


def builtin_problems(config: HomelabConfig) -> Iterator[PolicyProblem]:
    """Assertions that always run over the policy the stack ships:
    the admin reaches every private web host and every routed LAN prefix; a user no rule names
    reaches none of them; the router's tag reaches no tailnet device (it only routes)."""
    tailnet = stack_tailnet(config)
    fqdns = {h.name: h.fqdn for h in config.exposed_hosts()}
    private = {
        name: ip
        for name, ip in app_host_aliases(config).items()
        if next(h for h in config.exposed_hosts() if h.name == name).visibility == "private"
    }
    private_and_lan = web_destinations(private, fqdns) + lan_destinations(config.subnet_routes)
    admin = Principal(f"{config.remote_access.admin_user}@")
    routed = tailnet.approved_routes()
    lan = config.network.lan_cidr
    unrouted: list[str] = []
    for destination in private_and_lan:
        if not any(destination.network.subnet_of(r) for r in routed):
            unrouted.append(destination.label)
            continue
        verdict = tailnet.reach(admin, destination)
        if verdict.status != "allow":
            yield (
                "acls",
                destination.label,
                f"the admin {admin.name} must reach it, but the policy {describe(verdict)}",
            )
    # A route outside the LAN is reported by its own rule (config/rules.py subnet_routes_in_lan).
    if unrouted and all(r.subnet_of(lan) for r in config.subnet_routes):
        yield (
            "",
            ", ".join(unrouted),
            "no advertised route (remoteAccess.router.routes: "
            f"{', '.join(str(r) for r in config.subnet_routes)}) covers it, so no VPN client can "
            f"reach it; advertise a route that holds Traefik's IP {config.network.traefik_ip}",
        )
    unnamed: dict[int, list[str]] = {}
    for destination in private_and_lan:
        for index in tailnet.reach(UNNAMED_USER, destination, sure_sources_only=True).rules:
            unnamed.setdefault(index, []).append(destination.label)
    for index, labels in sorted(unnamed.items()):
        yield (
            rule_label(index).removeprefix("remoteAccess.policy."),
            ", ".join(labels),
            "grants this to every tailnet user, even one no rule names; name the users or "
            "groups in src instead of '*', 'autogroup:member' or a tailnet-wide CIDR",
        )
    router = Principal(config.remote_access.router.tag)
    tailnet_devices = Destination(f"tailnet {TAILNET_IPV4} (any port)", TAILNET_IPV4, ANY_PORT)
    for index in tailnet.reach(router, tailnet_devices, sure_sources_only=True).rules:
        yield (
            rule_label(index).removeprefix("remoteAccess.policy."),
            tailnet_devices.label,
            f"lets the subnet router's tag {router.name} reach tailnet devices; the router only "
            "carries traffic to the LAN, so no rule should grant its tag anything",
        )


def _validated_host_aliases(config: HomelabConfig) -> dict[str, ipaddress.IPv4Address]:
    """`app_host_aliases` of the web hosts that validated (one app that failed hides no other)."""
    traefik_ip = config.network.traefik_ip
    aliases: dict[str, ipaddress.IPv4Address] = {}
    with per_item():
        if (headplane := config.headplane_exposure) is not None:
            aliases[headplane.name] = traefik_ip
    for _, app in present(config.apps):
        with per_item():
            aliases[config.app_exposure(app).name] = traefik_ip
    return aliases


def host_alias_problems(config: HomelabConfig) -> Iterator[PolicyProblem]:
    """A configured host alias must not take an app's name: the stack names each app's address."""
    apps = _validated_host_aliases(config)
    for name in sorted(config.remote_access.policy.hosts):
        if name in apps:
            yield (
                f"hosts.{name}",
                name,
                f"is the name of a web host the stack already defines as a host alias "
                f"({apps[name]}/32); pick another name",
            )


# --- the access matrix ---------------------------------------------------------------------------


def _cell(verdict: Verdict) -> str:
    if verdict.status == "deny":
        return "deny"
    rules = ", ".join("admin rule" if i == 0 else f"acls[{i - 1}]" for i in verdict.rules)
    tags = [v for v in verdict.via if v.startswith("tag:") and "owns" in v]
    via = f" via {', '.join(t.split(' ')[0] for t in tags)}" if tags else ""
    return f"{verdict.status} ({rules}{via})"


def access_markdown(
    tailnet: Tailnet,
    web_hosts: Mapping[str, ipaddress.IPv4Address],
    public_routes: Sequence[str],
    *,
    stack: str,
) -> str:
    """`access.md`: principals x destinations, allow/partial/deny, from the shipped policy.

    `web_hosts` maps each name MagicDNS serves to its address; `public_routes` are the Traefik
    route rules on the internet-facing entrypoint."""
    destinations = [
        Destination(f"{fqdn}:{HTTPS_PORT}", ipaddress.IPv4Network(ip), (HTTPS_PORT, HTTPS_PORT))
        for fqdn, ip in sorted(web_hosts.items())
    ] + lan_destinations(tailnet.approved_routes())
    rows = [*principals(tailnet), UNNAMED_USER]
    lines = [
        f"# Who reaches what: stack `{stack}`",
        "",
        "Generated by `python -m homelab render` from the Headscale policy the stack ships, the "
        "MagicDNS records, the subnet router's routes and the Traefik routes (config/access.py "
        "evaluates Headscale 0.28 policy semantics); do not edit. A pull request that changes "
        "who reaches what changes this table.",
        "",
        "| Principal | " + " | ".join(d.label for d in destinations) + " |",
        "|" + "---|" * (len(destinations) + 1),
    ]
    for principal in rows:
        cells = [_cell(tailnet.reach(principal, d)) for d in destinations]
        lines.append(f"| `{principal.name}` | " + " | ".join(cells) + " |")
    internet = [
        "allow"
        if any(f"Host(`{d.label.rpartition(':')[0]}`)" in r for r in public_routes)
        else "deny"
        for d in destinations
    ]
    lines.append("| internet | " + " | ".join(internet) + " |")
    shared: dict[ipaddress.IPv4Address, list[str]] = {}
    for fqdn, ip in sorted(web_hosts.items()):
        shared.setdefault(ip, []).append(fqdn)
    lines += ["", "## Reading it", ""]
    lines.append(
        "- `allow`: every address and port of the column, for certain; `partial`: some of them, "
        "or only if run-time tailnet addresses fall that way; the rules that grant it are named "
        "(`admin rule` is the stack's own, `acls[i]` is `remoteAccess.policy.acls[i]`)."
    )
    lines.append(
        "- A group row is a user who is a member of that group only; a user also reaches what "
        "any tag they own reaches (they may put it on their own device: `via tag:…`). "
        f"`{UNNAMED_USER.name}` is what every tailnet user gets without being named."
    )
    for ip, fqdns in sorted(shared.items()):
        if len(fqdns) > 1:
            lines.append(
                f"- {', '.join(fqdns)} all resolve to Traefik's IP {ip} and share port "
                f"{HTTPS_PORT}: the network cannot tell them apart, so reaching one is reaching "
                "the others' login pages; each app's own login decides who gets in."
            )
    lines += ["", "## Reachable from the internet", ""]
    if public_routes:
        lines.append(
            "Traefik routes on the internet-facing entrypoint (everything else is LAN and tailnet "
            "only):"
        )
        lines.append("")
        lines.extend(f"- ``{rule}``" for rule in public_routes)
    else:
        lines.append("Nothing: no Traefik route is on the internet-facing entrypoint.")
    return "\n".join(lines) + "\n"
