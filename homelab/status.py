"""`python -m homelab status [--stack NAME] [--json]`: one screen after `up` and on a bad day.

Each line is OK, WARN or FAIL, and a WARN or FAIL says the next command to run. The exit code is 1
when any line FAILs. Everything is read, nothing is changed:

- the stack's outputs (`pulumi stack output --json --show-secrets`, the backend ./scripts/pulumi
  uses): the kubeconfig, the key expiries and the backup target;
- the cluster with `kubectl` and that kubeconfig, written to a 0600 temp file that is removed
  afterwards and never printed: nodes, Helm releases, the wildcard Certificate, the etcd snapshot
  CronJob; and, through `kubectl exec`, the Headscale CLI (nodes and routes) and the Litestream
  sidecar (the newest file in the replica).

Helm releases are read from Helm's own storage, not with `helm` (not a prerequisite here): the
pulumi-kubernetes provider keeps them in the `secret` driver by default (pulumi/pulumi-kubernetes
@ v4.32.0 : provider/pkg/provider/provider.go helmDriver), one Secret per revision labelled
`owner=helm`, `name`, `status`, `version` (helm/helm @ v3.20.2, the version it vendors :
pkg/storage/driver/secrets.go newSecretsObject). The release record in it also says which chart
version is installed, which is compared with config/pins.py.

The Talos version comes from each Node's `status.nodeInfo.osImage`, the kubelet's reading of
/etc/os-release, whose PRETTY_NAME Talos writes as "Talos (v1.13.9)" (siderolabs/talos @ v1.13.9 :
pkg/machinery/constants/constants.go OSReleaseTemplate; asserted by
internal/integration/k8s/version.go), so no talosconfig is needed.

Time-based checks take `now` as a parameter, so they are deterministic under test.
"""

from __future__ import annotations

import base64
import binascii
import enum
import gzip
import json
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TextIO

from components.platform.cert_manager import WILDCARD_CERTIFICATE
from components.remote_access.headscale_config import DATA_DIR as HEADSCALE_DATA_DIR
from components.remote_access.keys import API_KEY_RENEW_BEFORE_SECONDS
from components.shared.backup_names import (
    BACKUP_NAMESPACE,
    ETCD_SNAPSHOT_CRONJOB,
    LITESTREAM_CONTAINER,
)
from components.shared.common import (
    CERT_MANAGER_NAMESPACE,
    HEADSCALE_NAMESPACE,
    METALLB_NAMESPACE,
    REFLECTOR_NAMESPACE,
    TAILSCALE_NAMESPACE,
    TRAEFIK_NAMESPACE,
)
from config import pins
from config.lab_guard import load_stack_file
from config.model import HomelabConfig, SubnetRouter
from config.rules import Problem
from homelab import lab
from homelab.certificates import kubeconfig_not_after
from homelab.device import CONTAINER as HEADSCALE_CONTAINER
from homelab.device import WORKLOAD as HEADSCALE_WORKLOAD

# The subnet router's Deployment (components/remote_access/subnet_router.py).
ROUTER_WORKLOAD: Final = "deployment/subnet-router"
# Bounds every kubectl call: an unreachable API answers within this instead of hanging.
REQUEST_TIMEOUT: Final = "10s"
PROCESS_TIMEOUT_SECONDS: Final = 60
# Headscale's database (components/remote_access/headscale_config.py), which Litestream replicates.
HEADSCALE_DATABASE: Final = f"{HEADSCALE_DATA_DIR}/db.sqlite"
# The sidecar's config file, which `replicate` is started with: `ltx` finds the database's replica
# there (not at its default /etc/litestream.yml). Must equal CONFIG_PATH of
# components/remote_access/litestream.py (the backups branch; tests check it once merged).
LITESTREAM_CONFIG_PATH: Final = "/etc/litestream/litestream.yml"
# A certificate this close to expiry should have been renewed already: cert-manager renews at 2/3
# of the lifetime (30 days before for Let's Encrypt's 90), so 14 days left means renewals fail.
CERTIFICATE_WARN_BEFORE: Final = timedelta(days=14)
# `pulumi up` renews Headplane's API key inside this window (components/remote_access/keys.py).
API_KEY_WARN_BEFORE: Final = timedelta(seconds=API_KEY_RENEW_BEFORE_SECONDS)
# Backups: a day's schedule plus slack is fresh; two missed days is a failure. Litestream writes a
# snapshot at least daily even without writes (benbjohnson/litestream @ v0.5.16 : store.go
# DefaultSnapshotInterval 24h), so its newest file is never older than that while it works.
BACKUP_WARN_AFTER: Final = timedelta(hours=26)
BACKUP_FAIL_AFTER: Final = timedelta(hours=48)
# The platform's releases (__main__.py names each after its component) and their pinned charts;
# other releases (the apps') are checked for their state only.
PLATFORM_RELEASES: Final = {
    "cert-manager": CERT_MANAGER_NAMESPACE,
    "metallb": METALLB_NAMESPACE,
    "reflector": REFLECTOR_NAMESPACE,
    "traefik": TRAEFIK_NAMESPACE,
}
CHART_PINS: Final = {
    "cert-manager": pins.CERT_MANAGER_CHART_VERSION,
    "grafana": pins.GRAFANA_CHART_VERSION,
    "metallb": pins.METALLB_CHART_VERSION,
    "reflector": pins.REFLECTOR_CHART_VERSION,
    "traefik": pins.TRAEFIK_CHART_VERSION,
}
# Talos's PRETTY_NAME (see the module docstring).
TALOS_OS_IMAGE: Final = re.compile(r"^Talos \((?P<version>v[^)]+)\)$")
# The key expiry outputs are RFC 3339 in UTC, or "unknown" (components/remote_access/keys.py).
EXPIRY_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
NO_BACKUP_TARGET: Final = ("", "none")


class Level(enum.StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One line: what was checked, its verdict, what was seen and the next command on a problem."""

    area: str
    subject: str
    level: Level
    detail: str
    next_step: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "area": self.area,
            "subject": self.subject,
            "level": str(self.level),
            "detail": self.detail,
            "next": self.next_step,
        }


class KubectlError(Exception):
    """kubectl failed; the message is its last stderr line (never the kubeconfig)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


# What kubectl adds after a command in the pod failed (client-go tools/remotecommand/v4.go
# errorDecoderV4); the line before it says why.
_EXEC_EXIT: Final = re.compile(r"^command terminated with exit code \d+$")


def _last_line(text: str, fallback: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    meaningful = [line for line in lines if not _EXEC_EXIT.fullmatch(line)]
    return (meaningful or lines or [fallback])[-1]


def _kubectl_hint(stack: str, args: str) -> str:
    """A kubectl command a person can paste: the kubeconfig through process substitution, so it
    is neither printed nor left in a file."""
    return (
        f"kubectl --kubeconfig <(./scripts/pulumi stack output kubeconfig --show-secrets "
        f"--stack {stack}) {args}"
    )


def _talosctl_hint(stack: str, node: str, args: str) -> str:
    """talosctl with the stack's talosconfig, the same way as `_kubectl_hint`."""
    return (
        f"talosctl --talosconfig <(./scripts/pulumi stack output talosconfig --show-secrets "
        f"--stack {stack}) --nodes {node} {args}"
    )


class Kubectl:
    """kubectl with the stack's kubeconfig, parsed JSON in, KubectlError out."""

    def __init__(self, kubeconfig_path: str, env: Mapping[str, str], cwd: Path) -> None:
        self._env = {k: v for k, v in env.items() if k != "KUBECONFIG"}
        self._env["KUBECONFIG"] = kubeconfig_path
        self._cwd = cwd

    def _run(self, args: Sequence[str]) -> str:
        argv = ["kubectl", f"--request-timeout={REQUEST_TIMEOUT}", *args]
        try:
            result = subprocess.run(
                argv,
                env=self._env,
                cwd=self._cwd,
                capture_output=True,
                text=True,
                timeout=PROCESS_TIMEOUT_SECONDS,
                check=False,
            )
        except FileNotFoundError:
            raise KubectlError(
                "kubectl is not on PATH (a prerequisite, as for `pulumi up`)"
            ) from None
        except subprocess.TimeoutExpired:
            raise KubectlError(
                f"kubectl did not answer within {PROCESS_TIMEOUT_SECONDS}s"
            ) from None
        if result.returncode != 0:
            raise KubectlError(_last_line(result.stderr, f"kubectl exit code {result.returncode}"))
        return result.stdout

    def get(self, *args: str) -> Mapping[str, Any]:
        """The object (or List) kubectl prints; anything else (`null`, a bare list) is a
        KubectlError naming the command, like any other answer that cannot be read."""
        what = f"kubectl get {' '.join(args)}"
        document = _parse_json(self._run(["get", *args, "--output", "json"]), what)
        if not isinstance(document, dict):
            raise KubectlError(f"it printed {_json_kind(document)}, not a JSON object")
        return document

    def exec_json(self, namespace: str, container: str, *command: str) -> Any:
        argv = ["--namespace", namespace, "exec", HEADSCALE_WORKLOAD, "--container", container]
        return _parse_json(self._run([*argv, "--", *command]), " ".join(command[:2]))


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    return {list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def _objects(value: object) -> list[Mapping[str, Any]]:
    """The JSON objects of a list (a List's `items`, a CLI's JSON array); anything else in it,
    or a value that is no list, is skipped: a `null` item names nothing to check."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _object(value: object) -> Mapping[str, Any]:
    """`value` when it is a JSON object, else an empty one (a field kubectl printed as null)."""
    return value if isinstance(value, dict) else {}


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise KubectlError(f"`{what}` did not print JSON") from None


def read_outputs(context: lab.Lab, stack: str) -> Mapping[str, Any]:
    """The stack's outputs, secrets in plaintext (held in memory only).

    `pulumi stack output --json --show-secrets --stack NAME` prints one JSON object of every
    output, as the Automation API reads it (pulumi/pulumi sdk/python/lib/pulumi/automation/
    _local_workspace.py stack_outputs); run with ./scripts/pulumi's backend.
    """
    if shutil.which("pulumi", path=context.env.get("PATH")) is None:
        raise lab.LabError(lab.MISSING_CLI)
    lab._require_passphrase(context)
    env = {**context.env, **(context.workspace_options().env_vars or {})}
    argv = ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack]
    try:
        result = subprocess.run(
            argv, env=env, cwd=context.root, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise lab.LabError(lab.MISSING_CLI) from None
    if result.returncode != 0:
        line = _last_line(result.stderr, f"exit code {result.returncode}")
        raise lab.LabError(f"cannot read the outputs of stack {stack!r}: {line}")
    try:
        outputs = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        raise lab.LabError("`pulumi stack output --json` did not print JSON") from None
    if not isinstance(outputs, dict):
        raise lab.LabError("`pulumi stack output --json` did not print an object")
    return outputs


# --- parsing helpers -------------------------------------------------------------------------


def _time(text: object) -> datetime | None:
    """An RFC 3339 time as Kubernetes and Litestream print it (`...Z`), or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _proto_time(value: object) -> datetime | None:
    """A protobuf Timestamp as Go's encoding/json writes it: {"seconds": N, "nanos": M}, with
    `seconds` omitted at the epoch (omitempty) and negative for Go's zero time."""
    if not isinstance(value, dict):
        return None
    seconds = value.get("seconds")
    if not isinstance(seconds, int) or seconds <= 0:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def _show(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _age(now: datetime, moment: datetime) -> str:
    delta = now - moment
    if delta < timedelta(0):
        return "in the future"
    hours = int(delta.total_seconds() // 3600)
    if hours < 1:
        return f"{int(delta.total_seconds() // 60)} min ago"
    if hours < 48:
        return f"{hours} h ago"
    return f"{hours // 24} days ago"


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in _objects(_object(obj.get("status")).get("conditions")):
        if condition.get("type") == kind:
            return condition
    return None


# --- the checks ------------------------------------------------------------------------------


# The label kubeadm and Talos put on control-plane Nodes.
CONTROL_PLANE_LABEL: Final = "node-role.kubernetes.io/control-plane"


def _ready_control_plane(nodes: Mapping[str, Any]) -> str | None:
    """The InternalIP of the first Ready control-plane Node: where `talosctl health` can run
    when the configured first control plane is the one that is down."""
    for node in sorted(
        _objects(nodes.get("items")), key=lambda n: str(_object(n.get("metadata")).get("name"))
    ):
        labels = _object(_object(node.get("metadata")).get("labels"))
        ready = _condition(node, "Ready")
        if CONTROL_PLANE_LABEL not in labels or ready is None or ready.get("status") != "True":
            continue
        for address in _objects(_object(node.get("status")).get("addresses")):
            if address.get("type") == "InternalIP":
                return str(address.get("address"))
    return None


def _up_hint(stack: str) -> str:
    """Versions move through the stack, never by hand: `talosctl upgrade --image` with the plain
    installer would drop the node's extensions (the stack's installer is the schematic's) and
    bypass the roll's health checks (docs/operations.md, Upgrades)."""
    return (
        f"./scripts/up {stack} (the roll moves the nodes one at a time to the installer of "
        f"`./scripts/pulumi stack output talosInstallerImage --stack {stack}`, then Kubernetes)"
    )


def node_checks(
    nodes: Mapping[str, Any],
    *,
    talos_version: str,
    kubernetes_version: str,
    stack: str,
    control_plane: str,
) -> list[Check]:
    """Each Node: Ready, and the Talos and Kubernetes versions it runs against the pins.
    `control_plane` is where `talosctl health` runs: only a control plane serves it
    (siderolabs/talos@v1.13.9: internal/app/machined/internal/server/v1alpha1/v1alpha1_cluster.go
    `HealthCheck`, `CheckControlplane`)."""
    items = _objects(nodes.get("items"))
    if not items:
        return [
            Check(
                "nodes",
                "cluster",
                Level.FAIL,
                "no nodes registered",
                _kubectl_hint(stack, "get nodes"),
            )
        ]
    checks: list[Check] = []
    want_kubelet = f"v{kubernetes_version}"  # the kubelet reports its version with a "v"
    for node in sorted(items, key=lambda n: str(_object(n.get("metadata")).get("name"))):
        name = str(_object(node.get("metadata")).get("name"))
        info = _object(_object(node.get("status")).get("nodeInfo"))
        ready = _condition(node, "Ready")
        match = TALOS_OS_IMAGE.fullmatch(str(info.get("osImage", "")))
        talos = match.group("version") if match else f"not Talos ({info.get('osImage', '?')})"
        kubelet = str(info.get("kubeletVersion", "?"))
        detail = f"Talos {talos}, Kubernetes {kubelet}"
        address = next(
            (
                a.get("address")
                for a in _objects(_object(node.get("status")).get("addresses"))
                if a.get("type") == "InternalIP"
            ),
            name,
        )
        if ready is None or ready.get("status") != "True":
            reason = (ready or {}).get("reason") or "no Ready condition"
            message = (ready or {}).get("message") or ""
            checks.append(
                Check(
                    "nodes",
                    name,
                    Level.FAIL,
                    f"NotReady ({reason}{': ' + message if message else ''}); {detail}",
                    _talosctl_hint(stack, control_plane, "health")
                    + f"; {_talosctl_hint(stack, str(address), 'service kubelet')}"
                    + f"; {_kubectl_hint(stack, f'describe node {name}')}",
                )
            )
            continue
        drift = []
        if talos != talos_version:
            drift.append(f"Talos {talos}, pinned {talos_version}")
        if kubelet != want_kubelet:
            drift.append(f"Kubernetes {kubelet}, pinned {want_kubelet}")
        if drift:
            checks.append(
                Check(
                    "nodes",
                    name,
                    Level.WARN,
                    f"Ready, but {'; '.join(drift)}",
                    _up_hint(stack),
                )
            )
        else:
            checks.append(Check("nodes", name, Level.OK, f"Ready, {detail}"))
    return checks


def _helm_release_record(secret: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The release a Helm storage Secret holds: base64 (the Secret's data) of base64 of gzip of
    JSON (helm/helm @ v3.20.2 : pkg/storage/driver/util.go encodeRelease/decodeRelease)."""
    blob = _object(secret.get("data")).get("release")
    if not isinstance(blob, str):
        return None
    try:
        inner = base64.b64decode(base64.b64decode(blob))
        if inner[:3] == b"\x1f\x8b\x08":  # gzip magic: decodeRelease skips it for old records
            inner = gzip.decompress(inner)
        record = json.loads(inner)
    except (binascii.Error, OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def release_checks(secrets: Mapping[str, Any], *, stack: str) -> list[Check]:
    """The newest revision of every Helm release: deployed, and its chart at the pinned version."""
    revisions: dict[tuple[str, str], tuple[int, Mapping[str, Any]]] = {}
    for secret in _objects(secrets.get("items")):
        metadata = _object(secret.get("metadata"))
        labels = _object(metadata.get("labels"))
        if labels.get("owner") != "helm" or "name" not in labels:
            continue
        key = (str(metadata.get("namespace")), str(labels["name"]))
        try:
            revision = int(labels.get("version", "0"))
        except (TypeError, ValueError):
            continue
        if key not in revisions or revision > revisions[key][0]:
            revisions[key] = (revision, secret)
    newest = {key: secret for key, (_, secret) in revisions.items()}
    checks: list[Check] = []
    for name, namespace in sorted(PLATFORM_RELEASES.items()):
        if (namespace, name) not in newest:
            checks.append(
                Check(
                    "releases",
                    f"{namespace}/{name}",
                    Level.FAIL,
                    "not installed",
                    f"./scripts/up {stack}",
                )
            )
    for (namespace, name), secret in sorted(newest.items()):
        labels = _object(_object(secret.get("metadata")).get("labels"))
        state = str(labels.get("status", "unknown"))
        record = _helm_release_record(secret) or {}
        chart = _object(_object(record.get("chart")).get("metadata"))
        chart_name, chart_version = str(chart.get("name", "?")), str(chart.get("version", "?"))
        detail = f"{state}, chart {chart_name} {chart_version}, revision {labels.get('version')}"
        subject = f"{namespace}/{name}"
        if state == "deployed":
            pinned = CHART_PINS.get(chart_name)
            if pinned is not None and chart_version != pinned:
                checks.append(
                    Check(
                        "releases",
                        subject,
                        Level.WARN,
                        f"{detail}; pinned {pinned}",
                        f"./scripts/up {stack}",
                    )
                )
            else:
                checks.append(Check("releases", subject, Level.OK, detail))
        elif state.startswith("pending-"):
            # An operation in progress, or one interrupted: Helm refuses the next one until resolved.
            checks.append(
                Check(
                    "releases",
                    subject,
                    Level.WARN,
                    f"{detail} (an `up` in progress, or an interrupted one)",
                    _kubectl_hint(stack, f"-n {namespace} get pods")
                    + f"; then ./scripts/up {stack}",
                )
            )
        else:
            checks.append(
                Check(
                    "releases",
                    subject,
                    Level.FAIL,
                    detail,
                    _kubectl_hint(stack, f"-n {namespace} get pods,events")
                    + f"; then ./scripts/up {stack}",
                )
            )
    return checks


def certificate_check(certificate: Mapping[str, Any], *, now: datetime, stack: str) -> Check:
    """The wildcard Certificate: Ready, and how long until `status.notAfter`."""
    subject = f"{CERT_MANAGER_NAMESPACE}/{WILDCARD_CERTIFICATE}"
    describe = _kubectl_hint(
        stack, f"-n {CERT_MANAGER_NAMESPACE} describe certificate {WILDCARD_CERTIFICATE}"
    )
    ready = _condition(certificate, "Ready")
    not_after = _time(_object(certificate.get("status")).get("notAfter"))
    expiry = f"expires {_show(not_after)}" if not_after else "never issued"
    if not_after is not None and not_after <= now:
        return Check("certificate", subject, Level.FAIL, f"expired {_show(not_after)}", describe)
    if ready is None or ready.get("status") != "True":
        why = (ready or {}).get("message") or (ready or {}).get("reason") or "no Ready condition"
        return Check("certificate", subject, Level.FAIL, f"not Ready ({why}); {expiry}", describe)
    if not_after is None:
        return Check("certificate", subject, Level.WARN, "Ready, but no notAfter", describe)
    if not_after - now < CERTIFICATE_WARN_BEFORE:
        days = (not_after - now).days
        return Check(
            "certificate",
            subject,
            Level.WARN,
            f"Ready, {expiry} (in {days} days: renewal is failing)",
            describe,
        )
    return Check("certificate", subject, Level.OK, f"Ready, {expiry}")


def _router_settings(config: HomelabConfig | None) -> SubnetRouter:
    """The router's config, or its defaults when the stack file cannot be read."""
    return config.remote_access.router if config else SubnetRouter()


def _router(
    nodes: Sequence[Mapping[str, Any]], config: HomelabConfig | None
) -> Mapping[str, Any] | None:
    settings = _router_settings(config)
    tag, hostname = settings.tag, settings.hostname
    for node in nodes:
        if tag in _strings(node.get("tags")):
            return node
    for node in nodes:
        if hostname in (node.get("given_name"), node.get("name")):
            return node
    return None


def headscale_checks(
    nodes: Sequence[Mapping[str, Any]],
    *,
    config: HomelabConfig | None,
    now: datetime,
    stack: str,
) -> list[Check]:
    """Devices online and expired, and the subnet router: online, its routes approved.

    `headscale nodes list -o json` prints the Node messages with Go's encoding/json, so field
    names are the proto's snake_case json tags and false/empty fields are omitted (omitempty):
    an offline node has no `online` (juanfont/headscale @ v0.28.0 : cmd/headscale/cli/utils.go
    output, gen/go/headscale/v1/node.pb.go). `available_routes` are what the node announces,
    `approved_routes` what Headscale approved (hscontrol/types/node.go Proto).
    """
    online = [n for n in nodes if n.get("online") is True]
    expired = sorted(
        str(n.get("given_name") or n.get("name"))
        for n in nodes
        if (expiry := _proto_time(n.get("expiry"))) is not None and expiry <= now
    )
    devices = f"{len(online)} of {len(nodes)} online"
    checks = [
        Check(
            "headscale",
            "devices",
            Level.WARN if expired else Level.OK,
            devices + (f"; expired: {', '.join(expired)}" if expired else ""),
            "on each expired device: tailscale up --force-reauth, then "
            "./scripts/homelab device register <key> --user <user>"
            if expired
            else "",
        )
    ]
    router = _router(nodes, config)
    name = _router_settings(config).hostname
    logs = _kubectl_hint(stack, f"-n {TAILSCALE_NAMESPACE} logs {ROUTER_WORKLOAD}")
    if router is None:
        checks.append(
            Check(
                "headscale",
                f"router {name}",
                Level.FAIL,
                "not registered in Headscale",
                f"./scripts/up {stack}  (mints a new router key), then: {logs}",
            )
        )
        return checks
    node_id = router.get("id")
    available = set(_strings(router.get("available_routes")))
    approved = set(_strings(router.get("approved_routes")))
    wanted = {str(r) for r in config.subnet_routes} if config else available
    problems: list[str] = []
    if router.get("online") is not True:
        problems.append("offline")
    if missing := sorted(wanted - available):
        problems.append(f"does not announce {', '.join(missing)}")
    if unapproved := sorted((wanted & available) - approved):
        problems.append(f"route {', '.join(unapproved)} not approved")
    routes = ", ".join(sorted(wanted & approved)) or "no route"
    if not problems:
        checks.append(Check("headscale", f"router {name}", Level.OK, f"online, approved: {routes}"))
        return checks
    if unapproved:
        # autoApprovers in the ACL policy approve it on the next announcement; this approves now.
        next_step = _kubectl_hint(
            stack,
            f"-n {HEADSCALE_NAMESPACE} exec {HEADSCALE_WORKLOAD} -c {HEADSCALE_CONTAINER} -- "
            f"headscale nodes approve-routes --identifier {node_id} "
            f"--routes {','.join(sorted(approved | set(unapproved)))}",
        )
    else:
        next_step = logs
    checks.append(Check("headscale", f"router {name}", Level.FAIL, "; ".join(problems), next_step))
    return checks


def _expiry(outputs: Mapping[str, Any], key: str) -> datetime | str | None:
    """A key expiry output: its time, the raw text when it does not parse, None when absent."""
    value = outputs.get(key)
    if value is None:
        return None
    try:
        return datetime.strptime(str(value), EXPIRY_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return str(value)


def key_checks(
    outputs: Mapping[str, Any],
    *,
    now: datetime,
    stack: str,
    router_registered: bool | None,
) -> list[Check]:
    """Headplane's API key (WARN inside the renewal window, FAIL when past) and the router's.

    The router's key is single-use and lives an hour (components/remote_access/keys.py
    ROUTER_KEY_EXPIRY): an expired one is normal once the router is registered, and a failure only
    while it is not (`up` then mints a new one).
    """
    renew = f"./scripts/up {stack}  (renews the key)"
    checks: list[Check] = []
    headplane = _expiry(outputs, "headplaneApiKeyExpiry")
    if isinstance(headplane, str):
        checks.append(
            Check("keys", "headplane API key", Level.WARN, f"expiry {headplane!r}", renew)
        )
    elif headplane is not None:
        if headplane <= now:
            checks.append(
                Check("keys", "headplane API key", Level.FAIL, f"expired {_show(headplane)}", renew)
            )
        elif headplane - now < API_KEY_WARN_BEFORE:
            checks.append(
                Check(
                    "keys",
                    "headplane API key",
                    Level.WARN,
                    f"expires {_show(headplane)} (in {(headplane - now).days} days)",
                    renew,
                )
            )
        else:
            checks.append(
                Check("keys", "headplane API key", Level.OK, f"expires {_show(headplane)}")
            )
    router = _expiry(outputs, "routerAuthKeyExpiry")
    if router is None:
        checks.append(
            Check("keys", "router key", Level.FAIL, "no routerAuthKeyExpiry output", renew)
        )
    elif isinstance(router, datetime) and router > now:
        checks.append(Check("keys", "router key", Level.OK, f"valid until {_show(router)}"))
    elif router_registered:
        shown = _show(router) if isinstance(router, datetime) else repr(router)
        checks.append(
            Check(
                "keys",
                "router key",
                Level.OK,
                f"single-use, expired {shown}; the router is registered (its state Secret keeps it)",
            )
        )
    elif router_registered is None:
        checks.append(
            Check(
                "keys",
                "router key",
                Level.WARN,
                "expired, and whether the router is registered is unknown (Headscale not read)",
                renew,
            )
        )
    else:
        checks.append(
            Check(
                "keys", "router key", Level.FAIL, "expired and the router is not registered", renew
            )
        )
    return checks


def _freshness(
    area: str, subject: str, last: datetime | None, *, now: datetime, next_step: str
) -> Check:
    if last is None:
        return Check(area, subject, Level.FAIL, "no successful backup yet", next_step)
    age = now - last
    detail = f"last {_show(last)} ({_age(now, last)})"
    if age > BACKUP_FAIL_AFTER:
        return Check(area, subject, Level.FAIL, f"stale: {detail}", next_step)
    if age > BACKUP_WARN_AFTER:
        return Check(area, subject, Level.WARN, f"late: {detail}", next_step)
    return Check(area, subject, Level.OK, detail)


def etcd_backup_check(cronjob: Mapping[str, Any], *, now: datetime, stack: str) -> Check:
    """The etcd snapshot CronJob's `status.lastSuccessfulTime`, and whether a later scheduled run
    failed (kubernetes/api @ v0.36.1 : batch/v1/types.go CronJobStatus)."""
    status = _object(cronjob.get("status"))
    last = _time(status.get("lastSuccessfulTime"))
    scheduled = _time(status.get("lastScheduleTime"))
    jobs = _kubectl_hint(stack, f"-n {BACKUP_NAMESPACE} get jobs,pods")
    check = _freshness("backups", "etcd", last, now=now, next_step=jobs)
    if (
        check.level is Level.OK
        and last is not None
        and scheduled is not None
        and scheduled > last
        and not status.get("active")
    ):
        return Check(
            "backups",
            "etcd",
            Level.WARN,
            f"{check.detail}; the run scheduled {_show(scheduled)} did not succeed",
            jobs,
        )
    return check


def headscale_backup_check(
    files: Sequence[Mapping[str, Any]], *, now: datetime, stack: str
) -> Check:
    """The newest file Litestream has in the replica, any level: `litestream ltx -level all -json`
    lists each with its `timestamp` (RFC 3339), read from the replica itself
    (benbjohnson/litestream @ v0.5.13 : cmd/litestream/ltx.go LTXFileInfo; unchanged at v0.5.16,
    the image the backups pin)."""
    times = [t for f in files if (t := _time(f.get("timestamp"))) is not None]
    logs = _kubectl_hint(
        stack, f"-n {HEADSCALE_NAMESPACE} logs {HEADSCALE_WORKLOAD} -c {LITESTREAM_CONTAINER}"
    )
    return _freshness("backups", "headscale", max(times, default=None), now=now, next_step=logs)


def backup_target(outputs: Mapping[str, Any]) -> str | None:
    """The `backupTarget` output (a URL without credentials), None when none is configured."""
    value = outputs.get("backupTarget")
    if value is None or str(value).strip().lower() in NO_BACKUP_TARGET:
        return None
    return str(value)


# --- putting it together ---------------------------------------------------------------------


def _versions(config: HomelabConfig | None) -> tuple[str, str]:
    if config is None:
        return pins.TALOS_VERSION, pins.KUBERNETES_VERSION
    return config.cluster.talos_version, config.cluster.kubernetes_version


def _no_backup_target(stack: str) -> Check:
    return Check(
        "backups",
        "target",
        Level.WARN,
        "no backup target configured: etcd and Headscale are not backed up",
        f"configure a backup target in Pulumi.{stack}.yaml (docs/operations.md), "
        f"then ./scripts/up {stack}",
    )


# kubectl's words for a 401 (k8s.io/kubectl pkg/cmd/util/helpers.go `StandardErrorMessage`).
UNAUTHORIZED: Final = "You must be logged in to the server (Unauthorized)"


def _refused_kubeconfig(
    outputs: Mapping[str, Any], *, now: datetime, stack: str
) -> tuple[str, str]:
    """Why the API server refuses the stack's admin kubeconfig: nearly always its client
    certificate expired, a year after `up` last fetched one (homelab/certificates.py)."""
    expiry = kubeconfig_not_after(str(outputs.get(lab.KUBECONFIG_OUTPUT, "")))
    if expiry is not None and expiry <= now:
        why = f"the admin kubeconfig expired {_show(expiry)}"
    elif expiry is not None:
        why = f"the API server refused the admin kubeconfig (valid until {_show(expiry)})"
    else:
        why = (
            "the API server refused the admin kubeconfig: its client certificate has expired "
            "(Talos issues it for a year) or is not of this cluster"
        )
    return (
        f"not checked: {why} (kubectl: {UNAUTHORIZED}); the nodes were not asked",
        f"./scripts/up {stack} (it fetches a new kubeconfig; `up` renews it in its last 30 days)",
    )


def cluster_checks(
    kubectl: Kubectl,
    outputs: Mapping[str, Any],
    *,
    config: HomelabConfig | None,
    now: datetime,
    stack: str,
) -> list[Check]:
    """Every check that reads the cluster. An unreachable API fails each with the same reason,
    after one attempt instead of one timeout per check."""
    target = backup_target(outputs)
    talos, kubernetes = _versions(config)
    node = str(config.cluster.control_planes[0].ip) if config else "<control-plane IP>"
    try:
        nodes = kubectl.get("nodes")
    except KubectlError as error:
        reason = f"not checked, `kubectl get nodes` failed: {error}"
        hint = f"are the nodes on? {_talosctl_hint(stack, node, 'health')}"
        if UNAUTHORIZED in str(error):
            reason, hint = _refused_kubeconfig(outputs, now=now, stack=stack)
        subjects = {
            "nodes": "nodes",
            "releases": "Helm releases",
            "certificate": f"{CERT_MANAGER_NAMESPACE}/{WILDCARD_CERTIFICATE}",
            "headscale": "server",
        }
        checks = [
            Check(area, subject, Level.FAIL, reason, hint) for area, subject in subjects.items()
        ]
        checks += key_checks(outputs, now=now, stack=stack, router_registered=None)
        if target is None:
            return [*checks, _no_backup_target(stack)]
        checks.append(Check("backups", "target", Level.OK, target))
        return checks + [
            Check("backups", kind, Level.FAIL, reason, hint) for kind in ("etcd", "headscale")
        ]

    checks = node_checks(
        nodes,
        talos_version=talos,
        kubernetes_version=kubernetes,
        stack=stack,
        control_plane=_ready_control_plane(nodes) or node,
    )

    try:
        secrets = kubectl.get("secrets", "--all-namespaces", "--selector", "owner=helm")
        checks += release_checks(secrets, stack=stack)
    except KubectlError as error:
        checks.append(
            Check(
                "releases",
                "-",
                Level.FAIL,
                f"cannot list Helm releases: {error}",
                _kubectl_hint(stack, "get secrets -A -l owner=helm"),
            )
        )

    try:
        certificate = kubectl.get(
            "certificate", WILDCARD_CERTIFICATE, "--namespace", CERT_MANAGER_NAMESPACE
        )
        checks.append(certificate_check(certificate, now=now, stack=stack))
    except KubectlError as error:
        checks.append(
            Check(
                "certificate",
                f"{CERT_MANAGER_NAMESPACE}/{WILDCARD_CERTIFICATE}",
                Level.FAIL,
                f"cannot read it: {error}",
                _kubectl_hint(stack, f"-n {CERT_MANAGER_NAMESPACE} get certificates"),
            )
        )

    router_registered: bool | None = None
    try:
        listed = kubectl.exec_json(
            HEADSCALE_NAMESPACE,
            HEADSCALE_CONTAINER,
            "headscale",
            "nodes",
            "list",
            "--output",
            "json",
        )
        headscale_nodes = _objects(listed)
        headscale = headscale_checks(headscale_nodes, config=config, now=now, stack=stack)
        router_registered = _router(headscale_nodes, config) is not None
        checks += headscale
    except KubectlError as error:
        checks.append(
            Check(
                "headscale",
                "server",
                Level.FAIL,
                f"Headscale does not answer: {error}",
                _kubectl_hint(stack, f"-n {HEADSCALE_NAMESPACE} get pods")
                + f"; {_kubectl_hint(stack, f'-n {HEADSCALE_NAMESPACE} logs {HEADSCALE_WORKLOAD} -c {HEADSCALE_CONTAINER}')}",
            )
        )

    checks += key_checks(outputs, now=now, stack=stack, router_registered=router_registered)

    if target is None:
        return [*checks, _no_backup_target(stack)]
    checks.append(Check("backups", "target", Level.OK, target))
    try:
        cronjob = kubectl.get("cronjob", ETCD_SNAPSHOT_CRONJOB, "--namespace", BACKUP_NAMESPACE)
        checks.append(etcd_backup_check(cronjob, now=now, stack=stack))
    except KubectlError as error:
        checks.append(
            Check(
                "backups",
                "etcd",
                Level.FAIL,
                f"cannot read the CronJob {BACKUP_NAMESPACE}/{ETCD_SNAPSHOT_CRONJOB}: {error}",
                f"./scripts/up {stack}",
            )
        )
    try:
        files = kubectl.exec_json(
            HEADSCALE_NAMESPACE,
            LITESTREAM_CONTAINER,
            "litestream",
            "ltx",
            # Flags before the path: Go's flag package stops at the first non-flag argument.
            "-config",
            LITESTREAM_CONFIG_PATH,
            "-level",
            "all",
            "-json",
            HEADSCALE_DATABASE,
        )
        listed_files = _objects(files)
        checks.append(headscale_backup_check(listed_files, now=now, stack=stack))
    except KubectlError as error:
        checks.append(
            Check(
                "backups",
                "headscale",
                Level.FAIL,
                f"cannot list the replica: {error}",
                _kubectl_hint(
                    stack,
                    f"-n {HEADSCALE_NAMESPACE} logs {HEADSCALE_WORKLOAD} -c {LITESTREAM_CONTAINER}",
                ),
            )
        )
    return checks


def collect(context: lab.Lab, stack: str, *, now: datetime) -> list[Check]:
    """Every check of `stack`; a stack whose outputs cannot be read is one FAIL line."""
    try:
        outputs = read_outputs(context, stack)
    except lab.LabError as error:
        return [Check("stack", stack, Level.FAIL, str(error), "./scripts/pulumi stack ls")]
    kubeconfig = outputs.get(lab.KUBECONFIG_OUTPUT)
    if not isinstance(kubeconfig, str) or not kubeconfig.strip():
        return [
            Check(
                "stack",
                stack,
                Level.FAIL,
                "no kubeconfig output: not deployed yet",
                f"./scripts/up {stack}",
            )
        ]
    loaded = load_stack_file(context.stack_file(stack))
    config = loaded if isinstance(loaded, HomelabConfig) else None
    checks: list[Check] = []
    if isinstance(loaded, Problem):
        checks.append(
            Check(
                "stack",
                stack,
                Level.WARN,
                f"{loaded.line()} (compared with the pins and default router instead)",
                f"fix Pulumi.{stack}.yaml",
            )
        )
    with lab.kubeconfig_file(kubeconfig) as path:
        kubectl = Kubectl(path, context.env, context.root)
        checks += cluster_checks(kubectl, outputs, config=config, now=now, stack=stack)
    return checks


def exit_code(checks: Sequence[Check]) -> int:
    return 1 if any(c.level is Level.FAIL for c in checks) else 0


def render_text(checks: Sequence[Check], *, stack: str, now: datetime) -> str:
    lines = [f"homelab status: stack {stack}, {_show(now)}"]
    width = max((len(c.area) for c in checks), default=0)
    for check in checks:
        lines.append(f"{check.level:<4}  {check.area:<{width}}  {check.subject}: {check.detail}")
        if check.next_step and check.level is not Level.OK:
            lines.append(f"{'':4}  {'':<{width}}  -> {check.next_step}")
    counts = {level: sum(c.level is level for c in checks) for level in Level}
    lines.append(", ".join(f"{counts[level]} {level}" for level in Level))
    return "\n".join(lines) + "\n"


def render_json(checks: Sequence[Check], *, stack: str, now: datetime) -> str:
    document = {
        "stack": stack,
        "checkedAt": now.astimezone(UTC).strftime(EXPIRY_FORMAT),
        "ok": exit_code(checks) == 0,
        "counts": {str(level): sum(c.level is level for c in checks) for level in Level},
        "checks": [c.to_json() for c in checks],
    }
    return json.dumps(document, indent=2) + "\n"


def run(context: lab.Lab, *, stack: str, as_json: bool, now: datetime, out: TextIO) -> int:
    """Print the status of `stack` (text or JSON); 1 when any check FAILs."""
    checks = collect(context, stack, now=now)
    render = render_json if as_json else render_text
    out.write(render(checks, stack=stack, now=now))
    out.flush()
    return exit_code(checks)
