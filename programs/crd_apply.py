"""Server-side apply CustomResourceDefinitions from pinned URLs and wait until each is
Established, the way traefik/traefik-helm-chart@v41.3.0:README.md upgrades them
(`kubectl apply --server-side --force-conflicts`); Helm installs a chart's `crds/` once and never
upgrades them."""

from __future__ import annotations

import subprocess
from typing import TypedDict

from programs.runtime import attempts, credential_file, fail, run_cli, say


class Params(TypedDict):
    attempts: int
    field_manager: str
    kubeconfig_env: str
    names: list[str]
    program: str
    retry_delay_seconds: int
    timeout: str
    urls: list[str]


def kubectl(path: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    return run_cli(["kubectl", "--kubeconfig", path, *args])


def apply(params: Params, path: str) -> None:
    files = [word for url in params["urls"] for word in ("-f", url)]
    manager = f"--field-manager={params['field_manager']}"
    last = ""
    for _ in attempts(params["attempts"], params["retry_delay_seconds"]):
        result = kubectl(path, ["apply", "--server-side", "--force-conflicts", manager, *files])
        if result.returncode == 0:
            break
        last = (result.stderr or result.stdout).strip()
    else:
        fail(f"applying the CRDs failed {params['attempts']} times; last error: {last}")
    names = [f"crd/{name}" for name in params["names"]]
    waited = kubectl(
        path, ["wait", "--for=condition=Established", f"--timeout={params['timeout']}", *names]
    )
    if waited.returncode != 0:
        fail(f"the CRDs were applied but not Established: {(waited.stderr or '').strip()}")
    say(f"{len(names)} CRDs established")


def main(params: Params) -> str:
    with credential_file(params["kubeconfig_env"], "kubeconfig") as path:
        apply(params, path)
    return ""
