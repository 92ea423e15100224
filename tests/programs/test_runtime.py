"""The runtime every program shares, imported like any other code."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from programs import runtime
from programs.runtime import ProgramFailedError

SECRET = "apiVersion: v1\nusers: [{user: {token: SENTINEL-token}}]\n"


def test_a_program_prints_what_main_returns(capsys: pytest.CaptureFixture[str]) -> None:
    runtime.run_program(lambda params: f"done {params['x']}\n", {"program": "p", "x": 1})
    assert capsys.readouterr().out == "done 1\n"


def test_a_failure_is_one_line_after_the_programs_name_and_exit_status_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def main(params: dict[str, str]) -> str:
        runtime.say("working")
        runtime.fail("it broke; do this")

    with pytest.raises(SystemExit) as stopped:
        runtime.run_program(main, {"program": "talos-health"})
    assert stopped.value.code == 1
    shown = capsys.readouterr()
    assert shown.out == ""
    assert shown.err == "talos-health: working\ntalos-health: it broke; do this\n"


def test_attempts_pause_between_attempts_only(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    monkeypatch.setattr("time.sleep", pauses.append)
    assert list(runtime.attempts(3, 5)) == [1, 2, 3]
    assert pauses == [5, 5]
    pauses.clear()
    for attempt in runtime.attempts(3, 5):
        if attempt == 2:
            break
    assert pauses == [5]


def test_a_credential_is_a_private_file_only_while_needed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOMELAB_KUBECONFIG", SECRET)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    old_umask = os.umask(0o022)
    try:
        with runtime.credential_file("HOMELAB_KUBECONFIG", "kubeconfig") as path:
            assert Path(path).parent == tmp_path
            assert Path(path).name.startswith("homelab-kubeconfig-")
            assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
            assert Path(path).read_text() == SECRET
    finally:
        os.umask(old_umask)
    assert not Path(path).exists()


def test_a_missing_credential_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMELAB_TALOSCONFIG", "  \n")
    with (
        pytest.raises(ProgramFailedError, match=r"^HOMELAB_TALOSCONFIG is empty$"),
        runtime.credential_file("HOMELAB_TALOSCONFIG", "talosconfig"),
    ):
        pass


def test_a_cli_inherits_no_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOMELAB_KUBECONFIG", "KUBECONFIG", "TALOSCONFIG", "PULUMI_COMMAND_STDOUT"):
        monkeypatch.setenv(name, SECRET)
    monkeypatch.setenv("HOME_SWEET", "kept")
    shown = runtime.run_cli(
        [sys.executable, "-c", "import os, json; print(json.dumps(dict(os.environ)))"],
        env={"KUBECONFIG": "/tmp/private-file"},
    )
    assert shown.returncode == 0
    assert "SENTINEL" not in shown.stdout
    assert '"KUBECONFIG": "/tmp/private-file"' in shown.stdout
    assert '"HOME_SWEET": "kept"' in shown.stdout


def test_a_cli_reads_its_input_or_nothing() -> None:
    echo = [sys.executable, "-c", "import sys; print(repr(sys.stdin.read()))"]
    assert runtime.run_cli(echo, stdin="manifest").stdout == "'manifest'\n"
    assert runtime.run_cli(echo).stdout == "''\n"


def test_a_cli_that_takes_too_long_is_none_and_a_missing_one_a_failure() -> None:
    slow = [sys.executable, "-c", "import time; time.sleep(10)"]
    assert runtime.run_cli(slow, timeout=0.5) is None
    with pytest.raises(ProgramFailedError, match=r"^no-such-cli is not on PATH \(a prerequisite"):
        runtime.run_cli(["no-such-cli"])
