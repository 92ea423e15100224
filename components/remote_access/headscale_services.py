"""Headscale's Services: the ClusterIP one Traefik and Headplane use, and STUN's.

STUN cannot go through an HTTP proxy, so it has its own UDP LoadBalancer Service from MetalLB,
and, when that is not Traefik's IP, a ClusterIP Service answering it on Traefik's IP inside the
cluster. Objects are parented to the Headscale component (components/shared/placement.py).
"""

from __future__ import annotations

from typing import Final

import pulumi_kubernetes as k8s

from components.platform.metallb import LoadBalancerRequest
from components.platform.traefik import TraefikRouting
from components.remote_access.headscale_config import HTTP_PORT
from components.remote_access.headscale_pod import LABELS, as_input
from components.shared.placement import Placement
from config.model import Derp

SERVICE: Final = "headscale"


def services(
    name: str,
    at: Placement,
    *,
    derp: Derp,
    traefik: TraefikRouting,
    stun_load_balancer: LoadBalancerRequest,
) -> k8s.core.v1.Service:
    """The ClusterIP Service Traefik and Headplane use, and STUN's LoadBalancer."""
    service = k8s.core.v1.Service(
        f"{name}-service",
        metadata=at.meta(SERVICE),
        spec=as_input(
            {
                "type": "ClusterIP",
                "selector": dict(LABELS),
                "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http"}],
            }
        ),
        opts=at.opts(),
    )
    if derp.enabled:
        stun_service(name, at, derp=derp, traefik=traefik, request=stun_load_balancer)
        if stun_load_balancer.ip != traefik.load_balancer_ip:
            in_cluster_stun(name, at, derp=derp, traefik_ip=traefik.load_balancer_ip)
    return service


def stun_service(
    name: str,
    at: Placement,
    *,
    derp: Derp,
    traefik: TraefikRouting,
    request: LoadBalancerRequest,
) -> k8s.core.v1.Service:
    shares_traefik_ip = request.ip == traefik.load_balancer_ip
    if shares_traefik_ip and "metallb.io/allow-shared-ip" not in request.annotations:
        raise ValueError("STUN shares Traefik's IP but its request lacks allow-shared-ip")
    port = derp.stun_port
    return k8s.core.v1.Service(
        f"{name}-stun",
        metadata=at.meta("headscale-stun", annotations=dict(sorted(request.annotations.items()))),
        spec=as_input(
            {
                "type": "LoadBalancer",
                # `Local` keeps the client's address, which is what STUN reports back;
                # sharing Traefik's IP forces `Cluster` (MetalLB: both Services use
                # Cluster or select the same pods, components.md 5), so STUN takes
                # Traefik's own policy and the two Services always agree.
                "externalTrafficPolicy": traefik.external_traffic_policy,
                "selector": dict(LABELS),
                # Same port outside and inside: the DERP map advertises the listen port.
                "ports": [{"name": "stun", "protocol": "UDP", "port": port, "targetPort": port}],
            }
        ),
        opts=at.opts(depends_on=request.depends_on),
    )


def in_cluster_stun(
    name: str, at: Placement, *, derp: Derp, traefik_ip: str
) -> k8s.core.v1.Service:
    """STUN also on Traefik's IP, for clients inside the cluster (the subnet router).

    The embedded DERP region names no IP (derp.server.ipv4 unset), so a client probes STUN
    and dials DERP at whatever the Headscale name resolves to (hscontrol/derp/server/
    derp_server.go GenerateRegion @ v0.28.0; tailscale net/netcheck/netcheck.go nodeAddrPort
    @ v1.102.3). The router's host alias resolves it to Traefik's IP, which serves 443; with
    STUN on its own LoadBalancer IP nothing would answer STUN there. kube-proxy programs a
    Service's externalIPs for traffic from pods and to the nodes, so this ClusterIP Service
    answers STUN on Traefik's IP (UDP, a port Traefik does not use) without MetalLB, whose
    sharing rules would force Traefik back to `Cluster`. Internet clients keep the STUN
    LoadBalancer through the port-forward.
    """
    port = derp.stun_port
    return k8s.core.v1.Service(
        f"{name}-stun-in-cluster",
        metadata=at.meta("headscale-stun-in-cluster"),
        spec=as_input(
            {
                "type": "ClusterIP",
                "externalIPs": [traefik_ip],
                "selector": dict(LABELS),
                "ports": [{"name": "stun", "protocol": "UDP", "port": port, "targetPort": port}],
            }
        ),
        opts=at.opts(),
    )
