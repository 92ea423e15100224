"""The subnet router: containerboot's environment, its Secrets and RBAC, and its pod security."""

from __future__ import annotations

from typing import Any

import yaml

from components.remote_access import subnet_router
from components.shared.security import IMAGES_PINNED_BY_TAG
from config import pins
from config.loader import validate_config
from config.model import HomelabConfig
from programs.build import parameters
from tests.components.remote_access.remote_access import (
    COMMAND,
    DEPLOYMENT,
    HEADSCALE,
    ROUTER,
    SECRET,
    child,
    children_of_type,
    container,
    containerboot_up_args,
    env_of,
    headscale_accepts_pre_auth_key_registration,
    headscale_settings,
    pod_spec,
    render_remote_access,
    requested_tags,
    restricted_violations,
    under,
)
from tests.components.shared.hardening import (
    admits,
    checkov_skipped,
    hardening_problems,
    policies_selecting,
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
    assert env["TS_HOSTNAME"] == config.remote_access.router.hostname


def test_the_routers_registration_requests_no_tags_so_headscale_accepts_its_key() -> None:
    """The `tailscale up` containerboot runs from our env (tailscale@v1.102.3:
    cmd/containerboot/tailscaled.go tailscaleUp) sends no Hostinfo.RequestTags
    (cmd/tailscale/cli/up.go, ipn/ipnlocal/local.go applyPrefsToHostinfoLocked), so Headscale
    does not refuse the pre-auth-key registration (juanfont/headscale@v0.28.0:
    hscontrol/state/state.go "Reject advertise-tags for PreAuthKey registrations")."""
    up = containerboot_up_args(router_env())
    assert any(a.startswith("--authkey=file:") for a in up), "it logs in with the pre-auth key"
    assert requested_tags(up) == []
    assert headscale_accepts_pre_auth_key_registration(requested_tags(up))


def test_requesting_even_the_keys_own_tag_would_be_refused() -> None:
    """Guards the mirror above: the pre-0.28 setup (`--advertise-tags=<the key's tag>`) is
    refused (juanfont/headscale@v0.28.0:hscontrol/auth_test.go
    `tagged_preauth_key_rejects_client_request_tags`), in every spelling Go's flag package takes."""
    tag = homelab_config().remote_access.router.tag
    for extra in (
        f"--advertise-tags={tag}",
        f"-advertise-tags {tag}",
        "--advertise-tags k8s-router",
    ):
        env = {**router_env(), "TS_EXTRA_ARGS": f"--login-server=https://hs.example {extra}"}
        tags = requested_tags(containerboot_up_args(env))
        assert tags, extra
        assert not headscale_accepts_pre_auth_key_registration(tags)


def test_the_routers_tag_comes_from_its_pre_auth_key() -> None:
    config = homelab_config()
    script = child(homelab_render(), HEADSCALE, COMMAND, "headscale-router-key").input("create")
    assert parameters(script)["tags"] == [config.remote_access.router.tag]


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
    render = render_remote_access({"router": {"routes": ["192.168.0.0/25", "192.168.0.192/26"]}})
    assert router_env(render)["TS_ROUTES"] == "192.168.0.0/25,192.168.0.192/26"


def test_auth_key_is_read_from_a_mounted_secret_file_holding_the_minted_key() -> None:
    render = homelab_render()
    spec = router_spec(render)
    tailscale = container(spec, "tailscale")
    # containerboot hands `file:<path>` to `tailscale up --authkey`, which reads the file
    # (components.md 4): the key never sits in the process environment (checkov CKV_K8S_35).
    reference = router_env(render)["TS_AUTHKEY"]
    assert isinstance(reference, str)
    assert reference.startswith("file:/")
    directory, _, item = reference.removeprefix("file:").rpartition("/")
    (mount,) = [m for m in tailscale["volumeMounts"] if m["mountPath"] == directory]
    assert mount["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    secret = child(render, ROUTER, SECRET, "subnet-router-authkey")
    assert volume["secret"]["secretName"] == secret.input("metadata.name")
    path = f"stringData.{item}"
    assert secret.is_secret(path)
    minted = child(render, HEADSCALE, COMMAND, "headscale-router-key")
    # The key alone: the first line of what the minting command prints (components/remote_access/keys.py).
    assert secret.input(path) == minted.outputs["stdout"].splitlines()[0]
    deployment = child(render, ROUTER, DEPLOYMENT, "subnet-router-deployment")
    assert secret.urn in deployment.dependencies
    # Readable by the router's group only, which owns the file through the pod's fsGroup.
    mode = volume["secret"]["defaultMode"]
    assert mode & 0o040
    assert not mode & 0o007
    assert spec["securityContext"]["fsGroup"] == tailscale["securityContext"]["runAsGroup"]
    assert not [e for e in tailscale["env"] if "secretKeyRef" in e.get("valueFrom", {})]


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
    # Userspace networking needs no capability; state lives in the kube Secret and /tmp, so a
    # high UID and a read-only root work (components.md 4).
    assert hardening_problems(spec) == []
    tailscale = container(spec, "tailscale")
    assert tailscale["image"] == pins.TAILSCALE_IMAGE
    assert tailscale["securityContext"].get("privileged") is not True
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


def test_router_probes_follow_containerboots_health_endpoint() -> None:
    tailscale = container(router_spec(), "tailscale")
    env = env_of(tailscale)
    assert env["TS_ENABLE_HEALTH_CHECK"] == "true"
    port = int(env["TS_LOCAL_ADDR_PORT"].rpartition(":")[2])
    named = {p["name"]: p["containerPort"] for p in tailscale["ports"]}
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = tailscale[kind]["httpGet"]
        assert probe["path"] == "/healthz"
        assert named[probe["port"]] == port


def test_liveness_gives_the_first_login_time_and_restarts_only_a_lost_node() -> None:
    tailscale = container(router_spec(), "tailscale")

    def patience(kind: str) -> int:
        probe = tailscale[kind]
        return int(probe.get("periodSeconds", 10)) * int(probe.get("failureThreshold", 3))

    # The first login waits for Headscale, which restarts with the cluster: minutes, not seconds.
    assert patience("startupProbe") >= 300
    assert patience("livenessProbe") >= 60


def test_nothing_may_connect_to_the_router() -> None:
    # Tailnet traffic is the router's own outbound connections and their replies.
    render = homelab_render()
    deployment = child(render, ROUTER, DEPLOYMENT, "subnet-router-deployment")
    labels = deployment.input("spec.template.metadata.labels")
    policies = policies_selecting(render, deployment.input("metadata.namespace"), labels)
    assert policies
    for policy in policies:
        for source in (None, "traefik", "headscale", "tailscale"):
            for protocol, port in (("TCP", subnet_router.HEALTH_PORT), ("UDP", 41641)):
                assert not admits(policy, protocol=protocol, port=port, source_namespace=source)


def test_router_keeps_the_api_token_containerboot_needs_as_a_written_exception() -> None:
    render = homelab_render()
    deployment = child(render, ROUTER, DEPLOYMENT, "subnet-router-deployment")
    # containerboot writes its state Secret through the API with the pod's token.
    assert deployment.input("spec.template.spec").get("automountServiceAccountToken") is not False
    role = child(
        render, ROUTER, "kubernetes:rbac.authorization.k8s.io/v1:Role", "subnet-router-role"
    )
    assert any("secrets" in rule["resources"] for rule in role.input("rules"))
    skipped = checkov_skipped(deployment)
    assert "TS_KUBE_SECRET" in skipped["CKV_K8S_38"]
    assert skipped["CKV_K8S_43"] == IMAGES_PINNED_BY_TAG


def test_every_kubernetes_object_validates_against_the_strict_schemas() -> None:
    records = [r for r in under(homelab_render(), ROUTER) if is_kubernetes_object(r)]
    assert len(records) >= 6
    for record in records:
        validate_kubernetes(manifest(record))


def test_the_router_starts_only_once_the_wildcard_certificate_is_ready() -> None:
    """Tailscale clients refuse a control server on an untrusted certificate
    (tailscale/tailscale@v1.102.3:net/tlsdial/tlsdial.go), so the first login waits for it."""
    render = homelab_render()
    deployment = child(render, ROUTER, DEPLOYMENT, "subnet-router-deployment")
    (certificate,) = render.by_type("kubernetes:cert-manager.io/v1:Certificate")
    assert certificate.urn in deployment.dependencies
