"""Wait until a validating admission webhook answers, by submitting the object about to be created
as a server-side dry run (`kubectl apply --dry-run=server`: admission webhooks with
`sideEffects: None` are called, nothing is stored). While the webhook cannot be called it retries,
a bounded number of times; a webhook that answers and denies the object fails the gate at once
(a real config error: waiting would not fix it)."""

from __future__ import annotations

import subprocess
from typing import TypedDict

from programs.runtime import attempts, credential_file, fail, run_cli, say


class Params(TypedDict):
    attempts: int
    # kube-apiserver's error for a webhook that answered and refused the object.
    denied_marker: str
    kubeconfig_env: str
    manifest: str
    namespace: str
    program: str
    retry_delay_seconds: int
    webhook: str


def kubectl(
    path: str, args: list[str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(["kubectl", "--kubeconfig", path, *args], stdin=stdin)


def gate(params: Params, path: str) -> None:
    webhook = params["webhook"]
    last = ""
    for attempt in attempts(params["attempts"], params["retry_delay_seconds"]):
        result = kubectl(path, ["apply", "--dry-run=server", "-f", "-"], params["manifest"])
        if result.returncode == 0:
            say(f"{webhook} answered (attempt {attempt})")
            return
        last = (result.stderr or result.stdout).strip()
        if params["denied_marker"] in last:
            fail(f"{webhook} refused the object: {last}")
    fail(
        f"{webhook} did not answer after {params['attempts']} attempts "
        f"{params['retry_delay_seconds']} s apart; is its controller running in namespace "
        f"{params['namespace']}? Last error: {last}"
    )


def main(params: Params) -> str:
    with credential_file(params["kubeconfig_env"], "kubeconfig") as path:
        gate(params, path)
    return ""
