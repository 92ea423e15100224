"""Headplane, the web UI, as a second container of the Headscale pod.

`headplane_config` builds its `config.yaml` (keys of config.example.yaml @ v0.6.3);
`config_problems` mirrors the checks Headplane 0.6.3 makes when it loads that file plus its
`HEADPLANE_*` environment overrides (app/server/config/config-schema.ts, load.ts,
integration/kubernetes.ts @ v0.6.3; components.md 3.1-3.4). The Kubernetes integration needs the
same pod as Headscale, `shareProcessNamespace`, and RBAC to read its own pod; all of that is
assembled by `components/headscale.py`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from components.dotted import MISSING, lookup
from components.headscale_config import CONFIG_DIR as HEADSCALE_CONFIG_DIR
from components.headscale_config import CONFIG_FILE as HEADSCALE_CONFIG_FILE
from components.headscale_config import HTTP_PORT as HEADSCALE_HTTP_PORT
from config.model import HomelabConfig

PORT: Final = 3000
CONFIG_DIR: Final = "/etc/headplane"
CONFIG_FILE: Final = "config.yaml"
DATA_DIR: Final = "/var/lib/headplane"
SECRET_DIR: Final = "/var/run/secrets/headplane"
COOKIE_SECRET_KEY: Final = "cookie_secret"
# The UI is served under this prefix (app/routes.ts basename); health is /admin/healthz.
UI_PATH: Final = "/admin"
# Headplane reads its pod name from this variable (integration.kubernetes.pod_name override).
POD_NAME_ENV: Final = "HEADPLANE_INTEGRATION__KUBERNETES__POD_NAME"
COOKIE_SECRET_LENGTH: Final = 32
# Where the Kubernetes integration looks for the service account; it insists on ca.crt, token and
# namespace there before it reads its own pod (app/server/config/integration/kubernetes.ts
# @ v0.6.3; the client's loadFromCluster reads the same path).
SERVICE_ACCOUNT_DIR: Final = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICE_ACCOUNT_VOLUME: Final = "headplane-service-account"
# The lifetime the kubelet requests for the automatic mount's token (it refreshes the file before
# the token expires): this volume behaves like that mount.
TOKEN_EXPIRATION_SECONDS: Final = 3607


def service_account_volume() -> dict[str, Any]:
    """The service account files the automatic mount would give, as a volume for Headplane alone.

    The pod sets `automountServiceAccountToken: false`, so Headscale, the internet-facing
    container, gets no API token; Headplane mounts this at SERVICE_ACCOUNT_DIR. It is the same
    projection the kubelet makes for the automatic mount (token, cluster CA, namespace). Not a
    hard boundary: both containers share a UID and a process namespace, so a compromised Headscale
    could still reach the file through /proc/<pid>/root; the token only grants `get` on pods.
    """
    return {
        "name": SERVICE_ACCOUNT_VOLUME,
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "path": "token",
                        "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                    }
                },
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {
                                    "apiVersion": "v1",
                                    "fieldPath": "metadata.namespace",
                                },
                            }
                        ]
                    }
                },
            ]
        },
    }


def base_url(config: HomelabConfig) -> str:
    """The public URL without the /admin prefix (config.example.yaml `server.base_url`)."""
    return f"https://{config.fqdn(config.remote_access.headplane.host)}"


def ui_url(config: HomelabConfig) -> str:
    return base_url(config) + UI_PATH


def headplane_config(config: HomelabConfig) -> dict[str, Any]:
    """Headplane's config.yaml. Secrets are files (`*_path`), never inline values."""
    return {
        "server": {
            "host": "0.0.0.0",
            "port": PORT,
            "base_url": base_url(config),
            "cookie_secret_path": f"{SECRET_DIR}/{COOKIE_SECRET_KEY}",
            # Traefik serves https, so cookies are Secure (components.md 3.4 #5).
            "cookie_secure": True,
            "cookie_max_age": 86400,
            "data_path": DATA_DIR,
        },
        "headscale": {
            # Same pod: Headscale's plain-HTTP listener on loopback, no TLS needed.
            "url": f"http://127.0.0.1:{HEADSCALE_HTTP_PORT}",
            "public_url": f"https://{config.headscale_fqdn}",
            # Mounted read-only: the UI shows the config but config stays code.
            "config_path": f"{HEADSCALE_CONFIG_DIR}/{HEADSCALE_CONFIG_FILE}",
            "config_strict": True,
        },
        # Only the Kubernetes integration: it lets Headplane signal Headscale in the shared pod.
        # pod_name comes from the Downward API through POD_NAME_ENV. Other integrations are
        # omitted rather than disabled: a present `agent` block requires a pre-auth key.
        "integration": {"kubernetes": {"enabled": True, "validate_manifest": True}},
    }


# --- load-time checks (mirrors Headplane 0.6.3) ----------------------------------------------

# Keys that may be given as a file path instead (config-schema.ts pathSupportedKeys).
PATH_SUPPORTED_KEYS: Final = (
    "server.cookie_secret",
    "oidc.client_secret",
    "oidc.headscale_api_key",
    "integration.agent.pre_authkey",
)
# Values validated as `string.lower` (config-schema.ts).
LOWERCASE_KEYS: Final = (
    "server.data_path",
    "server.cookie_domain",
    "headscale.config_path",
    "headscale.dns_records_path",
    "headscale.tls_cert_path",
)


def with_env_overrides(cfg: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """The config Headplane validates: the file, overridden by `HEADPLANE_A__B` variables
    (load.ts loadConfigEnv: strip the prefix, lowercase, split on '__')."""
    merged: dict[str, Any] = _deep_copy(cfg)
    for name, value in sorted(env.items()):
        if not name.startswith("HEADPLANE_"):
            continue
        path = name.removeprefix("HEADPLANE_").lower().split("__")
        target = merged
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return merged


def _deep_copy(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in value.items()}


def config_problems(cfg: Mapping[str, Any], env: Mapping[str, str] | None = None) -> list[str]:
    """Every reason Headplane 0.6.3 would refuse `cfg` (with `env` overrides), one line each."""
    merged = with_env_overrides(cfg, env or {})
    problems: list[str] = []
    for key in PATH_SUPPORTED_KEYS:
        if lookup(merged, key) is not MISSING and lookup(merged, key + "_path") is not MISSING:
            problems.append(f"{key} and {key}_path are both set (CONFLICTING_SECRET_PATH_FIELD)")
    secret = lookup(merged, "server.cookie_secret")
    if secret is MISSING and lookup(merged, "server.cookie_secret_path") is MISSING:
        problems.append("server.cookie_secret (or server.cookie_secret_path) is required")
    elif isinstance(secret, str) and len(secret) != COOKIE_SECRET_LENGTH:
        problems.append(f"server.cookie_secret must be exactly {COOKIE_SECRET_LENGTH} characters")
    for key in LOWERCASE_KEYS:
        value = lookup(merged, key)
        if isinstance(value, str) and value != value.lower():
            problems.append(f"{key} must be lowercase")
    host = lookup(merged, "server.host")
    if host is not MISSING and not _is_ip(host):
        problems.append("server.host must be an IP address")
    url = lookup(merged, "headscale.url")
    if url is MISSING or not _is_url(url):
        problems.append("headscale.url must be an http(s) URL")
    for key in ("server.base_url", "headscale.public_url"):
        value = lookup(merged, key)
        if value is not MISSING and not _is_url(value):
            problems.append(f"{key} must be an http(s) URL")
    problems += _base_url_problems(merged)
    problems += _integration_problems(merged)
    return problems


def _base_url_problems(cfg: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    base = lookup(cfg, "server.base_url")
    if not isinstance(base, str):
        return problems
    if urlsplit(base).path.rstrip("/").endswith(UI_PATH):
        problems.append(f"server.base_url must not include the {UI_PATH} prefix")
    # A Secure cookie is never sent back over plain http: login would silently fail.
    if lookup(cfg, "server.cookie_secure") is not False and base.startswith("http://"):
        problems.append("server.cookie_secure must be false when server.base_url is http://")
    return problems


def _integration_problems(cfg: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    # Required keys of each integration block that is present (the `full` schemas of
    # integration/{docker,kubernetes,proc}.ts and agentConfig); env overrides count.
    required = {
        "docker": ("enabled",),
        "kubernetes": ("enabled", "pod_name"),
        "proc": ("enabled",),
        "agent": ("enabled", "pre_authkey"),
    }
    for name, keys in required.items():
        if not isinstance(lookup(cfg, f"integration.{name}"), Mapping):
            continue
        for key in keys:
            path = f"integration.{name}.{key}"
            if lookup(cfg, path) is MISSING and lookup(cfg, path + "_path") is MISSING:
                hint = (
                    f" (set it from the Downward API via {POD_NAME_ENV})"
                    if key == "pod_name"
                    else ""
                )
                problems.append(f"{path} is required{hint}")
    enabled = [
        name
        for name in ("docker", "kubernetes", "proc")
        if lookup(cfg, f"integration.{name}.enabled") is True
    ]
    if len(enabled) > 1:
        problems.append(f"only one of integration.docker/kubernetes/proc may be enabled: {enabled}")
    return problems


def _is_ip(value: object) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def _is_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
