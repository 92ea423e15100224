"""What the CRD gate makes of `kubectl get crd <name> --ignore-not-found -o json`: nothing and
exit 0 for a missing object (kubernetes/kubectl `pkg/cmd/get/get.go` `printGeneric`), else the
CRD with `status.conditions[]` of `{type, status}` (kubernetes/kubernetes
`staging/src/k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1/types.go`)."""

from __future__ import annotations

import json
import subprocess

from programs import crd_gate


def got(
    stdout: str = "", returncode: int = 0, stderr: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["kubectl"], returncode, stdout, stderr)


def crd(*conditions: tuple[str, str]) -> str:
    listed = [{"type": kind, "status": status} for kind, status in conditions]
    return json.dumps({"kind": "CustomResourceDefinition", "status": {"conditions": listed}})


def test_established_is_the_only_state_that_passes() -> None:
    assert crd_gate.observed(got(crd(("NamesAccepted", "True"), ("Established", "True")))) is None
    assert crd_gate.observed(got(crd(("Established", "False")))) == (
        "it exists, not Established (conditions: Established=False)"
    )
    assert crd_gate.observed(got(crd())) == "it exists, not Established (conditions: none)"


def test_missing_unreadable_and_failed_answers_say_so() -> None:
    assert crd_gate.observed(got("")) == "it does not exist"
    assert crd_gate.observed(got("NAME CREATED AT")) == "kubectl printed something that is not JSON"
    assert crd_gate.observed(got("[]")) == "kubectl printed JSON that is not an object"
    refused = got(returncode=1, stderr="The connection to the server was refused\n")
    assert crd_gate.observed(refused) == "kubectl failed: The connection to the server was refused"
