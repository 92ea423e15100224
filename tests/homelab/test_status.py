"""`python -m homelab status`: fake `pulumi` and `kubectl` executables on PATH that answer with
the shapes the real programs print (each builder names its upstream source), run through the CLI.

`talosctl` is not faked: the Talos version is read from the Nodes (see homelab/status.py), so
status never needs the talosconfig; a fake `talosctl` that fails proves it is never called.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.remote_access.headscale_config import headscale_config
from config import pins, views
from config.lab_guard import load_stack_file
from config.model import HomelabConfig
from homelab import cli, lab
from tests.harness import fixture_stack_file

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
STACK = "homelab"
KUBECONFIG = (
    "apiVersion: v1\nkind: Config\nusers: [{name: a, user: {token: SENTINEL-kube-token}}]\n"
)
HEADPLANE_KEY = "hskey-api-SENTINELapikey-secret"


def fixture_config() -> HomelabConfig:
    config = load_stack_file(fixture_stack_file(STACK))
    assert isinstance(config, HomelabConfig)
    return config


def lan_route() -> str:
    return str(fixture_config().subnet_routes[0])


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- shapes of what the real programs print ------------------------------------------------


def node(
    name: str,
    ip: str,
    *,
    ready: bool = True,
    talos: str = pins.TALOS_VERSION,
    kubernetes: str = pins.KUBERNETES_VERSION,
) -> dict[str, Any]:
    """A Node as `kubectl get nodes -o json` lists it (kubernetes/api@v0.36.1:core/v1/types.go
    NodeStatus.conditions type Ready, NodeSystemInfo osImage/kubeletVersion). Talos's osImage is
    its os-release PRETTY_NAME "Talos (<version>)" (siderolabs/talos@v1.13.9:
    pkg/machinery/constants/constants.go OSReleaseTemplate, internal/integration/k8s/version.go),
    and the kubelet reports "v<kubernetes version>" (same test: expectedKubeletVersion)."""
    condition: dict[str, Any] = {"type": "Ready", "status": "True", "reason": "KubeletReady"}
    if not ready:
        condition = {
            "type": "Ready",
            "status": "Unknown",
            "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.",
        }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                condition,
            ],
            "nodeInfo": {
                "osImage": f"Talos ({talos})",
                "kubeletVersion": f"v{kubernetes}",
                "operatingSystem": "linux",
                "containerRuntimeVersion": "containerd://2.1.5",
            },
        },
    }


def kube_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


def helm_secret(
    name: str,
    namespace: str,
    chart: str,
    version: str,
    *,
    state: str = "deployed",
    revision: int = 1,
) -> dict[str, Any]:
    """A Helm storage Secret (helm/helm@v3.20.2, vendored by pulumi-kubernetes v4.32.0):
    pkg/storage/storage.go makeKey names it sh.helm.release.v1.<name>.v<revision>;
    pkg/storage/driver/secrets.go newSecretsObject labels it name/owner=helm/status/version and
    types it helm.sh/release.v1; pkg/storage/driver/util.go encodeRelease stores the release as
    base64 of gzip of its JSON (which the Secret's `data` base64-encodes once more)."""
    release = {
        "name": name,
        "namespace": namespace,
        "version": revision,
        "info": {"status": state},
        "chart": {"metadata": {"name": chart, "version": version}},
    }
    encoded = base64.b64encode(gzip.compress(json.dumps(release).encode())).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "helm.sh/release.v1",
        "metadata": {
            "name": f"sh.helm.release.v1.{name}.v{revision}",
            "namespace": namespace,
            "labels": {"name": name, "owner": "helm", "status": state, "version": str(revision)},
        },
        "data": {"release": base64.b64encode(encoded.encode()).decode()},
    }


def platform_releases() -> list[dict[str, Any]]:
    return [
        helm_secret(
            "cert-manager", "cert-manager", "cert-manager", pins.CERT_MANAGER_CHART_VERSION
        ),
        helm_secret("metallb", "metallb-system", "metallb", pins.METALLB_CHART_VERSION),
        helm_secret("reflector", "reflector", "reflector", pins.REFLECTOR_CHART_VERSION),
        helm_secret("traefik", "traefik", "traefik", "40.0.0", state="superseded", revision=1),
        helm_secret("traefik", "traefik", "traefik", pins.TRAEFIK_CHART_VERSION, revision=2),
        helm_secret("apps-grafana", "monitoring", "grafana", pins.GRAFANA_CHART_VERSION),
    ]


def certificate(*, ready: bool, not_after: datetime) -> dict[str, Any]:
    """cert-manager's Certificate (cert-manager@v1.21.1 CRD cert-manager.io_certificates.yaml:
    status.conditions[type=Ready], status.notAfter RFC 3339)."""
    condition = {"type": "Ready", "status": "True", "reason": "Ready"}
    if not ready:
        condition = {
            "type": "Ready",
            "status": "False",
            "reason": "Expired",
            "message": "Certificate expired",
        }
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "wildcard", "namespace": "cert-manager"},
        "status": {
            "conditions": [condition],
            "notAfter": rfc3339(not_after),
            "notBefore": rfc3339(not_after - timedelta(days=90)),
            "renewalTime": rfc3339(not_after - timedelta(days=30)),
        },
    }


def headscale_node(
    node_id: int,
    name: str,
    *,
    online: bool,
    tags: list[str] | None = None,
    available: list[str] | None = None,
    approved: list[str] | None = None,
    expiry: datetime | None = None,
) -> dict[str, Any]:
    """One entry of `headscale nodes list -o json`: Go's encoding/json of the Node message, so
    snake_case json tags and every false/empty field omitted (omitempty), timestamps as
    {"seconds": N} (juanfont/headscale@v0.28.0: cmd/headscale/cli/utils.go output,
    gen/go/headscale/v1/node.pb.go Node, hscontrol/types/node.go Proto)."""
    entry: dict[str, Any] = {
        "id": node_id,
        "machine_key": "mkey:" + "0" * 64,
        "node_key": "nodekey:" + "1" * 64,
        "ip_addresses": [f"100.64.0.{node_id}"],
        "name": name,
        "last_seen": {"seconds": int((NOW - timedelta(minutes=1)).timestamp())},
        "created_at": {"seconds": int((NOW - timedelta(days=30)).timestamp())},
        "register_method": 1,
        "given_name": name,
    }
    if expiry is not None:
        entry["expiry"] = {"seconds": int(expiry.timestamp())}
    if online:
        entry["online"] = True
    if approved:
        entry["approved_routes"] = approved
    if available:
        entry["available_routes"] = available
        entry["subnet_routes"] = [r for r in available if r in (approved or [])]
    if tags:
        entry["tags"] = tags
    else:
        entry["user"] = {"id": 1, "name": "admin"}
    return entry


def headscale_json(nodes: list[dict[str, Any]]) -> str:
    """json.MarshalIndent(result, "", "\\t") (cmd/headscale/cli/utils.go output)."""
    return json.dumps(nodes, indent="\t")


def litestream_ltx(timestamps: list[datetime]) -> str:
    """`litestream ltx -level all -json DB`: a JSON array of LTXFileInfo, indented two spaces,
    `timestamp` formatted RFC 3339 (benbjohnson/litestream@v0.5.13: cmd/litestream/ltx.go)."""
    files = [
        {
            "level": 9 if i == 0 else 0,
            "min_txid": f"{i + 1:016x}",
            "max_txid": f"{i + 1:016x}",
            "size": 4096,
            "timestamp": rfc3339(t),
        }
        for i, t in enumerate(timestamps)
    ]
    return json.dumps(files, indent=2)


def cronjob(*, last_success: datetime | None, last_schedule: datetime | None) -> dict[str, Any]:
    """The etcd snapshot CronJob (kubernetes/api@v0.36.1: batch/v1/types.go CronJobStatus
    lastScheduleTime, lastSuccessfulTime, active; omitted when unset)."""
    state: dict[str, Any] = {}
    if last_schedule is not None:
        state["lastScheduleTime"] = rfc3339(last_schedule)
    if last_success is not None:
        state["lastSuccessfulTime"] = rfc3339(last_success)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "etcd-snapshot", "namespace": "backups"},
        "spec": {"schedule": "0 3 * * *"},
        "status": state,
    }


def outputs(**overrides: Any) -> dict[str, Any]:
    """`pulumi stack output --json --show-secrets`: one object of every output, secrets in
    plaintext (pulumi/pulumi sdk/python/lib/pulumi/automation/_local_workspace.py stack_outputs)."""
    values: dict[str, Any] = {
        "kubeconfig": KUBECONFIG,
        "talosconfig": "context: homelab\ncontexts: {homelab: {ca: SENTINEL-talos}}\n",
        "headplaneApiKey": HEADPLANE_KEY,
        "headplaneApiKeyExpiry": rfc3339(NOW + timedelta(days=80)),
        # Single-use, an hour: expired ten days after the first login, which is normal.
        "routerAuthKeyExpiry": rfc3339(NOW - timedelta(days=10)),
        "backupTarget": "s3://nas.lan:9000/homelab-backups",
        "headscaleUrl": "https://headscale.sarma.love",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


# kubectl's connection error (kubernetes/kubectl pkg/cmd/util/helpers.go StandardErrorMessage).
REFUSED = (
    "The connection to the server 192.168.0.10:6443 was refused - did you specify the right host "
    "or port?"
)


def reply(stdout: Any = "", *, stderr: str = "", code: int = 0) -> dict[str, Any]:
    text = stdout if isinstance(stdout, str) else json.dumps(stdout, indent=4)
    return {"stdout": text, "stderr": stderr, "code": code}


def healthy_cluster() -> dict[str, dict[str, Any]]:
    route = lan_route()
    router = headscale_node(
        1, "k8s-router", online=True, tags=["tag:k8s-router"], available=[route], approved=[route]
    )
    laptop = headscale_node(2, "laptop", online=True, expiry=NOW + timedelta(days=100))
    phone = headscale_node(3, "phone", online=False)
    return {
        "get nodes": reply(
            kube_list(
                [
                    node("talos-cp-1", "192.168.0.11"),
                    node("talos-cp-2", "192.168.0.12"),
                    node("talos-cp-3", "192.168.0.13"),
                ]
            )
        ),
        "get secrets": reply(kube_list(platform_releases())),
        "get certificate": reply(certificate(ready=True, not_after=NOW + timedelta(days=60))),
        "exec headscale": reply(headscale_json([router, laptop, phone])),
        "get cronjob": reply(
            cronjob(last_success=NOW - timedelta(hours=9), last_schedule=NOW - timedelta(hours=9))
        ),
        "exec litestream": reply(
            litestream_ltx([NOW - timedelta(hours=20), NOW - timedelta(minutes=5)])
        ),
    }


def failing_cluster() -> dict[str, dict[str, Any]]:
    cluster = healthy_cluster()
    route = lan_route()
    router = headscale_node(
        1, "k8s-router", online=True, tags=["tag:k8s-router"], available=[route], approved=[]
    )
    laptop = headscale_node(2, "laptop", online=True, expiry=NOW + timedelta(days=100))
    cluster["get nodes"] = reply(
        kube_list(
            [
                node("talos-cp-1", "192.168.0.11"),
                node("talos-cp-2", "192.168.0.12", ready=False),
                node("talos-cp-3", "192.168.0.13"),
            ]
        )
    )
    cluster["get certificate"] = reply(certificate(ready=False, not_after=NOW - timedelta(days=2)))
    cluster["exec headscale"] = reply(headscale_json([router, laptop]))
    cluster["get cronjob"] = reply(
        cronjob(last_success=NOW - timedelta(days=5), last_schedule=NOW - timedelta(hours=9))
    )
    cluster["exec litestream"] = reply(litestream_ltx([NOW - timedelta(days=4)]))
    return cluster


# --- the fakes at the process boundary ------------------------------------------------------

# Logs each call (argv, and what it saw of KUBECONFIG) and answers from the scenario file by the
# first words of the command: "get nodes", "exec headscale" (the program run in the pod), ...
FAKE_KUBECTL = r"""
import json, os, stat, sys
args = sys.argv[1:]
path = os.environ.get("KUBECONFIG", "")
seen = {"argv": args, "path": path}
if path and os.path.exists(path):
    seen["mode"] = stat.S_IMODE(os.stat(path).st_mode)
    seen["kubeconfig"] = open(path).read()
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"program": "kubectl", **seen}) + "\n")
scenario = json.load(open(os.environ["FAKE_CLUSTER"]))
words = [a for a in args if not a.startswith("-")]
if "--" in args:
    key = "exec " + args[args.index("--") + 1]
else:
    key = "get " + words[words.index("get") + 1]
answer = scenario.get("*") or scenario.get(key)
if answer is None:
    sys.stderr.write(f"Error from server (NotFound): {key} not found\n")
    sys.exit(1)
sys.stdout.write(answer["stdout"])
sys.stderr.write(answer["stderr"])
sys.exit(answer["code"])
"""

FAKE_PULUMI = r"""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"program": "pulumi", "argv": args,
                          "backend": os.environ.get("PULUMI_BACKEND_URL", "")}) + "\n")
if args[:3] != ["stack", "output", "--json"] or "--show-secrets" not in args:
    sys.stderr.write("unexpected pulumi call\n")
    sys.exit(2)
answer = json.load(open(os.environ["FAKE_OUTPUTS"]))
if "error" in answer:
    sys.stderr.write(answer["error"] + "\n")
    sys.exit(255)
print(json.dumps(answer, indent=4))
"""

FAKE_TALOSCTL = r"""
import sys
sys.stderr.write("talosctl must not be needed by status\n")
sys.exit(3)
"""


@dataclass
class Fakes:
    root: Path
    log: Path
    cluster_file: Path
    outputs_file: Path

    def cluster(self, scenario: Mapping[str, Any]) -> None:
        self.cluster_file.write_text(json.dumps(scenario))

    def outputs(self, values: Mapping[str, Any]) -> None:
        self.outputs_file.write_text(json.dumps(values))

    def calls(self, program: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        entries = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [e for e in entries if program is None or e["program"] == program]


def write_program(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fakes:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_program(bin_dir, "kubectl", FAKE_KUBECTL)
    write_program(bin_dir, "pulumi", FAKE_PULUMI)
    write_program(bin_dir, "talosctl", FAKE_TALOSCTL)
    root = tmp_path / "project"
    root.mkdir()
    shutil.copyfile(fixture_stack_file(STACK), root / f"Pulumi.{STACK}.yaml")
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("FAKE_CLUSTER", str(tmp_path / "cluster.json"))
    monkeypatch.setenv("FAKE_OUTPUTS", str(tmp_path / "outputs.json"))
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test-passphrase")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    created = Fakes(
        root, tmp_path / "calls.jsonl", tmp_path / "cluster.json", tmp_path / "outputs.json"
    )
    created.cluster(healthy_cluster())
    created.outputs(outputs())
    return created


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def run(fakes: Fakes, *argv: str, now: Callable[[], datetime] = lambda: NOW) -> Run:
    out, err = io.StringIO(), io.StringIO()
    context = lab.Lab(root=fakes.root, out=out)
    code = cli.main(["status", *argv], out=out, err=err, lab_context=context, now=now)
    return Run(code, out.getvalue(), err.getvalue())


def lines(text: str, level: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"{level} ")]


def as_json(fakes: Fakes) -> dict[str, Any]:
    result = run(fakes, "--json")
    document: dict[str, Any] = json.loads(result.out)
    return document


def check(document: Mapping[str, Any], area: str, subject: str) -> dict[str, str]:
    found = [c for c in document["checks"] if c["area"] == area and c["subject"] == subject]
    assert len(found) == 1, (area, subject, document["checks"])
    entry: dict[str, str] = found[0]
    return entry


# --- a healthy and a failing cluster ----------------------------------------------------------


def test_a_healthy_cluster_is_all_ok_and_exits_0(fakes: Fakes) -> None:
    result = run(fakes)
    assert result.code == 0, result.out
    assert lines(result.out, "WARN") == [], result.out
    assert lines(result.out, "FAIL") == [], result.out
    for expected in (
        "talos-cp-1: Ready",
        f"Talos {pins.TALOS_VERSION}",
        f"Kubernetes v{pins.KUBERNETES_VERSION}",
        f"traefik/traefik: deployed, chart traefik {pins.TRAEFIK_CHART_VERSION}, revision 2",
        "monitoring/apps-grafana: deployed",
        "cert-manager/wildcard: Ready, expires 2027-01-31",
        "devices: 2 of 3 online",
        f"router k8s-router: online, approved: {lan_route()}",
        "etcd: last 2026-12-02 03:00 UTC",
        "headscale: last 2026-12-02 11:55 UTC",
    ):
        assert expected in result.out, (expected, result.out)
    assert result.err == ""
    # talosctl answers with an error if called: the Nodes carry the Talos version.
    assert fakes.calls("talosctl") == []


def test_a_failing_cluster_fails_each_problem_with_the_next_command_and_exits_1(
    fakes: Fakes,
) -> None:
    fakes.cluster(failing_cluster())
    result = run(fakes)
    assert result.code == 1
    failed = "\n".join(lines(result.out, "FAIL"))
    assert "talos-cp-2: NotReady (NodeStatusUnknown" in failed
    assert "cert-manager/wildcard: expired 2026-11-30" in failed
    assert f"route {lan_route()} not approved" in failed
    assert "etcd: stale: last 2026-11-27" in failed
    assert "headscale: stale: last 2026-11-28" in failed
    text = result.out
    # Each FAIL is followed by the command to run next.
    # Talos's health check runs on a control plane (a worker refuses it: siderolabs/talos@
    # v1.13.9 v1alpha1_cluster.go `HealthCheck`), the kubelet is looked at on the node itself.
    assert "--show-secrets --stack homelab) --nodes 192.168.0.11 health" in text
    assert "--show-secrets --stack homelab) --nodes 192.168.0.12 service kubelet" in text
    assert "describe certificate wildcard" in text
    assert (
        f"headscale nodes approve-routes --identifier 1 --routes {lan_route()}" in text
    )  # juanfont/headscale@v0.28.0:cmd/headscale/cli/nodes.go approveRoutesCmd -i/-r
    assert "logs deployment/headscale -c litestream" in text
    out_lines = text.splitlines()
    for index, line in enumerate(out_lines):
        if line.startswith("FAIL "):
            assert out_lines[index + 1].lstrip().startswith("-> "), line
    # The healthy parts stay OK.
    assert "talos-cp-1: Ready, Talos" in "\n".join(lines(text, "OK"))


def test_an_unreachable_cluster_fails_every_cluster_check_with_one_clear_line(
    fakes: Fakes,
) -> None:
    fakes.cluster({"*": reply(stderr=REFUSED + "\n", code=1)})
    result = run(fakes)
    assert result.code == 1
    assert "Traceback" not in result.out + result.err
    failed = lines(result.out, "FAIL")
    areas = {line.split()[1] for line in failed}
    assert {"nodes", "releases", "certificate", "headscale", "backups"} <= areas
    for line in failed:
        assert f"`kubectl get nodes` failed: {REFUSED}" in line
    # What to run: Talos's health check on a control plane, with the stack's talosconfig.
    first_control_plane = fixture_config().cluster.control_planes[0].ip
    assert f"--nodes {first_control_plane} health" in result.out
    # One attempt, not one timeout per check.
    assert len(fakes.calls("kubectl")) == 1


def test_kubectl_calls_are_bounded_by_a_request_timeout(fakes: Fakes) -> None:
    run(fakes)
    for call in fakes.calls("kubectl"):
        assert call["argv"][0].startswith("--request-timeout=")


def test_json_output_for_scripts(fakes: Fakes) -> None:
    fakes.cluster(failing_cluster())
    result = run(fakes, "--json")
    assert result.code == 1
    document = json.loads(result.out)
    assert document["stack"] == STACK
    assert document["checkedAt"] == "2026-12-02T12:00:00Z"
    assert document["ok"] is False
    assert set(document["counts"]) == {"OK", "WARN", "FAIL"}
    assert document["counts"]["FAIL"] == sum(c["level"] == "FAIL" for c in document["checks"])
    for entry in document["checks"]:
        assert set(entry) == {"area", "subject", "level", "detail", "next"}
        assert entry["level"] in {"OK", "WARN", "FAIL"}
        if entry["level"] == "FAIL":
            assert entry["next"]
    assert check(document, "nodes", "talos-cp-2")["level"] == "FAIL"
    assert check(document, "certificate", "cert-manager/wildcard")["level"] == "FAIL"


def test_healthy_json_is_ok(fakes: Fakes) -> None:
    document = as_json(fakes)
    assert document["ok"] is True
    assert document["counts"]["FAIL"] == 0


# --- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", [healthy_cluster, failing_cluster])
@pytest.mark.parametrize("flag", [[], ["--json"]])
def test_secrets_are_never_printed_and_the_kubeconfig_file_is_private_and_removed(
    fakes: Fakes, scenario: Callable[[], dict[str, Any]], flag: list[str]
) -> None:
    fakes.cluster(scenario())
    result = run(fakes, *flag)
    for secret in ("SENTINEL-kube-token", "SENTINEL-talos", "SENTINELapikey", KUBECONFIG):
        assert secret not in result.out + result.err
    kubectl_calls = fakes.calls("kubectl")
    assert kubectl_calls
    for call in kubectl_calls:
        assert call["kubeconfig"] == KUBECONFIG
        assert call["mode"] == 0o600
        assert not any("SENTINEL" in arg for arg in call["argv"])
        assert not Path(call["path"]).exists()


def test_the_outputs_come_from_the_backend_scripts_pulumi_uses(fakes: Fakes) -> None:
    run(fakes)
    (call,) = fakes.calls("pulumi")
    assert call["argv"] == ["stack", "output", "--json", "--show-secrets", "--stack", STACK]
    assert call["backend"].startswith("file://")
    assert call["backend"].endswith("homelab-pulumi")


# --- the stack cannot be read ---------------------------------------------------------------


def test_a_stack_without_outputs_is_one_fail_line(fakes: Fakes) -> None:
    fakes.outputs({"error": "error: no stack named 'homelab' found"})
    result = run(fakes)
    assert result.code == 1
    (failed,) = lines(result.out, "FAIL")
    assert "no stack named 'homelab' found" in failed
    assert fakes.calls("kubectl") == []


def test_an_undeployed_stack_says_to_run_up(fakes: Fakes) -> None:
    fakes.outputs({"headscaleUrl": "https://headscale.sarma.love"})
    result = run(fakes)
    assert result.code == 1
    assert "no kubeconfig output" in result.out
    assert f"./scripts/up {STACK}" in result.out


def test_without_the_passphrase_it_says_which_variable(
    fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    result = run(fakes)
    assert result.code == 1
    assert "PULUMI_CONFIG_PASSPHRASE" in result.out
    assert fakes.calls("pulumi") == []


# --- individual rules -------------------------------------------------------------------------


def test_no_backup_target_is_a_warning_and_nothing_is_looked_up(fakes: Fakes) -> None:
    for target in (None, "none"):
        fakes.outputs(outputs(backupTarget=target))
        fakes.log.unlink(missing_ok=True)
        result = run(fakes)
        assert result.code == 0
        (warned,) = lines(result.out, "WARN")
        assert "no backup target configured" in warned
        commands = [" ".join(c["argv"]) for c in fakes.calls("kubectl")]
        assert not any("cronjob" in c or "litestream" in c for c in commands)


def test_the_headplane_key_warns_inside_the_renewal_window_and_fails_when_past(
    fakes: Fakes,
) -> None:
    fakes.outputs(outputs(headplaneApiKeyExpiry=rfc3339(NOW + timedelta(days=10))))
    document = as_json(fakes)
    assert check(document, "keys", "headplane API key")["level"] == "WARN"
    assert "./scripts/up" in check(document, "keys", "headplane API key")["next"]
    fakes.outputs(outputs(headplaneApiKeyExpiry=rfc3339(NOW - timedelta(minutes=1))))
    document = as_json(fakes)
    assert check(document, "keys", "headplane API key")["level"] == "FAIL"


def test_an_expired_router_key_fails_only_while_the_router_is_not_registered(
    fakes: Fakes,
) -> None:
    """The router's key is single-use for an hour (components/remote_access/keys.py); once the
    router is registered its state Secret keeps it logged in."""
    assert check(as_json(fakes), "keys", "router key")["level"] == "OK"
    cluster = healthy_cluster()
    laptop = headscale_node(2, "laptop", online=True)
    cluster["exec headscale"] = reply(headscale_json([laptop]))
    fakes.cluster(cluster)
    document = as_json(fakes)
    assert check(document, "keys", "router key")["level"] == "FAIL"
    assert check(document, "headscale", "router k8s-router")["level"] == "FAIL"


def test_an_offline_router_fails(fakes: Fakes) -> None:
    """An offline node has no `online` field at all (omitempty)."""
    route = lan_route()
    cluster = healthy_cluster()
    router = headscale_node(
        1, "k8s-router", online=False, tags=["tag:k8s-router"], available=[route], approved=[route]
    )
    cluster["exec headscale"] = reply(headscale_json([router]))
    fakes.cluster(cluster)
    entry = check(as_json(fakes), "headscale", "router k8s-router")
    assert entry["level"] == "FAIL"
    assert "offline" in entry["detail"]


def test_expired_devices_are_named(fakes: Fakes) -> None:
    cluster = healthy_cluster()
    route = lan_route()
    router = headscale_node(
        1, "k8s-router", online=True, tags=["tag:k8s-router"], available=[route], approved=[route]
    )
    old = headscale_node(4, "old-tablet", online=False, expiry=NOW - timedelta(days=1))
    cluster["exec headscale"] = reply(headscale_json([router, old]))
    fakes.cluster(cluster)
    entry = check(as_json(fakes), "headscale", "devices")
    assert entry["level"] == "WARN"
    assert "old-tablet" in entry["detail"]


def test_headscale_that_does_not_answer_fails_with_where_to_look(fakes: Fakes) -> None:
    cluster = healthy_cluster()
    cluster["exec headscale"] = reply(
        stderr='error: unable to upgrade connection: container not found ("headscale")\n', code=1
    )
    fakes.cluster(cluster)
    result = run(fakes)
    assert result.code == 1
    entry = check(as_json(fakes), "headscale", "server")
    assert "container not found" in entry["detail"]
    assert "get pods" in entry["next"]


def test_a_command_that_fails_in_the_pod_says_why_not_just_its_exit_code(fakes: Fakes) -> None:
    """kubectl ends a failed exec with "command terminated with exit code N" (kubernetes/client-go
    tools/remotecommand/v4.go errorDecoderV4, for a NonZeroExitCode status); the container's own
    error, streamed to stderr before it, is the line that says why."""
    cluster = healthy_cluster()
    cluster["exec litestream"] = reply(
        stderr="database not found in config: /var/lib/headscale/db.sqlite\n"
        "command terminated with exit code 1\n",
        code=1,
    )
    fakes.cluster(cluster)
    entry = check(as_json(fakes), "backups", "headscale")
    assert entry["level"] == "FAIL"
    assert "database not found in config" in entry["detail"]


def test_the_health_hint_runs_on_a_control_plane_that_is_ready(fakes: Fakes) -> None:
    """With the first control plane down, `talosctl health` goes to a Ready one (control planes
    carry `node-role.kubernetes.io/control-plane`, which Talos sets)."""
    cluster = healthy_cluster()
    label = {"node-role.kubernetes.io/control-plane": ""}
    nodes = [
        node("talos-cp-1", "192.168.0.11", ready=False),
        node("talos-cp-2", "192.168.0.12"),
        node("talos-cp-3", "192.168.0.13"),
    ]
    for found in nodes:
        found["metadata"]["labels"].update(label)
    cluster["get nodes"] = reply(kube_list(nodes))
    fakes.cluster(cluster)
    entry = check(as_json(fakes), "nodes", "talos-cp-1")
    assert entry["level"] == "FAIL"
    assert "--nodes 192.168.0.12 health" in entry["next"]
    assert "--nodes 192.168.0.11 service kubelet" in entry["next"]


def test_a_node_on_another_talos_version_is_a_warning_that_points_at_up(fakes: Fakes) -> None:
    """Never `talosctl upgrade --image <plain installer>`: it drops the node's extensions and
    bypasses the roll; `up` re-images with the stack's installer (its `talosInstallerImage`
    output)."""
    cluster = healthy_cluster()
    cluster["get nodes"] = reply(kube_list([node("talos-cp-1", "192.168.0.11", talos="v1.13.8")]))
    fakes.cluster(cluster)
    entry = check(as_json(fakes), "nodes", "talos-cp-1")
    assert entry["level"] == "WARN"
    assert f"pinned {pins.TALOS_VERSION}" in entry["detail"]
    assert entry["next"].startswith("./scripts/up homelab ")
    assert "stack output talosInstallerImage --stack homelab" in entry["next"]
    assert "upgrade --image" not in entry["next"]


# A real client certificate that expired (openssl req -x509 -days 1, notAfter
# "Dec  9 02:13:46 2026 GMT"), as Talos issues the admin kubeconfig's.
EXPIRED_CERTIFICATE = """-----BEGIN CERTIFICATE-----
MIIBpzCCAU2gAwIBAgIUT9u/iu3qR5lms007o1ZD7hqNP/0wCgYIKoZIzj0EAwIw
KTEXMBUGA1UECgwOc3lzdGVtOm1hc3RlcnMxDjAMBgNVBAMMBWFkbWluMB4XDTI2
MTIwODAyMTM0NloXDTI2MTIwOTAyMTM0NlowKTEXMBUGA1UECgwOc3lzdGVtOm1h
c3RlcnMxDjAMBgNVBAMMBWFkbWluMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
SklLeiArhTMQEvxMn1Y2JlDw4Kn5UoqDJjPXKLxWiwOoL+M1HEqHd+JYcZZskc3u
8l59tnFb8AvECXRlpczzNaNTMFEwHQYDVR0OBBYEFPWLBp+5xLB0yL2WBYw8Nz2T
UcRRMB8GA1UdIwQYMBaAFPWLBp+5xLB0yL2WBYw8Nz2TUcRRMA8GA1UdEwEB/wQF
MAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhANIuWsgVxWvqW5QzJd+fb4KjBSFS0cyr
F1vJ2xEAkpxsAiBluO/Z1xmLKb8jnU9wouG0+j0liN7kazstQfmYpPTYYA==
-----END CERTIFICATE-----
"""


def test_an_expired_admin_kubeconfig_is_named_and_the_nodes_are_not_blamed(
    fakes: Fakes,
) -> None:
    """After a year without `up` the API server answers 401 to the admin kubeconfig (Talos
    issues it for a year: siderolabs/talos@v1.13.9 constants.go
    `KubernetesAdminCertDefaultLifetime`); status reads the certificate's notAfter and says so,
    with `up` (which fetches a new one) as the next step."""
    kubeconfig = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "admin@homelab",
            "contexts": [{"name": "admin@homelab", "context": {"user": "admin@homelab"}}],
            "users": [
                {
                    "name": "admin@homelab",
                    "user": {
                        "client-certificate-data": base64.b64encode(
                            EXPIRED_CERTIFICATE.encode()
                        ).decode()
                    },
                }
            ],
        }
    )
    fakes.outputs(outputs(kubeconfig=kubeconfig))
    unauthorized = "error: You must be logged in to the server (Unauthorized)"
    fakes.cluster({"*": reply(stderr=unauthorized + "\n", code=1)})
    a_week_later = NOW + timedelta(days=7)
    result = run(fakes, "--json", now=lambda: a_week_later)
    entry = check(json.loads(result.out), "nodes", "nodes")
    assert entry["level"] == "FAIL"
    assert "the admin kubeconfig expired 2026-12-09 02:13 UTC" in entry["detail"]
    assert "are the nodes on?" not in entry["next"]
    assert entry["next"].startswith("./scripts/up homelab")


def test_releases_failed_missing_and_off_pin(fakes: Fakes) -> None:
    cluster = healthy_cluster()
    cluster["get secrets"] = reply(
        kube_list(
            [
                helm_secret("cert-manager", "cert-manager", "cert-manager", "v1.20.0"),
                helm_secret("metallb", "metallb-system", "metallb", pins.METALLB_CHART_VERSION),
                helm_secret(
                    "traefik", "traefik", "traefik", pins.TRAEFIK_CHART_VERSION, state="failed"
                ),
            ]
        )
    )
    fakes.cluster(cluster)
    document = as_json(fakes)
    assert check(document, "releases", "cert-manager/cert-manager")["level"] == "WARN"
    assert check(document, "releases", "metallb-system/metallb")["level"] == "OK"
    assert check(document, "releases", "traefik/traefik")["level"] == "FAIL"
    assert check(document, "releases", "reflector/reflector")["detail"] == "not installed"


def test_an_etcd_run_that_did_not_succeed_after_the_last_success_warns(fakes: Fakes) -> None:
    cluster = healthy_cluster()
    cluster["get cronjob"] = reply(
        cronjob(last_success=NOW - timedelta(hours=20), last_schedule=NOW - timedelta(hours=1))
    )
    fakes.cluster(cluster)
    entry = check(as_json(fakes), "backups", "etcd")
    assert entry["level"] == "WARN"
    assert "did not succeed" in entry["detail"]


def test_no_backup_ever_fails(fakes: Fakes) -> None:
    cluster = healthy_cluster()
    cluster["get cronjob"] = reply(cronjob(last_success=None, last_schedule=None))
    cluster["exec litestream"] = reply(litestream_ltx([]))
    fakes.cluster(cluster)
    document = as_json(fakes)
    assert check(document, "backups", "etcd")["detail"] == "no successful backup yet"
    assert check(document, "backups", "headscale")["level"] == "FAIL"


def test_the_litestream_query_reads_the_replica_of_headscales_database(fakes: Fakes) -> None:
    """benbjohnson/litestream@v0.5.13:cmd/litestream/ltx.go (same at v0.5.16): `-config` names
    the file holding the database's replica, `-level all` lists every level (main.go levelVar),
    `-json` prints LTXFileInfo; flags come before the path, which is looked up in the config
    (Go's flag package stops at the first non-flag argument)."""
    run(fakes)
    (call,) = [c for c in fakes.calls("kubectl") if "litestream" in c["argv"]]
    argv = call["argv"]
    assert argv[argv.index("--container") + 1] == "litestream"
    command = argv[argv.index("--") + 1 :]
    assert command[:2] == ["litestream", "ltx"]
    assert command[command.index("-level") + 1] == "all"
    assert "-json" in command
    # The database is Headscale's (its rendered config), the last argument.
    assert command[-1] == headscale_database()
    assert all(not arg.startswith("-") for arg in command[command.index(command[-1]) :])


def headscale_database() -> str:
    """The SQLite file Headscale's rendered config opens."""
    config = fixture_config()
    settings = headscale_config(
        views.control_server(config), traefik_ip=str(config.network.traefik_ip)
    )
    path: str = settings["database"]["sqlite"]["path"]
    return path


def test_the_litestream_query_reads_the_config_the_sidecar_replicates_with(fakes: Fakes) -> None:
    """`ltx` must read the same config file as the sidecar's `replicate -config` (the backups
    component), else it finds no replica for the database."""
    litestream = pytest.importorskip(
        "components.remote_access.litestream", reason="the backups component is not merged yet"
    )
    run(fakes)
    (call,) = [c for c in fakes.calls("kubectl") if "litestream" in c["argv"]]
    command = call["argv"][call["argv"].index("--") + 1 :]
    assert command[command.index("-config") + 1] == litestream.CONFIG_PATH


def test_headscale_is_asked_through_its_cli_in_the_pod(fakes: Fakes) -> None:
    """juanfont/headscale@v0.28.0:cmd/headscale/cli/nodes.go listNodesCmd (`nodes list`) and
    root.go's persistent `--output json`; the Node carries online, approved_routes and
    available_routes itself, so `list-routes` is not needed."""
    run(fakes)
    (call,) = [c for c in fakes.calls("kubectl") if "headscale" in c["argv"][-6:]]
    argv = call["argv"]
    assert argv[argv.index("--namespace") + 1] == "headscale"
    assert "deployment/headscale" in argv
    assert argv[argv.index("--container") + 1] == "headscale"
    assert argv[argv.index("--") + 1 :] == ["headscale", "nodes", "list", "--output", "json"]


def test_helm_releases_are_listed_by_helms_owner_label(fakes: Fakes) -> None:
    """helm/helm@v3.20.2:pkg/storage/driver/secrets.go List selects `owner=helm`."""
    run(fakes)
    (call,) = [c for c in fakes.calls("kubectl") if "secrets" in c["argv"]]
    argv = call["argv"]
    assert argv[argv.index("--selector") + 1] == "owner=helm"
    assert "--all-namespaces" in argv


def test_the_clock_decides_time_based_verdicts(fakes: Fakes) -> None:
    later = NOW + timedelta(days=3)
    result = run(fakes, now=lambda: later)
    assert result.code == 1
    failed = "\n".join(lines(result.out, "FAIL"))
    assert "etcd: stale" in failed
    assert "headscale: stale" in failed


def test_an_unreadable_stack_file_is_a_warning_and_the_pins_stand_in(fakes: Fakes) -> None:
    (fakes.root / f"Pulumi.{STACK}.yaml").write_text(
        "config:\n  homelab:domain: [not, a, domain]\n"
    )
    result = run(fakes)
    assert result.code == 0, result.out
    (warned,) = lines(result.out, "WARN")
    assert f"Pulumi.{STACK}.yaml" in warned
    # The nodes are still compared with the pins, the router found by its default tag.
    assert f"Talos {pins.TALOS_VERSION}" in result.out
    assert "router k8s-router: online" in result.out


# --- answers that are no objects: one FAIL line each, never a traceback ---------------------


def test_kubectl_printing_null_fails_each_check_naming_the_command(fakes: Fakes) -> None:
    # `kubectl get -o json` prints `null` for nothing at all (a proxy or plugin answering in its
    # place); every check that read it fails with that said, and status still exits normally.
    fakes.cluster({"*": reply("null")})
    result = run(fakes)
    assert result.code == 1
    assert "Traceback" not in result.out + result.err
    (nodes,) = [line for line in lines(result.out, "FAIL") if " nodes: " in line]
    assert nodes.endswith("`kubectl get nodes` failed: it printed null, not a JSON object")
    assert result.err == ""


def test_non_object_items_are_skipped_and_the_real_ones_still_checked(fakes: Fakes) -> None:
    cluster = healthy_cluster()
    nodes = json.loads(cluster["get nodes"]["stdout"])
    nodes["items"] = [None, 7, "node", *nodes["items"], {"metadata": None, "status": "x"}]
    cluster["get nodes"] = reply(nodes)
    secrets = json.loads(cluster["get secrets"]["stdout"])
    secrets["items"] = [None, ["x"], *secrets["items"]]
    cluster["get secrets"] = reply(secrets)
    cluster["exec headscale"] = reply([None, 1, *json.loads(cluster["exec headscale"]["stdout"])])
    cluster["exec litestream"] = reply("5")
    fakes.cluster(cluster)
    result = run(fakes)
    assert "Traceback" not in result.out + result.err
    ok = lines(result.out, "OK")
    # The three real nodes are still Ready; the malformed entry is a node without a name.
    assert sum(" talos-cp-" in line for line in ok) == 3
    assert any("releases" in line for line in ok)
    assert any("router" in line for line in ok)
    assert any("backups" in line and "headscale" in line for line in lines(result.out, "FAIL"))
