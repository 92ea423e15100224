"""Apps: Grafana deployed and routed privately; config apps with a `service` routed as they are."""

from __future__ import annotations

from collections import Counter
from typing import Any

from config import pins
from config.loader import validate_config
from homelab.engine import Render, ResourceRecord
from tests.contracts import component_records, depends_on, validate_objects
from tests.harness import helm_values, homelab_render, render_stack, stack_raw_config

APPS = "homelab:apps:Apps"
RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
NAMESPACE = "kubernetes:core/v1:Namespace"
INGRESS_ROUTE = "kubernetes:traefik.io/v1alpha1:IngressRoute"
MIDDLEWARE = "kubernetes:traefik.io/v1alpha1:Middleware"
CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"
PASSWORD = "random:index/randomPassword:RandomPassword"
CLAIM = "kubernetes:core/v1:PersistentVolumeClaim"
COMMAND = "command:local:Command"
# Top-level keys and the nested ones we set, as documented by the pinned chart's values.yaml
# (grafana-community/helm-charts charts/grafana/values.yaml): `deploymentStrategy` is the
# Deployment's `spec.strategy`, `persistence.existingClaim` mounts a claim the chart does not
# create, `resources` / `initChownData.resources` are the containers' requests.
GRAFANA_CHART_KEYS = {
    "admin": {"existingSecret", "userKey", "passwordKey"},
    "deploymentStrategy": {"type"},
    "fullnameOverride": None,
    "grafana.ini": None,
    "initChownData": {"enabled", "image", "resources", "securityContext"},
    "persistence": {"type", "enabled", "existingClaim", "storageClassName", "size", "accessModes"},
    "resources": {"limits", "requests"},
    "service": {"enabled", "type", "port", "targetPort", "annotations", "labels", "portName"},
}
MEDIA_APP: dict[str, Any] = {
    "name": "jellyfin",
    "namespace": "media",
    "service": "jellyfin-web",
    "port": 8096,
}


def grafana_app() -> dict[str, Any]:
    (app,) = [a for a in stack_raw_config()["apps"] if a.get("workload") == "grafana"]
    assert isinstance(app, dict)
    return app


def route_for(render: Render, fqdn: str) -> ResourceRecord:
    found = [
        r
        for r in render.by_type(INGRESS_ROUTE)
        if any(f"Host(`{fqdn}`)" in route["match"] for route in r.input("spec.routes"))
    ]
    assert len(found) == 1, fqdn
    return found[0]


def render_with_media() -> Render:
    return render_stack("homelab", overrides={"apps": [*stack_raw_config()["apps"], MEDIA_APP]})


def test_every_app_object_meets_its_schema() -> None:
    # The monitoring namespace, Grafana's admin Secret, its data claim and its IngressRoute.
    assert validate_objects(component_records(homelab_render(), APPS)) == 4


def test_grafana_is_the_pinned_chart_in_its_configured_namespace() -> None:
    release = homelab_render().one(RELEASE, "apps-grafana")
    assert release.input("namespace") == grafana_app()["namespace"]
    assert release.input("version") == pins.GRAFANA_CHART_VERSION
    assert release.input("repositoryOpts.repo") == pins.GRAFANA_CHART_REPO


def test_admin_password_is_random_secret_and_read_from_an_existing_secret() -> None:
    render = homelab_render()
    release = render.one(RELEASE, "apps-grafana")
    admin = helm_values(release)["admin"]
    (secret,) = [r for r in component_records(render, APPS) if r.type == SECRET]
    assert admin["existingSecret"] == secret.input("metadata.name")
    assert secret.input("metadata.namespace") == release.input("namespace")
    assert set(secret.input("stringData")) == {admin["userKey"], admin["passwordKey"]}
    password_path = f"stringData.{admin['passwordKey']}"
    assert secret.is_secret(password_path)
    # The value is the RandomPassword's result, which appears nowhere in plaintext.
    (generator,) = [r for r in component_records(render, APPS) if r.type == PASSWORD]
    assert secret.input(password_path) == generator.outputs["result"]
    for record in render.resources:
        for path, value in flatten(record.inputs):
            if value == generator.outputs["result"]:
                assert record.is_secret(path), f"{record.name} at {path}"
    assert depends_on(release, secret)


def flatten(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [
            item
            for key, child in value.items()
            for item in flatten(child, f"{path}.{key}" if path else key)
        ]
    if isinstance(value, list):
        return [
            item
            for index, child in enumerate(value)
            for item in flatten(child, f"{path}.{index}" if path else str(index))
        ]
    return [(path, value)]


def test_grafana_knows_its_public_url() -> None:
    config = validate_config(stack_raw_config())
    fqdn = config.fqdn(grafana_app()["name"])
    server = helm_values(homelab_render().one(RELEASE, "apps-grafana"))["grafana.ini"]["server"]
    assert server["root_url"] == f"https://{fqdn}"


def test_grafana_is_routed_privately_to_its_service_with_the_wildcard() -> None:
    render = homelab_render()
    config = validate_config(stack_raw_config())
    app = grafana_app()
    release = render.one(RELEASE, "apps-grafana")
    route = route_for(render, config.fqdn(app["name"]))
    assert route.input("metadata.namespace") == app["namespace"]
    values = helm_values(release)
    (rule,) = route.input("spec.routes")
    assert rule["services"] == [
        {"name": values["fullnameOverride"], "port": values["service"]["port"]}
    ]
    middleware = render.one(MIDDLEWARE, "traefik-private-only")
    assert rule["middlewares"] == [
        {
            "name": middleware.input("metadata.name"),
            "namespace": middleware.input("metadata.namespace"),
        }
    ]
    assert route.input("spec.tls.secretName") == render.one(CERTIFICATE).input("spec.secretName")
    # Its backend and certificate, and the CRD it is an instance of; not the allowlist Middleware
    # (a route naming a missing middleware is refused until it exists: it fails closed,
    # traefik/traefik@v3.7.9:pkg/server/router/router.go buildEntryPointHandler).
    for dependency in (release, render.one(CERTIFICATE), render.one(COMMAND, "traefik-crds")):
        assert depends_on(route, dependency)
    assert not depends_on(route, middleware)


def test_an_app_with_a_service_is_routed_to_it_in_a_namespace_the_stack_creates() -> None:
    render = render_with_media()
    config = validate_config(
        {**stack_raw_config(), "apps": [*stack_raw_config()["apps"], MEDIA_APP]}
    )
    route = route_for(render, config.fqdn(MEDIA_APP["name"]))
    assert route.input("metadata.namespace") == MEDIA_APP["namespace"]
    (rule,) = route.input("spec.routes")
    assert rule["services"] == [{"name": MEDIA_APP["service"], "port": MEDIA_APP["port"]}]
    releases = {r.input("namespace") for r in render.by_type(RELEASE)}
    assert MEDIA_APP["namespace"] not in releases
    # Nothing else creates its namespace, and the route (and the reflected certificate) must
    # live there: the stack creates and owns it, and the route waits for it.
    (namespace,) = [
        r for r in render.by_type(NAMESPACE) if r.input("metadata.name") == MEDIA_APP["namespace"]
    ]
    assert namespace.parent == route.parent
    assert depends_on(route, namespace)


def test_every_namespace_is_created_exactly_once() -> None:
    render = render_with_media()
    counts = Counter(r.input("metadata.name") for r in render.by_type(NAMESPACE))
    assert counts
    assert max(counts.values()) == 1, counts
    assert grafana_app()["namespace"] in counts


def test_headscale_namespace_is_left_to_the_headscale_component() -> None:
    render = homelab_render()
    platform = {
        "homelab:apps:Apps",
        "homelab:platform:CertManager",
        "homelab:platform:MetalLB",
        "homelab:platform:Reflector",
        "homelab:platform:Storage",
        "homelab:platform:Traefik",
    }
    for component in platform:
        names = {
            r.input("metadata.name")
            for r in component_records(render, component)
            if r.type == NAMESPACE
        }
        assert "headscale" not in names, component


def test_urls_name_every_configured_app() -> None:
    config = validate_config(stack_raw_config())
    assert homelab_render().outputs["urls"] == {
        app.name: f"https://{config.fqdn(app.host_label)}" for app in config.apps
    }


def grafana_values_of(render: Render) -> dict[str, Any]:
    return helm_values(render.one(RELEASE, "apps-grafana"))


def test_grafana_values_use_keys_the_chart_documents() -> None:
    values = grafana_values_of(homelab_render())
    assert set(values) <= set(GRAFANA_CHART_KEYS)
    for key, nested in GRAFANA_CHART_KEYS.items():
        if nested is not None and isinstance(values.get(key), dict):
            assert set(values[key]) <= nested, key


def test_grafana_restarts_by_recreate_on_its_single_node_volume() -> None:
    """A ReadWriteOnce local-path volume lives on one node (rancher/local-path-provisioner
    @v0.0.37:provisioner.go Provision sets the PV's nodeAffinity to that node): a RollingUpdate's
    new pod cannot start while the old one holds the volume, or at all on another node."""
    render = homelab_render()
    values = grafana_values_of(render)
    assert values["deploymentStrategy"] == {"type": "Recreate"}
    claim = render.one(CLAIM, "apps-grafana-data")
    assert claim.input("spec.accessModes") == ["ReadWriteOnce"]
    assert values["persistence"] == {"enabled": True, "existingClaim": claim.input("metadata.name")}


def test_grafana_state_is_protected_in_the_homelab_only() -> None:
    render = homelab_render()
    claim = render.one(CLAIM, "apps-grafana-data")
    namespace = render.one(NAMESPACE, f"apps-namespace-{grafana_app()['namespace']}")
    assert claim.protect
    assert namespace.protect
    lab = render_stack(
        "homelab", overrides={"lifecycle": {"environment": "lab"}}, as_stack="variant"
    )
    assert not lab.one(CLAIM, "apps-grafana-data").protect
    assert not lab.one(NAMESPACE, f"apps-namespace-{grafana_app()['namespace']}").protect


def test_grafana_requests_resources_for_every_container() -> None:
    values = grafana_values_of(homelab_render())
    for resources in (values["resources"], values["initChownData"]["resources"]):
        assert set(resources["requests"]) == {"cpu", "memory"}


def test_grafana_admin_password_is_a_secret_stack_output() -> None:
    render = homelab_render()
    (generator,) = [r for r in component_records(render, APPS) if r.type == PASSWORD]
    assert render.outputs["grafanaAdminPassword"] == generator.outputs["result"]
    assert render.output_is_secret("grafanaAdminPassword")
