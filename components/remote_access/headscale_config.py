"""Headscale's `config.yaml` as Python data, and the startup rules Headscale enforces on it.

`headscale_config` builds the file from the typed stack config; `startup_problems` is a pure
mirror of the checks that make Headscale 0.28.0 refuse to start (hscontrol/types/config.go
@ v0.28.0: `validateServerConfig`, `LoadServerConfig`, `derpConfig`, `dnsToTailcfgDNS`,
`isSafeServerURL`; components.md 2.2). Only keys of the pinned version's example config are written,
and none that 0.29 removed, so a later upgrade does not start from a fatal config.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from components.shared.common import TAILNET_IPV4, TAILNET_IPV6
from components.shared.dotted import MISSING, lookup
from config.views import ControlServer

HTTP_PORT: Final = 8080
METRICS_PORT: Final = 9090
CONFIG_DIR: Final = "/etc/headscale"
CONFIG_FILE: Final = "config.yaml"
POLICY_FILE: Final = "policy.json"
DATA_DIR: Final = "/var/lib/headscale"
SOCKET_DIR: Final = "/var/run/headscale"
# Tailscale's public DERP map: a fallback relay when the embedded one is unreachable.
PUBLIC_DERP_MAP: Final = "https://controlplane.tailscale.com/derpmap/default"


def extra_records(server: ControlServer, *, traefik_ip: str) -> list[dict[str, str]]:
    """MagicDNS A records: every exposed host at Traefik's LAN IP, except Headscale itself.

    The LAN IP is reachable over the subnet route, so `https://grafana.<domain>` works from
    anywhere on the tailnet. Headscale's own host is left to public DNS on purpose: the control
    connection and the embedded DERP relay must not depend on the tailnet they set up (a LAN
    answer only works while the tunnel is already up, and DERP over the tunnel would loop).
    """
    return [{"name": host.fqdn, "type": "A", "value": traefik_ip} for host in server.tailnet_hosts]


def headscale_config(server: ControlServer, *, traefik_ip: str) -> dict[str, Any]:
    """The whole config.yaml for the pinned Headscale (0.28.0), derived from the stack config."""
    remote = server.remote_access
    derp = remote.derp
    return {
        "server_url": server.server_url,
        # Plain HTTP on all interfaces: Traefik terminates TLS and forwards the whole host
        # (components.md 2.3; docs/ref/integration/reverse-proxy.md).
        "listen_addr": f"0.0.0.0:{HTTP_PORT}",
        # /metrics and /debug on the pod's loopback only: nothing scrapes them, and /debug must
        # not be served to the cluster. `kubectl port-forward` still reaches it for a look.
        "metrics_listen_addr": f"127.0.0.1:{METRICS_PORT}",
        # The CLI talks over the unix socket; gRPC stays on loopback (it "may not be proxied").
        "grpc_listen_addr": "127.0.0.1:50443",
        "grpc_allow_insecure": False,
        "disable_check_updates": True,
        "noise": {"private_key_path": f"{DATA_DIR}/noise_private.key"},
        "prefixes": {"v4": TAILNET_IPV4, "v6": TAILNET_IPV6, "allocation": "sequential"},
        "derp": {
            "server": {
                "enabled": derp.enabled,
                "region_id": derp.region_id,
                "region_code": "headscale",
                "region_name": f"{server.domain} (Headscale embedded DERP)",
                "verify_clients": True,
                # The DERP map advertises the port of this address as the STUN port, so it is
                # the same port the LoadBalancer Service and the router forward (headscale #2683).
                "stun_listen_addr": f"0.0.0.0:{derp.stun_port}",
                "private_key_path": f"{DATA_DIR}/derp_server_private.key",
                "automatically_add_embedded_derp_region": True,
            },
            # Without the embedded server the public map is the only relay there is.
            "urls": [PUBLIC_DERP_MAP] if derp.public_derp_fallback or not derp.enabled else [],
            "paths": [],
            "auto_update_enabled": True,
            "update_frequency": "3h",
        },
        "database": {
            "type": "sqlite",
            "sqlite": {"path": f"{DATA_DIR}/db.sqlite", "write_ahead_log": True},
        },
        # TLS is Traefik's job: no certificate paths, no ACME in Headscale.
        "tls_letsencrypt_hostname": "",
        "tls_cert_path": "",
        "tls_key_path": "",
        "log": {"level": "info", "format": "text"},
        "policy": {"mode": "file", "path": f"{CONFIG_DIR}/{POLICY_FILE}"},
        "dns": {
            "magic_dns": True,
            "base_domain": remote.magic_dns_base_domain,
            "override_local_dns": True,
            "nameservers": {"global": [str(ns) for ns in remote.nameservers], "split": {}},
            "search_domains": [],
            "extra_records": extra_records(server, traefik_ip=traefik_ip),
        },
        "unix_socket": f"{SOCKET_DIR}/headscale.sock",
        "unix_socket_permission": "0770",
        "logtail": {"enabled": False},
    }


# --- startup rules (mirrors hscontrol/types/config.go @ v0.28.0) ------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
# viper defaults that matter for the rules (config.go LoadConfig).
_DEFAULTS: Final[Mapping[str, Any]] = {
    "dns.magic_dns": True,
    "dns.override_local_dns": True,
    "derp.server.enabled": False,
    "derp.server.automatically_add_embedded_derp_region": True,
    "tls_letsencrypt_challenge_type": "HTTP-01",
    "ephemeral_node_inactivity_timeout": "120s",
    "prefixes.allocation": "sequential",
    "tuning.node_store_batch_size": 100,
    "tuning.node_store_batch_timeout": "500ms",
}
# Keys whose presence is fatal in 0.28.0 (the `depr.fatal*` calls of validateServerConfig).
REMOVED_KEYS: Final = (
    "acl_policy_path",
    "dns_config",
    "dns.use_username_in_magic_dns",
    "oidc.strip_email_domain",
    "oidc.map_legacy_users",
)


def _get(cfg: Mapping[str, Any], path: str) -> Any:
    value = lookup(cfg, path)
    return _DEFAULTS.get(path) if value is MISSING else value


def _is_set(cfg: Mapping[str, Any], path: str) -> bool:
    return lookup(cfg, path) is not MISSING


def _go_duration_seconds(text: str) -> float | None:
    """Seconds of a Go duration string ('30m', '1h30m', '0'); None when it does not parse."""
    if text == "0":
        return 0.0
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _DURATION_SECONDS[u] for n, u in parts)


def startup_problems(cfg: Mapping[str, Any]) -> list[str]:
    """Every reason the pinned Headscale would refuse to start with `cfg`, one line each."""
    problems: list[str] = []
    problems += [
        f"{key}: removed from Headscale; its presence is fatal"
        for key in REMOVED_KEYS
        if _is_set(cfg, key)
    ]
    if _is_set(cfg, "dns.extra_records") and _is_set(cfg, "dns.extra_records_path"):
        problems.append("dns.extra_records and dns.extra_records_path are mutually exclusive")
    if _get(cfg, "tls_letsencrypt_hostname") and (
        _get(cfg, "tls_cert_path") or _get(cfg, "tls_key_path")
    ):
        problems.append("set either tls_letsencrypt_hostname or tls_cert_path/tls_key_path")
    if not _get(cfg, "noise.private_key_path"):
        problems.append("noise.private_key_path is required")
    if _get(cfg, "tls_letsencrypt_challenge_type") not in ("HTTP-01", "TLS-ALPN-01"):
        problems.append("tls_letsencrypt_challenge_type must be HTTP-01 or TLS-ALPN-01")
    server_url = str(_get(cfg, "server_url") or "")
    if not server_url.startswith(("http://", "https://")):
        problems.append("server_url must start with https:// or http://")
    timeout = _go_duration_seconds(str(_get(cfg, "ephemeral_node_inactivity_timeout")))
    if timeout is None or timeout <= 65:
        problems.append("ephemeral_node_inactivity_timeout must be a duration above 65s")
    if _get(cfg, "dns.override_local_dns") and not _get(cfg, "dns.nameservers.global"):
        problems.append("dns.nameservers.global must be set when dns.override_local_dns is true")
    batch_size = _get(cfg, "tuning.node_store_batch_size")
    if not isinstance(batch_size, int) or batch_size <= 0:
        problems.append("tuning.node_store_batch_size must be positive")
    batch_timeout = _go_duration_seconds(str(_get(cfg, "tuning.node_store_batch_timeout")))
    if batch_timeout is None or batch_timeout <= 0:
        problems.append("tuning.node_store_batch_timeout must be a positive duration")
    problems += _prefix_problems(cfg)
    problems += _dns_problems(cfg, server_url)
    problems += _derp_problems(cfg)
    if _get(cfg, "oidc.client_secret") and _get(cfg, "oidc.client_secret_path"):
        problems.append("oidc.client_secret and oidc.client_secret_path are mutually exclusive")
    return problems


def _prefix_problems(cfg: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    present = 0
    for key, version in (("prefixes.v4", 4), ("prefixes.v6", 6)):
        text = _get(cfg, key)
        if not text:
            continue
        present += 1
        try:
            network = ipaddress.ip_network(str(text), strict=False)
        except ValueError:
            problems.append(f"{key}: {text!r} is not an IP prefix")
            continue
        if network.version != version:
            problems.append(f"{key}: {text!r} is not an IPv{version} prefix")
    if present == 0:
        problems.append("prefixes: at least one of prefixes.v4 and prefixes.v6 is required")
    if _get(cfg, "prefixes.allocation") not in ("sequential", "random"):
        problems.append("prefixes.allocation must be 'sequential' or 'random'")
    return problems


def _dns_problems(cfg: Mapping[str, Any], server_url: str) -> list[str]:
    problems: list[str] = []
    base_domain = str(_get(cfg, "dns.base_domain") or "")
    if _get(cfg, "dns.magic_dns") and not base_domain:
        problems.append("dns.base_domain must be set when using MagicDNS (dns.magic_dns)")
    if base_domain:
        problem = _unsafe_server_url(server_url, base_domain)
        if problem:
            problems.append(problem)
    return problems


def _unsafe_server_url(server_url: str, base_domain: str) -> str | None:
    """isSafeServerURL: the server host may be neither base_domain nor inside it, because
    Tailscale clients take over base_domain and could no longer reach Headscale or DERP."""
    server = urlsplit(server_url)
    if (server.hostname or "") == base_domain:
        return "server_url cannot use the same domain as dns.base_domain"
    # Like upstream, compare the labels of the host *with* its port.
    server_parts = server.netloc.split(".")
    base_parts = base_domain.split(".")
    if len(server_parts) <= len(base_parts):
        return None
    if server_parts[-len(base_parts) :] == base_parts:
        return "server_url cannot be part of dns.base_domain (a subdomain of it)"
    return None


def _derp_problems(cfg: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    if not _get(cfg, "derp.server.enabled"):
        return problems
    if not _get(cfg, "derp.server.stun_listen_addr"):
        problems.append("derp.server.stun_listen_addr must be set if derp.server.enabled is true")
    if not _get(cfg, "derp.server.automatically_add_embedded_derp_region") and not _get(
        cfg, "derp.paths"
    ):
        problems.append(
            "derp.server.automatically_add_embedded_derp_region: false needs the region in derp.paths"
        )
    return problems


def stun_port(cfg: Mapping[str, Any]) -> int:
    """The STUN port the embedded DERP region advertises: the port of stun_listen_addr
    (hscontrol/derp/server/derp_server.go GenerateRegion)."""
    return int(str(_get(cfg, "derp.server.stun_listen_addr")).rpartition(":")[2])
