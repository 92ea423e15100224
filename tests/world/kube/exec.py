"""`kubectl exec`: find the pod, then run the program in its container (the Headscale CLI,
Litestream's)."""

from __future__ import annotations

import json
from typing import Any

from tests.world import headscale
from tests.world.kube import cluster
from tests.world.kube.context import Call, KubectlError, not_found, targets

State = dict[str, Any]


def _pod(call: Call, target: str) -> dict[str, Any]:
    """A pod by name, or the first pod of a workload (`deployment/x`: kubectl picks one of its
    pods, kubernetes/kubectl@kubernetes-1.36.3: pkg/polymorphichelpers/attachablepodforobject.go)."""
    pods = cluster.kube(call.state)["pods"]
    if "/" not in target:
        pod: dict[str, Any] | None = pods.get(f"{call.namespace}/{target}")
        if pod is None:
            raise KubectlError(not_found("Pod", target))
        return pod
    ((kind, _, name),) = targets([target])
    workload = cluster.kube(call.state)["workloads"].get(f"{call.namespace}/{kind}/{name}")
    if workload is None:
        raise KubectlError(not_found(kind, name or ""))
    candidates = [
        p for p in cluster.workload_pods(call.state, workload) if p.get("deletion") is None
    ]
    candidates.sort(key=lambda p: (not p["ready"], p["name"]))
    if not candidates:
        raise KubectlError("error: timed out waiting for the condition")
    return candidates[0]


def run(call: Call, args: list[str]) -> int:
    if not args:
        raise KubectlError("error: pod, type/name or --filename must be specified")
    command = call.parsed.rest
    if not command:
        raise KubectlError("error: you must specify at least one command for the container")
    pod = _pod(call, args[0])
    container = call.flag("container") or pod["containers"][0]
    if container not in pod["containers"]:
        raise KubectlError(
            f"error: container {container} is not valid for pod {pod['name']} out of: "
            + ", ".join(pod["containers"])
        )
    if pod["phase"] != "Running" or pod.get("crashing"):
        # The kubelet has no running container to exec into (client-go
        # tools/remotecommand: the upgrade request fails).
        raise KubectlError(
            f'error: unable to upgrade connection: container not found ("{container}")'
        )
    code, out, err = _program(call.state, pod, container, command)
    call.out.append(out)
    call.err.append(err)
    if code:
        # kubectl reports the remote exit code after the program's own stderr
        # (client-go tools/remotecommand/v4.go `errorDecoderV4`).
        call.warn(f"command terminated with exit code {code}")
    return code


def _program(
    state: State, pod: dict[str, Any], container: str, command: list[str]
) -> tuple[int, str, str]:
    if command[0] == "headscale" and container == "headscale":
        return headscale.run(state, command[1:])
    if command[0] == "litestream" and container == "litestream":
        return 0, json.dumps(headscale.headscale(state).get("replica", [])) + "\n", ""
    return (
        126,
        "",
        "OCI runtime exec failed: exec failed: unable to start container process: exec: "
        f'"{command[0]}": executable file not found in $PATH: unknown\n',
    )
