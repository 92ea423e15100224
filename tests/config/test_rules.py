"""Each cross-field rule, alone: it reports the broken config and accepts the closest valid one.

Every case starts from the committed homelab stack (192.168.0.0/24, gateway .1, VIP .10, control
planes .11-.13, pool .220-.239, Traefik .220). The near miss sits right beside the break (the IP
just inside the pool, the 32-character secret, a domain that shares a text suffix but no label),
so a rule can neither pass by always failing nor by never failing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from config import pins
from config.loader import validate_config
from config.model import HomelabConfig
from config.reserved import (
    exposed_host_names_fit,
    lan_avoids_reserved_networks,
    node_nameservers_outside_the_stack,
    vpn_nameservers_reachable,
    workload_release_names_fit,
)
from config.rules import (
    RULES,
    TALOS_FEATURES,
    TALOS_KUBERNETES_SUPPORT,
    Rule,
    acme_zone_matches_domain,
    apps_avoid_builtin_names,
    apps_have_backend,
    apps_unique,
    backup_credentials_match_target,
    check_rules,
    control_plane_scheduling_is_explicit,
    current_addresses_are_moves,
    gateway_in_lan,
    gateway_not_reused,
    headplane_cookie_secret_length,
    homelab_never_resets_nodes,
    hostnames_unique,
    hosts_unique,
    image_factory_entries_unique,
    kubernetes_version_supported_by_talos,
    lan_holds_the_addresses,
    magic_dns_domain_safe,
    node_ips_in_lan,
    node_ips_unique,
    node_link_selected_once,
    node_macs_unique,
    odd_control_planes,
    policy_builtin_access,
    policy_host_aliases_free,
    policy_references_exist,
    policy_subnets_in_lan,
    policy_tests_hold,
    pool_names_unique,
    pools_avoid_reserved,
    pools_do_not_overlap,
    pools_in_lan,
    removed_nodes_reset_with_the_stack,
    saved_certificate_parses,
    stun_ip_in_pool,
    subnet_routes_in_lan,
    talos_config_contract_fits,
    talos_version_supported,
    traefik_ip_in_pool,
    version_core,
    vip_in_lan,
    vip_not_a_node_ip,
    workloads_have_somewhere_to_run,
)
from tests.config.corpus import mutate
from tests.harness import reference_json, stack_raw_config

NODE_4_WORKER = {"hostname": "talos-4", "ip": "192.168.0.14", "role": "worker"}
LAN_ROUTE = "192.168.0.0/24:*"


@dataclass(frozen=True)
class Change:
    set: Mapping[str, Any] = field(default_factory=dict)
    delete: tuple[str, ...] = ()

    def raw(self) -> dict[str, Any]:
        # Without the stack's example policy: the policy cases set their own parts of it.
        base = mutate(stack_raw_config(), {}, ("remoteAccess.policy",))
        return mutate(base, self.set, self.delete)


@dataclass(frozen=True)
class RuleCase:
    id: str
    rule: Rule
    breaks: Change
    key: str  # the key (without namespace) the problem names
    near_miss: Change


def case(
    id: str,
    rule: Rule,
    breaks: Mapping[str, Any],
    key: str,
    near_miss: Mapping[str, Any],
    *,
    breaks_delete: tuple[str, ...] = (),
    near_miss_delete: tuple[str, ...] = (),
) -> RuleCase:
    return RuleCase(
        id, rule, Change(breaks, breaks_delete), key, Change(near_miss, near_miss_delete)
    )


_S3_BACKUPS = {
    "s3": {"endpoint": "https://minio.lan:9000", "bucket": "backups", "accessKeyId": "homelab"}
}
_NFS_BACKUPS = {"nfs": {"server": "nas.lan", "path": "/volume1/backups"}}


def _saved_certificate(key: str | None = None) -> str:
    """A saved wildcard Secret in the shape `lab destroy` writes (config/model.py)."""

    def pem(kind: str) -> str:
        return base64.b64encode(
            f"-----BEGIN {kind}-----\nx\n-----END {kind}-----\n".encode()
        ).decode()

    return json.dumps(
        {
            "annotations": {"cert-manager.io/issuer-kind": "ClusterIssuer"},
            "tls.crt": pem("CERTIFICATE"),
            "tls.key": key if key is not None else pem("EC PRIVATE KEY"),
        }
    )


def _renumbered(prefix: str) -> dict[str, Any]:
    """The fixture stack moved to the /24 `prefix`.0/24, every address with it."""
    return {
        "network.lanCidr": f"{prefix}.0/24",
        "network.gateway": f"{prefix}.1",
        "network.addressPools.0.addresses": [f"{prefix}.220-{prefix}.239"],
        "network.traefikIp": f"{prefix}.220",
        "remoteAccess.derp.stunIp": f"{prefix}.221",
        "cluster.vip": f"{prefix}.10",
        **{f"cluster.nodes.{i}.ip": f"{prefix}.{11 + i}" for i in range(3)},
    }


def _long_domain(length: int) -> str:
    """A public domain (under .love) of exactly `length` characters, labels of at most 61."""
    labels, rest = [], length - len(".love")
    while rest > 0:
        size = min(61, rest)
        labels.append("d" * size)
        rest -= size + 1
    return ".".join(labels) + ".love"


CASES = [
    case(
        # Talos' service network is 10.96.0.0/12: 10.96.0.0-10.111.255.255.
        "lan-in-talos-service-network",
        lan_avoids_reserved_networks,
        _renumbered("10.111.0"),
        "network.lanCidr",
        _renumbered("10.112.0"),
    ),
    case(
        "lan-in-the-tailnet",
        lan_avoids_reserved_networks,
        _renumbered("100.64.1"),
        "network.lanCidr",
        _renumbered("100.128.1"),
    ),
    case(
        "node-resolver-in-the-metallb-pool",
        node_nameservers_outside_the_stack,
        {"network.nameservers": ["192.168.0.225"]},
        "network.nameservers[0]",
        {"network.nameservers": ["192.168.0.240"]},
    ),
    case(
        "node-resolver-is-the-vip",
        node_nameservers_outside_the_stack,
        {"network.nameservers": ["192.168.0.10"]},
        "network.nameservers[0]",
        {"network.nameservers": ["192.168.0.9"]},
    ),
    case(
        "node-resolver-is-cluster-dns",
        node_nameservers_outside_the_stack,
        {"network.nameservers": ["10.96.0.10"]},
        "network.nameservers[0]",
        {"network.nameservers": ["10.95.255.254"]},
    ),
    case(
        "vpn-resolver-in-the-service-network",
        vpn_nameservers_reachable,
        {"remoteAccess.nameservers": ["10.96.0.10"]},
        "remoteAccess.nameservers[0]",
        {"remoteAccess.nameservers": ["192.168.0.53"]},
    ),
    case(
        # The release is 'apps-<name>': 5 + 49 = 54 characters, one over Helm's 53.
        "release-name-over-helm-limit",
        workload_release_names_fit,
        {"apps.0.name": "g" * 49},
        "apps[0].name",
        {"apps.0.name": "g" * 48},
    ),
    case(
        # 'headplane.' (10) + domain: 244 makes 254, one over 253.
        "host-name-over-253",
        exposed_host_names_fit,
        {
            "domain": _long_domain(244),
            "remoteAccess.magicDnsBaseDomain": "ts.sarma.love",
            "tls.acmeEmail": "admin@sarma.love",
        },
        "domain",
        {
            "domain": _long_domain(243),
            "remoteAccess.magicDnsBaseDomain": "ts.sarma.love",
            "tls.acmeEmail": "admin@sarma.love",
        },
    ),
    case(
        "gateway-off-lan",
        gateway_in_lan,
        {"network.gateway": "192.168.1.1"},
        "network.gateway",
        {"network.gateway": "192.168.0.254"},
    ),
    case(
        "gateway-broadcast",
        gateway_in_lan,
        {"network.gateway": "192.168.0.255"},
        "network.gateway",
        {"network.gateway": "192.168.0.254"},
    ),
    case(
        "node-off-lan",
        node_ips_in_lan,
        {"cluster.nodes.2.ip": "192.168.1.13"},
        "cluster.nodes[2].ip",
        {"cluster.nodes.2.ip": "192.168.0.254"},
    ),
    case(
        "node-broadcast",
        node_ips_in_lan,
        {"cluster.nodes.2.ip": "192.168.0.255"},
        "cluster.nodes[2].ip",
        {"cluster.nodes.2.ip": "192.168.0.254"},
    ),
    case(
        "node-network-address",
        node_ips_in_lan,
        {"cluster.nodes.0.ip": "192.168.0.0"},
        "cluster.nodes[0].ip",
        {"cluster.nodes.0.ip": "192.168.0.2"},
    ),
    case(
        "vip-off-lan",
        vip_in_lan,
        {"cluster.vip": "192.168.1.10"},
        "cluster.vip",
        {"cluster.vip": "192.168.0.254"},
    ),
    case(
        "vip-is-node",
        vip_not_a_node_ip,
        {"cluster.vip": "192.168.0.13"},
        "cluster.vip",
        {"cluster.vip": "192.168.0.14"},
    ),
    case(
        "pool-off-lan",
        pools_in_lan,
        {"network.addressPools.0.addresses.0": "192.168.0.220-192.168.1.0"},
        "network.addressPools[0].addresses[0]",
        {"network.addressPools.0.addresses.0": "192.168.0.220-192.168.0.254"},
    ),
    case(
        "pool-over-node",
        pools_avoid_reserved,
        {"network.addressPools.0.addresses.1": "192.168.0.13-192.168.0.19"},
        "network.addressPools[0].addresses[1]",
        {"network.addressPools.0.addresses.1": "192.168.0.14-192.168.0.19"},
    ),
    case(
        "pool-over-vip",
        pools_avoid_reserved,
        {"network.addressPools.0.addresses.1": "192.168.0.2-192.168.0.10"},
        "network.addressPools[0].addresses[1]",
        {"network.addressPools.0.addresses.1": "192.168.0.2-192.168.0.9"},
    ),
    case(
        "pool-over-broadcast",
        pools_avoid_reserved,
        {"network.addressPools.0.addresses.1": "192.168.0.240/28"},
        "network.addressPools[0].addresses[1]",
        {"network.addressPools.0.addresses.1": "192.168.0.240-192.168.0.254"},
    ),
    case(
        "pools-overlap",
        pools_do_not_overlap,
        {"network.addressPools.1": {"name": "b", "addresses": ["192.168.0.239-192.168.0.250"]}},
        "network.addressPools[1].addresses[0]",
        {"network.addressPools.1": {"name": "b", "addresses": ["192.168.0.240-192.168.0.250"]}},
    ),
    case(
        "pool-names",
        pool_names_unique,
        {"network.addressPools.1": {"name": "lan", "addresses": ["192.168.0.240/29"]}},
        "network.addressPools[1].name",
        {"network.addressPools.1": {"name": "lan-2", "addresses": ["192.168.0.240/29"]}},
    ),
    case(
        "traefik-past-pool-end",
        traefik_ip_in_pool,
        {"network.traefikIp": "192.168.0.240"},
        "network.traefikIp",
        {"network.traefikIp": "192.168.0.239"},
    ),
    case(
        "traefik-before-pool",
        traefik_ip_in_pool,
        {"network.traefikIp": "192.168.0.219"},
        "network.traefikIp",
        {"network.traefikIp": "192.168.0.220"},
    ),
    case(
        "stun-ip-past-pool-end",
        stun_ip_in_pool,
        {"remoteAccess.derp.stunIp": "192.168.0.240"},
        "remoteAccess.derp.stunIp",
        {"remoteAccess.derp.stunIp": "192.168.0.239"},
    ),
    case(
        "node-ips",
        node_ips_unique,
        {"cluster.nodes.2.ip": "192.168.0.12"},
        "cluster.nodes[2].ip",
        {"cluster.nodes.2.ip": "192.168.0.14"},
    ),
    case(
        "hostnames",
        hostnames_unique,
        {"cluster.nodes.2.hostname": "talos-cp-2"},
        "cluster.nodes[2].hostname",
        {"cluster.nodes.2.hostname": "talos-cp-4"},
    ),
    case(
        "no-node-for-workloads",
        workloads_have_somewhere_to_run,
        {"cluster.allowSchedulingOnControlPlanes": False},
        "cluster.allowSchedulingOnControlPlanes",
        {"cluster.allowSchedulingOnControlPlanes": False, "cluster.nodes.3": NODE_4_WORKER},
    ),
    case(
        "two-control-planes",
        odd_control_planes,
        {"cluster.nodes.2.role": "worker"},
        "cluster.nodes",
        {
            "cluster.nodes.1.role": "worker",
            "cluster.nodes.2.role": "worker",
            "cluster.allowSchedulingOnControlPlanes": True,
        },
    ),
    case(
        "four-control-planes",
        odd_control_planes,
        {"cluster.nodes.3": {**NODE_4_WORKER, "role": "controlplane"}},
        "cluster.nodes",
        {"cluster.nodes.3": NODE_4_WORKER, "cluster.allowSchedulingOnControlPlanes": True},
    ),
    case(
        "interface-and-mac",
        node_link_selected_once,
        {"cluster.nodes.1.interface": "enp1s0", "cluster.nodes.1.mac": "00:1a:2b:3c:4d:5e"},
        "cluster.nodes[1].mac",
        {"cluster.nodes.1.mac": "00:1a:2b:3c:4d:5e"},
    ),
    case(
        "macs-unique",
        node_macs_unique,
        # The same NIC in another spelling is still the same NIC.
        {"cluster.nodes.0.mac": "00:1a:2b:3c:4d:5e", "cluster.nodes.2.mac": "00-1A-2B-3C-4D-5E"},
        "cluster.nodes[2].mac",
        {"cluster.nodes.0.mac": "00:1a:2b:3c:4d:5e", "cluster.nodes.2.mac": "00:1a:2b:3c:4d:5f"},
    ),
    case(
        "scheduling-choice-with-workers",
        control_plane_scheduling_is_explicit,
        {"cluster.nodes.3": NODE_4_WORKER},
        "cluster.allowSchedulingOnControlPlanes",
        {"cluster.nodes.3": NODE_4_WORKER, "cluster.allowSchedulingOnControlPlanes": False},
    ),
    case(
        "magic-dns-parent",
        magic_dns_domain_safe,
        {"remoteAccess.magicDnsBaseDomain": "sarma.love"},
        "remoteAccess.magicDnsBaseDomain",
        {"remoteAccess.magicDnsBaseDomain": "cale.sarma.love"},
    ),
    case(
        "magic-dns-equal",
        magic_dns_domain_safe,
        {"remoteAccess.magicDnsBaseDomain": "headscale.sarma.love"},
        "remoteAccess.magicDnsBaseDomain",
        {"remoteAccess.magicDnsBaseDomain": "headscale.sarma.lov"},
    ),
    case(
        "route-wider-than-lan",
        subnet_routes_in_lan,
        {"remoteAccess.router.routes": ["192.168.0.0/23"]},
        "remoteAccess.router.routes[0]",
        {"remoteAccess.router.routes": ["192.168.0.0/24"]},
    ),
    case(
        "route-off-lan",
        subnet_routes_in_lan,
        {"remoteAccess.router.routes": ["192.168.0.128/25", "192.168.1.0/25"]},
        "remoteAccess.router.routes[1]",
        {"remoteAccess.router.routes": ["192.168.0.128/25", "192.168.0.0/25"]},
    ),
    case(
        "app-names",
        apps_unique,
        {"apps.1": {"name": "grafana", "namespace": "other", "host": "g2", "service": "g2"}},
        "apps[1].name",
        {"apps.1": {"name": "grafana-2", "namespace": "other", "host": "g2", "service": "g2"}},
    ),
    case(
        "app-on-headscale",
        hosts_unique,
        {"apps.0.host": "headscale"},
        "apps[0].host",
        {"apps.0.host": "headscal"},
    ),
    case(
        "app-on-headplane",
        hosts_unique,
        {"apps.0.host": "headplane"},
        "apps[0].host",
        {"apps.0.host": "headplanes"},
    ),
    case(
        "app-hosts",
        hosts_unique,
        {"apps.1": {"name": "wiki", "namespace": "wiki", "host": "grafana", "service": "wiki"}},
        "apps[1].host",
        {"apps.1": {"name": "wiki", "namespace": "wiki", "service": "wiki"}},
    ),
    case(
        "headplane-on-headscale",
        hosts_unique,
        {"remoteAccess.headplane.host": "headscale"},
        "remoteAccess.headplane.host",
        {"remoteAccess.headplane.host": "headscale", "remoteAccess.headplane.enabled": False},
    ),
    case(
        "app-without-backend",
        apps_have_backend,
        {"apps.1": {"name": "wiki", "namespace": "wiki"}},
        "apps[1]",
        {"apps.1": {"name": "wiki", "namespace": "wiki", "service": "wiki"}},
    ),
    case(
        "app-with-two-backends",
        apps_have_backend,
        {"apps.0.service": "grafana"},
        "apps[0].service",
        {"apps.0.service": "grafana"},
        near_miss_delete=("apps.0.workload",),
    ),
    case(
        "homelab-reset",
        homelab_never_resets_nodes,
        {"lifecycle.resetNodesOnDestroy": True},
        "lifecycle.resetNodesOnDestroy",
        {"lifecycle.resetNodesOnDestroy": True, "lifecycle.environment": "lab"},
    ),
    case(
        "acme-zone-text-suffix",
        acme_zone_matches_domain,
        {"domain": "lab.sarma.love", "tls.dns01.zone": "ab.sarma.love"},
        "tls.dns01.zone",
        {"domain": "lab.sarma.love", "tls.dns01.zone": "sarma.love"},
    ),
    case(
        "acme-zone-other",
        acme_zone_matches_domain,
        {"tls.dns01.zone": "example.com"},
        "tls.dns01.zone",
        {"tls.dns01.zone": "sarma.love"},
    ),
    case(
        "cookie-31",
        headplane_cookie_secret_length,
        {"headplaneCookieSecret": "a" * 31},
        "headplaneCookieSecret",
        {"headplaneCookieSecret": "a" * 32},
    ),
    case(
        "cookie-33",
        headplane_cookie_secret_length,
        {"headplaneCookieSecret": "a" * 33},
        "headplaneCookieSecret",
        {"headplaneCookieSecret": "b" * 32},
    ),
    case(
        "s3-backup-without-secret-key",
        backup_credentials_match_target,
        {"backups": _S3_BACKUPS},
        "backupSecretAccessKey",
        {"backups": _S3_BACKUPS, "backupSecretAccessKey": "backup-secret"},
    ),
    case(
        "backup-secret-key-without-s3",
        backup_credentials_match_target,
        {"backups": _NFS_BACKUPS, "backupSecretAccessKey": "backup-secret"},
        "backupSecretAccessKey",
        {"backups": _NFS_BACKUPS},
    ),
    case(
        "saved-certificate-key-not-base64",
        saved_certificate_parses,
        {"wildcardCertificate": _saved_certificate(key="not base64!")},
        "wildcardCertificate",
        {"wildcardCertificate": _saved_certificate()},
    ),
    case(
        "policy-group",
        policy_references_exist,
        {"remoteAccess.policy.acls": [{"src": ["group:devs"], "dst": [LAN_ROUTE]}]},
        "remoteAccess.policy.acls[0].src[0]",
        {
            "remoteAccess.policy.acls": [{"src": ["group:devs"], "dst": [LAN_ROUTE]}],
            "remoteAccess.policy.groups": {"group:devs": ["alice@"]},
        },
    ),
    case(
        "policy-tag",
        policy_references_exist,
        {"remoteAccess.policy.acls": [{"src": ["group:admins"], "dst": ["tag:web:443"]}]},
        "remoteAccess.policy.acls[0].dst[0]",
        {
            "remoteAccess.policy.acls": [{"src": ["group:admins"], "dst": ["tag:web:443"]}],
            "remoteAccess.policy.tagOwners": {"tag:web": ["group:admins"]},
        },
    ),
    case(
        "policy-router-tag-is-owned",
        policy_references_exist,
        {"remoteAccess.policy.acls": [{"src": ["tag:k8s-routers"], "dst": [LAN_ROUTE]}]},
        "remoteAccess.policy.acls[0].src[0]",
        {"remoteAccess.policy.acls": [{"src": ["tag:k8s-router"], "dst": [LAN_ROUTE]}]},
    ),
    case(
        "policy-host-alias",
        policy_references_exist,
        {"remoteAccess.policy.acls": [{"src": ["nas"], "dst": [LAN_ROUTE]}]},
        "remoteAccess.policy.acls[0].src[0]",
        {
            "remoteAccess.policy.acls": [{"src": ["nas"], "dst": [LAN_ROUTE]}],
            "remoteAccess.policy.hosts": {"nas": "192.168.0.5/32"},
        },
    ),
    case(
        "policy-host-off-lan",
        policy_subnets_in_lan,
        {"remoteAccess.policy.hosts": {"nas": "192.168.1.5/32"}},
        "remoteAccess.policy.hosts.nas",
        {"remoteAccess.policy.hosts": {"nas": "192.168.0.5/32"}},
    ),
    case(
        "policy-host-past-tailnet",
        policy_subnets_in_lan,
        {"remoteAccess.policy.hosts": {"laptop": "100.128.0.1/32"}},
        "remoteAccess.policy.hosts.laptop",
        {"remoteAccess.policy.hosts": {"laptop": "100.127.255.254/32"}},
    ),
    case(
        "policy-test-fails",
        policy_tests_hold,
        {"remoteAccess.policy.tests": [{"src": "carol@", "accept": ["grafana:443"]}]},
        "remoteAccess.policy.tests[0].accept[0]",
        {
            "remoteAccess.policy.tests": [{"src": "carol@", "accept": ["grafana:443"]}],
            "remoteAccess.policy.acls": [{"src": ["carol@"], "dst": ["grafana:443"]}],
        },
    ),
    case(
        "policy-grants-everyone",
        policy_builtin_access,
        {"remoteAccess.policy.acls": [{"src": ["*"], "dst": ["grafana:443"]}]},
        "remoteAccess.policy.acls[0]",
        {"remoteAccess.policy.acls": [{"src": ["carol@"], "dst": ["grafana:443"]}]},
    ),
    case(
        "policy-host-alias-is-an-app",
        policy_host_aliases_free,
        {"remoteAccess.policy.hosts": {"grafana": "192.168.0.30/32"}},
        "remoteAccess.policy.hosts.grafana",
        {"remoteAccess.policy.hosts": {"grafana-db": "192.168.0.30/32"}},
    ),
    case(
        "node-on-gateway",
        gateway_not_reused,
        {"cluster.nodes.0.ip": "192.168.0.1"},
        "cluster.nodes[0].ip",
        {"cluster.nodes.0.ip": "192.168.0.2"},
    ),
    case(
        "vip-on-gateway",
        gateway_not_reused,
        {"cluster.vip": "192.168.0.1"},
        "cluster.vip",
        {"cluster.vip": "192.168.0.2"},
    ),
]


CASES += [
    # Nodes that move, nodes that go, and the Image Factory schematic.
    case(
        "current-address-is-another-nodes-ip",
        current_addresses_are_moves,
        {"cluster.nodes.1.currentAddress": "192.168.0.13"},
        "cluster.nodes[1].currentAddress",
        {"cluster.nodes.1.currentAddress": "192.168.0.14"},
    ),
    case(
        "current-address-is-the-nodes-own-ip",
        current_addresses_are_moves,
        {"cluster.nodes.1.currentAddress": "192.168.0.12"},
        "cluster.nodes[1].currentAddress",
        {"cluster.nodes.1.currentAddress": "192.168.0.22"},
    ),
    case(
        "keep-removed-nodes-while-every-node-resets",
        removed_nodes_reset_with_the_stack,
        {"lifecycle.environment": "lab", "lifecycle.resetRemovedNodes": False},
        "lifecycle.resetRemovedNodes",
        {
            "lifecycle.environment": "lab",
            "lifecycle.resetRemovedNodes": False,
            "lifecycle.resetNodesOnDestroy": False,
        },
    ),
    case(
        "extension-listed-twice",
        image_factory_entries_unique,
        {"cluster.imageFactory.systemExtensions": ["siderolabs/iscsi-tools"] * 2},
        "cluster.imageFactory.systemExtensions[1]",
        {
            "cluster.imageFactory.systemExtensions": [
                "siderolabs/iscsi-tools",
                "siderolabs/util-linux-tools",
            ]
        },
    ),
    case(
        "app-named-like-a-builtin",
        apps_avoid_builtin_names,
        {"apps.0.name": "headscale", "apps.0.host": "grafana"},
        "apps[0].name",
        {"apps.0.name": "headscales", "apps.0.host": "grafana"},
    ),
    case(
        "app-host-is-a-builtin-name",
        apps_avoid_builtin_names,
        {"remoteAccess.headplane.host": "ui", "apps.0.host": "headplane"},
        "apps[0].host",
        {"remoteAccess.headplane.host": "ui", "apps.0.host": "panel"},
    ),
    # siderolabs/talos@v1.12.11 lacks kubeNetworkPoliciesEnabled; v1.13.0 has it.
    case(
        "talos-before-the-patches-features",
        talos_version_supported,
        {"cluster.talosVersion": "v1.12.11"},
        "cluster.talosVersion",
        {"cluster.talosVersion": "v1.13.0"},
    ),
    case(
        "talos-past-the-support-table",
        talos_version_supported,
        {"cluster.talosVersion": "v1.14.0"},
        "cluster.talosVersion",
        {"cluster.talosVersion": "v1.13.12"},
    ),
    # siderolabs/talos@v1.13.9 pkg/machinery/compatibility/talos113: Minimum 1.31.0, and
    # kubernetes_version.go refuses a version `>=` Maximum 1.36.99.
    case(
        "kubernetes-below-talos-minimum",
        kubernetes_version_supported_by_talos,
        {"cluster.kubernetesVersion": "1.30.99"},
        "cluster.kubernetesVersion",
        {"cluster.kubernetesVersion": "1.31.0"},
    ),
    case(
        "kubernetes-at-talos-maximum",
        kubernetes_version_supported_by_talos,
        {"cluster.kubernetesVersion": "1.36.99"},
        "cluster.kubernetesVersion",
        {"cluster.kubernetesVersion": "1.36.98"},
    ),
    case(
        "contract-above-installed-talos",
        talos_config_contract_fits,
        {"cluster.talosConfigContract": "v1.14.0"},
        "cluster.talosConfigContract",
        {"cluster.talosConfigContract": "v1.13.0"},
    ),
    case(
        "contract-older-than-the-patches-support",
        talos_config_contract_fits,
        {"cluster.talosConfigContract": "v1.11.9"},
        "cluster.talosConfigContract",
        {"cluster.talosConfigContract": "v1.12.0"},
    ),
    case(
        "lan-too-small",
        lan_holds_the_addresses,
        {"network.lanCidr": "192.168.0.0/29"},
        "network.lanCidr",
        {"network.lanCidr": "192.168.0.0/24"},
    ),
]


def _model(change: Change) -> HomelabConfig:
    # Field validation only: the rules are what is under test.
    return HomelabConfig.model_validate(change.raw())


@pytest.mark.parametrize("rule_case", CASES, ids=lambda c: c.id)
def test_rule_reports_the_break_at_its_key(rule_case: RuleCase) -> None:
    problems = list(rule_case.rule(_model(rule_case.breaks)))
    assert f"homelab:{rule_case.key}" in {p.key for p in problems}, problems


@pytest.mark.parametrize("rule_case", CASES, ids=lambda c: c.id)
def test_rule_accepts_the_near_miss_and_the_whole_config_is_valid(rule_case: RuleCase) -> None:
    assert list(rule_case.rule(_model(rule_case.near_miss))) == []
    validate_config(rule_case.near_miss.raw())


def test_every_rule_has_a_focused_case() -> None:
    assert {r.__name__ for r in RULES} == {c.rule.__name__ for c in CASES}


def test_the_committed_homelab_stack_breaks_no_rule() -> None:
    assert check_rules(_model(Change())) == []


def test_a_secret_is_never_echoed_by_the_length_rule() -> None:
    secret = "not-32-characters-but-very-secret"
    problems = list(
        headplane_cookie_secret_length(_model(Change({"headplaneCookieSecret": secret})))
    )
    assert len(problems) == 1
    assert secret not in problems[0].line()
    assert f"{len(secret)} characters" in problems[0].value


def test_lan_edges_are_host_addresses_only_on_lans_wider_than_a_slash_31() -> None:
    # On a /31 both addresses are hosts (RFC 3021): neither rule may call them network/broadcast.
    change = Change(
        {
            "network.lanCidr": "10.9.0.0/31",
            "network.gateway": "10.9.0.0",
            "cluster.nodes": [{"hostname": "solo", "ip": "10.9.0.1", "role": "controlplane"}],
        },
        ("cluster.vip",),
    )
    model = _model(change)
    assert list(gateway_in_lan(model)) == []
    assert list(node_ips_in_lan(model)) == []


def test_a_too_small_lan_is_one_line_at_lan_cidr_and_a_single_stray_address_its_own() -> None:
    small = check_rules(_model(Change({"network.lanCidr": "192.168.0.0/29"})))
    assert [p.key for p in small] == ["homelab:network.lanCidr"]
    assert "'192.168.0.0/24'" in small[0].expected
    stray = check_rules(_model(Change({"cluster.nodes.1.ip": "192.168.1.12"})))
    assert [p.key for p in stray] == ["homelab:cluster.nodes[1].ip"]


def test_the_magic_dns_hint_never_offers_the_refused_value() -> None:
    for host in ("ts", "tailnet", "vpn", "headscale"):
        change = Change(
            {
                "remoteAccess.headscaleHost": host,
                "remoteAccess.magicDnsBaseDomain": f"{host}.sarma.love",
            }
        )
        (problem,) = magic_dns_domain_safe(_model(change))
        suggested = problem.expected.rpartition("such as ")[2].strip("'")
        assert suggested != f"{host}.sarma.love"
        # The suggestion itself is accepted.
        fixed = Change({**change.set, "remoteAccess.magicDnsBaseDomain": suggested})
        assert list(magic_dns_domain_safe(_model(fixed))) == []


def test_the_version_tables_cover_the_pins_and_the_pinned_talos_schema_has_the_features() -> None:
    """The pinned Talos (siderolabs/talos@v1.13.9) is in the support table with the pinned
    Kubernetes inside its range, and its config schema (reference upstream/talos/
    config.schema.json, `$id .../v1.13/...`) defines the features `talos_version_supported`
    requires: the flannel kubeNetworkPoliciesEnabled field and the network document kinds."""
    talos_minor = version_core(pins.TALOS_VERSION)[:2]
    low, high = TALOS_KUBERNETES_SUPPORT[talos_minor]
    assert low <= version_core(pins.KUBERNETES_VERSION) < high
    assert talos_minor >= max(TALOS_FEATURES.values())
    schema = reference_json("upstream/talos/config.schema.json")
    assert f"/v{talos_minor[0]}.{talos_minor[1]}/" in schema["$id"]
    text = json.dumps(schema)
    for feature in (
        "kubeNetworkPoliciesEnabled",
        "HostnameConfig",
        "LinkConfig",
        "Layer2VIPConfig",
    ):
        assert feature in text, feature
