"""Headplane: its config against upstream, its load-time rules, and its place in the Headscale pod."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from components import headplane
from config import pins
from config.loader import validate_config
from config.model import HomelabConfig
from tests.components.remote_access import (
    COMMAND,
    CONFIG_MAP,
    DEPLOYMENT,
    HEADSCALE,
    INGRESS_ROUTE,
    SECRET,
    SERVICE,
    child,
    children_of_type,
    container,
    env_of,
    headscale_settings,
    key_paths,
    pod_spec,
    render_remote_access,
    under,
)
from tests.harness import homelab_render, reference, render_stack, stack_raw_config

POD_ENV = {headplane.POD_NAME_ENV: "headscale-abc123"}


def homelab_config() -> HomelabConfig:
    return validate_config(stack_raw_config())


def rendered_config(render: Any = None) -> dict[str, Any]:
    data = child(render or homelab_render(), HEADSCALE, CONFIG_MAP, "headscale-headplane-config")
    document = yaml.safe_load(data.input("data")["config.yaml"])
    assert isinstance(document, dict)
    return document


def deployment_spec(render: Any = None) -> dict[str, Any]:
    return pod_spec(
        child(render or homelab_render(), HEADSCALE, DEPLOYMENT, "headscale-deployment")
    )


# --- the config against upstream ----------------------------------------------------------------


def test_every_key_is_one_the_upstream_example_documents() -> None:
    assert pins.HEADPLANE_IMAGE.endswith(":0.6.3"), "compare against the pinned version's example"
    example_text = reference("upstream/headplane/config.example.yaml").read_text()
    example_paths = key_paths(yaml.safe_load(example_text))
    # Optional keys the example documents only in comments (`# public_url: ...`), and the
    # `_path` twins it points to ("You may also provide `cookie_secret_path`").
    commented = set(re.findall(r"#\s*`?([a-z_]+)`?:", example_text)) | set(
        re.findall(r"`([a-z_]+_path)`", example_text)
    )
    for path in key_paths(rendered_config()):
        parent, _, leaf = path.rpartition(".")
        documented = path in example_paths or (
            leaf in commented and any(p.startswith(parent + ".") for p in example_paths)
        )
        assert documented, f"{path} is not a key of Headplane's example config"


def test_rendered_config_passes_headplanes_load_checks_with_the_pod_env() -> None:
    spec = deployment_spec()
    env = env_of(container(spec, "headplane"))
    assert env[headplane.POD_NAME_ENV] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert headplane.config_problems(rendered_config(), POD_ENV) == []


def test_without_the_pod_name_variable_the_kubernetes_integration_is_incomplete() -> None:
    problems = headplane.config_problems(rendered_config(), {})
    assert any("pod_name" in p for p in problems)


# --- load-time rules, one broken config each ---------------------------------------------------


def _broken(**paths: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(rendered_config())
    for dotted, value in paths.items():
        *parents, last = dotted.split("__")
        target = cfg
        for part in parents:
            target = target.setdefault(part, {})
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return cfg


BROKEN = [
    ("secret and path", _broken(server__cookie_secret="x" * 32), "CONFLICTING_SECRET_PATH_FIELD"),
    ("no secret", _broken(server__cookie_secret_path=None), "cookie_secret"),
    (
        "secret of 44 characters",
        _broken(server__cookie_secret_path=None, server__cookie_secret="y" * 44),
        "32 characters",
    ),
    ("uppercase data path", _broken(server__data_path="/var/lib/Headplane"), "lowercase"),
    ("host not an ip", _broken(server__host="localhost"), "server.host"),
    ("no headscale url", _broken(headscale__url=None), "headscale.url"),
    ("base url with /admin", _broken(server__base_url="https://hp.example.com/admin"), "/admin"),
    ("secure cookie over http", _broken(server__base_url="http://hp.example.com"), "cookie_secure"),
    ("two integrations", _broken(integration__proc={"enabled": True}), "only one"),
    ("agent without key", _broken(integration__agent={"enabled": False}), "pre_authkey"),
]


@pytest.mark.parametrize(
    ("cfg", "mentions"), [(c, m) for _, c, m in BROKEN], ids=[n for n, _, _ in BROKEN]
)
def test_load_rules_flag_a_config_that_breaks_them(cfg: dict[str, Any], mentions: str) -> None:
    problems = headplane.config_problems(cfg, POD_ENV)
    assert any(mentions in p for p in problems), problems


def test_env_overrides_follow_headplanes_naming() -> None:
    merged = headplane.with_env_overrides(
        {"server": {"port": 3000}}, {"HEADPLANE_SERVER__PORT": "8080", "OTHER": "x"}
    )
    assert merged == {"server": {"port": "8080"}}


# --- the shared pod ---------------------------------------------------------------------------


def test_headplane_shares_the_headscale_pod_and_its_process_namespace() -> None:
    spec = deployment_spec()
    assert spec["shareProcessNamespace"] is True
    names = [c["name"] for c in spec["containers"]]
    # Headscale first: Headplane looks for `headscale serve` when it starts.
    assert names == ["headscale", "headplane"]
    assert container(spec, "headscale")["args"] == ["serve"]
    assert container(spec, "headplane")["image"] == pins.HEADPLANE_IMAGE


def test_headplane_may_read_its_own_pod_and_nothing_else() -> None:
    render = homelab_render()
    spec = deployment_spec(render)
    role = child(
        render,
        HEADSCALE,
        "kubernetes:rbac.authorization.k8s.io/v1:Role",
        "headscale-headplane-role",
    )
    assert role.input("rules") == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    binding = child(
        render,
        HEADSCALE,
        "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
        "headscale-headplane-role-binding",
    )
    assert binding.input("roleRef")["name"] == role.input("metadata.name")
    (subject,) = binding.input("subjects")
    assert subject["name"] == spec["serviceAccountName"]


def _service_account_mounts(container_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        m
        for m in container_spec["volumeMounts"]
        if m["mountPath"].startswith("/var/run/secrets/kubernetes.io")
    ]


def test_only_headplane_gets_the_service_account_token() -> None:
    spec = deployment_spec()
    # No automatic mount: Headscale, the internet-facing container, gets no API token.
    assert spec["automountServiceAccountToken"] is False
    assert _service_account_mounts(container(spec, "headscale")) == []
    # Headplane 0.6.3 reads ca.crt, token and namespace from the standard service account
    # directory before it reads its own pod (integration/kubernetes.ts).
    (mount,) = _service_account_mounts(container(spec, "headplane"))
    assert mount["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"
    assert mount["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    sources = volume["projected"]["sources"]
    (token,) = [s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s]
    (ca,) = [s["configMap"] for s in sources if "configMap" in s]
    (downward,) = [s["downwardAPI"] for s in sources if "downwardAPI" in s]
    # The kubelet publishes the cluster CA in every namespace as this ConfigMap.
    assert ca["name"] == "kube-root-ca.crt"
    assert ca["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    (namespace,) = downward["items"]
    assert namespace["fieldRef"]["fieldPath"] == "metadata.namespace"
    files = {token["path"], namespace["path"], *(i["path"] for i in ca["items"])}
    assert files == {"ca.crt", "namespace", "token"}
    # Refreshed by the kubelet; at least the 10 minutes the API server requires.
    assert token["expirationSeconds"] >= 600


def test_headplane_reads_the_files_its_config_names() -> None:
    cfg = rendered_config()
    spec = deployment_spec()
    mounts = {m["mountPath"]: m for m in container(spec, "headplane")["volumeMounts"]}
    volumes: dict[str, dict[str, Any]] = {v["name"]: v for v in spec["volumes"]}

    def volume_at(path: str) -> dict[str, Any]:
        return volumes[mounts[path.rpartition("/")[0]]["name"]]

    secret_volume = volume_at(cfg["server"]["cookie_secret_path"])
    assert secret_volume["secret"]["secretName"] == "headplane-cookie-secret"
    assert volume_at(cfg["headscale"]["config_path"])["configMap"]["name"] == "headscale-config"
    assert volume_at(f"{headplane.CONFIG_DIR}/{headplane.CONFIG_FILE}")["configMap"]["name"] == (
        "headplane-config"
    )
    data = volumes[mounts[cfg["server"]["data_path"]]["name"]]
    assert data["persistentVolumeClaim"]["claimName"] == "headplane-data"
    # Headplane talks to Headscale over the pod's loopback on Headscale's listen port.
    listen_port = headscale_settings(homelab_render())["listen_addr"].rpartition(":")[2]
    assert cfg["headscale"]["url"] == f"http://127.0.0.1:{listen_port}"


def test_headplane_is_probed_on_its_health_endpoint() -> None:
    headplane_container = container(deployment_spec(), "headplane")
    for probe in ("readinessProbe", "livenessProbe"):
        assert headplane_container[probe]["httpGet"]["path"] == "/admin/healthz"
    assert set(headplane_container["resources"]) == {"requests", "limits"}


# --- cookie secret ----------------------------------------------------------------------------


def test_cookie_secret_is_generated_once_as_32_plain_characters_and_kept_secret() -> None:
    render = homelab_render()
    (password,) = children_of_type(render, HEADSCALE, "random:index/randomPassword:RandomPassword")
    assert password.input("length") == 32
    assert password.input("special") is False
    secret = child(render, HEADSCALE, SECRET, "headscale-headplane-secret")
    assert secret.is_secret("stringData.cookie_secret")
    assert len(secret.input("stringData.cookie_secret")) == 32
    assert "cookie_secret" not in rendered_config()["server"], "never both the key and _path"


def test_a_configured_cookie_secret_replaces_the_generated_one() -> None:
    value = "SENTINEL-cookie-abcdefghijklmnop"
    assert len(value) == 32
    render = render_stack(secrets={"headplaneCookieSecret": value})
    assert children_of_type(render, HEADSCALE, "random:index/randomPassword:RandomPassword") == []
    secret = child(render, HEADSCALE, SECRET, "headscale-headplane-secret")
    assert secret.input("stringData.cookie_secret") == value
    assert secret.is_secret("stringData.cookie_secret")


# --- exposure and API key ---------------------------------------------------------------------


def test_headplane_is_a_private_host_routed_to_its_service() -> None:
    config = homelab_config()
    route = child(homelab_render(), HEADSCALE, INGRESS_ROUTE, "headscale-headplane-route")
    (rule,) = route.input("spec.routes")
    assert rule["match"] == f"Host(`{config.fqdn(config.remote_access.headplane.host)}`)"
    assert rule["middlewares"], "private hosts carry the LAN/tailnet allowlist"
    (backend,) = rule["services"]
    service = child(homelab_render(), HEADSCALE, SERVICE, "headscale-headplane-service")
    assert service.input("metadata.name") == backend["name"]
    (port,) = service.input("spec.ports")
    assert port["port"] == backend["port"]
    assert port["targetPort"] == "headplane"
    assert rendered_config()["server"]["base_url"] == f"https://{config.fqdn('headplane')}"


def test_outputs_give_the_ui_url_and_the_api_key_as_a_secret() -> None:
    config = homelab_config()
    render = homelab_render()
    assert render.outputs["headplaneUrl"] == f"https://{config.fqdn('headplane')}/admin"
    assert render.output_is_secret("headplaneApiKey")
    command = child(render, HEADSCALE, COMMAND, "headscale-headplane-api-key")
    assert "apikeys" in command.input("create")


def test_disabling_headplane_removes_it_everywhere() -> None:
    render = render_remote_access({"headplane": {"enabled": False}})
    spec = deployment_spec(render)
    assert [c["name"] for c in spec["containers"]] == ["headscale"]
    assert "shareProcessNamespace" not in spec
    assert spec["automountServiceAccountToken"] is False
    assert not [v for v in spec["volumes"] if "projected" in v]
    names = {r.name for r in under(render, HEADSCALE)}
    assert not {n for n in names if "headplane" in n}
    assert "headplaneUrl" not in render.outputs
    assert "headplaneApiKey" not in render.outputs
    records = headscale_settings(render)["dns"]["extra_records"]
    assert not [r for r in records if r["name"].startswith("headplane.")]
