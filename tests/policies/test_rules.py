"""Each guard rail on good and bad objects: every check is shown to pass and to fail."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from policies import rules
from tests.synthetic import container, deployment

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
INGRESS_ROUTE = "kubernetes:traefik.io/v1alpha1:IngressRoute"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
RELEASE = "kubernetes:helm.sh/v3:Release"


def test_type_tokens_parse_into_group_version_kind() -> None:
    assert rules.kubernetes_type(DEPLOYMENT) == rules.KubernetesType("apps", "v1", "Deployment")
    assert rules.kubernetes_type(INGRESS_ROUTE) == rules.KubernetesType(
        "traefik.io", "v1alpha1", "IngressRoute"
    )
    assert rules.kind_of("command:local:Command") is None


def test_chart_children_are_recognised_by_their_urn() -> None:
    chart_child = (
        "urn:pulumi:s::homelab::pulumi:pulumi:Stack$homelab:platform:Traefik"
        "$kubernetes:helm.sh/v4:Chart$kubernetes:apps/v1:Deployment::traefik"
    )
    own = "urn:pulumi:s::homelab::pulumi:pulumi:Stack$homelab:apps:Apps$kubernetes:apps/v1:Deployment::web"
    chart_itself = "urn:pulumi:s::homelab::pulumi:pulumi:Stack$kubernetes:helm.sh/v4:Chart::traefik"
    assert rules.from_helm_chart(chart_child)
    assert not rules.from_helm_chart(own)
    assert not rules.from_helm_chart(chart_itself)


# --- LoadBalancer IPs ----------------------------------------------------------------------------


def service(service_type: str, annotations: dict[str, str] | None = None, **spec: Any) -> Any:
    metadata: dict[str, Any] = {"name": "stun", "namespace": "headscale"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": {"type": service_type, **spec}}


def test_load_balancer_with_metallb_ip_passes() -> None:
    props = service("LoadBalancer", {rules.METALLB_IPS_ANNOTATION: "192.168.0.220"})
    assert rules.check_load_balancer_ip(SERVICE, props) == []


def test_dual_stack_ip_list_passes() -> None:
    props = service("LoadBalancer", {rules.METALLB_IPS_ANNOTATION: "192.168.0.220, fd00::20"})
    assert rules.check_load_balancer_ip(SERVICE, props) == []


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        (service("LoadBalancer"), "without an explicit IP"),
        (service("LoadBalancer", {"metallb.io/address-pool": "lan"}), "without an explicit IP"),
        (service("LoadBalancer", {rules.METALLB_IPS_ANNOTATION: ""}), "is empty"),
        (service("LoadBalancer", {rules.METALLB_IPS_ANNOTATION: "lan"}), "not an IP address"),
        (
            service("LoadBalancer", {rules.DEPRECATED_METALLB_IPS_ANNOTATION: "192.168.0.220"}),
            "deprecated",
        ),
        (service("LoadBalancer", loadBalancerIP="192.168.0.220"), "spec.loadBalancerIP"),
    ],
)
def test_load_balancer_without_a_valid_annotation_fails(props: Any, expected: str) -> None:
    (problem,) = rules.check_load_balancer_ip(SERVICE, props)
    assert expected in problem
    assert "headscale/stun" in problem


def test_cluster_ip_services_need_no_ip() -> None:
    assert rules.check_load_balancer_ip(SERVICE, service("ClusterIP")) == []
    assert rules.check_load_balancer_ip(SERVICE, {"metadata": {"name": "x"}}) == []


def release(chart: str, values: dict[str, Any], version: str = "1.0.0") -> dict[str, Any]:
    return {"chart": chart, "version": version, "values": values}


def test_traefik_chart_service_is_a_load_balancer_by_default() -> None:
    # components.md section 6: the chart's Service defaults to type LoadBalancer.
    (problem,) = rules.check_load_balancer_ip(RELEASE, release("traefik", {"ports": {}}))
    assert "chart traefik" in problem
    (problem,) = rules.check_load_balancer_ip(
        RELEASE, release("traefik", {"service": {"annotations": {}}})
    )
    assert "without an explicit IP" in problem


def test_traefik_chart_with_the_ip_annotation_passes() -> None:
    values = {"service": {"annotations": {rules.METALLB_IPS_ANNOTATION: "192.168.0.220"}}}
    assert rules.check_load_balancer_ip(RELEASE, release("traefik", values)) == []
    not_lb = {"service": {"type": "ClusterIP"}}
    assert rules.check_load_balancer_ip(RELEASE, release("traefik", not_lb)) == []


def test_any_chart_value_that_asks_for_a_load_balancer_needs_the_ip() -> None:
    values = {"server": {"service": {"type": "LoadBalancer"}}}
    (problem,) = rules.check_load_balancer_ip(RELEASE, release("grafana", values))
    assert "server.service" in problem
    fixed = {
        "server": {
            "service": {
                "type": "LoadBalancer",
                "annotations": {rules.METALLB_IPS_ANNOTATION: "192.168.0.221"},
            }
        }
    }
    assert rules.check_load_balancer_ip(RELEASE, release("grafana", fixed)) == []


# --- plaintext secrets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["TS_AUTHKEY", "API_TOKEN", "cookie_secret", "adminPassword", "apiKey", "private.key", "KEY"],
)
def test_secret_shaped_names(name: str) -> None:
    assert rules.secret_shaped_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "cookie_secret_path",
        "private_key_path",
        "secretName",
        "TS_KUBE_SECRET",
        "public_key",
        "keyboard",
        "monkey",
        "key",  # tolerations[].key, selectors, secretKeyRef.key
        "LOG_LEVEL",
        "TS_EXTRA_ARGS",
    ],
)
def test_names_that_only_point_at_a_secret_or_are_not_one(name: str) -> None:
    assert not rules.secret_shaped_name(name)


def env_deployment(*env: dict[str, Any], **container_fields: Any) -> dict[str, Any]:
    return deployment(containers=[container(env=list(env), **container_fields)])


def test_env_from_a_secret_passes() -> None:
    props = env_deployment(
        {"name": "TS_AUTHKEY", "valueFrom": {"secretKeyRef": {"name": "router", "key": "authkey"}}},
        {"name": "TS_KUBE_SECRET", "value": "tailscale"},
        {"name": "TS_EXTRA_ARGS", "value": "--login-server=https://headscale.example.com"},
        {"name": "AUTH_KEY_FILE", "value": "/run/secrets/key"},
        {"name": "TS_AUTH_KEY", "value": "file:/run/secrets/authkey"},
    )
    assert rules.check_no_plaintext_secrets(DEPLOYMENT, props) == []


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"name": "TS_AUTHKEY", "value": "abc123"}, "env TS_AUTHKEY holds a literal secret"),
        ({"name": "GF_SECURITY_ADMIN_PASSWORD", "value": "admin"}, "literal secret"),
        ({"name": "LOGIN", "value": "hskey-auth-abcd-efgh"}, "a Headscale key"),
        ({"name": "X", "value": "tskey-auth-k123"}, "a Tailscale key"),
    ],
)
def test_literal_secret_in_env_fails(env: dict[str, Any], expected: str) -> None:
    (problem,) = rules.check_no_plaintext_secrets(DEPLOYMENT, env_deployment(env))
    assert expected in problem
    assert "Deployment apps/web container 'web'" in problem


def test_key_material_in_args_fails() -> None:
    props = deployment(containers=[container(args=["up", "--authkey=hskey-auth-x1-y2"])])
    (problem,) = rules.check_no_plaintext_secrets(DEPLOYMENT, props)
    assert "args contains a Headscale key" in problem


def test_init_containers_are_checked_too() -> None:
    props = deployment()
    props["spec"]["template"]["spec"]["initContainers"] = [
        container("init", env=[{"name": "DB_PASSWORD", "value": "x"}])
    ]
    (problem,) = rules.check_no_plaintext_secrets(DEPLOYMENT, props)
    assert "initContainer 'init'" in problem


def config_map(data: dict[str, str], binary: dict[str, str] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"metadata": {"name": "headplane", "namespace": "headscale"}}
    props["data"] = data
    if binary:
        props["binaryData"] = binary
    return props


HEADPLANE_CONFIG_WITH_PATH = """
server:
  cookie_secret_path: /var/run/secrets/headplane/cookie
  cookie_secure: true
headscale:
  url: http://localhost:8080
  config_path: /etc/headscale/config.yaml
"""
HEADSCALE_CONFIG = """
server_url: https://headscale.example.com
noise:
  private_key_path: /var/lib/headscale/noise_private.key
derp:
  server:
    private_key_path: /var/lib/headscale/derp_server_private.key
policy:
  path: /etc/headscale/policy.json
"""


def test_config_files_that_point_at_secrets_pass() -> None:
    props = config_map(
        {
            "config.yaml": HEADPLANE_CONFIG_WITH_PATH,
            "headscale.yaml": HEADSCALE_CONFIG,
            "policy.json": '{"groups": {"group:admins": ["admin@"]}, "acls": []}',
            "ca.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        }
    )
    assert rules.check_no_plaintext_secrets(CONFIG_MAP, props) == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"token": "abc"}, "key 'token' holds a literal secret"),
        (
            {"config.yaml": "server:\n  cookie_secret: 0123456789abcdef0123456789abcdef\n"},
            "server.cookie_secret holds a literal secret",
        ),
        ({"app.env": "LOG_LEVEL=info\nAPI_TOKEN=abc\n"}, "API_TOKEN holds a literal secret"),
        (
            {"tls.pem": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"},
            "a PEM private key",
        ),
        ({"router": "key is hskey-auth-abc-def"}, "a Headscale key"),
    ],
)
def test_secrets_in_a_config_map_fail(data: dict[str, str], expected: str) -> None:
    problems = rules.check_no_plaintext_secrets(CONFIG_MAP, config_map(data))
    assert any(expected in p for p in problems), problems
    assert all("ConfigMap headscale/headplane" in p for p in problems)


def test_binary_data_is_decoded_and_checked() -> None:
    pem = b"-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n"
    props = config_map({}, {"key.bin": base64.b64encode(pem).decode()})
    (problem,) = rules.check_no_plaintext_secrets(CONFIG_MAP, props)
    assert "binaryData 'key.bin'" in problem


def test_secrets_are_not_policed_in_other_kinds() -> None:
    # A Secret is where secrets belong.
    props = {"metadata": {"name": "s"}, "stringData": {"token": "abc"}}
    assert rules.check_no_plaintext_secrets("kubernetes:core/v1:Secret", props) == []


# --- private routes ------------------------------------------------------------------------------

PRIVATE_MIDDLEWARE = {
    "name": rules.PRIVATE_MIDDLEWARE_NAME,
    "namespace": rules.PRIVATE_MIDDLEWARE_NAMESPACE,
}


def ingress_route(
    *routes: dict[str, Any], annotations: dict[str, str] | None = None, namespace: str = "apps"
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "grafana", "namespace": namespace}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": {"entryPoints": ["websecure"], "routes": list(routes)}}


def route(*middlewares: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {"kind": "Rule", "match": "Host(`grafana.example.com`)"}
    if middlewares:
        result["middlewares"] = list(middlewares)
    return result


def test_private_route_with_the_allowlist_passes() -> None:
    props = ingress_route(route({"name": "other", "namespace": "apps"}, PRIVATE_MIDDLEWARE))
    assert rules.check_private_routes_allowlisted(INGRESS_ROUTE, props) == []


def test_public_route_needs_no_allowlist() -> None:
    props = ingress_route(route(), annotations={rules.VISIBILITY_ANNOTATION: "public"})
    assert rules.check_private_routes_allowlisted(INGRESS_ROUTE, props) == []


@pytest.mark.parametrize(
    "props",
    [
        ingress_route(route()),
        ingress_route(route(), annotations={rules.VISIBILITY_ANNOTATION: "private"}),
        ingress_route(route(), annotations={rules.VISIBILITY_ANNOTATION: "Public"}),
        ingress_route(route({"name": rules.PRIVATE_MIDDLEWARE_NAME})),  # implicit namespace: apps
        ingress_route(route({"name": rules.PRIVATE_MIDDLEWARE_NAME, "namespace": "apps"})),
    ],
)
def test_private_route_without_the_allowlist_fails(props: dict[str, Any]) -> None:
    (problem,) = rules.check_private_routes_allowlisted(INGRESS_ROUTE, props)
    assert "route 0 (Host(`grafana.example.com`)) is private" in problem


def test_every_route_of_a_private_host_needs_the_allowlist() -> None:
    props = ingress_route(route(PRIVATE_MIDDLEWARE), route())
    (problem,) = rules.check_private_routes_allowlisted(INGRESS_ROUTE, props)
    assert "route 1" in problem


def test_middleware_without_namespace_in_traefiks_namespace_is_the_allowlist() -> None:
    props = ingress_route(
        route({"name": rules.PRIVATE_MIDDLEWARE_NAME}),
        namespace=rules.PRIVATE_MIDDLEWARE_NAMESPACE,
    )
    assert rules.check_private_routes_allowlisted(INGRESS_ROUTE, props) == []


def ingress(annotations: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "apps", "annotations": annotations}}


def test_plain_ingress_needs_the_allowlist_unless_public() -> None:
    middlewares = "traefik.ingress.kubernetes.io/router.middlewares"
    good = ingress(
        {middlewares: f"apps-headers@kubernetescrd, {rules.PRIVATE_MIDDLEWARE_INGRESS_REF}"}
    )
    public = ingress({rules.VISIBILITY_ANNOTATION: "public"})
    assert rules.check_private_routes_allowlisted(INGRESS, good) == []
    assert rules.check_private_routes_allowlisted(INGRESS, public) == []
    (problem,) = rules.check_private_routes_allowlisted(INGRESS, ingress({}))
    assert "private Ingress without the allowlist" in problem


# --- pinned images -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/tailscale/tailscale:v1.102.3",
        "docker.io/headscale/headscale:0.28.0",
        "localhost:5000/team/app:1.0",
        "ghcr.io/tale/headplane@sha256:" + "a" * 64,
        "ghcr.io/tale/headplane:0.6.3@sha256:" + "b" * 64,
    ],
)
def test_pinned_images(image: str) -> None:
    assert rules.image_problem(image) is None


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("nginx", "without a tag"),
        ("localhost:5000/team/app", "without a tag"),
        ("nginx:latest", "moving tag"),
        ("ghcr.io/x/y:main", "moving tag"),
        ("nginx:", "moving tag"),
        ("nginx@sha256:short", "malformed digest"),
        ("", "no image"),
    ],
)
def test_unpinned_images(image: str, expected: str) -> None:
    problem = rules.image_problem(image)
    assert problem is not None
    assert expected in problem


def test_unpinned_image_in_any_container_of_a_workload_fails() -> None:
    props = deployment(containers=[container(), container("sidecar", image="busybox")])
    (problem,) = rules.check_images_pinned(DEPLOYMENT, props)
    assert "container 'sidecar'" in problem
    assert rules.check_images_pinned(DEPLOYMENT, deployment()) == []


@pytest.mark.parametrize(
    ("resource_type", "props"),
    [
        ("kubernetes:core/v1:Pod", {"spec": {"containers": [container(image="x:latest")]}}),
        (
            "kubernetes:batch/v1:CronJob",
            {
                "spec": {
                    "jobTemplate": {
                        "spec": {"template": {"spec": {"containers": [container(image="x")]}}}
                    }
                }
            },
        ),
        (
            "kubernetes:apps/v1:StatefulSet",
            {"spec": {"template": {"spec": {"containers": [container(image="x")]}}}},
        ),
        (
            "kubernetes:apps/v1:DaemonSet",
            {"spec": {"template": {"spec": {"containers": [container(image="x")]}}}},
        ),
    ],
)
def test_every_workload_kind_is_checked(resource_type: str, props: dict[str, Any]) -> None:
    assert len(rules.check_images_pinned(resource_type, props)) == 1


def test_helm_release_must_pin_its_chart_and_not_float_image_tags() -> None:
    assert (
        rules.check_images_pinned(RELEASE, release("grafana", {"image": {"tag": "12.1.0"}})) == []
    )
    # An empty tag means the chart's appVersion, which the chart version pins.
    assert rules.check_images_pinned(RELEASE, release("grafana", {"image": {"tag": ""}})) == []
    (unversioned,) = rules.check_images_pinned(RELEASE, release("grafana", {}, version=""))
    assert "has no version" in unversioned
    (floating,) = rules.check_images_pinned(
        RELEASE, release("grafana", {"sidecar": {"image": {"tag": "latest"}}})
    )
    assert "sidecar.image.tag" in floating


# --- resource limits -----------------------------------------------------------------------------


def test_container_with_cpu_and_memory_limits_passes() -> None:
    assert rules.check_resource_limits(DEPLOYMENT, deployment()) == []


@pytest.mark.parametrize(
    ("resources", "missing"),
    [
        ({}, "cpu / memory"),
        ({"requests": {"cpu": "1", "memory": "1Gi"}}, "cpu / memory"),
        ({"limits": {"cpu": "1"}}, "memory"),
        ({"limits": {"memory": "1Gi"}}, "cpu"),
    ],
)
def test_container_without_limits_fails(resources: dict[str, Any], missing: str) -> None:
    props = deployment(containers=[container(resources=resources)])
    (problem,) = rules.check_resource_limits(DEPLOYMENT, props)
    assert problem.endswith(f"has no resources.limits.{missing}")


def test_init_containers_need_limits_too() -> None:
    props = deployment()
    props["spec"]["template"]["spec"]["initContainers"] = [container("init", resources={})]
    (problem,) = rules.check_resource_limits(DEPLOYMENT, props)
    assert "initContainer 'init'" in problem


def test_objects_without_containers_have_no_limits_to_check() -> None:
    assert rules.check_resource_limits(SERVICE, service("ClusterIP")) == []


# --- explicit provider ---------------------------------------------------------------------------

OWN_PROVIDER = "urn:pulumi:s::homelab::pulumi:pulumi:Stack$homelab:talos:Cluster$pulumi:providers:kubernetes::cluster-kubernetes::id"
DEFAULT_PROVIDER = "urn:pulumi:s::homelab::pulumi:providers:kubernetes::default_4_34_2::id"


def test_kubernetes_objects_need_the_stacks_provider() -> None:
    assert rules.check_explicit_provider(DEPLOYMENT, OWN_PROVIDER) == []
    (problem,) = rules.check_explicit_provider(DEPLOYMENT, DEFAULT_PROVIDER)
    assert "default Kubernetes provider" in problem
    assert rules.check_explicit_provider(DEPLOYMENT, None) != []


def test_provider_rule_ignores_other_packages_and_kubernetes_components() -> None:
    assert rules.check_explicit_provider("command:local:Command", None) == []
    assert rules.check_explicit_provider("kubernetes:helm.sh/v4:Chart", None) == []
    assert rules.check_explicit_provider("pulumi:providers:kubernetes", None) == []


# --- routes name their entrypoints ---------------------------------------------------------------


@pytest.mark.parametrize(
    "entrypoints", [["websecure"], ["public"], ["websecure", "public"]], ids=str
)
def test_an_ingress_route_that_names_its_entrypoints_passes(entrypoints: list[str]) -> None:
    props = ingress_route(route(PRIVATE_MIDDLEWARE))
    props["spec"]["entryPoints"] = entrypoints
    assert rules.check_routes_name_entrypoints(INGRESS_ROUTE, props) == []


@pytest.mark.parametrize("entrypoints", [None, [], [""]], ids=["missing", "empty", "blank"])
def test_an_ingress_route_without_entrypoints_fails(entrypoints: Any) -> None:
    """traefik/traefik@v3.7.9:pkg/server/aggregator.go mergeConfiguration gives a router with no
    entrypoints the default ones, which include every entrypoint unless one sets asDefault."""
    props = ingress_route(route(PRIVATE_MIDDLEWARE))
    if entrypoints is None:
        del props["spec"]["entryPoints"]
    else:
        props["spec"]["entryPoints"] = entrypoints
    (problem,) = rules.check_routes_name_entrypoints(INGRESS_ROUTE, props)
    assert "IngressRoute" in problem
    assert "spec.entryPoints" in problem


def test_a_tcp_route_needs_entrypoints_too() -> None:
    tcp = "kubernetes:traefik.io/v1alpha1:IngressRouteTCP"
    assert rules.check_routes_name_entrypoints(tcp, {"metadata": {}, "spec": {"routes": []}})


def test_a_plain_ingress_names_its_entrypoints_in_traefiks_annotation() -> None:
    annotation = rules.INGRESS_ENTRYPOINTS_ANNOTATION
    assert rules.check_routes_name_entrypoints(INGRESS, ingress({annotation: "websecure"})) == []
    for bad in ({}, {annotation: ""}, {annotation: " , "}):
        (problem,) = rules.check_routes_name_entrypoints(INGRESS, ingress(bad))
        assert annotation in problem


def test_other_kinds_are_not_routes() -> None:
    assert rules.check_routes_name_entrypoints("kubernetes:core/v1:Service", {"spec": {}}) == []
