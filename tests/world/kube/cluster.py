"""The Kubernetes side of the world: whether the API answers, whose credentials it takes, and
what kubelets and controllers do to Nodes and Pods while time passes.

State (`state["kube"]`): `nodes` by name, `pods` by `namespace/name`, `workloads` (Deployments,
StatefulSets, DaemonSets the world runs pods for), `objects` (every other object, as manifests,
by `kind/namespace/name`), `credentials` (kubeconfig client identities and their expiry), `ca`.
"""

from __future__ import annotations

import base64
from typing import Any, Final
from urllib.parse import urlparse

from tests.world import clock, etcd, talos_model

State = dict[str, Any]
Pod = dict[str, Any]

API_PORT: Final = 6443
# kube-apiserver's DefaultTolerationSeconds admission plugin gives every pod a 300 s toleration
# of `node.kubernetes.io/unreachable` / `not-ready` (NoExecute); once it runs out, the taint
# eviction controller deletes the pod (kubernetes/kubernetes@v1.36.3:
# plugin/pkg/admission/defaulttolerationseconds/admission.go, pkg/controller/tainteviction).
# DaemonSet pods tolerate both taints without a limit (pkg/controller/daemon/util).
TOLERATION_SECONDS: Final = 300.0
# siderolabs/talos@v1.13.9:pkg/machinery/constants/constants.go: the admin kubeconfig Talos
# issues (`talosctl kubeconfig`, the provider's Kubeconfig) is valid for a year.
KUBECONFIG_SECONDS: Final = 365 * 86400.0
LOCAL_PATH_AFFINITY_KEY: Final = "kubernetes.io/hostname"
# kube-apiserver serves some time after etcd is bootstrapped (its static pod is rendered, its
# image pulled, it starts): a bound, not a measurement. The VIP follows etcd, not the API.
APISERVER_START_SECONDS: Final = 90.0
# The subnet router's pod runs containerboot when it starts (tests/world/router.py).
ROUTER_WORKLOAD: Final = "tailscale/Deployment/subnet-router"


def kube(state: State) -> dict[str, Any]:
    section: dict[str, Any] = state.setdefault(
        "kube",
        {
            "nodes": {},
            "pods": {},
            "workloads": {},
            "objects": {},
            "credentials": {},
            "ca": None,
            "next_uid": 1,
            "webhooks": {},
        },
    )
    return section


def uid(state: State) -> str:
    number = int(kube(state)["next_uid"])
    kube(state)["next_uid"] = number + 1
    return f"uid-{number}"


# --- credentials -----------------------------------------------------------------------------


def credential_of(kubeconfig: dict[str, Any]) -> tuple[str, str, str]:
    """(server, CA data, client identity) of a kubeconfig's current context."""
    contexts = {c["name"]: c["context"] for c in kubeconfig.get("contexts") or []}
    current = contexts.get(kubeconfig.get("current-context", ""), {})
    clusters = {c["name"]: c["cluster"] for c in kubeconfig.get("clusters") or []}
    users = {u["name"]: u["user"] for u in kubeconfig.get("users") or []}
    cluster = clusters.get(current.get("cluster", ""), {})
    user = users.get(current.get("user", ""), {})
    identity = "|".join(
        str(user.get(k, "")) for k in ("client-certificate-data", "client-key-data", "token")
    )
    return (
        str(cluster.get("server", "")),
        str(cluster.get("certificate-authority-data", "")),
        identity,
    )


def trust(state: State, kubeconfig: dict[str, Any], *, seconds: float = KUBECONFIG_SECONDS) -> None:
    """Make the cluster accept `kubeconfig`: its CA is the cluster's, its client identity valid
    for `seconds` from now."""
    _, ca, identity = credential_of(kubeconfig)
    kube(state)["ca"] = ca
    kube(state)["credentials"][identity] = {"not_after": clock.now(state) + seconds}


def issue_kubeconfig(state: State, server: str, name: str = "homelab") -> dict[str, Any]:
    """A kubeconfig the cluster accepts, as `talosctl kubeconfig` writes it."""
    ca = kube(state)["ca"] or base64.b64encode(b"world kubernetes CA").decode()
    kube(state)["ca"] = ca
    key = base64.b64encode(f"world admin key {uid(state)}".encode()).decode()
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": ca}}
        ],
        "contexts": [
            {"name": f"admin@{name}", "context": {"cluster": name, "user": f"admin@{name}"}}
        ],
        "current-context": f"admin@{name}",
        "users": [
            {
                "name": f"admin@{name}",
                "user": {"client-certificate-data": "d29ybGQ=", "client-key-data": key},
            }
        ],
    }
    trust(state, document)
    return document


# --- the API server ----------------------------------------------------------------------------


def vip(state: State) -> str | None:
    cluster: dict[str, Any] = talos_model.talos(state).get("cluster") or {}
    found = cluster.get("vip")
    return str(found) if found else None


def control_planes_up(state: State) -> list[talos_model.Node]:
    return [
        m
        for m in talos_model.nodes(state).values()
        if m["state"] == "installed" and m.get("role") == "controlplane"
    ]


def serving(state: State) -> bool:
    """kube-apiserver answers: etcd has quorum and its start time has passed."""
    starts = (talos_model.talos(state).get("cluster") or {}).get("api_from")
    started = starts is None or clock.now(state) >= float(starts)
    return etcd.has_quorum(state) and started and bool(control_planes_up(state))


def api_problem(state: State, server: str) -> str | None:
    """Why kubectl cannot reach the API server at `server`, as kubectl reports it, or None.

    kube-apiserver runs on every control plane and needs etcd; the shared VIP is held by a control
    plane only while etcd is healthy (siderolabs/talos@v1.13.9:
    internal/app/machined/pkg/controllers/network/operator/vip.go, the VIP operator starts after
    etcd elects it)."""
    host = urlparse(server).hostname or ""
    target = f"{host}:{API_PORT}"
    quorum = etcd.has_quorum(state)
    starts = (talos_model.talos(state).get("cluster") or {}).get("api_from")
    if starts is not None and clock.now(state) < float(starts) and quorum:
        return (
            f"The connection to the server {target} was refused - did you specify the right "
            "host or port?"
        )
    if host == vip(state):
        if quorum and control_planes_up(state):
            return None
        return f"Unable to connect to the server: dial tcp {target}: connect: no route to host"
    machine = talos_model.node_at(state, host)
    if machine is None or not talos_model.is_up(machine):
        return f"Unable to connect to the server: dial tcp {target}: connect: no route to host"
    if machine["state"] != "installed" or machine.get("role") != "controlplane":
        return (
            f"The connection to the server {target} was refused - did you specify the right "
            "host or port?"
        )
    if not quorum:
        return "Error from server: etcdserver: request timed out"
    return None


def auth_problem(state: State, kubeconfig: dict[str, Any]) -> str | None:
    """The API server's TLS and authentication (kubectl's wording): a CA the client does not
    trust, an unknown or expired client certificate (401)."""
    _, ca, identity = credential_of(kubeconfig)
    if ca != kube(state)["ca"]:
        return (
            "Unable to connect to the server: tls: failed to verify certificate: x509: "
            "certificate signed by unknown authority"
        )
    credential = kube(state)["credentials"].get(identity)
    if credential is None or clock.now(state) > credential["not_after"]:
        return "error: You must be logged in to the server (Unauthorized)"
    return None


# --- kubelets and controllers ---------------------------------------------------------------------


def settle(state: State) -> None:
    """Bring Kubernetes to the clock and to the machines: kubelets register and report, the taint
    eviction controller deletes pods of unreachable Nodes, terminating pods on a live kubelet go,
    controllers replace pods and the scheduler places them."""
    talos_model.settle(state)
    _follow_etcd(state)
    if not serving(state):
        return
    now = clock.now(state)
    _kubelets(state, now)
    _evictions(state, now)
    _finish_terminating(state)
    _replace_pods(state)
    _schedule(state)


# What the API server keeps in etcd (everything but the credentials, which come from the Talos
# secrets: the CA and the client certificates Talos issues).
ETCD_HELD: Final = ("nodes", "pods", "workloads", "objects", "webhooks")


def etcd_held(state: State) -> dict[str, Any]:
    """A copy of what an etcd snapshot holds of the API's state."""
    import copy

    return {key: copy.deepcopy(kube(state)[key]) for key in ETCD_HELD}


def restore(state: State, held: dict[str, Any]) -> None:
    """The API's state is what an etcd recovered from a snapshot holds."""
    import copy

    for key in ETCD_HELD:
        kube(state)[key] = copy.deepcopy(held.get(key, {}))
    kube(state)["etcd_cluster"] = etcd.etcd(state).get("cluster_id")


def _follow_etcd(state: State) -> None:
    """Every object lives in etcd: once its data is gone (`etcd.lost`) the API has nothing,
    and an etcd bootstrapped anew starts empty (a recovery sets its state: `restore`)."""
    etcd.forget_lost(state)
    cluster_id = etcd.etcd(state).get("cluster_id")
    held_by = kube(state).get("etcd_cluster")
    if held_by is not None and (not etcd.members(state) or held_by != cluster_id):
        for key in ETCD_HELD:
            kube(state)[key] = {}
        kube(state)["etcd_cluster"] = None
    if etcd.members(state):
        kube(state)["etcd_cluster"] = cluster_id


def machine_of_node(state: State, node: dict[str, Any]) -> talos_model.Node | None:
    machine = talos_model.node_at(state, node["address"])
    if machine is None or machine.get("hostname") != node["name"]:
        return None
    return machine


def _kubelets(state: State, now: float) -> None:
    """A kubelet registers its Node under the machine's hostname (kubelet `--hostname-override`
    unset: the Node name is the hostname Talos sets), with the machine's address as InternalIP,
    KUBELET_REGISTER_SECONDS after it starts; a renamed machine registers a NEW Node and the old
    one stays, NotReady. A Node whose kubelet stops posting status turns NotReady (the
    node-lifecycle controller)."""
    nodes: dict[str, Any] = kube(state)["nodes"]
    version = str(talos_model.talos(state).get("cluster", {}).get("kubernetes_version", ""))
    for machine in talos_model.nodes(state).values():
        if machine["state"] != "installed" or not machine.get("role"):
            continue
        name = machine["hostname"]
        if name not in nodes and now >= float(machine.get("kubelet_from") or 0.0):
            nodes[name] = {
                "name": name,
                "address": machine["address"],
                "ready": True,
                "unschedulable": False,
                "not_ready_since": None,
                "role": machine["role"],
                "kubelet_version": version,
                "uid": uid(state),
                "labels": {LOCAL_PATH_AFFINITY_KEY: name},
            }
    for node in nodes.values():
        running = machine_of_node(state, node)
        up = running is not None and talos_model.is_up(running)
        if up and running is not None:
            node["os_image"] = f"Talos ({running['version']})"
        if up and not node["ready"]:
            node.update(ready=True, not_ready_since=None)
        elif not up and node["ready"]:
            node.update(ready=False, not_ready_since=now)


def _evictions(state: State, now: float) -> None:
    nodes = kube(state)["nodes"]
    for pod in kube(state)["pods"].values():
        node = nodes.get(pod.get("node") or "")
        if node is None or node["ready"] or pod.get("deletion") is not None:
            continue
        if (pod.get("owner") or {}).get("kind") == "DaemonSet":
            continue
        since = node["not_ready_since"] or now
        if now >= since + TOLERATION_SECONDS:
            pod["deletion"] = since + TOLERATION_SECONDS


def _finish_terminating(state: State) -> None:
    """A terminating pod goes away once its kubelet confirms the containers stopped; on a Node
    whose kubelet is gone it stays Terminating for ever (until the Node object is deleted, when
    the pod garbage collector removes it: pkg/controller/podgc `gcOrphaned`)."""
    nodes = kube(state)["nodes"]
    pods: dict[str, Pod] = kube(state)["pods"]
    for key, pod in list(pods.items()):
        node = nodes.get(pod.get("node") or "")
        orphaned = pod.get("node") and node is None
        if pod.get("deletion") is not None and (node is None or node["ready"] or orphaned):
            del pods[key]


def workload_pods(state: State, workload: dict[str, Any]) -> list[Pod]:
    key = workload_key(workload)
    return [p for p in kube(state)["pods"].values() if p.get("workload") == key]


def workload_key(workload: dict[str, Any]) -> str:
    return f"{workload['namespace']}/{workload['kind']}/{workload['name']}"


def _replace_pods(state: State) -> None:
    """ReplicaSets and StatefulSets create a pod for each missing replica; a pod that is
    terminating still counts for a StatefulSet (its name is taken until it is gone)."""
    for workload in kube(state)["workloads"].values():
        if workload["kind"] == "DaemonSet":
            continue
        pods = workload_pods(state, workload)
        if workload["kind"] == "StatefulSet":
            live = len(pods)
        else:
            live = sum(1 for p in pods if p.get("deletion") is None)
        for _ in range(int(workload.get("replicas", 1)) - live):
            new_pod(state, workload)


def new_pod(state: State, workload: dict[str, Any], node: str | None = None) -> Pod:
    serial = uid(state)
    suffix = "0" if workload["kind"] == "StatefulSet" else serial.removeprefix("uid-")
    owner_kind = "ReplicaSet" if workload["kind"] == "Deployment" else workload["kind"]
    pod: Pod = {
        "namespace": workload["namespace"],
        "name": f"{workload['name']}-{suffix}",
        "uid": serial,
        "labels": dict(workload.get("labels") or {}),
        "owner": {"kind": owner_kind, "name": workload["name"]},
        "workload": workload_key(workload),
        "claims": list(workload.get("claims") or []),
        "emptydir": bool(workload.get("emptydir")),
        "containers": list(workload.get("containers") or [workload["name"]]),
        "node": node,
        "phase": "Pending",
        "ready": False,
        "deletion": None,
    }
    kube(state)["pods"][f"{pod['namespace']}/{pod['name']}"] = pod
    return pod


def _schedule(state: State) -> None:
    """The scheduler binds a pending pod to a Ready, schedulable Node that satisfies its
    volumes' node affinity; a local-path claim is provisioned on the Node its first consumer
    lands on and pinned there by `kubernetes.io/hostname` (rancher/local-path-provisioner@v0.0.37:
    provisioner.go `provisionFor`, the PV's NodeAffinity). Pods on a Ready Node run."""
    nodes = kube(state)["nodes"]
    for pod in kube(state)["pods"].values():
        if pod.get("deletion") is not None:
            continue
        if pod.get("node") is None:
            wanted = (kube(state)["workloads"].get(pod.get("workload") or "") or {}).get("on_node")
            candidates = [
                n
                for name, n in sorted(nodes.items())
                if n["ready"]
                and not n["unschedulable"]
                and volumes_allow(state, pod, name)
                and wanted in (None, name)
            ]
            if not candidates:
                continue
            pod["node"] = candidates[0]["name"]
            provision_claims(state, pod)
        node = nodes.get(pod["node"])
        running = node is not None and node["ready"]
        started = running and pod["phase"] != "Running"
        pod["phase"] = "Running" if running else pod["phase"]
        pod["ready"] = running and not pod.get("crashing", False)
        if started and pod.get("workload") == ROUTER_WORKLOAD:
            from tests.world import router

            router.start(state)


def _claim_pv(state: State, namespace: str, claim: str) -> dict[str, Any] | None:
    pvc = kube(state)["objects"].get(f"PersistentVolumeClaim/{namespace}/{claim}")
    volume = ((pvc or {}).get("spec") or {}).get("volumeName")
    if not volume:
        return None
    found: dict[str, Any] | None = kube(state)["objects"].get(f"PersistentVolume//{volume}")
    return found


def pinned_node(pv: dict[str, Any]) -> str | None:
    terms = (((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get(
        "nodeSelectorTerms"
    ) or []
    for term in terms:
        for expression in term.get("matchExpressions") or []:
            if expression.get("key") == LOCAL_PATH_AFFINITY_KEY:
                return str(expression["values"][0])
    return None


def volumes_allow(state: State, pod: Pod, node: str) -> bool:
    for claim in pod.get("claims") or []:
        pv = _claim_pv(state, pod["namespace"], claim)
        pinned = pinned_node(pv) if pv else None
        if pinned is not None and pinned != node:
            return False
    return True


def provision_claims(state: State, pod: Pod) -> None:
    objects = kube(state)["objects"]
    for claim in pod.get("claims") or []:
        key = f"PersistentVolumeClaim/{pod['namespace']}/{claim}"
        pvc = objects.setdefault(
            key,
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "namespace": pod["namespace"]},
                "spec": {"storageClassName": "local-path"},
            },
        )
        if (pvc.get("spec") or {}).get("volumeName"):
            continue
        volume = f"pvc-{uid(state)}"
        pvc.setdefault("spec", {})["volumeName"] = volume
        objects[f"PersistentVolume//{volume}"] = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "claimRef": {"namespace": pod["namespace"], "name": claim},
                "storageClassName": "local-path",
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": LOCAL_PATH_AFFINITY_KEY,
                                        "operator": "In",
                                        "values": [pod["node"]],
                                    }
                                ]
                            }
                        ]
                    }
                },
            },
        }


def next_change(state: State) -> float | None:
    """The next time on the clock at which the world changes by itself (a machine back from a
    reboot, pods evicted from an unreachable Node, a webhook starting to serve), or None."""
    now = clock.now(state)
    times: list[float] = [
        float(m["back_at"])
        for m in talos_model.nodes(state).values()
        if m["state"] == "rebooting" and m.get("back_at") is not None
    ]
    times += [float(m.get("kubelet_from") or 0.0) for m in talos_model.nodes(state).values()]
    nodes = kube(state)["nodes"]
    for pod in kube(state)["pods"].values():
        node = nodes.get(pod.get("node") or "")
        if node and not node["ready"] and pod.get("deletion") is None and node["not_ready_since"]:
            times.append(float(node["not_ready_since"]) + TOLERATION_SECONDS)
    starts = (talos_model.talos(state).get("cluster") or {}).get("api_from")
    if starts is not None:
        times.append(float(starts))
    for webhook in kube(state)["webhooks"].values():
        if webhook.get("serving_at") is not None:
            times.append(float(webhook["serving_at"]))
    future = [t for t in times if t > now]
    return min(future) if future else None
