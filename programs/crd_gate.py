"""Wait until a CRD someone else installs exists and is Established, so a custom resource of it
created in the same `up` is not refused with "no matches for kind".

kubectl's `get --ignore-not-found -o json` prints nothing and exits 0 for a missing object
(kubernetes/kubectl `pkg/cmd/get/get.go` `printGeneric`), and a CRD reports
`status.conditions[]` entries `{type, status}` with `Established` / `"True"` once it serves
(kubernetes/kubernetes
`staging/src/k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1/types.go`)."""

from __future__ import annotations

import json
import subprocess
from typing import Any, TypedDict

from programs.runtime import attempts, credential_file, fail, run_cli, say


class Params(TypedDict):
    attempts: int
    crd: str
    # Ends the failure message: who installs the CRD and what to check.
    hint: str
    kubeconfig_env: str
    program: str
    retry_delay_seconds: int


def kubectl(path: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    return run_cli(["kubectl", "--kubeconfig", path, *args])


def conditions(document: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (document.get("status") or {}).get("conditions") or []
    return found


def established(document: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Established" and c.get("status") == "True" for c in conditions(document)
    )


def observed(result: subprocess.CompletedProcess[str]) -> str | None:
    """None once `kubectl get crd <name> --ignore-not-found -o json` shows it Established, else
    what it shows instead."""
    if result.returncode != 0:
        return f"kubectl failed: {(result.stderr or result.stdout).strip()}"
    if not result.stdout.strip():
        return "it does not exist"
    try:
        document = json.loads(result.stdout)
    except ValueError:
        return "kubectl printed something that is not JSON"
    if not isinstance(document, dict):
        return "kubectl printed JSON that is not an object"
    if established(document):
        return None
    found = ", ".join(f"{c.get('type')}={c.get('status')}" for c in conditions(document))
    return f"it exists, not Established (conditions: {found or 'none'})"


def gate(params: Params, path: str) -> None:
    crd = params["crd"]
    state = "never checked"
    for attempt in attempts(params["attempts"], params["retry_delay_seconds"]):
        found = observed(kubectl(path, ["get", "crd", crd, "--ignore-not-found", "-o", "json"]))
        if found is None:
            say(f"{crd} is Established (attempt {attempt})")
            return
        state = found
    fail(
        f"CRD {crd} is not Established after {params['attempts']} attempts "
        f"{params['retry_delay_seconds']} s apart; last: {state}. {params['hint']}"
    )


def main(params: Params) -> str:
    with credential_file(params["kubeconfig_env"], "kubeconfig") as path:
        gate(params, path)
    return ""
