"""MetalLB in L2 mode: real LAN IPs for LoadBalancer Services.

The chart runs in a `privileged` namespace (the speaker needs host networking; Talos enforces
`baseline`, components.md 1.4 #3) with the FRR/frr-k8s BGP machinery off (L2 only; 0.16 defaults to
frr-k8s, components.md 5 #3). Pools and the advertisement are custom resources that the chart's
validating webhook checks, and that webhook is not serving when the Release is ready: the
controller reports ready before its certificate rotator lets the webhook listen
(metallb/metallb@v0.16.1:internal/k8s/k8s.go), and the webhook fails closed. So they wait for a
gate that dry-runs the first pool through the webhook until it answers (components/shared/kubectl.py).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s

from components.shared.common import METALLB_NAMESPACE, ClusterAccess
from components.shared.kube import CRITICAL_PRIORITY_CLASS, HelmChart, helm_release, namespace
from components.shared.kubectl import webhook_gate
from config import pins
from config.model import Network

CHART: Final = HelmChart(pins.METALLB_CHART_REPO, "metallb", pins.METALLB_CHART_VERSION)
L2_ADVERTISEMENT: Final = "l2"
POOL_API_VERSION: Final = "metallb.io/v1beta1"
# The chart's one webhook Service; every MetalLB webhook (pools, advertisements, peers...) is served
# by the same controller-runtime server behind it (charts/metallb/templates/webhooks.yaml and
# internal/k8s/webhook.go enableWebhook @ v0.16.1), so one that answers means all do.
WEBHOOK_SERVICE: Final = "metallb-webhook-service"

# Annotations MetalLB reads on a Service (the `metallb.universe.tf/` prefix is deprecated since
# 0.14.9, components.md 5).
IPS_ANNOTATION: Final = "metallb.io/loadBalancerIPs"
POOL_ANNOTATION: Final = "metallb.io/address-pool"
SHARING_ANNOTATION: Final = "metallb.io/allow-shared-ip"


@dataclass(frozen=True)
class MetalLBArgs:
    access: ClusterAccess
    network: Network
    # Talos labels control planes `node.kubernetes.io/exclude-from-external-load-balancers`, which
    # MetalLB honours: on a cluster whose workloads run on control planes no IP would ever be
    # announced (components.md 1.4 #2). True makes the speaker ignore that label.
    announce_from_control_planes: bool = False
    # The speaker's PriorityClass.
    priority_class: str = CRITICAL_PRIORITY_CLASS


@dataclass(frozen=True)
class LoadBalancerRequest:
    """What a Service needs to get `ip` from MetalLB: its annotations, and what to wait for.

    Two Services share `ip` only when both carry the same `sharing_key`, use different ports, and
    both use `externalTrafficPolicy: Cluster` (or select the same pods) (components.md 5).
    """

    ip: str
    annotations: dict[str, str]
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    sharing_key: str | None = None


def load_balancer_annotations(
    network: Network, ip: ipaddress.IPv4Address, sharing_key: str | None = None
) -> dict[str, str]:
    """The Service annotations asking MetalLB for `ip`; refuses an IP outside every pool.

    An IP outside the pools would leave the Service `<pending>` forever (components.md 5 #4).
    """
    pool = network.pool_for(ip)
    if pool is None:
        pools = ", ".join(f"{p.name}: {', '.join(p.addresses)}" for p in network.address_pools)
        raise ValueError(f"{ip} is not inside any MetalLB pool ({pools})")
    annotations = {IPS_ANNOTATION: str(ip), POOL_ANNOTATION: pool.name}
    if sharing_key is not None:
        annotations[SHARING_ANNOTATION] = sharing_key
    return dict(sorted(annotations.items()))


def pool_manifest(name: str, addresses: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": POOL_API_VERSION,
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": METALLB_NAMESPACE},
        "spec": {"addresses": addresses},
    }


def chart_values(args: MetalLBArgs) -> dict[str, Any]:
    """Helm values: L2 only, CRDs from the chart, modest requests (values.yaml `resources`).

    The speaker answers ARP for every LoadBalancer IP: evicting it under memory pressure takes the
    front door off the LAN, so it gets a priority class above ordinary pods.
    """
    return {
        "controller": {"resources": {"requests": {"cpu": "10m", "memory": "64Mi"}}},
        "crds": {"enabled": True},
        "frrk8s": {"enabled": False},
        "speaker": {
            "frr": {"enabled": False},
            "ignoreExcludeLB": args.announce_from_control_planes,
            "priorityClassName": args.priority_class,
            "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}},
        },
    }


class MetalLB(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    # Finishes once the webhook admits a pool: what custom resources wait for.
    webhook_ready: pulumi.Resource
    pools: dict[str, k8s.apiextensions.CustomResource]
    advertisement: k8s.apiextensions.CustomResource

    def __init__(
        self, name: str, args: MetalLBArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:platform:MetalLB", name, None, opts)
        self._network = args.network
        ns = namespace(
            f"{name}-namespace",
            METALLB_NAMESPACE,
            access=args.access,
            parent=self,
            privileged=True,
        )
        self.release = helm_release(
            name,
            access=args.access,
            parent=self,
            chart=CHART,
            namespace=METALLB_NAMESPACE,
            values=chart_values(args),
            depends_on=[ns],
        )
        pools = sorted(args.network.address_pools, key=lambda p: p.name)
        manifests = {pool.name: pool_manifest(pool.name, list(pool.addresses)) for pool in pools}
        # The Release waits for the controller's Deployment, not for its webhook (see above).
        self.webhook_ready = webhook_gate(
            f"{name}-webhook-ready",
            manifests[pools[0].name],
            webhook=f"{WEBHOOK_SERVICE}.{METALLB_NAMESPACE}",
            kubeconfig=args.access.kubeconfig,
            parent=self,
            depends_on=[self.release],
            triggers=[CHART.version],
        )
        self.pools = {
            pool.name: k8s.apiextensions.CustomResource(
                f"{name}-pool-{pool.name}",
                api_version=POOL_API_VERSION,
                kind="IPAddressPool",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=pool.name, namespace=METALLB_NAMESPACE),
                spec=manifests[pool.name]["spec"],
                opts=args.access.opts(self, depends_on=[self.webhook_ready]),
            )
            for pool in pools
        }
        self.advertisement = k8s.apiextensions.CustomResource(
            f"{name}-l2-advertisement",
            api_version=POOL_API_VERSION,
            kind="L2Advertisement",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=L2_ADVERTISEMENT, namespace=METALLB_NAMESPACE),
            spec={"ipAddressPools": sorted(self.pools)},
            # Not on the pools: MetalLB skips advertised pool names it does not know (yet) and
            # reconciles again when they appear (internal/config/config.go
            # setL2AdvertisementsToPools @ v0.16.1).
            opts=args.access.opts(self, depends_on=[self.webhook_ready]),
        )
        self.register_outputs({"pools": sorted(self.pools)})

    def request_ip(
        self, ip: ipaddress.IPv4Address, *, sharing_key: str | None = None
    ) -> LoadBalancerRequest:
        """Annotations and dependencies for a Service that wants `ip` (which must be in a pool)."""
        annotations = load_balancer_annotations(self._network, ip, sharing_key)
        pool = self.pools[annotations[POOL_ANNOTATION]]
        return LoadBalancerRequest(
            ip=str(ip),
            annotations=annotations,
            depends_on=[pool, self.advertisement],
            sharing_key=sharing_key,
        )
