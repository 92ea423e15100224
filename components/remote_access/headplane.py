"""Headplane, the web UI: its config and the load-time rules Headplane 0.6.3 applies to it.

`headplane_config` builds its `config.yaml` (keys of config.example.yaml @ v0.6.3);
`config_problems` mirrors the checks Headplane 0.6.3 makes when it loads that file plus its
`HEADPLANE_*` environment overrides (app/server/config/config-schema.ts, load.ts @ v0.6.3;
components.md 3.1-3.4), and `headscale_config_problems` the strict schema it reads Headscale's
config with (app/server/headscale/config-schema.ts). Headplane runs in its own pod
(components/remote_access/headplane_deployment.py) and talks to Headscale's ClusterIP Service.

No integration: Headscale's config is a read-only ConfigMap mount, so Headplane runs it read-only
(app/server/headscale/config-loader.ts: `access(W_OK)` fails, so `writable()` is false) and its
DNS/config actions return before any edit (app/routes/dns/dns-actions.ts), so the Kubernetes
integration (shared pod, `shareProcessNamespace`, an API token) would never signal anything.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from components.remote_access.headscale_config import CONFIG_DIR as HEADSCALE_CONFIG_DIR
from components.remote_access.headscale_config import CONFIG_FILE as HEADSCALE_CONFIG_FILE
from components.remote_access.headscale_config import HTTP_PORT as HEADSCALE_HTTP_PORT
from components.shared.common import HEADSCALE_NAMESPACE
from components.shared.dotted import MISSING, lookup
from config.model import ExposedHost

PORT: Final = 3000
CONFIG_DIR: Final = "/etc/headplane"
CONFIG_FILE: Final = "config.yaml"
DATA_DIR: Final = "/var/lib/headplane"
SECRET_DIR: Final = "/var/run/secrets/headplane"
COOKIE_SECRET_KEY: Final = "cookie_secret"
# The UI is served under this prefix (app/routes.ts basename); health is /admin/healthz.
UI_PATH: Final = "/admin"
COOKIE_SECRET_LENGTH: Final = 32
# Headscale's ClusterIP Service (components/remote_access/headscale_services.py), plain HTTP inside
# the cluster.
HEADSCALE_SERVICE: Final = "headscale"
HEADSCALE_URL: Final = f"http://{HEADSCALE_SERVICE}.{HEADSCALE_NAMESPACE}.svc:{HEADSCALE_HTTP_PORT}"


def base_url(host: ExposedHost) -> str:
    """The public URL without the /admin prefix (config.example.yaml `server.base_url`)."""
    return f"https://{host.fqdn}"


def ui_url(host: ExposedHost) -> str:
    return base_url(host) + UI_PATH


def headplane_config(host: ExposedHost, *, headscale_public_url: str) -> dict[str, Any]:
    """Headplane's config.yaml. Secrets are files (`*_path`), never inline values."""
    return {
        "server": {
            "host": "0.0.0.0",
            "port": PORT,
            "base_url": base_url(host),
            "cookie_secret_path": f"{SECRET_DIR}/{COOKIE_SECRET_KEY}",
            # Traefik serves https, so cookies are Secure (components.md 3.4 #5).
            "cookie_secure": True,
            "cookie_max_age": 86400,
            "data_path": DATA_DIR,
        },
        "headscale": {
            # Headscale's ClusterIP Service: plain HTTP inside the cluster, no TLS needed.
            "url": HEADSCALE_URL,
            "public_url": headscale_public_url,
            # Headscale's ConfigMap, mounted read-only into Headplane's pod: the UI shows the
            # config, the stack config owns it.
            "config_path": f"{HEADSCALE_CONFIG_DIR}/{HEADSCALE_CONFIG_FILE}",
            "config_strict": True,
        },
        # No `integration` block: with a read-only config there is nothing to signal (module
        # docstring), and an absent block is "No integrations enabled" (integration/index.ts).
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
                problems.append(f"{path} is required")
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


# --- what Headplane needs of Headscale's config (app/server/headscale/config-schema.ts) -------

# Keys without a default in Headplane's strict schema of Headscale's config, with the type it
# insists on. A config missing one, or with another type, is loaded as "no access"
# (config-loader.ts validateConfig) and the UI shows no settings at all.
HEADSCALE_REQUIRED: Final[Mapping[str, type | tuple[type, ...]]] = {
    "server_url": str,
    "listen_addr": str,
    "noise.private_key_path": str,
    "prefixes": dict,
    "derp.server": dict,
    "database.type": str,
    "dns": dict,
}
# Optional keys with a fixed type when present.
HEADSCALE_TYPED: Final[Mapping[str, type | tuple[type, ...]]] = {
    "metrics_listen_addr": str,
    "derp.server.region_id": int,
    "derp.server.stun_listen_addr": str,
    "derp.urls": list,
    "derp.paths": list,
    "dns.nameservers.global": list,
    "dns.search_domains": list,
    "dns.extra_records": list,
    "unix_socket": str,
    "policy.mode": str,
}


def headscale_config_problems(settings: Mapping[str, Any]) -> list[str]:
    """Why Headplane 0.6.3 would not read `settings` (Headscale's config) in strict mode."""
    problems: list[str] = []
    for key, kind in HEADSCALE_REQUIRED.items():
        value = lookup(settings, key)
        if value is MISSING:
            problems.append(f"{key} is required by Headplane's Headscale schema")
        elif not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            problems.append(f"{key} must be {kind}")
    for key, kind in HEADSCALE_TYPED.items():
        value = lookup(settings, key)
        if value is not MISSING and (not isinstance(value, kind) or isinstance(value, bool)):
            problems.append(f"{key} must be {kind}")
    if lookup(settings, "database.type") in ("sqlite", "sqlite3"):
        if not isinstance(lookup(settings, "database.sqlite.path"), str):
            problems.append("database.sqlite.path is required for sqlite")
    elif lookup(settings, "database.type") != "postgres":
        problems.append("database.type must be sqlite, sqlite3 or postgres")
    if lookup(settings, "policy.mode") not in (MISSING, "database", "file"):
        problems.append("policy.mode must be database or file")
    if lookup(settings, "prefixes.allocation") not in (MISSING, "sequential", "random"):
        problems.append("prefixes.allocation must be sequential or random")
    return problems
