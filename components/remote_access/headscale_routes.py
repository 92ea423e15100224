"""Headscale's routes through Traefik: the whole host privately, the client paths publicly.

On the `public` entrypoint (what WAN 443 reaches) only the paths Tailscale clients use; on the
private `websecure` entrypoint the whole host behind the LAN/tailnet allowlist (the REST API and
Swagger stay off the internet). Objects are parented to the Headscale component
(components/shared/placement.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Final

import pulumi
import pulumi_kubernetes as k8s

from components.platform.traefik import TraefikRouting
from components.remote_access.headscale_config import HTTP_PORT
from components.remote_access.headscale_services import SERVICE
from components.shared.ingress import Backend, route_host
from components.shared.placement import Placement
from components.shared.security import visibility_annotations
from config.model import ExposedHost

# What Tailscale clients ask of Headscale's HTTP router (hscontrol/app.go createRouter @ v0.28.0):
# the Noise upgrade (the whole control protocol, /machine/* included, runs inside it), the
# server key, health, the web-login page, the Apple/Windows setup pages, and with the embedded
# DERP its relay, probes and bootstrap DNS. Not here: /api/v1 (REST with an API key), /swagger,
# /version, /verify (only for external derpers' --verify-client-url; there are none) and
# /oidc/callback (registered only with OIDC, which this stack does not configure).
CLIENT_PATHS: Final = ("/ts2021", "/key", "/health", "/apple", "/windows")
CLIENT_PATH_PREFIXES: Final = ("/register/", "/apple/")
DERP_PATHS: Final = ("/derp", "/bootstrap-dns")
DERP_PATH_PREFIXES: Final = ("/derp/",)


def public_match(fqdn: str, *, derp: bool) -> str:
    """The Traefik rule for what the internet may ask of Headscale (CLIENT_PATHS)."""
    paths = CLIENT_PATHS + (DERP_PATHS if derp else ())
    prefixes = CLIENT_PATH_PREFIXES + (DERP_PATH_PREFIXES if derp else ())
    alternatives = [f"Path(`{p}`)" for p in paths] + [f"PathPrefix(`{p}`)" for p in prefixes]
    return f"Host(`{fqdn}`) && ({' || '.join(alternatives)})"


def routes(
    name: str,
    at: Placement,
    *,
    host: ExposedHost,
    derp_enabled: bool,
    routing: TraefikRouting,
    depends_on: Sequence[pulumi.Resource],
) -> None:
    """The whole host on the private entrypoint; only client paths on the public one."""
    # LAN and VPN clients, and the subnet router through its host alias, arrive on
    # websecure: everything, the REST API and Swagger included, behind the allowlist.
    route_host(
        f"{name}-route",
        access=at.access,
        parent=at.owner,
        routing=routing,
        host=dataclasses.replace(host, visibility="private"),
        # Plain http: /ts2021 upgrades, /derp, /key, /api... (components.md 2.3).
        backends=[Backend(SERVICE, HTTP_PORT)],
        depends_on=depends_on,
    )
    # The internet (WAN 443 -> `public`): the client paths only, no allowlist.
    k8s.apiextensions.CustomResource(
        f"{name}-public-route",
        api_version="traefik.io/v1alpha1",
        kind="IngressRoute",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=f"{host.name}-public",
            namespace=host.namespace,
            annotations=visibility_annotations("public"),
        ),
        spec={
            "entryPoints": [routing.public_entrypoint],
            "routes": [
                {
                    "kind": "Rule",
                    "match": public_match(host.fqdn, derp=derp_enabled),
                    "services": [{"name": SERVICE, "port": HTTP_PORT}],
                }
            ],
            "tls": {"secretName": routing.wildcard.secret_name},
        },
        opts=at.opts(depends_on=[*routing.ready, *routing.wildcard.ready, *depends_on]),
    )
