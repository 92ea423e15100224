"""Publishing one host through Traefik: a Traefik IngressRoute with the wildcard certificate.

Every exposed host (apps, Headscale, Headplane) goes through `route_host`, so the rules are in one
place: TLS from the reflected wildcard Secret in the route's own namespace, the LAN/tailnet
allowlist on every private host (public hosts, i.e. Headscale, carry none), and only public hosts on
the entrypoint the internet reaches (see components/platform/traefik.py for why both fences exist).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.platform.traefik import MiddlewareRef, TraefikRouting
from components.shared.common import ClusterAccess
from components.shared.security import visibility_annotations
from config.model import ExposedHost


@dataclass(frozen=True)
class Backend:
    """The Service a route sends traffic to, optionally only for a path prefix."""

    service: str
    port: int
    path_prefix: str | None = None
    # Middlewares of this route only, applied after the private allowlist.
    middlewares: tuple[MiddlewareRef, ...] = ()


def route_spec(
    host: ExposedHost, backends: Sequence[Backend], routing: TraefikRouting
) -> dict[str, Any]:
    """The IngressRoute spec for `host`; longer path prefixes first so they win over '/'."""
    public = host.visibility == "public"
    entrypoints = [routing.websecure_entrypoint]
    if public:
        entrypoints.append(routing.public_entrypoint)
    middlewares = (
        [
            {
                "name": routing.private_middleware.name,
                "namespace": routing.private_middleware.namespace,
            }
        ]
        if not public
        else []
    )
    routes: list[dict[str, Any]] = []
    for backend in sorted(backends, key=lambda b: -len(b.path_prefix or "")):
        match = f"Host(`{host.fqdn}`)"
        if backend.path_prefix:
            match += f" && PathPrefix(`{backend.path_prefix}`)"
        route: dict[str, Any] = {
            "kind": "Rule",
            "match": match,
            "services": [{"name": backend.service, "port": backend.port}],
        }
        own = [{"name": m.name, "namespace": m.namespace} for m in backend.middlewares]
        if middlewares or own:
            route["middlewares"] = middlewares + own
        routes.append(route)
    return {
        "entryPoints": entrypoints,
        "routes": routes,
        "tls": {"secretName": routing.wildcard.secret_name},
    }


def route_host(
    name: str,
    *,
    access: ClusterAccess,
    parent: pulumi.Resource,
    routing: TraefikRouting,
    host: ExposedHost,
    backends: Sequence[Backend],
    depends_on: Sequence[pulumi.Resource] = (),
) -> k8s.apiextensions.CustomResource:
    """An IngressRoute in the host's namespace, after Traefik's CRDs and the certificate exist."""
    return k8s.apiextensions.CustomResource(
        name,
        api_version="traefik.io/v1alpha1",
        kind="IngressRoute",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=host.name,
            namespace=host.namespace,
            # The policy pack treats a route as public only with this marker (policies/rules.py).
            annotations=visibility_annotations(host.visibility),
        ),
        spec=route_spec(host, backends, routing),
        opts=access.opts(
            parent,
            depends_on=[*routing.ready, *routing.wildcard.ready, *depends_on],
        ),
    )
