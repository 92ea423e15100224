"""Rules that relate several config fields. Each returns every violation it finds.

A rule is a function `(HomelabConfig) -> Iterable[Problem]`; `RULES` lists them all so the loader
reports every broken rule at once, and the tests can name each rule. When a field failed
validation the loader hands the rules a config in which that value (and only it: its section's
other fields, list items and nested objects are all there) is an `Unavailable` stand-in: a rule
that reads one raises `InputUnavailableError` and is skipped, while every rule that reads only
what parsed still runs (so a rule must let exceptions through, not catch them broadly).
A rule over a list checks each item on its own (config/problems.py `parsed`, `present`,
`per_item`), so a failed item hides no other item's problem; only a rule that needs every item
(an address inside *some* pool, the count of control planes) is skipped while one failed. The
checks of what the policy grants run only over a policy without problems
(`DERIVED_FROM_THE_POLICY`).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

from config import access, pins
from config.model import (
    BUILTIN_HOSTS,
    HomelabConfig,
    parse_address_range,
    parse_saved_certificate,
)
from config.policy import ADMIN_GROUP, address_problems, reference_problems
from config.problems import NS as NS
from config.problems import InputUnavailableError as InputUnavailableError
from config.problems import Problem as Problem
from config.problems import Rule as Rule
from config.problems import Unavailable as Unavailable
from config.problems import has_unavailable, parsed, per_item, present
from config.reserved import RESERVED_RULES

Hashed = TypeVar("Hashed", bound=Hashable)


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
    if wider_lan_needed(c) is not None:
        return  # `lan_holds_the_addresses` names the LAN instead
    if (why := _not_a_lan_host(c.network.gateway, c.network.lan_cidr)) is not None:
        yield Problem(_key("network.gateway"), _q(c.network.gateway), why)


def node_ips_in_lan(c: HomelabConfig) -> Iterable[Problem]:
    if wider_lan_needed(c) is not None:
        return
    lan = c.network.lan_cidr
    for i, ip in parsed(c.cluster.nodes, lambda n: n.ip):
        if (why := _not_a_lan_host(ip, lan)) is not None:
            yield Problem(_key(f"cluster.nodes[{i}].ip"), _q(ip), why)


def vip_in_lan(c: HomelabConfig) -> Iterable[Problem]:
    vip = c.cluster.vip
    if wider_lan_needed(c) is not None:
        return
    if vip is not None and (why := _not_a_lan_host(vip, c.network.lan_cidr)) is not None:
        yield Problem(_key("cluster.vip"), _q(vip), why)


def vip_not_a_node_ip(c: HomelabConfig) -> Iterable[Problem]:
    vip = c.cluster.vip
    if vip is not None and vip in {ip for _, ip in parsed(c.cluster.nodes, lambda n: n.ip)}:
        yield Problem(
            _key("cluster.vip"), _q(vip), "must be a free address, not one of the node IPs"
        )


def _pool_entries(
    c: HomelabConfig,
) -> list[tuple[str, str, ipaddress.IPv4Address, ipaddress.IPv4Address]]:
    """(key path, entry, first, last) of every pool entry that validated."""
    return [
        (f"network.addressPools[{i}].addresses[{j}]", entry, *parse_address_range(entry))
        for i, pool in present(c.network.address_pools)
        for j, entry in parsed(pool.addresses)
    ]


def pools_in_lan(c: HomelabConfig) -> Iterable[Problem]:
    lan = c.network.lan_cidr
    if wider_lan_needed(c) is not None:
        return
    for path, entry, first, last in _pool_entries(c):
        if first not in lan or last not in lan:
            yield Problem(_key(path), _q(entry), f"must lie inside the LAN {lan}")


def _reserved_addresses(c: HomelabConfig) -> list[tuple[str, ipaddress.IPv4Address]]:
    reserved: list[tuple[str, ipaddress.IPv4Address]] = []
    with per_item():
        reserved.append(("the gateway", c.network.gateway))
    reserved += [
        (f"node {hostname}", ip)
        for _, (hostname, ip) in parsed(c.cluster.nodes, lambda n: (n.hostname, n.ip))
    ]
    with per_item():
        if c.cluster.vip is not None:
            reserved.append(("the cluster VIP", c.cluster.vip))
    lan = c.network.lan_cidr
    if lan.prefixlen <= 30 and wider_lan_needed(c) is None:
        # A Service on the LAN's network or broadcast address is unreachable in L2 mode.
        reserved.append(("the LAN's network address", lan.network_address))
        reserved.append(("the LAN's broadcast address", lan.broadcast_address))
    return reserved


def pools_avoid_reserved(c: HomelabConfig) -> Iterable[Problem]:
    reserved = _reserved_addresses(c)
    for path, entry, first, last in _pool_entries(c):
        for what, ip in reserved:
            if first <= ip <= last:
                yield Problem(
                    _key(path),
                    _q(entry),
                    f"overlaps {what} ({ip}); MetalLB would hand that address to a Service",
                )


def pools_do_not_overlap(c: HomelabConfig) -> Iterable[Problem]:
    seen: list[tuple[str, ipaddress.IPv4Address, ipaddress.IPv4Address]] = []
    for path, entry, first, last in _pool_entries(c):
        for other, o_first, o_last in seen:
            if first <= o_last and o_first <= last:
                yield Problem(
                    _key(path), _q(entry), f"overlaps {other}; pools must not share addresses"
                )
        seen.append((f"pool range {entry!r}", first, last))


def _repeated(values: Sequence[tuple[int, Hashed]]) -> list[tuple[int, Hashed]]:
    """The (index, value) pairs whose value occurs more than once."""
    counts = Counter(value for _, value in values)
    return [(i, value) for i, value in values if counts[value] > 1]


def pool_names_unique(c: HomelabConfig) -> Iterable[Problem]:
    names = list(parsed(c.network.address_pools, lambda p: p.name))
    for i, name in _repeated(names):
        yield Problem(_key(f"network.addressPools[{i}].name"), _q(name), "must be unique")


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


def node_ips_unique(c: HomelabConfig) -> Iterable[Problem]:
    for i, ip in _repeated(list(parsed(c.cluster.nodes, lambda n: n.ip))):
        yield Problem(_key(f"cluster.nodes[{i}].ip"), _q(ip), "must be unique across nodes")


def hostnames_unique(c: HomelabConfig) -> Iterable[Problem]:
    for i, hostname in _repeated(list(parsed(c.cluster.nodes, lambda n: n.hostname))):
        yield Problem(
            _key(f"cluster.nodes[{i}].hostname"), _q(hostname), "must be unique across nodes"
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
            f"use a sibling such as {_safe_magic_dns_domain(c, rejected=base)!r}",
        )


def _safe_magic_dns_domain(c: HomelabConfig, *, rejected: str) -> str:
    """A MagicDNS base domain beside the Headscale host, never the value being refused."""
    host = c.headscale_fqdn
    for label in ("ts", "tailnet", "vpn", "tail", "mesh"):
        candidate = c.fqdn(label)
        if candidate not in (rejected, host) and not host.endswith("." + candidate):
            return candidate
    return f"ts.{host}"


def subnet_routes_in_lan(c: HomelabConfig) -> Iterable[Problem]:
    lan = c.network.lan_cidr
    for i, route in parsed(c.remote_access.router.routes):
        if not route.subnet_of(lan):
            yield Problem(
                _key(f"remoteAccess.router.routes[{i}]"), _q(route), f"must be inside the LAN {lan}"
            )


def apps_unique(c: HomelabConfig) -> Iterable[Problem]:
    for i, name in _repeated(list(parsed(c.apps, lambda a: a.name))):
        yield Problem(_key(f"apps[{i}].name"), _q(name), "must be unique across apps")


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
    for i, app in present(c.apps):
        with per_item():
            label = app.host_label
            owner = platform.get(label) or seen.get(label)
            if owner is not None:
                # Without a `host` the app's host is its name, so the name is what to change.
                field = "host" if app.host is not None else "name"
                yield Problem(
                    _key(f"apps[{i}].{field}"),
                    _q(label),
                    f"is already used by {owner} as its host; pick another {field}",
                )
            seen.setdefault(label, f"app {app.name!r}")


def apps_have_backend(c: HomelabConfig) -> Iterable[Problem]:
    for i, app in enumerate(c.apps):
        with per_item():
            if app.workload is None and app.service is None:
                yield Problem(
                    _key(f"apps[{i}]"),
                    f"app {app.name!r} has neither 'workload' nor 'service'",
                    "set 'workload' (e.g. 'grafana') or the 'service' to route to",
                )
        with per_item():
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


def backup_credentials_match_target(c: HomelabConfig) -> Iterable[Problem]:
    """An S3 target needs its secret key; a secret key without an S3 target is a leftover."""
    backups = c.backups
    has_secret = c.backup_secret_access_key is not None
    if backups is not None and backups.s3 is not None and not has_secret:
        yield Problem(
            _key("backupSecretAccessKey"),
            "(not set)",
            "is required with `backups.s3`; run `./scripts/pulumi config set --secret "
            "homelab:backupSecretAccessKey <secret key>`",
        )
    if has_secret and (backups is None or backups.s3 is None):
        # Most likely the target is what went missing (a misspelt or mis-namespaced `backups`
        # key): say so, and keep the secret; deleting it is never the fix for a typo.
        target = "no backup target" if backups is None else "an NFS target"
        yield Problem(
            _key("backupSecretAccessKey"),
            "(secret)",
            f"is set, but the config has {target}: it is the secret key of an S3 target, "
            "read only with `homelab:backups.s3`; set that target (is `backups` misspelt or "
            "under another namespace?), or leave the secret until you choose another target",
        )


def saved_certificate_parses(c: HomelabConfig) -> Iterable[Problem]:
    """The saved wildcard Secret must be what `lab destroy` writes; never echo any of it."""
    secret = c.wildcard_certificate
    if secret is None:
        return
    try:
        parse_saved_certificate(secret.get_secret_value())
    except ValueError as error:
        yield Problem(
            _key("wildcardCertificate"),
            "(secret)",
            f"{error}; set it again with the exact text `lab destroy` saved (it keeps the issued "
            "certificate, and Let's Encrypt's weekly limit of identical certificates, out of play)",
        )


def policy_references_exist(c: HomelabConfig) -> Iterable[Problem]:
    """Names Headscale's policy loader would reject (config/policy.py `reference_problems`).
    While an app failed, the apps' host aliases are not all known: host aliases go unjudged,
    groups and tags are still checked."""
    app_hosts: list[str] | None = None
    with per_item():
        app_hosts = list(access.app_host_aliases(c))
    for path, value, expected in reference_problems(
        c.remote_access.policy,
        defined_groups=[ADMIN_GROUP],
        owned_tags=[c.remote_access.router.tag],
        defined_hosts=app_hosts,
    ):
        yield Problem(_key(f"remoteAccess.policy.{path}"), _q(value), expected)


def policy_subnets_in_lan(c: HomelabConfig) -> Iterable[Problem]:
    """Policy addresses must be reachable: inside an advertised LAN route or the tailnet."""
    for path, value, expected in address_problems(
        c.remote_access.policy, subnet_routes=c.subnet_routes
    ):
        yield Problem(_key(f"remoteAccess.policy.{path}"), _q(value), expected)


def policy_tests_hold(c: HomelabConfig) -> Iterable[Problem]:
    """`remoteAccess.policy.tests`, evaluated offline over the policy the stack ships
    (config/access.py): one line per failing accept or deny, saying what the policy allows.
    Skipped while `network.lanCidr` is too small (`lan_holds_the_addresses`): the routes default
    to the LAN, so every verdict would only repeat that one problem."""
    if wider_lan_needed(c) is not None:
        return
    for path, value, expected in access.test_problems(c):
        yield Problem(_key(f"remoteAccess.policy.{path}"), _q(value), expected)


def policy_builtin_access(c: HomelabConfig) -> Iterable[Problem]:
    """The admin reaches every private host and the LAN; no one else by default; the router's
    tag reaches no tailnet device (config/access.py `builtin_problems`). Skipped, like
    `policy_tests_hold`, while `network.lanCidr` is too small."""
    if wider_lan_needed(c) is not None:
        return
    for path, value, expected in access.builtin_problems(c):
        key = f"remoteAccess.policy.{path}" if path else "remoteAccess.router.routes"
        yield Problem(_key(key), _q(value), expected)


def policy_host_aliases_free(c: HomelabConfig) -> Iterable[Problem]:
    """Each web host is a host alias in the policy; a configured alias must not take its name."""
    for path, value, expected in access.host_alias_problems(c):
        yield Problem(_key(f"remoteAccess.policy.{path}"), _q(value), expected)


def gateway_not_reused(c: HomelabConfig) -> Iterable[Problem]:
    gateway = c.network.gateway
    for i, ip in parsed(c.cluster.nodes, lambda n: n.ip):
        if ip == gateway:
            yield Problem(
                _key(f"cluster.nodes[{i}].ip"),
                _q(ip),
                "is the gateway's address; give the node a free one",
            )
    with per_item():
        if c.cluster.vip == gateway:
            yield Problem(
                _key("cluster.vip"), _q(gateway), "is the gateway's address; pick a free one"
            )


def apps_avoid_builtin_names(c: HomelabConfig) -> Iterable[Problem]:
    """An app may not take a built-in's name (headscale, headplane) as its name or host: names
    key the IngressRoute and the MagicDNS record, so the app would stand in for the built-in.
    A default host equal to a built-in's host is `hosts_unique`'s line, not a second one here."""
    headplane = c.remote_access.headplane
    platform_hosts = {c.remote_access.headscale_host}
    if headplane.enabled:
        platform_hosts.add(headplane.host)
    builtins = ", ".join(repr(b) for b in BUILTIN_HOSTS)
    for i, app in enumerate(c.apps):
        with per_item():
            if app.name in BUILTIN_HOSTS and not (app.host is None and app.name in platform_hosts):
                yield Problem(
                    _key(f"apps[{i}].name"),
                    _q(app.name),
                    f"is the name of a built-in host ({builtins}); name the app otherwise",
                )
        with per_item():
            if (
                app.host is not None
                and app.host in BUILTIN_HOSTS
                and app.host not in platform_hosts
            ):
                yield Problem(
                    _key(f"apps[{i}].host"),
                    _q(app.host),
                    f"is the name of a built-in host ({builtins}); pick another host",
                )


def version_core(text: str) -> tuple[int, int, int]:
    major, minor, patch = text.removeprefix("v").split(".")
    return int(major), int(minor), int(patch)


# The Talos features the machine-config patches use (components/cluster/talos_patches.py) and the first
# Talos minor that has each: network documents HostnameConfig, LinkConfig, LinkAliasConfig,
# ResolverConfig, Layer2VIPConfig are in siderolabs/talos@v1.12.0 pkg/machinery/config/types/
# network/ and absent at v1.11.6; cluster.network.cni.flannel.kubeNetworkPoliciesEnabled is in
# siderolabs/talos@v1.13.0 pkg/machinery/config/types/v1alpha1/v1alpha1_types.go, absent at v1.12.11.
TALOS_FEATURES: dict[str, tuple[int, int]] = {
    "network documents (HostnameConfig, LinkConfig, Layer2VIPConfig, ...)": (1, 12),
    "flannel kubeNetworkPoliciesEnabled": (1, 13),
}
# Kubernetes versions each Talos minor runs, as Talos checks them: min <= version < max
# (siderolabs/talos@v1.13.9 pkg/machinery/compatibility/kubernetes_version.go `SupportedWith`,
# pkg/machinery/compatibility/talos113/talos113.go Minimum/MaximumKubernetesVersion). Talos minors
# below the features' minimum are refused by `talos_version_supported`, so only 1.13 is listed;
# the pinned Talos has no table for a later minor ("compatibility ... is not supported").
TALOS_KUBERNETES_SUPPORT: dict[
    tuple[int, int], tuple[tuple[int, int, int], tuple[int, int, int]]
] = {
    (1, 13): ((1, 31, 0), (1, 36, 99)),
}


def talos_version_supported(c: HomelabConfig) -> Iterable[Problem]:
    """Talos new enough for every feature the patches use, and one the pinned Talos machinery
    knows how to pair with Kubernetes."""
    version = c.cluster.talos_version
    minor = version_core(version)[:2]
    needed = max(TALOS_FEATURES.values())
    known = max(TALOS_KUBERNETES_SUPPORT)
    pinned = pins.TALOS_VERSION
    if minor < needed:
        missing = [f for f, first in TALOS_FEATURES.items() if minor < first]
        yield Problem(
            _key("cluster.talosVersion"),
            _q(version),
            f"must be Talos v{needed[0]}.{needed[1]}.x: the machine config uses "
            f"{'; '.join(missing)}, which this Talos lacks; e.g. {pinned!r}",
        )
    elif minor > known:
        yield Problem(
            _key("cluster.talosVersion"),
            _q(version),
            f"must be Talos v{known[0]}.{known[1]}.x: the pinned Talos ({pinned}) has no "
            f"Kubernetes support table for v{minor[0]}.{minor[1]}; bump config/pins.py "
            "TALOS_VERSION (and this table) together",
        )


def kubernetes_version_supported_by_talos(c: HomelabConfig) -> Iterable[Problem]:
    talos_minor = version_core(c.cluster.talos_version)[:2]
    if talos_minor not in TALOS_KUBERNETES_SUPPORT:
        return  # `talos_version_supported` reports the Talos version
    low, high = TALOS_KUBERNETES_SUPPORT[talos_minor]
    version = c.cluster.kubernetes_version
    if not low <= version_core(version) < high:
        hint = f"; e.g. {pins.KUBERNETES_VERSION!r}" if version != pins.KUBERNETES_VERSION else ""
        yield Problem(
            _key("cluster.kubernetesVersion"),
            _q(version),
            f"must be a Kubernetes version Talos {talos_minor[0]}.{talos_minor[1]} runs: "
            f"{low[0]}.{low[1]}.{low[2]} to {high[0]}.{high[1]}.x{hint}",
        )


# Config contracts the patches can use: the generator emits its own HostnameConfig document, which
# the hostname patch merges into, only for a contract above v1.11 (siderolabs/talos@v1.13.9
# pkg/machinery/config/contract.go `MultidocNetworkConfigSupported`, config/generate/network.go).
# The newest contract the pinned machinery knows is its own minor (contract.go well-known
# versions; "Config generation only supports backwards compatibility").
OLDEST_CONFIG_CONTRACT: tuple[int, int] = (1, 12)


def talos_config_contract_fits(c: HomelabConfig) -> Iterable[Problem]:
    """The contract and the installed Talos, validated together: a contract is a Talos minor
    (contract.go `ParseContractFromVersion` reads only vX.Y), no newer than what the nodes run."""
    contract = version_core(c.cluster.config_contract)[:2]
    installed = version_core(c.cluster.talos_version)[:2]
    if installed not in TALOS_KUBERNETES_SUPPORT or installed < max(TALOS_FEATURES.values()):
        return  # `talos_version_supported` reports the Talos version
    newest = version_core(pins.TALOS_VERSION)[:2]
    shown = f"v{contract[0]}.{contract[1]}"
    if contract[0] != installed[0] or contract > installed:
        yield Problem(
            _key("cluster.talosConfigContract"),
            _q(c.cluster.config_contract),
            f"is newer than the installed Talos {c.cluster.talos_version}: a contract is at most "
            f"the installed minor (v{installed[0]}.{installed[1]}); upgrade first, move the "
            "contract afterwards",
        )
    elif contract < OLDEST_CONFIG_CONTRACT or contract > newest:
        yield Problem(
            _key("cluster.talosConfigContract"),
            _q(c.cluster.config_contract),
            f"contract {shown} is not one the machine config supports: "
            f"v{OLDEST_CONFIG_CONTRACT[0]}.{OLDEST_CONFIG_CONTRACT[1]} to "
            f"v{newest[0]}.{newest[1]} (the pinned Talos {pins.TALOS_VERSION})",
        )


def _lan_claims(c: HomelabConfig) -> list[tuple[str, ipaddress.IPv4Address, ipaddress.IPv4Address]]:
    """Every address the config puts on the LAN (key, first, last), of those that validated."""
    claims: list[tuple[str, ipaddress.IPv4Address, ipaddress.IPv4Address]] = []
    with per_item():
        claims.append(("network.gateway", c.network.gateway, c.network.gateway))
    claims += [
        (f"cluster.nodes[{i}].ip", ip, ip) for i, ip in parsed(c.cluster.nodes, lambda n: n.ip)
    ]
    with per_item():
        if c.cluster.vip is not None:
            claims.append(("cluster.vip", c.cluster.vip, c.cluster.vip))
    claims += [(path, first, last) for path, _, first, last in _pool_entries(c)]
    return claims


def _outside_lan(c: HomelabConfig) -> list[str]:
    lan = c.network.lan_cidr
    return [key for key, first, last in _lan_claims(c) if first not in lan or last not in lan]


def wider_lan_needed(c: HomelabConfig) -> ipaddress.IPv4Network | None:
    """The smallest widening of `network.lanCidr` that holds every configured address, when more
    than one of them lies outside it: then the LAN is what is wrong (one line), not each address.
    A single stray address, or ones no widening holds, stay the addresses' own problems."""
    lan = c.network.lan_cidr
    if len(_outside_lan(c)) < 2:
        return None
    claims = _lan_claims(c)
    for prefix in range(lan.prefixlen - 1, 7, -1):
        wider = lan.supernet(new_prefix=prefix)
        if all(first in wider and last in wider for _, first, last in claims):
            return wider
    return None


def lan_holds_the_addresses(c: HomelabConfig) -> Iterable[Problem]:
    wider = wider_lan_needed(c)
    if wider is None:
        return
    outside = _outside_lan(c)
    shown = ", ".join(outside[:3]) + (f" and {len(outside) - 3} more" if len(outside) > 3 else "")
    yield Problem(
        _key("network.lanCidr"),
        _q(c.network.lan_cidr),
        f"is too small for the configured addresses ({len(outside)} lie outside it: {shown}); "
        f"use a network that holds them all, e.g. {str(wider)!r}",
    )


def node_link_selected_once(c: HomelabConfig) -> Iterable[Problem]:
    """A node's LAN link is named by `interface` or found by `mac`, not both."""
    for i, node in enumerate(c.cluster.nodes):
        with per_item():
            if node.interface is not None and node.mac is not None:
                yield Problem(
                    _key(f"cluster.nodes[{i}].mac"),
                    _q(node.mac),
                    f"must not be set together with interface {node.interface!r}: set "
                    "`interface` to name the link, or `mac` to find it by its permanent MAC, "
                    "not both",
                )


def node_macs_unique(c: HomelabConfig) -> Iterable[Problem]:
    # One NIC cannot be in two machines: a repeated MAC is a copy-paste mistake, and the second
    # node's link would match nothing.
    macs = [(i, mac) for i, mac in parsed(c.cluster.nodes, lambda n: n.mac) if mac is not None]
    for i, mac in _repeated(macs):
        yield Problem(_key(f"cluster.nodes[{i}].mac"), _q(mac), "must be unique across nodes")


def control_plane_scheduling_is_explicit(c: HomelabConfig) -> Iterable[Problem]:
    """With workers, whether control planes run workloads is a choice, not a silent default.

    Without workers the control planes must run the workloads (the default). Adding the first
    worker used to flip that default to off, and with it Talos' control-plane taint, the
    exclude-from-external-load-balancers label (MetalLB then stops announcing from control planes)
    and every pod whose local volume lives on a control plane (it stays Pending).
    """
    workers = len(c.cluster.workers)
    # Without control planes there is nothing to choose (odd_control_planes reports that).
    if (
        workers
        and c.cluster.control_planes
        and c.cluster.allow_scheduling_on_control_planes is None
    ):
        yield Problem(
            _key("cluster.allowSchedulingOnControlPlanes"),
            f"(not set, with {workers} worker node(s))",
            "must be set once there are workers: true keeps workloads, MetalLB announcements and "
            "local volumes on the control planes; false taints the control planes "
            "(NoSchedule), keeps Talos' exclude-from-external-load-balancers label on them so "
            "MetalLB announces from workers only, and pods whose local volumes are on a control "
            "plane stay Pending",
        )


def current_addresses_are_moves(c: HomelabConfig) -> Iterable[Problem]:
    """`currentAddress` names where a node answers while it moves to `ip`: another address than
    its own new one, and not an address another node has or moves from (the apply would then
    configure the wrong machine)."""
    others = {
        str(ip): f"node {hostname}'s ip"
        for _, (hostname, ip) in parsed(c.cluster.nodes, lambda n: (n.hostname, n.ip))
    }
    for i, node in enumerate(c.cluster.nodes):
        with per_item():
            current = node.current_address
            if current is None:
                continue
            key = _key(f"cluster.nodes[{i}].currentAddress")
            if current == node.ip:
                yield Problem(
                    key,
                    _q(current),
                    "equals the node's own `ip`: set it only while moving the node to a new "
                    "`ip`, and remove it once that `up` is done",
                )
            elif str(current) in others:
                yield Problem(
                    key, _q(current), f"is {others[str(current)]}; it must be this node's"
                )
            elif c.cluster.vip is not None and current == c.cluster.vip:
                yield Problem(
                    key, _q(current), "is the cluster VIP, which no node answers on alone"
                )
    moving = [
        (i, address)
        for i, address in parsed(c.cluster.nodes, lambda n: n.current_address)
        if address is not None
    ]
    for i, address in _repeated(moving):
        yield Problem(
            _key(f"cluster.nodes[{i}].currentAddress"), _q(address), "must be unique across nodes"
        )


def removed_nodes_reset_with_the_stack(c: HomelabConfig) -> Iterable[Problem]:
    # With resetNodesOnDestroy every node's Talos config resets the machine when it goes, a
    # removed node included (components/cluster/talos.py `on_destroy`), so "keep it" cannot hold.
    lifecycle = c.lifecycle
    if lifecycle.reset_removed_nodes is False and lifecycle.reset_on_destroy:
        yield Problem(
            _key("lifecycle.resetRemovedNodes"),
            "False",
            "cannot keep removed nodes while lifecycle.resetNodesOnDestroy is on (it resets "
            "every node whose config goes, a removed one too); turn that off or drop this key",
        )


def image_factory_entries_unique(c: HomelabConfig) -> Iterable[Problem]:
    factory = c.cluster.image_factory
    for field, values in (
        ("systemExtensions", factory.system_extensions),
        ("extraKernelArgs", factory.extra_kernel_args),
    ):
        first: dict[str, int] = {}
        for i, value in parsed(values):
            if first.setdefault(value, i) != i:
                yield Problem(
                    _key(f"cluster.imageFactory.{field}[{i}]"),
                    _q(value),
                    "is listed twice; list each once",
                )


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
    backup_credentials_match_target,
    policy_references_exist,
    policy_subnets_in_lan,
    gateway_not_reused,
    workloads_have_somewhere_to_run,
    apps_avoid_builtin_names,
    talos_version_supported,
    kubernetes_version_supported_by_talos,
    talos_config_contract_fits,
    lan_holds_the_addresses,
    node_link_selected_once,
    node_macs_unique,
    control_plane_scheduling_is_explicit,
    saved_certificate_parses,
    policy_host_aliases_free,
    policy_tests_hold,
    policy_builtin_access,
    current_addresses_are_moves,
    removed_nodes_reset_with_the_stack,
    image_factory_entries_unique,
    *RESERVED_RULES,
)


# Checks that evaluate what the shipped policy grants (its tests, the built-in access). Over a
# policy that Headscale would refuse they report the refusal's consequence as a failure of their
# own: a test whose only rule names an undefined source "is denied, no rule grants it". So they
# run only when the rules about the policy itself found nothing and every value they read
# validated; the person fixes the policy first, then sees the verdicts.
POLICY_RULES: tuple[Rule, ...] = (
    policy_references_exist,
    policy_subnets_in_lan,
    policy_host_aliases_free,
)
DERIVED_FROM_THE_POLICY: tuple[Rule, ...] = (policy_tests_hold, policy_builtin_access)


def _policy_inputs_validated(c: HomelabConfig) -> bool:
    """Whether everything the policy document is rendered from validated (no stand-in)."""
    try:
        inputs = (c.domain, c.remote_access, c.apps, c.network.lan_cidr, c.network.traefik_ip)
    except InputUnavailableError:
        return False
    return not has_unavailable(inputs)


def check_rules(config: HomelabConfig) -> list[Problem]:
    """Every problem of every rule; a rule that reads a section which failed field validation
    (an `Unavailable` stand-in) is skipped, with whatever it found before reaching it (rules
    over lists check each item on its own: config/problems.py `parsed`, `per_item`)."""
    problems: list[Problem] = []
    found_by: dict[Rule, list[Problem] | None] = {}
    for rule in RULES:
        if rule in DERIVED_FROM_THE_POLICY:
            continue
        try:
            found_by[rule] = found = list(rule(config))
        except InputUnavailableError:
            found_by[rule] = None
            continue
        problems.extend(found)
    if all(found_by[rule] == [] for rule in POLICY_RULES) and _policy_inputs_validated(config):
        for rule in DERIVED_FROM_THE_POLICY:
            try:
                problems.extend(list(rule(config)))
            except InputUnavailableError:
                continue
    return problems
