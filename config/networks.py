"""The networks the cluster and the tailnet reserve: no LAN, node resolver or VPN resolver may
lie in them.

The model does not let a stack change Talos' pod and service subnets, so the cluster uses Talos'
defaults (siderolabs/talos@v1.13.9:pkg/machinery/constants/constants.go `DefaultIPv4PodNet`,
`DefaultIPv4ServiceNet`); `cluster_networks` is the one place that says which the cluster uses.
Tailscale hands out tailnet addresses from the CGNAT range and serves MagicDNS on its own service
address (tailscale/tailscale@v1.102.3:net/tsaddr/tsaddr.go `CGNATRange`, `TailscaleServiceIP`).
"""

from __future__ import annotations

import ipaddress
from typing import Final

from config.policy import TAILNET_IPV4

TALOS_POD_SUBNET: Final = ipaddress.IPv4Network("10.244.0.0/16")
TALOS_SERVICE_SUBNET: Final = ipaddress.IPv4Network("10.96.0.0/12")
# MagicDNS' resolver on every Tailscale client ("100.100.100.100" in tsaddr.go).
TAILSCALE_SERVICE_IP: Final = ipaddress.IPv4Address("100.100.100.100")


def cluster_networks() -> tuple[tuple[str, ipaddress.IPv4Network], ...]:
    """(what, network) of every range the cluster and the tailnet use for their own addresses."""
    return (
        ("Talos' pod network", TALOS_POD_SUBNET),
        ("Talos' service network", TALOS_SERVICE_SUBNET),
        ("the tailnet's address range (Tailscale's CGNAT range)", TAILNET_IPV4),
    )
