"""The subnet router: containerboot's environment, its Secrets and RBAC, and its pod security."""

from __future__ import annotations

from typing import Any

import yaml

from components import subnet_router
from config import pins
from config.loader import validate_config
from config.model import HomelabConfig
from tests.components.remote_access import (
    COMMAND,
    DEPLOYMENT,
    HEADSCALE,
    ROUTER,
    SECRET,
    child,
    children_of_type,
    container,
    env_of,
    headscale_settings,
    pod_spec,
    render_remote_access,
    restricted_violations,
    under,
)
from tests.harness import (
    homelab_render,
    is_kubernetes_object,
    manifest,
    reference,
    stack_raw_config,
    validate_kubernetes,
)


def homelab_config() -> HomelabConfig:
    return validate_config(stack_raw_config())


def router_spec(render: Any = None) -> dict[str, Any]:
    return pod_spec(
        child(render or homelab_render(), ROUTER, DEPLOYMENT, "subnet-router-deployment")
    )


def router_env(render: Any = None) -> dict[str, Any]:
    return env_of(container(router_spec(render), "tailscale"))


def test_router_advertises_the_lan_and_logs_in_to_our_headscale() -> None:
    config = homelab_config()
    env = router_env()
    assert env["TS_ROUTES"].split(",") == [str(config.network.lan_cidr)]
    extra = env["TS_EXTRA_ARGS"].split()
    assert f"--login-server={headscale_settings(homelab_render())['server_url']}" in extra
    assert f"--advertise-tags={config.remote_access.router.tag}" in extra
    assert env["TS_HOSTNAME"] == config.remote_access.router.hostname


def test_router_runs_userspace_once_logged_in_with_state_in_its_own_secret() -> None:
    env = router_env()
    assert env["TS_USERSPACE"] == "true"
    assert env["TS_AUTH_ONCE"] == "true"
    assert env["TS_KUBE_SECRET"] == subnet_router.STATE_SECRET
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_UID"] == {"fieldRef": {"fieldPath": "metadata.uid"}}
    # Pulumi never manages the state Secret: containerboot writes it (components.md 4 #1).
    names = {r.input("metadata.name") for r in children_of_type(homelab_render(), ROUTER, SECRET)}
    assert subnet_router.STATE_SECRET not in names


def test_configured_routes_flow_to_the_router() -> None:
    render = render_remote_access({"router": {"routes": ["192.168.0.0/25", "192.168.0.128/26"]}})
    assert router_env(render)["TS_ROUTES"] == "192.168.0.0/25,192.168.0.128/26"


def test_auth_key_comes_from_a_secret_holding_the_minted_key() -> None:
    render = homelab_render()
    source = router_env(render)["TS_AUTHKEY"]["secretKeyRef"]
    secret = child(render, ROUTER, SECRET, "subnet-router-authkey")
    assert secret.input("metadata.name") == source["name"]
    path = f"stringData.{source['key']}"
    assert secret.is_secret(path)
    minted = child(render, HEADSCALE, COMMAND, "headscale-router-key")
    assert secret.input(path) == minted.outputs["stdout"]
    deployment = child(render, ROUTER, DEPLOYMENT, "subnet-router-deployment")
    assert secret.urn in deployment.dependencies


def test_role_is_upstreams_example_for_our_state_secret() -> None:
    text = reference("upstream/tailscale/k8s/role.yaml").read_text()
    upstream = yaml.safe_load(text.replace("{{TS_KUBE_SECRET}}", subnet_router.STATE_SECRET))
    role = child(
        homelab_render(),
        ROUTER,
        "kubernetes:rbac.authorization.k8s.io/v1:Role",
        "subnet-router-role",
    )
    assert role.input("rules") == upstream["rules"]
    binding = child(
        homelab_render(),
        ROUTER,
        "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
        "subnet-router-role-binding",
    )
    (subject,) = binding.input("subjects")
    assert subject["name"] == router_spec()["serviceAccountName"]
    assert binding.input("roleRef")["name"] == role.input("metadata.name")


def test_router_is_unprivileged_and_meets_the_restricted_profile() -> None:
    spec = router_spec()
    assert restricted_violations(spec) == []
    tailscale = container(spec, "tailscale")
    assert tailscale["image"] == pins.TAILSCALE_IMAGE
    assert "privileged" not in tailscale["securityContext"]
    assert set(tailscale["resources"]) == {"requests", "limits"}
    namespace = child(
        homelab_render(), ROUTER, "kubernetes:core/v1:Namespace", "subnet-router-namespace"
    )
    assert namespace.input("metadata.name") == "tailscale"
    assert namespace.input("metadata.labels")["pod-security.kubernetes.io/enforce"] == "restricted"


def test_router_reaches_headscale_on_the_lan_without_nat_loopback() -> None:
    config = homelab_config()
    (alias,) = router_spec()["hostAliases"]
    assert alias == {"ip": str(config.network.traefik_ip), "hostnames": [config.headscale_fqdn]}


def test_router_readiness_follows_containerboots_health_endpoint() -> None:
    tailscale = container(router_spec(), "tailscale")
    env = env_of(tailscale)
    assert env["TS_ENABLE_HEALTH_CHECK"] == "true"
    port = int(env["TS_LOCAL_ADDR_PORT"].rpartition(":")[2])
    probe = tailscale["readinessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    named = {p["name"]: p["containerPort"] for p in tailscale["ports"]}
    assert named[probe["port"]] == port


def test_every_kubernetes_object_validates_against_the_strict_schemas() -> None:
    records = [r for r in under(homelab_render(), ROUTER) if is_kubernetes_object(r)]
    assert len(records) >= 6
    for record in records:
        validate_kubernetes(manifest(record))
