"""Helpers shared by the remote-access tests (Headscale, Headplane, keys, subnet router)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from homelab.engine import Render, ResourceRecord
from tests.harness import render_stack, stack_raw_config, with_changes

HEADSCALE = "homelab:remote-access:Headscale"
ROUTER = "homelab:remote-access:SubnetRouter"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SECRET = "kubernetes:core/v1:Secret"
COMMAND = "command:local:Command"
INGRESS_ROUTE = "kubernetes:traefik.io/v1alpha1:IngressRoute"

# Volume types the `restricted` Pod Security profile allows (kubernetes.io/docs pod-security-standards).
RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)


def under(render: Render, component_type: str) -> list[ResourceRecord]:
    """Every record whose ancestors include a component of `component_type`."""
    return [
        r for r in render.resources if any(a.type == component_type for a in render.ancestors(r))
    ]


def child(render: Render, component_type: str, type_token: str, name: str) -> ResourceRecord:
    found = [r for r in under(render, component_type) if r.type == type_token and r.name == name]
    assert len(found) == 1, f"expected one {type_token} {name!r}, found {len(found)}"
    return found[0]


def children_of_type(render: Render, component_type: str, type_token: str) -> list[ResourceRecord]:
    return [r for r in under(render, component_type) if r.type == type_token]


def headscale_files(render: Render) -> dict[str, str]:
    data = child(render, HEADSCALE, CONFIG_MAP, "headscale-config").input("data")
    assert isinstance(data, dict)
    return data


def headscale_settings(render: Render) -> dict[str, Any]:
    settings = yaml.safe_load(headscale_files(render)["config.yaml"])
    assert isinstance(settings, dict)
    return settings


def pod_spec(record: ResourceRecord) -> dict[str, Any]:
    spec = record.input("spec.template.spec")
    assert isinstance(spec, dict)
    return spec


def container(spec: Mapping[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in spec["containers"] if c["name"] == name]
    assert len(found) == 1, f"no container {name!r}"
    result: dict[str, Any] = found[0]
    return result


def env_of(container_spec: Mapping[str, Any]) -> dict[str, Any]:
    """Variable name -> literal value, or the `valueFrom` source."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container_spec.get("env", [])}


def key_paths(document: Any, prefix: str = "") -> set[str]:
    """Dotted paths of every mapping key; lists, scalars and empty mappings are leaves."""
    if not isinstance(document, Mapping) or not document:
        return {prefix} if prefix else set()
    paths: set[str] = set()
    for key, value in document.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        paths |= key_paths(value, path) if isinstance(value, Mapping) and value else {path}
    return paths


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}.{i}" if path else str(i))


def looks_secret(text: str) -> bool:
    """Fakes start with FAKE (homelab/fakes.py); stand-in config secrets contain SENTINEL."""
    return "FAKE" in text or "SENTINEL" in text


def plaintext_secrets(record: ResourceRecord) -> list[str]:
    """Input paths holding a secret-looking value that is not marked secret."""
    return [
        path
        for path, text in _strings(dict(record.inputs))
        if looks_secret(text) and not record.is_secret(path)
    ]


def restricted_violations(spec: Mapping[str, Any]) -> list[str]:
    """Where a pod spec breaks the `restricted` Pod Security Standard (the checks that apply)."""
    problems: list[str] = []
    pod_security = spec.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(flag)
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']}: {sorted(kinds)}")
    for c in spec["containers"]:
        security = c.get("securityContext", {})
        name = c["name"]
        if security.get("privileged"):
            problems.append(f"{name}: privileged")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        capabilities = security.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{name}: capabilities must drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities")
        if not security.get("runAsNonRoot", pod_security.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot")
        if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
            problems.append(f"{name}: runs as root")
        seccomp = security.get("seccompProfile", pod_security.get("seccompProfile", {}))
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            problems.append(f"{name}: hostPort")
    return problems


def render_remote_access(changes: Mapping[str, Any]) -> Render:
    """The homelab stack with dotted-path changes under `remoteAccess`."""
    raw = stack_raw_config()
    return render_stack(overrides={"remoteAccess": with_changes(raw["remoteAccess"], changes)})


# --- what containerboot makes of the router's environment -------------------------------------


def containerboot_up_args(env: Mapping[str, Any]) -> list[str]:
    """The `tailscale up` arguments containerboot builds from its environment.

    Mirrors tailscale/tailscale@v1.102.3:cmd/containerboot/tailscaled.go `tailscaleUp` (flag
    order and spelling) with settings.go `configFromEnv` (TS_AUTHKEY or TS_AUTH_KEY, TS_ROUTES
    only when set, TS_EXTRA_ARGS split on whitespace by strings.Fields).
    """
    args = ["up"]
    args.append("--accept-dns=true" if env.get("TS_ACCEPT_DNS") == "true" else "--accept-dns=false")
    auth_key = env.get("TS_AUTHKEY") or env.get("TS_AUTH_KEY")
    if auth_key:
        args.append(f"--authkey={auth_key}")
    if "TS_ROUTES" in env:
        args.append(f"--advertise-routes={env['TS_ROUTES']}")
    if env.get("TS_HOSTNAME"):
        args.append(f"--hostname={env['TS_HOSTNAME']}")
    args += str(env.get("TS_EXTRA_ARGS", "")).split()
    return args


def requested_tags(up_args: list[str]) -> list[str]:
    """Hostinfo.RequestTags a node sends after `tailscale up <up_args>`.

    tailscale/tailscale@v1.102.3:cmd/tailscale/cli/up.go registers `advertise-tags` with Go's
    flag package (so `-x`, `--x`, `--x=v` and `--x v` all set it; "tag:" is added when omitted)
    and copies it to Prefs.AdvertiseTags; ipn/ipnlocal/local.go `applyPrefsToHostinfoLocked`
    sets `hi.RequestTags = prefs.AdvertiseTags()`, which control/controlclient/direct.go sends in
    the RegisterRequest's Hostinfo.
    """
    value: str | None = None
    for index, arg in enumerate(up_args):
        name, has_value, inline = arg.lstrip("-").partition("=")
        if not arg.startswith("-") or name != "advertise-tags":
            continue
        if has_value:
            value = inline
        elif index + 1 < len(up_args):
            value = up_args[index + 1]
    if not value:
        return []
    return [t if t.startswith("tag:") else f"tag:{t}" for t in value.split(",") if t]


def headscale_accepts_pre_auth_key_registration(request_tags: list[str]) -> bool:
    """juanfont/headscale@v0.28.0:hscontrol/state/state.go ("Reject advertise-tags for
    PreAuthKey registrations"): with a pre-auth key, any RequestTags at all, matching the key's
    tags or not, refuse the registration (hscontrol/auth_test.go
    `preauth_key_rejects_request_tags`, `tagged_preauth_key_rejects_client_request_tags`)."""
    return len(request_tags) == 0
