"""Per-node Talos machine-config patches as plain data: pure functions, serialised once.

Every node gets the documents below as `config_patches` of its ConfigurationApply, on top of the
generated config for its role. Network settings use the multi-document form (HostnameConfig,
LinkConfig, ResolverConfig, Layer2VIPConfig): Talos 1.12 deprecated `.machine.network`
(hack/release.toml @ v1.12.0, components.md 1.3), the v1.13 config schema no longer lists it, and
for a >= 1.12 contract the generator itself emits a `HostnameConfig` document
(pkg/machinery/config/generate @ v1.13.9), so the legacy field would conflict with it.
"""

from __future__ import annotations

from typing import Any, Final

import yaml

from components.cluster.image_factory import boot_media
from config.model import Cluster, Network, Node

# Talos labels control-plane nodes with this at config generation (CHANGELOG.md @ v1.13.9
# "Default Node Labels"); MetalLB then never announces LoadBalancer IPs from them
# (components.md 1.4 #2).
EXCLUDE_FROM_LOAD_BALANCERS_LABEL: Final = "node.kubernetes.io/exclude-from-external-load-balancers"

# Name given to the node's LAN NIC (its only physical NIC, or the one with `node.mac`) when
# `node.interface` is not set. Talos' docs warn against kernel-style names (eth0, enp0s2) for
# aliases (LinkAliasConfig reference, v1.13).
DEFAULT_LINK_ALIAS: Final = "lan"

Document = dict[str, Any]


def installer_image(cluster: Cluster) -> str:
    """The installer for the pinned Talos version, of the cluster's Image Factory schematic.

    `talos_version` on the data source only sets the config contract; without this the provider
    installs its own machinery version (components.md 1.3, get_configuration.py docstring).
    Without extensions or kernel arguments it is the vanilla installer
    (components/cluster/image_factory.py).
    """
    return boot_media(cluster).installer_image


def link_name(node: Node) -> str:
    """The link the static address (and, on control planes, the VIP) goes on."""
    return node.interface or DEFAULT_LINK_ALIAS


def machine_document(
    cluster: Cluster, node: Node, kubelet_host_paths: tuple[str, ...] = ()
) -> Document:
    """The partial v1alpha1 document: install target, kubelet mounts, control-plane knobs."""
    machine: Document = {
        "install": {"disk": node.install_disk, "image": installer_image(cluster)},
    }
    if kubelet_host_paths:
        # The kubelet runs in its own mount namespace on Talos: a hostPath under /var that pods
        # should share must be bind-mounted into it, rshared so volumes created later propagate
        # (Talos docs, kubernetes-guides local-storage; components.md 1.4 #4).
        machine["kubelet"] = {
            "extraMounts": [
                {
                    "destination": path,
                    "type": "bind",
                    "source": path,
                    "options": ["bind", "rshared", "rw"],
                }
                for path in sorted(kubelet_host_paths)
            ]
        }
    document: Document = {"machine": machine}
    if node.role == "controlplane":
        # Explicit either way: upstream it is a *bool, so `false` is kept, not read as unset
        # (v1alpha1_types.go @ v1.13.9), and the patch states what the cluster does.
        document["cluster"] = {
            "allowSchedulingOnControlPlanes": cluster.schedule_on_control_planes,
            # Talos' default flannel accepts NetworkPolicy objects but only enforces them with
            # kube-network-policies deployed beside it (FlannelCNIConfig.kubeNetworkPoliciesEnabled,
            # Talos v1.13 config schema). The stack ships policies for its own workloads
            # (components/shared/security.py), so they must be enforced, not decorative.
            "network": {
                "cni": {"name": "flannel", "flannel": {"kubeNetworkPoliciesEnabled": True}}
            },
        }
        if cluster.schedule_on_control_planes:
            # Control planes that run the workloads must also be allowed to announce their
            # LoadBalancer IPs. With dedicated workers, Talos' default (keep external traffic
            # off the control plane) stands and MetalLB announces from the workers.
            # `$patch: delete` is the strategic-merge way to drop a generated key
            # (siderolabs/talos docs "workers on control plane", commit 44edd205d).
            machine["nodeLabels"] = {EXCLUDE_FROM_LOAD_BALANCERS_LABEL: {"$patch": "delete"}}
    return document


def hostname_document(node: Node) -> Document:
    # `auto: off` with a static hostname is what Talos' own WithStaticHostname patch does: the
    # generated config carries `auto: stable`, and `auto` other than off conflicts with
    # `hostname` (pkg/machinery/config/types/network/hostname.go @ v1.13.9).
    return {
        "apiVersion": "v1alpha1",
        "kind": "HostnameConfig",
        "auto": "off",
        "hostname": node.hostname,
    }


def link_selector(node: Node) -> str:
    """The CEL expression that picks the node's LAN NIC among its physical links.

    Talos offers only physical links to alias selectors, and an alias with a fixed name is
    skipped when its selector matches more than one of them (siderolabs/talos@v1.13.9:
    internal/app/machined/pkg/controllers/network/link_alias_config.go, "link selector matched
    multiple links, skipping"). `true` is therefore right for a node with one NIC only; a node
    with several is found by its permanent MAC, in the form Talos documents
    (pkg/machinery/config/types/network/link_alias.go `exampleLinkSelector1`).
    """
    if node.mac is None:
        return "true"
    return f'mac(link.permanent_addr) == "{node.mac}"'


def link_alias_document(node: Node) -> Document:
    # Talos' docs warn against kernel-style names for aliases (LinkAliasConfig reference, v1.13).
    return {
        "apiVersion": "v1alpha1",
        "kind": "LinkAliasConfig",
        "name": DEFAULT_LINK_ALIAS,
        "selector": {"match": link_selector(node)},
    }


def link_document(network: Network, node: Node) -> Document:
    return {
        "apiVersion": "v1alpha1",
        "kind": "LinkConfig",
        "name": link_name(node),
        "addresses": [{"address": f"{node.ip}/{network.lan_cidr.prefixlen}"}],
        # No destination: a default route for the gateway's address family (LinkConfig reference).
        "routes": [{"gateway": str(network.gateway)}],
    }


def resolver_document(network: Network) -> Document:
    return {
        "apiVersion": "v1alpha1",
        "kind": "ResolverConfig",
        "nameservers": [{"address": str(ns)} for ns in network.node_nameservers],
    }


def vip_document(cluster: Cluster, node: Node) -> Document | None:
    """The shared API address, on control planes only (Layer2VIPConfig is CP-only upstream)."""
    if cluster.vip is None or node.role != "controlplane":
        return None
    return {
        "apiVersion": "v1alpha1",
        "kind": "Layer2VIPConfig",
        "name": str(cluster.vip),
        "link": link_name(node),
    }


def talos_api_access_document(namespace: str, role: str) -> Document:
    """Pods in `namespace` may get a talosconfig with `role` (and no other) through a
    `talos.dev` ServiceAccount (components/cluster/etcd_snapshots.py). A control-plane feature:
    the ServiceAccount controller and the `talos.default` Service run there (v1alpha1
    `machine.features.kubernetesTalosAPIAccess`, Talos v1.13 config schema)."""
    access = {"enabled": True, "allowedRoles": [role], "allowedKubernetesNamespaces": [namespace]}
    return {"machine": {"features": {"kubernetesTalosAPIAccess": access}}}


def node_patch_documents(
    cluster: Cluster,
    network: Network,
    node: Node,
    kubelet_host_paths: tuple[str, ...] = (),
    talos_api_access: Document | None = None,
) -> list[Document]:
    """Every patch document of one node, in a fixed order."""
    documents = [machine_document(cluster, node, kubelet_host_paths), hostname_document(node)]
    if talos_api_access is not None and node.role == "controlplane":
        documents.append(talos_api_access)
    if node.interface is None:
        documents.append(link_alias_document(node))
    documents += [link_document(network, node), resolver_document(network)]
    vip = vip_document(cluster, node)
    if vip is not None:
        documents.append(vip)
    return documents


def serialise(document: Document) -> str:
    """One YAML document, keys sorted, so the same config gives byte-identical patches."""
    return yaml.safe_dump(document, sort_keys=True, default_flow_style=False)


def node_config_patches(
    cluster: Cluster,
    network: Network,
    node: Node,
    *,
    kubelet_host_paths: tuple[str, ...] = (),
    talos_api_access: Document | None = None,
) -> list[str]:
    """The node's `config_patches`: one YAML string per document."""
    documents = node_patch_documents(cluster, network, node, kubelet_host_paths, talos_api_access)
    return [serialise(d) for d in documents]
