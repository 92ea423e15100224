"""A Pulumi program that publishes every exposed host of the stack config through the real
`route_host` helper (components/shared/ingress.py), for tests/policies/test_conventions.py."""

import pulumi
import pulumi_kubernetes as k8s

from components.platform.cert_manager import WildcardCertificate
from components.platform.traefik import MiddlewareRef, TraefikRouting
from components.shared.common import TRAEFIK_NAMESPACE, ClusterAccess
from components.shared.ingress import Backend, route_host
from config import load_stack_config
from policies import rules

config = load_stack_config()
owner = pulumi.ComponentResource("test:index:Routes", "routes")
access = ClusterAccess(
    provider=k8s.Provider("cluster", kubeconfig=pulumi.Output.secret("")),
    kubeconfig=pulumi.Output.secret(""),
    cluster=owner,
)
routing = TraefikRouting(
    namespace=TRAEFIK_NAMESPACE,
    load_balancer_ip=str(config.network.traefik_ip),
    websecure_entrypoint="websecure",
    private_middleware=MiddlewareRef(
        rules.PRIVATE_MIDDLEWARE_NAME, rules.PRIVATE_MIDDLEWARE_NAMESPACE
    ),
    wildcard=WildcardCertificate(secret_name="wildcard-tls", namespaces=(), ready=[]),
    ready=[],
)
for host in config.exposed_hosts():
    route_host(
        f"route-{host.name}",
        access=access,
        parent=owner,
        routing=routing,
        host=host,
        # Two backends, as Headscale + Headplane share a host: every route must be covered.
        backends=[Backend(host.name, 80), Backend(f"{host.name}-admin", 3000, "/admin")],
    )
