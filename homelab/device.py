"""Joining a device: register the key `tailscale up --login-server ...` is waiting with.

    python -m homelab device register <key> --user <user> [--stack homelab]

A device that runs `tailscale up --login-server https://headscale.<domain>` (or a phone whose
Tailscale app uses a custom coordination server) shows a URL ending in `/register/<key>` and
waits. This runs `headscale nodes register --key <key> --user <user>` in the Headscale pod, the
way the key minting does (components/remote_access/keys.py): `kubectl exec` with the stack's kubeconfig (a
secret stack output) written to a 0600 temp file that is removed afterwards and never printed.

Headscale 0.28 takes the user by *name* here and the key is the 24-character registration ID
(juanfont/headscale@v0.28.0: cmd/headscale/cli/nodes.go registerNodeCmd `--user`/`--key`,
hscontrol/grpcv1.go RegisterNode GetUserByName, hscontrol/types/common.go RegistrationIDLength).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from typing import Final

import pulumi.automation as auto

from components.shared.common import HEADSCALE_NAMESPACE
from homelab import lab

# hscontrol/types/common.go @ v0.28.0: RegistrationIDLength, URL-safe random characters.
REGISTRATION_ID: Final = re.compile(r"^[A-Za-z0-9_-]{24}$")
WORKLOAD: Final = "deployment/headscale"
CONTAINER: Final = "headscale"
KUBECTL_TIMEOUT_SECONDS: Final = 120

# Reads a stack's kubeconfig output (a secret) for a lab context.
KubeconfigReader = Callable[[lab.Lab, str], str]


def registration_id(text: str) -> str:
    """The key from what the device printed: the ID itself or the whole /register/ URL."""
    candidate = text.strip().rstrip("/").rpartition("/register/")[2] or text.strip()
    if not REGISTRATION_ID.fullmatch(candidate):
        raise lab.LabError(
            f"{text!r} is not a registration key: it is the 24 characters after /register/ "
            "in the URL the device shows (e.g. https://headscale.example.com/register/<key>)"
        )
    return candidate


def stack_kubeconfig(context: lab.Lab, stack: str) -> str:
    """The stack's `kubeconfig` output, through the Automation API with ./scripts/up's backend."""
    lab._require_cli()
    lab._require_passphrase(context)
    selected = lab._automation(
        lambda: auto.select_stack(
            stack_name=stack, work_dir=str(context.root), opts=context.workspace_options()
        )
    )
    outputs = lab._automation(selected.outputs)
    if "kubeconfig" not in outputs:
        raise lab.LabError(f"stack {stack!r} has no kubeconfig output: has it been deployed?")
    value = outputs["kubeconfig"].value
    if not isinstance(value, str) or not value.strip():
        raise lab.LabError(f"stack {stack!r} has an empty kubeconfig output")
    return value


def _kubectl(kubeconfig_path: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["KUBECONFIG"] = kubeconfig_path
    argv = ["kubectl", "--namespace", HEADSCALE_NAMESPACE, "exec", WORKLOAD]
    argv += ["--container", CONTAINER, "--", "headscale", *args]
    try:
        return subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=KUBECTL_TIMEOUT_SECONDS
        )
    except FileNotFoundError:
        raise lab.LabError("kubectl is not on PATH (a prerequisite, as for `pulumi up`)") from None
    except subprocess.TimeoutExpired:
        raise lab.LabError(f"kubectl timed out after {KUBECTL_TIMEOUT_SECONDS}s") from None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def register(
    context: lab.Lab,
    key: str,
    user: str,
    *,
    stack: str = lab.HOMELAB_STACK,
    read_kubeconfig: KubeconfigReader = stack_kubeconfig,
) -> int:
    """Register the waiting device `key` to Headscale user `user` of `stack`."""
    registration = registration_id(key)
    kubeconfig = read_kubeconfig(context, stack)
    with lab.kubeconfig_file(kubeconfig) as path:
        listed = _kubectl(path, "users", "list", "--output", "json")
        if listed.returncode != 0:
            raise lab.LabError(f"cannot reach Headscale: {_last_line(listed.stderr)}")
        try:
            names = sorted(str(u.get("name")) for u in json.loads(listed.stdout or "null") or [])
        except (ValueError, AttributeError):
            raise lab.LabError("`headscale users list` did not print JSON") from None
        if user not in names:
            raise lab.LabError(
                f"Headscale has no user {user!r} (users: {', '.join(names) or 'none'}); "
                f"create it with `kubectl -n {HEADSCALE_NAMESPACE} exec {WORKLOAD} -- "
                f"headscale users create {user}`"
            )
        registered = _kubectl(path, "nodes", "register", "--key", registration, "--user", user)
        if registered.returncode != 0:
            raise lab.LabError(
                f"Headscale refused the registration: {_last_line(registered.stderr)}"
            )
    context.say(registered.stdout.strip() or f"registered the device to {user}")
    context.say("On the device: `tailscale up` returns; turn on --accept-routes to reach the LAN.")
    return 0
