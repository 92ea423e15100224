"""Rules for what the cluster, the tailnet and outside services reserve: networks a LAN or a
resolver may not use, and names that must fit the limits of the program that takes them.

Each rule names the source of the limit; `RESERVED_RULES` joins config/rules.py `RULES`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

from config.model import HomelabConfig, parse_address_range
from config.names import HELM_RELEASE_NAME_MAX, MAX_NAME_LENGTH
from config.networks import cluster_networks
from config.problems import Problem, Rule, key, parsed, per_item, present, quoted
from config.views import workload_release_name


def lan_avoids_reserved_networks(c: HomelabConfig) -> Iterable[Problem]:
    """The LAN may share no address with Talos' pod or service network or the tailnet: a node
    would route its own LAN's traffic into the cluster or the VPN (and the router advertises
    the LAN to every VPN client), and it must be a network of ordinary unicast addresses."""
    lan = c.network.lan_cidr
    overlapped = [(what, net) for what, net in cluster_networks() if lan.overlaps(net)]
    narrower = _narrowest_lan(c) if overlapped else None
    if narrower is not None and not any(narrower.overlaps(net) for _, net in overlapped):
        # A LAN written wider than it is ('10.0.0.0/8' for a home /24): the addresses are fine,
        # the prefix is what to change, not the whole numbering.
        names = " and ".join(f"{what} {net}" for what, net in overlapped)
        yield Problem(
            key("network.lanCidr"),
            quoted(lan),
            f"contains {names}: the nodes could not tell LAN addresses from those; narrow it "
            f"to the subnet your router really hands out, e.g. {str(narrower)!r} (it holds "
            "every configured address)",
        )
    else:
        for what, network in overlapped:
            yield Problem(
                key("network.lanCidr"),
                quoted(lan),
                f"overlaps {what} {network}: the nodes could not tell LAN addresses from "
                "those; renumber the LAN out of it (e.g. a 192.168.x.0/24)",
            )
    if lan.is_loopback or lan.is_link_local or lan.is_multicast or lan.is_reserved:
        yield Problem(
            key("network.lanCidr"),
            quoted(lan),
            "is a loopback, link-local, multicast or reserved range, not a LAN of hosts; "
            "use the network your router hands out, e.g. '192.168.0.0/24'",
        )


# A home router's LAN is a /24 or smaller; a narrowed suggestion is never narrower than that
# around the configured addresses, which may not reach its edges.
_TYPICAL_LAN_PREFIX: Final = 24


def _narrowest_lan(c: HomelabConfig) -> ipaddress.IPv4Network | None:
    """The smallest network (at most a /24) inside `network.lanCidr` holding the gateway and
    every address the stack hands out (of those that validated), or None when that is the LAN
    itself."""
    lan = c.network.lan_cidr
    addresses = [a for _, first, last in _handed_out(c) for a in (first, last)]
    with per_item():
        addresses.append(c.network.gateway)
    if not addresses or not all(a in lan for a in addresses):
        return None  # an address outside the LAN is its own rule's problem
    low, high = min(addresses), max(addresses)
    prefix = min(_TYPICAL_LAN_PREFIX, 32 - (int(low) ^ int(high)).bit_length())
    narrower = ipaddress.IPv4Network((int(low), prefix), strict=False)
    return narrower if narrower.prefixlen > lan.prefixlen else None


def _handed_out(c: HomelabConfig) -> list[tuple[str, ipaddress.IPv4Address, ipaddress.IPv4Address]]:
    """Every address the stack hands out on the LAN, of those that validated: (what, first,
    last). One mistyped pool entry hides none of the others from the rules that read this."""
    given: list[tuple[str, ipaddress.IPv4Address, ipaddress.IPv4Address]] = []
    for i, pool in present(c.network.address_pools):
        name = pool.name if isinstance(pool.name, str) else f"#{i}"
        given += [
            (f"MetalLB pool {name!r} ({entry})", *parse_address_range(entry))
            for _, entry in parsed(pool.addresses)
        ]
    with per_item():
        if c.cluster.vip is not None:
            given.append(("the cluster VIP", c.cluster.vip, c.cluster.vip))
    given += [
        (f"node {hostname}'s address", ip, ip)
        for _, (hostname, ip) in parsed(c.cluster.nodes, lambda n: (n.hostname, n.ip))
    ]
    return given


def node_nameservers_outside_the_stack(c: HomelabConfig) -> Iterable[Problem]:
    """The nodes' resolvers must answer before the cluster exists: none inside an address the
    stack hands out (a MetalLB Service, the VIP, a node: Talos answers DNS on no LAN address,
    only on its host resolver `HostDNSAddress`, siderolabs/talos@v1.13.9:pkg/machinery/
    constants/constants.go), the pod or service network, or the tailnet the nodes are not on."""
    handed_out = _handed_out(c)
    for i, server in parsed(c.network.nameservers):
        where = key(f"network.nameservers[{i}]")
        for what, first, last in handed_out:
            if first <= server <= last:
                yield Problem(
                    where,
                    quoted(server),
                    f"is inside {what}: the nodes would resolve through something the stack "
                    "itself starts, which needs DNS to start; use the router or a resolver "
                    "outside the stack, e.g. the gateway or '1.1.1.1'",
                )
        for what, network in cluster_networks():
            if server in network:
                yield Problem(
                    where,
                    quoted(server),
                    f"is inside {what} {network}, which the nodes cannot reach before the "
                    "cluster runs (nor ever, for the tailnet); use the router or '1.1.1.1'",
                )


def vpn_nameservers_reachable(c: HomelabConfig) -> Iterable[Problem]:
    """VPN clients reach the LAN (the router's routes) and the tailnet, never the cluster's pod
    or service network, so a resolver there answers no one."""
    reserved = cluster_networks()[:2]
    for i, server in parsed(c.remote_access.nameservers):
        for what, network in reserved:
            if server in network:
                yield Problem(
                    key(f"remoteAccess.nameservers[{i}]"),
                    quoted(server),
                    f"is inside {what} {network}, which no VPN client can reach (the router "
                    "advertises the LAN only); use a LAN or public resolver, e.g. '1.1.1.1'",
                )


def workload_release_names_fit(c: HomelabConfig) -> Iterable[Problem]:
    """An app the stack deploys is a Helm release named after it, which Helm refuses beyond 53
    characters (helm/helm@v3.19.0:pkg/chartutil/validate_name.go `maxReleaseNameLen`)."""
    for i, app in present(c.apps):
        with per_item():
            if app.workload is None:
                continue
            release = workload_release_name(app)
            if len(release) > HELM_RELEASE_NAME_MAX:
                room = HELM_RELEASE_NAME_MAX - (len(release) - len(app.name))
                yield Problem(
                    key(f"apps[{i}].name"),
                    quoted(app.name),
                    f"makes the Helm release name {release!r} ({len(release)} characters), "
                    f"which Helm refuses beyond {HELM_RELEASE_NAME_MAX}; use a name of at most "
                    f"{room}",
                )


def exposed_host_names_fit(c: HomelabConfig) -> Iterable[Problem]:
    """Every https://<host>.<domain> is an Ingress host and a MagicDNS name: at most 253
    characters (RFC 1035 section 2.3.4; a Kubernetes DNS-1123 subdomain)."""
    for host in c.exposed_hosts():
        if len(host.fqdn) > MAX_NAME_LENGTH:
            yield Problem(
                key("domain"),
                quoted(c.domain),
                f"makes the host name of {host.name} {len(host.fqdn)} characters long; a host "
                f"name has at most {MAX_NAME_LENGTH}, so use a shorter domain",
            )
            return


RESERVED_RULES: tuple[Rule, ...] = (
    lan_avoids_reserved_networks,
    node_nameservers_outside_the_stack,
    vpn_nameservers_reachable,
    workload_release_names_fit,
    exposed_host_names_fit,
)
