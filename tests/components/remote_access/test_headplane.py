"""Headplane: its config against upstream, its load-time rules, and its place in the Headscale pod."""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from components.remote_access import headplane
from config import pins
from config.loader import validate_config
from config.model import HomelabConfig
from programs.build import parameters
from tests.components.remote_access.remote_access import (
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
    restricted_violations,
    under,
)
from tests.components.shared.hardening import admits, hardening_problems, policies_selecting
from tests.harness import homelab_render, reference, render_stack, stack_raw_config

HEADPLANE = "homelab:remote-access:Headplane"


def homelab_config() -> HomelabConfig:
    return validate_config(stack_raw_config())


def rendered_config(render: Any = None) -> dict[str, Any]:
    data = child(render or homelab_render(), HEADSCALE, CONFIG_MAP, "headscale-headplane-config")
    document = yaml.safe_load(data.input("data")["config.yaml"])
    assert isinstance(document, dict)
    return document


def headplane_deployment(render: Any = None) -> Any:
    return child(
        render or homelab_render(), HEADPLANE, DEPLOYMENT, "headscale-headplane-deployment"
    )


def deployment_spec(render: Any = None) -> dict[str, Any]:
    return pod_spec(headplane_deployment(render))


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


def test_with_no_integration_the_config_passes_headplanes_load_checks() -> None:
    """tale/headplane@v0.6.3:app/server/config/config-schema.ts (integration optional) and
    integration/index.ts (no block: "No integrations enabled"); nothing from the environment."""
    cfg = rendered_config()
    assert "integration" not in cfg
    assert env_of(container(deployment_spec(), "headplane")) == {}
    assert headplane.config_problems(cfg) == []


def test_headscales_config_file_is_there_read_only_and_valid_for_headplane() -> None:
    """tale/headplane@v0.6.3:app/server/headscale/config-loader.ts: `config_path` must be
    readable (access R_OK) and pass the strict schema (app/server/headscale/config-schema.ts),
    else Headplane has no access to it; not writable (W_OK fails on a read-only mount) means
    `writable()` is false and app/routes/dns/dns-actions.ts refuses every edit (403)."""
    render = homelab_render()
    cfg = rendered_config(render)
    spec = deployment_spec(render)
    directory, _, file_name = cfg["headscale"]["config_path"].rpartition("/")
    (mount,) = [
        m for m in container(spec, "headplane")["volumeMounts"] if m["mountPath"] == directory
    ]
    assert mount["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    config_map = child(render, HEADSCALE, CONFIG_MAP, "headscale-config")
    assert volume["configMap"]["name"] == config_map.input("metadata.name")
    assert "items" not in volume["configMap"], "every key of the ConfigMap is a file"
    assert file_name in config_map.input("data")
    assert headplane.headscale_config_problems(headscale_settings(render)) == []


@pytest.mark.parametrize(
    ("path", "value", "mentions"),
    [
        ("server_url", None, "server_url"),
        ("noise", None, "noise.private_key_path"),
        ("database", {"type": "mysql"}, "database.type"),
        ("database", {"type": "sqlite", "sqlite": {}}, "sqlite.path"),
        ("derp", {"urls": []}, "derp.server"),
        ("metrics_listen_addr", 9090, "metrics_listen_addr"),
        ("policy", {"mode": "hujson"}, "policy.mode"),
    ],
)
def test_headplane_would_not_read_a_headscale_config_that_breaks_its_schema(
    path: str, value: Any, mentions: str
) -> None:
    settings = copy.deepcopy(headscale_settings(homelab_render()))
    if value is None:
        del settings[path]
    else:
        settings[path] = value
    problems = headplane.headscale_config_problems(settings)
    assert any(mentions in p for p in problems), problems


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
    (
        "two integrations",
        _broken(integration={"proc": {"enabled": True}, "docker": {"enabled": True}}),
        "only one",
    ),
    ("agent without key", _broken(integration__agent={"enabled": False}), "pre_authkey"),
    (
        "kubernetes integration without a pod name",
        _broken(integration__kubernetes={"enabled": True}),
        "pod_name",
    ),
]


@pytest.mark.parametrize(
    ("cfg", "mentions"), [(c, m) for _, c, m in BROKEN], ids=[n for n, _, _ in BROKEN]
)
def test_load_rules_flag_a_config_that_breaks_them(cfg: dict[str, Any], mentions: str) -> None:
    problems = headplane.config_problems(cfg)
    assert any(mentions in p for p in problems), problems


def test_env_overrides_follow_headplanes_naming() -> None:
    merged = headplane.with_env_overrides(
        {"server": {"port": 3000}}, {"HEADPLANE_SERVER__PORT": "8080", "OTHER": "x"}
    )
    assert merged == {"server": {"port": "8080"}}


# --- its own pod ------------------------------------------------------------------------------


def test_headplane_runs_in_its_own_pod_not_in_headscales() -> None:
    render = homelab_render()
    headscale = pod_spec(child(render, HEADSCALE, DEPLOYMENT, "headscale-deployment"))
    assert [c["name"] for c in headscale["containers"]] == ["headscale"]
    assert "shareProcessNamespace" not in headscale
    spec = deployment_spec(render)
    assert [c["name"] for c in spec["containers"]] == ["headplane"]
    assert container(spec, "headplane")["image"] == pins.HEADPLANE_IMAGE
    assert "shareProcessNamespace" not in spec
    # Different pods: neither Deployment selects the other's pods.
    headscale_labels = child(render, HEADSCALE, DEPLOYMENT, "headscale-deployment").input(
        "spec.template.metadata.labels"
    )
    selector = headplane_deployment(render).input("spec.selector.matchLabels")
    assert not all(headscale_labels.get(k) == v for k, v in selector.items())
    # Its own SQLite on a ReadWriteOnce claim: never two pods at once.
    assert headplane_deployment(render).input("spec.strategy") == {"type": "Recreate"}


def test_headplane_gets_no_api_token_and_no_rbac() -> None:
    render = homelab_render()
    spec = deployment_spec(render)
    assert spec["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in spec
    assert not [v for v in spec["volumes"] if "projected" in v]
    kinds = {r.type for r in under(render, HEADSCALE)}
    assert not {k for k in kinds if "rbac" in k or k.endswith(":ServiceAccount")}
    assert restricted_violations(spec) == []
    assert hardening_problems(spec) == []


def test_headplane_reaches_headscale_through_its_cluster_ip_service_and_may() -> None:
    render = homelab_render()
    url = urlsplit(rendered_config(render)["headscale"]["url"])
    service = child(render, HEADSCALE, SERVICE, "headscale-service")
    namespace = service.input("metadata.namespace")
    assert url.scheme == "http"
    # <service>.<namespace>.svc resolves through the pod's DNS search path.
    assert url.hostname == f"{service.input('metadata.name')}.{namespace}.svc"
    assert service.input("spec.type") == "ClusterIP"
    (port,) = [p for p in service.input("spec.ports") if p["port"] == url.port]
    headscale_pod = child(render, HEADSCALE, DEPLOYMENT, "headscale-deployment")
    ports = {
        p["name"]: p["containerPort"]
        for p in container(pod_spec(headscale_pod), "headscale")["ports"]
    }
    target = ports[port["targetPort"]]
    labels = headplane_deployment(render).input("spec.template.metadata.labels")
    policies = policies_selecting(
        render, namespace, headscale_pod.input("spec.template.metadata.labels")
    )
    assert any(
        admits(p, protocol="TCP", port=target, source_namespace=namespace, source_labels=labels)
        for p in policies
    )
    # ...and nothing more: no other pod of the namespace, and only that port.
    assert not any(
        admits(p, protocol="TCP", port=target, source_namespace=namespace, source_labels={})
        for p in policies
    )
    for other in (22, 9090, 50443):
        assert not any(
            admits(p, protocol="TCP", port=other, source_namespace=namespace, source_labels=labels)
            for p in policies
        )


def test_only_traefik_reaches_headplane() -> None:
    render = homelab_render()
    deployment = headplane_deployment(render)
    policies = policies_selecting(
        render,
        deployment.input("metadata.namespace"),
        deployment.input("spec.template.metadata.labels"),
    )
    assert policies
    assert any(
        admits(p, protocol="TCP", port=headplane.PORT, source_namespace="traefik") for p in policies
    )
    for source in (None, "monitoring", "headscale"):
        assert not any(
            admits(p, protocol="TCP", port=headplane.PORT, source_namespace=source)
            for p in policies
        )


def test_headplane_reads_the_files_its_config_names() -> None:
    cfg = rendered_config()
    spec = deployment_spec()
    mounts = {m["mountPath"]: m for m in container(spec, "headplane")["volumeMounts"]}
    volumes: dict[str, dict[str, Any]] = {v["name"]: v for v in spec["volumes"]}

    def volume_at(path: str) -> dict[str, Any]:
        return volumes[mounts[path.rpartition("/")[0]]["name"]]

    secret_volume = volume_at(cfg["server"]["cookie_secret_path"])
    assert secret_volume["secret"]["secretName"] == "headplane-cookie-secret"
    assert volume_at(f"{headplane.CONFIG_DIR}/{headplane.CONFIG_FILE}")["configMap"]["name"] == (
        "headplane-config"
    )
    # hp_persist.db lives under data_path (app/server/index.ts createDbClient): a claim.
    data = volumes[mounts[cfg["server"]["data_path"]]["name"]]
    assert data["persistentVolumeClaim"]["claimName"] == "headplane-data"
    assert mounts[cfg["server"]["data_path"]].get("readOnly") is not True


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
    assert parameters(command.input("create"))["kind"] == "apikey"


def test_headplanes_state_is_protected_in_the_homelab_only() -> None:
    claim = child(
        homelab_render(),
        HEADSCALE,
        "kubernetes:core/v1:PersistentVolumeClaim",
        "headscale-headplane-data",
    )
    assert claim.protect is True
    lab = render_stack(overrides={"lifecycle": {"environment": "lab"}}, as_stack="variant")
    lab_claim = child(
        lab, HEADSCALE, "kubernetes:core/v1:PersistentVolumeClaim", "headscale-headplane-data"
    )
    assert lab_claim.protect is False


def test_disabling_headplane_removes_it_everywhere() -> None:
    render = render_remote_access({"headplane": {"enabled": False}})
    assert under(render, HEADPLANE) == []
    names = {r.name for r in under(render, HEADSCALE)}
    assert not {n for n in names if "headplane" in n}
    assert "headplaneUrl" not in render.outputs
    assert "headplaneApiKey" not in render.outputs
    records = headscale_settings(render)["dns"]["extra_records"]
    assert not [r for r in records if r["name"].startswith("headplane.")]
