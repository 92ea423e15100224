"""Nodes and Pods: how they read (`get -o json`), `delete node`, `cordon`, and `drain` as
kubectl's drain helper runs it (kubernetes/kubectl@kubernetes-1.36.3: pkg/drain/drain.go,
filters.go; pkg/cmd/drain/drain.go)."""

from __future__ import annotations

import time
from typing import Any, Final

from tests.world import clock, talos_model
from tests.world.kube import cluster
from tests.world.kube.context import Call, KubectlError, not_found
from tests.world.kube.objects import matches, objects

State = dict[str, Any]
Pod = dict[str, Any]

# The control-plane components and kube-proxy, as Talos runs them: pods in kube-system labelled
# `k8s-app=<name>` with a container `<name>` whose image tag is the version
# (siderolabs/talos@v1.13.9:pkg/cluster/kubernetes/detect.go `DetectLowestVersion`).
STATIC_PODS: Final = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
# kubectl drain's pause between eviction attempts the PDB refused (pkg/cmd/drain/drain.go
# `EvictErrorRetryDelay: 5 * time.Second`).
EVICT_RETRY_SECONDS: Final = 5.0
# A pod deleted by an eviction gets its deletionTimestamp this far ahead (its grace period).
GRACE_SECONDS: Final = 30.0


def _time(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def node_document(state: State, node: dict[str, Any]) -> dict[str, Any]:
    ready = "True" if node["ready"] else "Unknown"
    spec: dict[str, Any] = {"unschedulable": True} if node["unschedulable"] else {}
    labels = dict(node.get("labels") or {})
    if node.get("role") == "controlplane":
        labels["node-role.kubernetes.io/control-plane"] = ""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node["name"], "uid": node["uid"], "labels": labels},
        "spec": spec,
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": node["address"]},
                {"type": "Hostname", "address": node["name"]},
            ],
            "conditions": [{"type": "Ready", "status": ready}],
            # The kubelet reads /etc/os-release, whose PRETTY_NAME Talos writes as
            # "Talos (<version>)" (siderolabs/talos@v1.13.9: pkg/machinery/constants
            # `OSReleaseTemplate`).
            "nodeInfo": {
                "kubeletVersion": "v" + str(node.get("kubelet_version", "")),
                "osImage": str(node.get("os_image", "")),
            },
        },
    }


def pod_document(pod: Pod) -> dict[str, Any]:
    owner = pod.get("owner") or {}
    metadata: dict[str, Any] = {
        "name": pod["name"],
        "namespace": pod["namespace"],
        "uid": pod["uid"],
        "labels": pod.get("labels") or {},
    }
    if owner.get("kind"):
        metadata["ownerReferences"] = [
            {"kind": owner["kind"], "name": owner["name"], "controller": True}
        ]
    if pod.get("deletion") is not None:
        metadata["deletionTimestamp"] = _time(pod["deletion"])
    volumes = [
        {"name": c, "persistentVolumeClaim": {"claimName": c}} for c in pod.get("claims", [])
    ]
    if pod.get("emptydir"):
        volumes.append({"name": "scratch", "emptyDir": {}})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeName": pod.get("node"),
            "containers": [
                {"name": c, "image": pod.get("images", {}).get(c, f"example/{c}:latest")}
                for c in pod.get("containers", [])
            ],
            "volumes": volumes,
        },
        "status": {
            "phase": pod["phase"],
            "conditions": [{"type": "Ready", "status": "True" if pod["ready"] else "False"}],
        },
    }


def system_pods(state: State) -> list[Pod]:
    """kube-system's static pods and kube-proxy, derived from the machines and the version."""
    version = talos_model.talos(state).get("cluster", {}).get("kubernetes_version", "")
    found: list[Pod] = []
    for node in cluster.kube(state)["nodes"].values():
        components = [*STATIC_PODS] if node.get("role") == "controlplane" else []
        for component in [*components, "kube-proxy"]:
            found.append(
                {
                    "namespace": "kube-system",
                    "name": f"{component}-{node['name']}",
                    "uid": f"{component}-{node['name']}",
                    "labels": {"k8s-app": component},
                    "owner": {"kind": "DaemonSet", "name": component}
                    if component == "kube-proxy"
                    else {"kind": "Node", "name": node["name"]},
                    "containers": [component],
                    "images": {component: f"registry.k8s.io/{component}:v{version}"},
                    "node": node["name"],
                    "phase": "Running",
                    "ready": node["ready"],
                    "deletion": None,
                    "mirror": component != "kube-proxy",
                }
            )
    return found


def all_pods(state: State) -> list[Pod]:
    return [*system_pods(state), *cluster.kube(state)["pods"].values()]


def get_nodes(call: Call, name: str | None) -> None:
    nodes = cluster.kube(call.state)["nodes"]
    if name is not None and name not in nodes:
        if call.flag("ignore-not-found"):
            return
        raise KubectlError(not_found("Node", name))
    chosen = [nodes[name]] if name is not None else [nodes[n] for n in sorted(nodes)]
    documents = [node_document(call.state, n) for n in chosen]
    output = call.flag("output")
    if output == "json":
        call.dump(
            documents[0] if name else {"apiVersion": "v1", "kind": "List", "items": documents}
        )
    elif output == "name":
        for document in documents:
            call.say(f"node/{document['metadata']['name']}")
    else:
        call.say("NAME   STATUS")
        for node in chosen:
            call.say(f"{node['name']}   {'Ready' if node['ready'] else 'NotReady'}")


def get_pods(call: Call, name: str | None) -> None:
    every = bool(call.flag("all-namespaces"))
    pods = [
        p
        for p in all_pods(call.state)
        if (every or p["namespace"] == call.namespace)
        and (name is None or p["name"] == name)
        and matches(p.get("labels") or {}, call.flag("selector"))
    ]
    if name is not None and not pods:
        raise KubectlError(not_found("Pod", name))
    documents = [pod_document(p) for p in pods]
    if call.flag("output") == "json":
        call.dump(
            documents[0] if name else {"apiVersion": "v1", "kind": "List", "items": documents}
        )
    else:
        for pod in pods:
            call.say(f"pod/{pod['name']}")


def delete_node(call: Call, name: str) -> None:
    """Deleting a Node object; the pod garbage collector then removes the pods bound to it."""
    nodes = cluster.kube(call.state)["nodes"]
    if name not in nodes:
        if call.flag("ignore-not-found"):
            return
        raise KubectlError(not_found("Node", name))
    del nodes[name]
    pods = cluster.kube(call.state)["pods"]
    for key in [k for k, p in pods.items() if p.get("node") == name]:
        del pods[key]
    call.say(f'node "{name}" deleted')


def cordon(call: Call, name: str, *, unschedulable: bool) -> None:
    nodes = cluster.kube(call.state)["nodes"]
    if name not in nodes:
        raise KubectlError(not_found("Node", name))
    already = nodes[name]["unschedulable"] == unschedulable
    nodes[name]["unschedulable"] = unschedulable
    verb = "cordoned" if unschedulable else "uncordoned"
    call.say(f"node/{name} {'already ' if already else ''}{verb}")


# --- drain -----------------------------------------------------------------------------------


def _skip(pod: Pod, now: float, skip_seconds: int) -> bool:
    """pkg/drain/filters.go `shouldSkipPod`: a pod whose deletionTimestamp is more than
    `--skip-wait-for-delete-timeout` seconds old is skipped (only when that flag is > 0)."""
    return (
        skip_seconds > 0
        and pod.get("deletion") is not None
        and now - pod["deletion"] > skip_seconds
    )


def _filter(call: Call, pod: Pod, now: float) -> str | None:
    """pkg/drain/filters.go `makeFilters` in order: the error message of a pod drain refuses,
    "skip", or None to evict it."""
    if _skip(pod, now, int(call.flag("skip-wait-for-delete-timeout") or 0)):
        return "skip"
    owner = (pod.get("owner") or {}).get("kind")
    finished = pod["phase"] in ("Succeeded", "Failed")
    if owner == "DaemonSet" and not finished:
        if not call.flag("ignore-daemonsets"):
            return "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
        return "skip"
    if pod.get("mirror"):
        return "skip"
    if pod.get("emptydir") and not finished and not call.flag("delete-emptydir-data"):
        return "Pods with local storage (use --delete-emptydir-data to override)"
    if not owner and not finished and not call.flag("force"):
        return "Pods that declare no controller (use --force to override)"
    return None


def _pdb_refuses(state: State, pod: Pod) -> bool:
    """The eviction API refuses (429) while a PodDisruptionBudget over the pod allows no
    disruption: healthy pods minus minAvailable (kubernetes/kubernetes@v1.36.3:
    pkg/registry/core/pod/storage/eviction.go; a pod already terminating is not checked)."""
    if pod.get("deletion") is not None or not pod["ready"]:
        return False
    for document in objects(state).values():
        if document.get("kind") != "PodDisruptionBudget":
            continue
        if (document.get("metadata") or {}).get("namespace") != pod["namespace"]:
            continue
        spec = document.get("spec") or {}
        selector = ",".join(
            f"{k}={v}" for k, v in ((spec.get("selector") or {}).get("matchLabels") or {}).items()
        )
        if not matches(pod.get("labels") or {}, selector):
            continue
        healthy = sum(
            1
            for p in cluster.kube(state)["pods"].values()
            if p["namespace"] == pod["namespace"]
            and p["ready"]
            and p.get("deletion") is None
            and matches(p.get("labels") or {}, selector)
        )
        if healthy - int(spec.get("minAvailable", 0)) <= 0:
            return True
    return False


def drain(call: Call, name: str) -> None:
    """Cordon, then evict every pod the filters let through and wait for each to be gone.

    A pod on a Node whose kubelet is dead never goes: the eviction marks it terminating and the
    wait runs until `--timeout` (the default 0 waits for ever), unless
    `--skip-wait-for-delete-timeout=N` lets the wait skip pods terminating for more than N
    seconds (pkg/drain/drain.go `evictPods`, `waitForDelete`)."""
    state = call.state
    cordon(call, name, unschedulable=True)
    now = clock.now(state)
    pods = [p for p in all_pods(state) if p.get("node") == name]
    refused: dict[str, list[str]] = {}
    evict: list[Pod] = []
    for pod in pods:
        verdict = _filter(call, pod, now)
        if verdict is None:
            evict.append(pod)
        elif verdict != "skip":
            refused.setdefault(verdict, []).append(f"{pod['namespace']}/{pod['name']}")
    if refused:
        errors = [f"cannot delete {why}: {', '.join(names)}" for why, names in refused.items()]
        _fail_drain(call, name, errors)
    timeout = float(call.flag("timeout") or 0.0) or 1e12
    deadline = now + timeout
    skip = int(call.flag("skip-wait-for-delete-timeout") or 0)
    pending: list[Pod] = []
    for pod in evict:
        call.say(f"evicting pod {pod['namespace']}/{pod['name']}")
        if _pdb_refuses(state, pod):
            call.warn(
                f'error when evicting pods/"{pod["name"]}" -n "{pod["namespace"]}" (will retry '
                f"after {int(EVICT_RETRY_SECONDS)}s): Cannot evict pod as it would violate the "
                "pod's disruption budget."
            )
            clock.advance(state, deadline - clock.now(state))
            _fail_drain(
                call,
                name,
                [
                    f'error when evicting pods/"{pod["name"]}" -n "{pod["namespace"]}": global '
                    f"timeout reached: {_go_duration(timeout)}"
                ],
            )
        if pod.get("deletion") is None:
            pod["deletion"] = clock.now(state) + GRACE_SECONDS
        pending.append(pod)
    while True:
        cluster.settle(state)
        live = cluster.kube(state)["pods"]
        pending = [
            p
            for p in pending
            if f"{p['namespace']}/{p['name']}" in live
            and live[f"{p['namespace']}/{p['name']}"]["uid"] == p["uid"]
            and not _skip(live[f"{p['namespace']}/{p['name']}"], clock.now(state), skip)
        ]
        if not pending:
            break
        wake = [float(p["deletion"]) + skip + 1 for p in pending if skip > 0]
        step = cluster.next_change(state)
        if step is not None:
            wake.append(step)
        target = min([deadline, *wake])
        if target <= clock.now(state):
            pod = pending[0]
            _fail_drain(
                call,
                name,
                [
                    f'error when waiting for pod "{pod["name"]}" in namespace '
                    f'"{pod["namespace"]}" to terminate: context deadline exceeded'
                ],
            )
        clock.advance(state, target - clock.now(state))
    for pod in evict:
        call.say(f"pod/{pod['name']} evicted")
    call.say(f"node/{name} drained")


def _go_duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{rest}s" if hours else f"{minutes}m{rest}s"


def _fail_drain(call: Call, name: str, errors: list[str]) -> None:
    joined = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
    call.warn(f'error: unable to drain node "{name}" due to error: {joined}, continuing command...')
    call.warn(f"There are pending nodes to be drained:\n {name}")
    raise KubectlError(f"error: {joined}")
