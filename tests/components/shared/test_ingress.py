"""route_spec/route_host: TLS from the wildcard, the allowlist on private hosts only, and only
public hosts on the entrypoint the internet reaches."""

from __future__ import annotations

from typing import Any

from components.platform.cert_manager import WildcardCertificate
from components.platform.traefik import MiddlewareRef, TraefikRouting
from components.shared.ingress import Backend, route_spec
from config.loader import validate_config
from config.model import ExposedHost
from homelab.engine import ResourceRecord
from tests.contracts import validate_custom_resource
from tests.harness import helm_values, homelab_render, render_stack, stack_raw_config

INGRESS_ROUTE = "kubernetes:traefik.io/v1alpha1:IngressRoute"
MIDDLEWARE = "kubernetes:traefik.io/v1alpha1:Middleware"
RELEASE = "kubernetes:helm.sh/v3:Release"
ROUTING = TraefikRouting(
    namespace="edge",
    load_balancer_ip="192.168.0.220",
    websecure_entrypoint="secure-ep",
    private_middleware=MiddlewareRef("lan-only", "edge"),
    wildcard=WildcardCertificate(secret_name="star-tls", namespaces=("edge",), ready=[]),
    ready=[],
    public_entrypoint="internet-ep",
)
PRIVATE = ExposedHost("wiki", "wiki.example.com", "docs", "private")
PUBLIC = ExposedHost("vpn", "vpn.example.com", "vpn", "public")
PUBLIC_APP = {"name": "blog", "namespace": "web", "service": "blog", "visibility": "public"}


def as_ingress_route(host: ExposedHost, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": host.name, "namespace": host.namespace},
        "spec": spec,
    }


def test_private_host_carries_the_allowlist_on_every_route_and_stays_off_the_internet() -> None:
    spec = route_spec(PRIVATE, [Backend("wiki", 80), Backend("api", 8080, "/api")], ROUTING)
    assert spec["entryPoints"] == [ROUTING.websecure_entrypoint]
    for route in spec["routes"]:
        assert route["middlewares"] == [{"name": "lan-only", "namespace": "edge"}]
    assert spec["tls"] == {"secretName": "star-tls"}
    validate_custom_resource(as_ingress_route(PRIVATE, spec))


def test_public_host_has_no_allowlist_and_is_reachable_from_the_internet_entrypoint() -> None:
    spec = route_spec(PUBLIC, [Backend("vpn", 8080)], ROUTING)
    assert set(spec["entryPoints"]) == {ROUTING.websecure_entrypoint, ROUTING.public_entrypoint}
    assert all("middlewares" not in route for route in spec["routes"])
    validate_custom_resource(as_ingress_route(PUBLIC, spec))


def test_longer_path_prefixes_are_matched_first() -> None:
    backends = [Backend("root", 80), Backend("admin", 3000, "/admin"), Backend("a", 1, "/a")]
    spec = route_spec(PUBLIC, backends, ROUTING)
    services = [route["services"][0]["name"] for route in spec["routes"]]
    assert services == ["admin", "a", "root"]
    assert spec["routes"][0]["match"] == "Host(`vpn.example.com`) && PathPrefix(`/admin`)"
    assert spec["routes"][-1]["match"] == "Host(`vpn.example.com`)"


def routes_by_host(records: list[ResourceRecord]) -> dict[str, ResourceRecord]:
    return {r.input("metadata.name"): r for r in records}


def test_rendered_routes_follow_each_hosts_visibility() -> None:
    raw = stack_raw_config()
    apps = [*raw["apps"], PUBLIC_APP]
    render = render_stack("homelab", overrides={"apps": apps})
    config = validate_config({**raw, "apps": apps})
    routes = routes_by_host(render.by_type(INGRESS_ROUTE))
    middleware = render.one(MIDDLEWARE, "traefik-private-only")
    allowlist = {
        "name": middleware.input("metadata.name"),
        "namespace": middleware.input("metadata.namespace"),
    }
    checked = 0
    for app in config.apps:
        route = routes[app.name]
        validate_custom_resource({**route.inputs})
        rules = route.input("spec.routes")
        entrypoints = set(route.input("spec.entryPoints"))
        if app.visibility == "private":
            assert all(rule["middlewares"] == [allowlist] for rule in rules)
            assert entrypoints == {"websecure"}
        else:
            assert all("middlewares" not in rule for rule in rules)
            assert "public" in entrypoints
        checked += 1
    assert checked == len(config.apps) == 2


def test_entrypoints_named_by_routes_exist_in_traefik() -> None:
    render = homelab_render()
    ports = helm_values(render.one(RELEASE, "traefik"))["ports"]
    for route in render.by_type(INGRESS_ROUTE):
        assert set(route.input("spec.entryPoints")) <= set(ports)


def test_routes_may_use_the_allowlist_across_namespaces() -> None:
    render = homelab_render()
    providers = helm_values(render.one(RELEASE, "traefik"))["providers"]
    middleware_namespace = render.one(MIDDLEWARE, "traefik-private-only").input(
        "metadata.namespace"
    )
    elsewhere = [
        r
        for r in render.by_type(INGRESS_ROUTE)
        if r.input("metadata.namespace") != middleware_namespace
    ]
    # Grafana's route lives in its own namespace and names the middleware in Traefik's.
    assert elsewhere
    assert providers["kubernetesCRD"]["allowCrossNamespace"] is True
