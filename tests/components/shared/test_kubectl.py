"""The kubectl commands (components/shared/kubectl.py) run against a fake `kubectl` on PATH.

The fake records its arguments, stdin and the kubeconfig file it was handed (its mode, whether its
content is the secret), and answers from a plan: one outcome per call, either an exit code and an
error, or (for `kubectl get crd NAME`) the CRD the API server holds at that moment, answered the
way kubectl answers (see `crd_state`).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from components.shared import kubectl

KUBECONFIG = "apiVersion: v1\nkind: Config\n# kubeconfig-sentinel-7f3a\n"
POOL = {
    "apiVersion": "metallb.io/v1beta1",
    "kind": "IPAddressPool",
    "metadata": {"name": "lan", "namespace": "metallb-system"},
    "spec": {"addresses": ["192.168.0.200/29"]},
}
NOT_SERVING = (
    "Error from server (InternalError): Internal error occurred: failed calling webhook "
    '"ipaddresspoolvalidationwebhook.metallb.io": failed to call webhook: Post '
    '"https://metallb-webhook-service.metallb-system.svc:443/validate-metallb-io-v1beta1-'
    'ipaddresspool?timeout=10s": dial tcp 10.96.0.10:443: connect: connection refused'
)
DENIED = (
    'Error from server (Forbidden): admission webhook "ipaddresspoolvalidationwebhook.metallb.io"'
    " denied the request: CIDR overlaps with already defined CIDR"
)

FAKE_KUBECTL = textwrap.dedent(
    """\
    #!{python}
    import json, os, stat, sys
    log = os.environ["FAKE_LOG"]
    calls = [json.loads(line) for line in open(log)] if os.path.exists(log) else []
    plan = json.loads(os.environ["FAKE_PLAN"])
    args = sys.argv[1:]
    path = args[args.index("--kubeconfig") + 1]
    stdin = sys.stdin.read() if args[-2:] == ["-f", "-"] else ""
    with open(log, "a") as out:
        out.write(json.dumps({{
            "args": args, "stdin": stdin, "kubeconfig": path,
            "mode": stat.S_IMODE(os.stat(path).st_mode),
            "secret_matches": open(path).read() == os.environ["FAKE_EXPECTED"],
        }}) + "\\n")
    entry = plan[min(len(calls), len(plan) - 1)]
    if isinstance(entry, dict):
        # `kubectl get crd NAME`, answered from the CRD the API server holds (None: not yet).
        name = args[args.index("crd") + 1]
        crd = entry["crd"]
        if crd is None:
            if "--ignore-not-found" in args:
                sys.exit(0)
            sys.stderr.write(
                'Error from server (NotFound): customresourcedefinitions.apiextensions.k8s.io "'
                + name + '" not found\\n'
            )
            sys.exit(1)
        if "-o" in args and args[args.index("-o") + 1] == "json":
            sys.stdout.write(json.dumps(crd))
        else:
            sys.stdout.write("NAME   CREATED AT\\n" + name + "   2026-01-01T00:00:00Z\\n")
        sys.exit(0)
    code, message = entry
    sys.stderr.write(message)
    sys.exit(code)
    """
)


def run(script: str, tmp_path: Path, plan: list[Any]) -> tuple[Any, list[Any]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "kubectl"
    fake.write_text(FAKE_KUBECTL.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.jsonl"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        kubectl.KUBECONFIG_ENV: KUBECONFIG,
        "FAKE_LOG": str(log),
        "FAKE_PLAN": json.dumps(plan),
        "FAKE_EXPECTED": KUBECONFIG,
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def assert_kubeconfig_handled_as_a_secret(result: Any, calls: list[Any]) -> None:
    assert calls
    assert "sentinel" not in result.stdout + result.stderr
    for call in calls:
        assert call["secret_matches"]
        assert call["mode"] == 0o600
        assert not Path(call["kubeconfig"]).exists()  # removed afterwards


def gate(attempts: int = 5) -> str:
    return kubectl.gate_script(
        POOL,
        webhook="metallb-webhook-service.metallb-system",
        attempts=attempts,
        retry_delay_seconds=0,
    )


def test_the_gate_retries_until_the_webhook_answers(tmp_path: Path) -> None:
    result, calls = run(gate(), tmp_path, [(1, NOT_SERVING), (1, NOT_SERVING), (0, "")])
    assert result.returncode == 0, result.stderr
    assert len(calls) == 3
    for call in calls:
        # A server-side dry run: through admission, never stored.
        assert call["args"][-4:] == ["apply", "--dry-run=server", "-f", "-"]
        assert json.loads(call["stdin"]) == POOL
    assert "answered (attempt 3)" in result.stderr
    assert_kubeconfig_handled_as_a_secret(result, calls)


def test_the_gate_gives_up_after_its_attempts_with_the_reason(tmp_path: Path) -> None:
    result, calls = run(gate(attempts=4), tmp_path, [(1, NOT_SERVING)])
    assert result.returncode == 1
    assert len(calls) == 4
    assert "did not answer after 4 attempts" in result.stderr
    assert "metallb-system" in result.stderr
    assert "connection refused" in result.stderr  # the last error is shown
    assert_kubeconfig_handled_as_a_secret(result, calls)


def test_a_webhook_that_denies_the_object_fails_at_once(tmp_path: Path) -> None:
    result, calls = run(gate(), tmp_path, [(1, DENIED), (0, "")])
    assert result.returncode == 1
    assert len(calls) == 1
    assert "refused the object" in result.stderr
    assert "overlaps" in result.stderr


def test_without_a_kubeconfig_the_gate_stops_before_calling_kubectl(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"]}
    result = subprocess.run(
        [sys.executable, "-c", gate()], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert f"{kubectl.KUBECONFIG_ENV} is empty" in result.stderr


CRD_URLS = ["https://example.invalid/crds/traefik.io_middlewares.yaml"]
CRD_NAMES = ["middlewares.traefik.io"]


def test_crds_are_applied_server_side_then_awaited_established(tmp_path: Path) -> None:
    script = kubectl.crds_script(CRD_URLS, CRD_NAMES, retry_delay_seconds=0)
    result, calls = run(script, tmp_path, [(1, "dial tcp: i/o timeout"), (0, "")])
    assert result.returncode == 0, result.stderr
    apply_calls = [c for c in calls if "apply" in c["args"]]
    assert len(apply_calls) == 2  # one retry after a network error
    apply = apply_calls[-1]["args"]
    # traefik/traefik-helm-chart@v41.3.0:README.md: `kubectl apply --server-side --force-conflicts`.
    assert {"--server-side", "--force-conflicts"} <= set(apply)
    assert apply[apply.index("-f") + 1] == CRD_URLS[0]
    (wait,) = [c["args"] for c in calls if "wait" in c["args"]]
    assert "--for=condition=Established" in wait
    assert "crd/middlewares.traefik.io" in wait
    assert_kubeconfig_handled_as_a_secret(result, calls)


def test_crds_that_never_apply_fail_with_the_last_error(tmp_path: Path) -> None:
    script = kubectl.crds_script(CRD_URLS, CRD_NAMES, attempts=2, retry_delay_seconds=0)
    result, calls = run(script, tmp_path, [(1, "404 Not Found")])
    assert result.returncode == 1
    assert len(calls) == 2
    assert "404 Not Found" in result.stderr


def test_scripts_are_deterministic_and_refuse_nonsense() -> None:
    assert gate() == gate()
    with pytest.raises(ValueError, match="attempts"):
        kubectl.gate_script(POOL, webhook="w", attempts=0)
    with pytest.raises(ValueError, match="one CRD name per URL"):
        kubectl.crds_script(CRD_URLS, [])


# --- the CRD gate ------------------------------------------------------------------------------

CRD = "serviceaccounts.talos.dev"
HINT = "Talos applies it once machine.features.kubernetesTalosAPIAccess is enabled."
CONNECTION_REFUSED = (
    "The connection to the server 192.168.0.10:6443 was refused - did you specify the right host"
    " or port?"
)


def crd_state(*conditions: tuple[str, str]) -> dict[str, Any]:
    """A plan entry: `kubectl get crd NAME` while the API server holds this CRD (no conditions
    given: it does not exist yet).

    The fake answers as kubectl does (kubernetes/kubectl `pkg/cmd/get/get.go`, read from the code
    index at commit 5be1f71, not at a tag: the kubernetes repos are too big to fetch): a missing
    object with `--ignore-not-found` and `-o json` goes through `printGeneric`, which prints
    nothing and returns no error (`len(infos) == 0 && o.IgnoreNotFound`), so kubectl exits 0 with
    empty output; without the flag the NotFound error is returned and kubectl exits 1. An existing
    CRD's status carries `conditions[]` of `{type, status}` with the types `Established` and
    `NamesAccepted` and the statuses `"True"`/`"False"`/`"Unknown"`
    (kubernetes/kubernetes `staging/src/k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1/
    types.go` `CustomResourceDefinitionStatus`, `CustomResourceDefinitionCondition`, read from the
    code index at commit 61c7fad, a main newer than 1.35 with `observedGeneration`; the pinned
    Kubernetes 1.36.3's tag could not be read).
    """
    if not conditions:
        return {"crd": None}
    return {
        "crd": {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": CRD},
            "status": {
                "conditions": [
                    {"type": kind, "status": status, "reason": kind, "message": "-"}
                    for kind, status in conditions
                ],
                "storedVersions": ["v1alpha1"],
            },
        }
    }


ESTABLISHED = crd_state(("NamesAccepted", "True"), ("Established", "True"))
NAMES_ACCEPTED_ONLY = crd_state(("NamesAccepted", "True"), ("Established", "False"))
MISSING = crd_state()


def crd_gate(attempts: int = 6) -> str:
    return kubectl.crd_gate_script(CRD, hint=HINT, attempts=attempts, retry_delay_seconds=0)


def test_the_crd_gate_waits_through_a_missing_then_unestablished_crd(tmp_path: Path) -> None:
    plan = [MISSING, MISSING, (1, CONNECTION_REFUSED), NAMES_ACCEPTED_ONLY, ESTABLISHED]
    result, calls = run(crd_gate(), tmp_path, plan)
    assert result.returncode == 0, result.stderr
    assert len(calls) == 5
    for call in calls:
        args = call["args"]
        assert args[args.index("crd") + 1] == CRD
    assert f"{CRD} is Established (attempt 5)" in result.stderr
    assert_kubeconfig_handled_as_a_secret(result, calls)


def test_the_crd_gate_gives_up_naming_the_crd_and_what_to_check(tmp_path: Path) -> None:
    result, calls = run(crd_gate(attempts=3), tmp_path, [MISSING])
    assert result.returncode == 1
    assert len(calls) == 3
    assert f"CRD {CRD} is not Established after 3 attempts" in result.stderr
    assert "it does not exist" in result.stderr
    assert HINT in result.stderr
    assert_kubeconfig_handled_as_a_secret(result, calls)


def test_the_crd_gate_reports_the_conditions_of_a_crd_that_never_establishes(
    tmp_path: Path,
) -> None:
    result, calls = run(crd_gate(attempts=2), tmp_path, [NAMES_ACCEPTED_ONLY])
    assert result.returncode == 1
    assert "Established=False" in result.stderr
    assert "NamesAccepted=True" in result.stderr
    assert_kubeconfig_handled_as_a_secret(result, calls)


def test_the_crd_gate_shows_the_last_kubectl_error(tmp_path: Path) -> None:
    result, calls = run(crd_gate(attempts=2), tmp_path, [(1, CONNECTION_REFUSED)])
    assert result.returncode == 1
    assert len(calls) == 2
    assert "was refused" in result.stderr
    assert_kubeconfig_handled_as_a_secret(result, calls)


def test_the_crd_gate_script_is_deterministic_and_refuses_nonsense() -> None:
    assert crd_gate() == crd_gate()
    with pytest.raises(ValueError, match="attempts"):
        kubectl.crd_gate_script(CRD, hint=HINT, attempts=0)
