"""The world's machinery: virtual time for programs, the call log, running a program as
pulumi-command does."""

from __future__ import annotations

import time

from tests.world.conftest import CONTROL_PLANES, write
from tests.world.world import World

CP1 = next(iter(CONTROL_PLANES))

PROGRAM = """
import os, subprocess, sys, tempfile, time
start, wall = time.monotonic(), time.time()
time.sleep(3600)
print(round(time.monotonic() - start), round(time.time() - wall))
os.umask(0o077)
handle, path = tempfile.mkstemp()
os.write(handle, os.environ["HOMELAB_TALOSCONFIG"].encode())
os.close(handle)
done = subprocess.run(["talosctl", "--talosconfig", path, "--nodes", sys.argv[1] if len(sys.argv) > 1 else "10.0.0.11", "version"],
                      capture_output=True, text=True, timeout=60)
print(done.returncode)
"""


def test_a_program_sleeps_on_the_worlds_clock(world: World) -> None:
    """The programs' `time.sleep`, `time.monotonic` and `time.time` are the world's clock
    (tests/world/clock.py): an hour passes at once, and subprocess timeouts stay real."""
    before = world.now
    started = time.monotonic()
    result = world.run(PROGRAM, {"HOMELAB_TALOSCONFIG": world.talosconfig([CP1])})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["3600 3600", "0"]
    assert world.now - before == 3600
    assert time.monotonic() - started < 30


def test_the_call_log_records_what_the_cli_was_handed(world: World) -> None:
    """Each call: its argv, the talosconfig or kubeconfig it read (path, permission mode,
    content), the names of the credential variables in its environment, its result."""
    text = world.talosconfig([CP1])
    world.run(PROGRAM, {"HOMELAB_TALOSCONFIG": text})
    (call,) = world.calls("talosctl")
    assert call["argv"][0] == "talosctl"
    assert call["argv"][-3:] == ["--nodes", "10.0.0.11", "version"]
    assert call["config_mode"] == 0o600
    assert call["config"] == text
    assert call["env"] == ["HOMELAB_TALOSCONFIG"]
    assert call["returncode"] == 0
    kubeconfig = write(world, "kc", world.kubeconfig())
    world.cli("kubectl", "--kubeconfig", kubeconfig, "apply", "-f", "-", stdin="{}")
    assert world.calls("kubectl")[-1]["stdin"] == "{}"


def test_a_command_runs_with_its_environment_and_only_the_fakes_on_path(world: World) -> None:
    """pulumi/pulumi-command@v1.2.1 provider/pkg/provider/local/commandOutputs.go `run`: the
    interpreter plus the program text, the provider's environment plus `environment`."""
    result = world.run(
        "import os, shutil; print(os.environ['X'], shutil.which('kubectl') is not None, shutil.which('ls'))",
        {"X": "given"},
    )
    assert result.stdout.split() == ["given", "True", "None"]


def test_a_node_that_dies_turns_not_ready_and_comes_back_after_a_boot(world: World) -> None:
    """A dead machine answers nothing; its kubelet stops posting and the Node turns NotReady
    (kubernetes/kubernetes@v1.36.3 pkg/controller/nodelifecycle). Powered on, it boots what is
    on its disk and is back after a reboot's time (tests/world/talos_model.py)."""
    world.node_dies(CP1)
    assert world.machine(CP1)["state"] == "dead"
    assert world.state["kube"]["nodes"]["cp-1"]["ready"] is False
    world.node_returns(CP1)
    world.advance(89)
    assert world.machine(CP1)["state"] == "rebooting"
    world.advance(1)
    assert world.machine(CP1)["state"] == "installed"
    assert world.state["kube"]["nodes"]["cp-1"]["ready"] is True
