"""`python -m homelab device register`: Headscale's CLI in the pod, against a fake kubectl."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from homelab import cli, device, lab

KEY = "AbCdEfGhIjKlMnOpQrStUv-_"  # 24 URL-safe characters, like Headscale's registration IDs
KUBECONFIG = "apiVersion: v1\nkind: Config\nusers: [{name: a, user: {token: SENTINEL-kube}}]\n"

# Logs each call with what it saw of KUBECONFIG, and answers like Headscale 0.28's CLI.
FAKE_KUBECTL = r"""
import json, os, stat, sys
args = sys.argv[1:]
path = os.environ.get("KUBECONFIG", "")
seen = {"argv": args, "mode": stat.S_IMODE(os.stat(path).st_mode), "kubeconfig": open(path).read(),
        "path": path}
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(seen) + "\n")
hs = args[args.index("--") + 2:]
if hs[:2] == ["users", "list"]:
    print(json.dumps([{"id": 1, "name": "admin"}, {"id": 2, "name": "alice"}], indent="\t"))
elif hs[:2] == ["nodes", "register"]:
    if os.environ.get("FAKE_REFUSE"):
        sys.stderr.write("Cannot register node: looking up user: record not found\n")
        sys.exit(1)
    print("Node laptop registered")
"""


@pytest.fixture
def fake_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f"#!{sys.executable}\n{FAKE_KUBECTL}")
    kubectl.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    return log


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run(argv: list[str], read: Any = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    context = lab.Lab(out=out)
    code = cli.main(
        ["device", *argv],
        out=out,
        err=err,
        lab_context=context,
        read_kubeconfig=read or (lambda _context, _stack: KUBECONFIG),
    )
    return code, out.getvalue(), err.getvalue()


def test_register_runs_headscales_nodes_register_in_the_pod(fake_kubectl: Path) -> None:
    """juanfont/headscale@v0.28.0:cmd/headscale/cli/nodes.go registerNodeCmd: `--key` (the
    registration ID) and `--user` (a name: hscontrol/grpcv1.go RegisterNode GetUserByName)."""
    code, out, _ = run(["register", KEY, "--user", "alice"])
    assert code == 0
    assert "Node laptop registered" in out
    *_, register = calls(fake_kubectl)
    argv = register["argv"]
    assert argv[:6] == [
        "--namespace",
        "headscale",
        "exec",
        "deployment/headscale",
        "--container",
        "headscale",
    ]
    assert argv[argv.index("--") + 1 :] == [
        "headscale",
        "nodes",
        "register",
        "--key",
        KEY,
        "--user",
        "alice",
    ]


def test_the_kubeconfig_is_a_private_temp_file_that_is_removed(fake_kubectl: Path) -> None:
    code, out, err = run(["register", KEY, "--user", "alice"])
    assert code == 0, err
    seen = calls(fake_kubectl)
    assert {c["mode"] for c in seen} == {0o600}
    assert {c["kubeconfig"] for c in seen} == {KUBECONFIG}
    for call in seen:
        assert not Path(call["path"]).exists()
    assert "SENTINEL" not in out + err


def test_the_url_the_device_shows_is_accepted_too(fake_kubectl: Path) -> None:
    code, _, _ = run(
        ["register", f"https://headscale.example.com/register/{KEY}", "--user", "admin"]
    )
    assert code == 0
    assert calls(fake_kubectl)[-1]["argv"][-3] == KEY


@pytest.mark.parametrize("bad", ["short", KEY + "x", "has space in it 0123456789"])
def test_a_malformed_key_is_refused_before_anything_runs(fake_kubectl: Path, bad: str) -> None:
    """juanfont/headscale@v0.28.0:hscontrol/types/common.go RegistrationIDFromString: 24 chars."""
    code, _, err = run(["register", bad, "--user", "alice"])
    assert code == 2
    assert "registration key" in err
    assert calls(fake_kubectl) == []


def test_an_unknown_user_is_named_with_the_existing_ones(fake_kubectl: Path) -> None:
    code, _, err = run(["register", KEY, "--user", "bob"])
    assert code == 2
    assert "no user 'bob'" in err
    assert "admin, alice" in err
    assert not [c for c in calls(fake_kubectl) if "register" in c["argv"]]
    assert len(err.strip().splitlines()) == 1


def test_a_refusal_is_one_line(fake_kubectl: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_REFUSE", "1")
    code, _, err = run(["register", KEY, "--user", "alice"])
    assert code == 2
    assert (
        err.strip()
        == "error: Headscale refused the registration: Cannot register node: looking up user: record not found"
    )


def test_a_stack_without_a_kubeconfig_is_a_clear_error(fake_kubectl: Path) -> None:
    def missing(_context: lab.Lab, stack: str) -> str:
        raise lab.LabError(f"stack {stack!r} has no kubeconfig output: has it been deployed?")

    code, _, err = run(["register", KEY, "--user", "alice", "--stack", "lab-2"], read=missing)
    assert code == 2
    assert "'lab-2'" in err
    assert calls(fake_kubectl) == []


def test_the_stack_defaults_to_the_homelab(fake_kubectl: Path) -> None:
    asked: list[str] = []

    def read(_context: lab.Lab, stack: str) -> str:
        asked.append(stack)
        return KUBECONFIG

    assert run(["register", KEY, "--user", "alice"], read=read)[0] == 0
    assert asked == ["homelab"]
    assert device.REGISTRATION_ID.fullmatch(KEY)
