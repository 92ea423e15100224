"""Rules that relate several config fields. Each returns every violation it finds.

A rule is a function `(HomelabConfig) -> Iterable[Problem]`; `RULES` lists them all so the loader
reports every broken rule at once, and the tests can name each rule.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from config.model import HomelabConfig, parse_address_range
from config.policy import ADMIN_GROUP, address_problems, reference_problems


@dataclass(frozen=True, order=True)
class Problem:
    """One config problem: the key path, the bad value, and what would be valid."""

    key: str
    value: str
    expected: str

    def line(self) -> str:
        return f"{self.key}: {self.value} — {self.expected}"


Rule = Callable[[HomelabConfig], Iterable[Problem]]

NS = "homelab"


def _key(path: str) -> str:
    return f"{NS}:{path}"


def _q(value: object) -> str:
    return repr(str(value))


def _not_a_lan_host(ip: ipaddress.IPv4Address, lan: ipaddress.IPv4Network) -> str | None:
    """Why `ip` cannot be a machine's address on `lan`, or None when it can."""
    if ip not in lan:
        return f"must be inside {lan}"
    # /31 and /32 have no network or broadcast address (RFC 3021).
    if lan.prefixlen <= 30 and ip in (lan.network_address, lan.broadcast_address):
        return f"must be a host address of {lan}, not its network or broadcast address"
    return None


def gateway_in_lan(c: HomelabConfig) -> Iterable[Problem]:
    if (why := _not_a_lan_host(c.network.gateway, c.network.lan_cidr)) is not None:
        yield Problem(_key("network.gateway"), _q(c.network.gateway), why)


def node_ips_in_lan(c: HomelabConfig) -> Iterable[Problem]:
    for i, node in enumerate(c.cluster.nodes):
        if (why := _not_a_lan_host(node.ip, c.network.lan_cidr)) is not None:
            yield Problem(_key(f"cluster.nodes[{i}].ip"), _q(node.ip), why)


def vip_in_lan(c: HomelabConfig) -> Iterable[Problem]:
    vip = c.cluster.vip
    if vip is not None and (why := _not_a_lan_host(vip, c.network.lan_cidr)) is not None:
        yield Problem(_key("cluster.vip"), _q(vip), why)


def vip_not_a_node_ip(c: HomelabConfig) -> Iterable[Problem]:
    vip = c.cluster.vip
    if vip is not None and vip in set(c.iter_node_ips()):
        yield Problem(
            _key("cluster.vip"), _q(vip), "must be a free address, not one of the node IPs"
        )


def pools_in_lan(c: HomelabConfig) -> Iterable[Problem]:
    lan = c.network.lan_cidr
    for i, pool in enumerate(c.network.address_pools):
        for j, entry in enumerate(pool.addresses):
            first, last = parse_address_range(entry)
            if first not in lan or last not in lan:
                yield Problem(
                    _key(f"network.addressPools[{i}].addresses[{j}]"),
                    _q(entry),
                    f"must lie inside the LAN {lan}",
                )


def _reserved_addresses(c: HomelabConfig) -> list[tuple[str, ipaddress.IPv4Address]]:
    reserved = [("the gateway", c.network.gateway)]
    reserved += [(f"node {n.hostname}", n.ip) for n in c.cluster.nodes]
    if c.cluster.vip is not None:
        reserved.append(("the cluster VIP", c.cluster.vip))
    lan = c.network.lan_cidr
    if lan.prefixlen <= 30:
        # A Service on the LAN's network or broadcast address is unreachable in L2 mode.
        reserved.append(("the LAN's network address", lan.network_address))
        reserved.append(("the LAN's broadcast address", lan.broadcast_address))
    return reserved


def pools_avoid_reserved(c: HomelabConfig) -> Iterable[Problem]:
    for i, pool in enumerate(c.network.address_pools):
        for j, entry in enumerate(pool.addresses):
            first, last = parse_address_range(entry)
            for what, ip in _reserved_addresses(c):
                if first <= ip <= last:
                    yield Problem(
                        _key(f"network.addressPools[{i}].addresses[{j}]"),
                        _q(entry),
                        f"overlaps {what} ({ip}); MetalLB would hand that address to a Service",
                    )


def pools_do_not_overlap(c: HomelabConfig) -> Iterable[Problem]:
    seen: list[tuple[str, ipaddress.IPv4Address, ipaddress.IPv4Address]] = []
    for i, pool in enumerate(c.network.address_pools):
        for j, entry in enumerate(pool.addresses):
            first, last = parse_address_range(entry)
            for other, o_first, o_last in seen:
                if first <= o_last and o_first <= last:
                    yield Problem(
                        _key(f"network.addressPools[{i}].addresses[{j}]"),
                        _q(entry),
                        f"overlaps {other}; pools must not share addresses",
                    )
            seen.append((f"pool range {entry!r}", first, last))


def pool_names_unique(c: HomelabConfig) -> Iterable[Problem]:
    counts = Counter(p.name for p in c.network.address_pools)
    for i, pool in enumerate(c.network.address_pools):
        if counts[pool.name] > 1:
            yield Problem(_key(f"network.addressPools[{i}].name"), _q(pool.name), "must be unique")


def traefik_ip_in_pool(c: HomelabConfig) -> Iterable[Problem]:
    if c.network.pool_for(c.network.traefik_ip) is None:
        pools = ", ".join(a for p in c.network.address_pools for a in p.addresses)
        yield Problem(
            _key("network.traefikIp"),
            _q(c.network.traefik_ip),
            f"must be inside a MetalLB pool ({pools})",
        )


def stun_ip_in_pool(c: HomelabConfig) -> Iterable[Problem]:
    stun_ip = c.remote_access.derp.stun_ip
    if stun_ip is not None and c.network.pool_for(stun_ip) is None:
        pools = ", ".join(a for p in c.network.address_pools for a in p.addresses)
        yield Problem(
            _key("remoteAccess.derp.stunIp"),
            _q(stun_ip),
            f"must be inside a MetalLB pool ({pools})",
        )


def stun_port_free_on_shared_ip(c: HomelabConfig) -> Iterable[Problem]:
    derp = c.remote_access.derp
    if derp.enabled and c.stun_ip == c.network.traefik_ip and derp.stun_port in (80, 443):
        yield Problem(
            _key("remoteAccess.derp.stunPort"),
            _q(derp.stun_port),
            "must not be 80 or 443 while STUN shares Traefik's IP (MetalLB needs distinct ports); "
            "use 3478",
        )


def node_ips_unique(c: HomelabConfig) -> Iterable[Problem]:
    counts = Counter(n.ip for n in c.cluster.nodes)
    for i, node in enumerate(c.cluster.nodes):
        if counts[node.ip] > 1:
            yield Problem(
                _key(f"cluster.nodes[{i}].ip"), _q(node.ip), "must be unique across nodes"
            )


def hostnames_unique(c: HomelabConfig) -> Iterable[Problem]:
    counts = Counter(n.hostname for n in c.cluster.nodes)
    for i, node in enumerate(c.cluster.nodes):
        if counts[node.hostname] > 1:
            yield Problem(
                _key(f"cluster.nodes[{i}].hostname"),
                _q(node.hostname),
                "must be unique across nodes",
            )


def odd_control_planes(c: HomelabConfig) -> Iterable[Problem]:
    count = len(c.cluster.control_planes)
    if count == 0 or count % 2 == 0:
        yield Problem(
            _key("cluster.nodes"),
            f"{count} control-plane node(s)",
            "needs an odd number (1, 3, 5) of role 'controlplane' nodes so etcd keeps quorum",
        )


def workloads_have_somewhere_to_run(c: HomelabConfig) -> Iterable[Problem]:
    if not c.cluster.workers and c.cluster.allow_scheduling_on_control_planes is False:
        yield Problem(
            _key("cluster.allowSchedulingOnControlPlanes"),
            "False",
            "leaves no node for workloads: the cluster has no 'worker' nodes; "
            "set it to true or add worker nodes",
        )


def magic_dns_domain_safe(c: HomelabConfig) -> Iterable[Problem]:
    base = c.remote_access.magic_dns_base_domain
    host = c.headscale_fqdn
    # Headscale refuses to start when server_url's host equals or is inside base_domain
    # (hscontrol/types/config.go isSafeServerURL; components.md 2.2).
    if host == base or host.endswith("." + base):
        yield Problem(
            _key("remoteAccess.magicDnsBaseDomain"),
            _q(base),
            f"must be neither the Headscale host {host!r} nor a parent of it; "
            f"use a sibling such as 'ts.{c.domain}'",
        )


def subnet_routes_in_lan(c: HomelabConfig) -> Iterable[Problem]:
    for i, route in enumerate(c.remote_access.router.routes):
        if not route.subnet_of(c.network.lan_cidr):
            yield Problem(
                _key(f"remoteAccess.router.routes[{i}]"),
                _q(route),
                f"must be inside the LAN {c.network.lan_cidr}",
            )


def apps_unique(c: HomelabConfig) -> Iterable[Problem]:
    names = Counter(a.name for a in c.apps)
    for i, app in enumerate(c.apps):
        if names[app.name] > 1:
            yield Problem(_key(f"apps[{i}].name"), _q(app.name), "must be unique across apps")


def hosts_unique(c: HomelabConfig) -> Iterable[Problem]:
    platform = {c.remote_access.headscale_host: "Headscale"}
    headplane = c.remote_access.headplane
    if headplane.enabled:
        # Two routes for one fqdn would make Traefik pick one of them arbitrarily.
        if headplane.host in platform:
            yield Problem(
                _key("remoteAccess.headplane.host"),
                _q(headplane.host),
                "is already used by Headscale; pick another host",
            )
        platform.setdefault(headplane.host, "Headplane")
    seen: dict[str, str] = {}
    for i, app in enumerate(c.apps):
        label = app.host_label
        owner = platform.get(label) or seen.get(label)
        if owner is not None:
            yield Problem(
                _key(f"apps[{i}].host"), _q(label), f"is already used by {owner}; pick another host"
            )
        seen.setdefault(label, f"app {app.name!r}")


def apps_have_backend(c: HomelabConfig) -> Iterable[Problem]:
    for i, app in enumerate(c.apps):
        if app.workload is None and app.service is None:
            yield Problem(
                _key(f"apps[{i}]"),
                f"app {app.name!r} has neither 'workload' nor 'service'",
                "set 'workload' (e.g. 'grafana') or the 'service' to route to",
            )
        if app.workload is not None and app.service is not None:
            yield Problem(
                _key(f"apps[{i}].service"),
                _q(app.service),
                "must be omitted when 'workload' is set (the workload brings its own Service)",
            )


def homelab_never_resets_nodes(c: HomelabConfig) -> Iterable[Problem]:
    if not c.lifecycle.is_lab and c.lifecycle.reset_nodes_on_destroy:
        yield Problem(
            _key("lifecycle.resetNodesOnDestroy"),
            "True",
            "is refused for environment 'homelab' (it would wipe the real cluster on destroy); "
            "use environment 'lab'",
        )


def acme_zone_matches_domain(c: HomelabConfig) -> Iterable[Problem]:
    zone = c.tls.dns01.zone
    if zone is not None and not (c.domain == zone or c.domain.endswith("." + zone)):
        yield Problem(
            _key("tls.dns01.zone"), _q(zone), f"must be {c.domain!r} or a parent zone of it"
        )


def headplane_cookie_secret_length(c: HomelabConfig) -> Iterable[Problem]:
    secret = c.headplane_cookie_secret
    if secret is not None and len(secret.get_secret_value()) != 32:
        # Never echo a secret: report its length only.
        yield Problem(
            _key("headplaneCookieSecret"),
            f"(secret of {len(secret.get_secret_value())} characters)",
            "must be exactly 32 characters (Headplane rejects others); e.g. "
            "`openssl rand -hex 16 | ./scripts/pulumi config set --secret homelab:headplaneCookieSecret`",
        )


def policy_references_exist(c: HomelabConfig) -> Iterable[Problem]:
    """Names Headscale's policy loader would reject (config/policy.py `reference_problems`)."""
    for path, value, expected in reference_problems(
        c.remote_access.policy,
        defined_groups=[ADMIN_GROUP],
        owned_tags=[c.remote_access.router.tag],
    ):
        yield Problem(_key(f"remoteAccess.policy.{path}"), _q(value), expected)


def policy_subnets_in_lan(c: HomelabConfig) -> Iterable[Problem]:
    """Policy addresses must be reachable: inside an advertised LAN route or the tailnet."""
    for path, value, expected in address_problems(
        c.remote_access.policy, subnet_routes=c.subnet_routes
    ):
        yield Problem(_key(f"remoteAccess.policy.{path}"), _q(value), expected)


def gateway_not_reused(c: HomelabConfig) -> Iterable[Problem]:
    gateway = c.network.gateway
    for i, node in enumerate(c.cluster.nodes):
        if node.ip == gateway:
            yield Problem(
                _key(f"cluster.nodes[{i}].ip"),
                _q(node.ip),
                "is the gateway's address; give the node a free one",
            )
    if c.cluster.vip == gateway:
        yield Problem(_key("cluster.vip"), _q(gateway), "is the gateway's address; pick a free one")


RULES: tuple[Rule, ...] = (
    gateway_in_lan,
    node_ips_in_lan,
    vip_in_lan,
    vip_not_a_node_ip,
    pools_in_lan,
    pools_avoid_reserved,
    pools_do_not_overlap,
    pool_names_unique,
    traefik_ip_in_pool,
    stun_ip_in_pool,
    stun_port_free_on_shared_ip,
    node_ips_unique,
    hostnames_unique,
    odd_control_planes,
    magic_dns_domain_safe,
    subnet_routes_in_lan,
    apps_unique,
    hosts_unique,
    apps_have_backend,
    homelab_never_resets_nodes,
    acme_zone_matches_domain,
    headplane_cookie_secret_length,
    policy_references_exist,
    policy_subnets_in_lan,
    gateway_not_reused,
    workloads_have_somewhere_to_run,
)


def check_rules(config: HomelabConfig) -> list[Problem]:
    problems: list[Problem] = []
    for rule in RULES:
        problems.extend(rule(config))
    return problems
