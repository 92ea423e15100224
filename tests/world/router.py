"""The Tailscale subnet router pod: containerboot logging in to Headscale with its state Secret.

Its settings (components/remote_access/subnet_router.py): TS_KUBE_SECRET names the state
Secret, TS_AUTHKEY a file from the auth-key Secret, TS_AUTH_ONCE=true. What a start does
(tailscale/tailscale@v1.102.3: cmd/containerboot/main.go `run`, the authLoop; tailscaled.go
`tailscaleUp`; ipn/store/kubestore/store_kube.go):

- tailscaled loads its state from the Secret: the machine key (`_machinekey`, written on the
  first start) and the logged-in profile (`_current-profile`);
- with a profile Headscale still knows (a node of that machine key) it goes Running;
- otherwise it reports NeedsLogin, and containerboot runs `tailscale up --authkey=<key>` once
  (`didLogin`: TS_AUTH_ONCE logs in only on NeedsLogin, and only once per start). Headscale
  decides with `HandleNodeFromPreAuthKey` (tests/world/headscale.py); a refusal ends
  containerboot with "failed to auth tailscale", and the pod crash-loops. The state Secret
  keeps its stale profile: nothing deletes it.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Final

from tests.world import clock, headscale
from tests.world.kube import cluster
from tests.world.kube.objects import put, stored

State = dict[str, Any]

NAMESPACE: Final = "tailscale"
STATE_SECRET: Final = "subnet-router-state"
AUTH_KEY_SECRET: Final = "subnet-router-authkey"
AUTH_KEY_ITEM: Final = "authkey"
MACHINE_KEY_ITEM: Final = "_machinekey"
PROFILE_ITEM: Final = "_current-profile"


def router(state: State) -> dict[str, Any]:
    section: dict[str, Any] = state.setdefault(
        "router",
        {"hostname": "subnet-router", "routes": [], "status": "NotStarted", "log": [], "starts": 0},
    )
    return section


def _decoded(secret: dict[str, Any] | None, item: str) -> str:
    value = ((secret or {}).get("data") or {}).get(item)
    return base64.b64decode(value).decode() if value else ""


def _encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def start(state: State) -> str:
    """One start of the router pod; returns its status (`Running` or `CrashLoopBackOff`)."""
    section = router(state)
    section["starts"] = int(section.get("starts", 0)) + 1
    workload = cluster.kube(state)["workloads"].get(cluster.ROUTER_WORKLOAD) or {}
    env = workload.get("env") or {}
    if env.get("TS_HOSTNAME"):
        section["hostname"] = env["TS_HOSTNAME"]
    if env.get("TS_ROUTES"):
        section["routes"] = str(env["TS_ROUTES"]).split(",")
    secret = stored(state, "Secret", NAMESPACE, STATE_SECRET)
    if secret is None:
        secret = put(
            state,
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": STATE_SECRET}, "data": {}},
            NAMESPACE,
        )
    data = secret.setdefault("data", {})
    machine_key = _decoded(secret, MACHINE_KEY_ITEM)
    if not machine_key:
        digest = hashlib.sha256(f"router-machine-{section['starts']}".encode()).hexdigest()
        machine_key = f"mkey:{digest}"
        data[MACHINE_KEY_ITEM] = _encoded(machine_key)
    node_key = f"nodekey:{hashlib.sha256(machine_key.encode()).hexdigest()}"
    known = headscale.node_by_machine_key(state, machine_key)
    if _decoded(secret, PROFILE_ITEM) and known is not None:
        return _running(state, known, "tailscaled: Running (logged in from the state Secret)")
    section["log"].append("tailscaled in state NeedsLogin; running 'tailscale up' (TS_AUTH_ONCE)")
    authkey = _decoded(stored(state, "Secret", NAMESPACE, AUTH_KEY_SECRET), AUTH_KEY_ITEM).strip()
    if not authkey:
        return _crash(state, "failed to auth tailscale: no auth key in TS_AUTHKEY")
    node, problem = headscale.login_with_authkey(
        state,
        authkey,
        machine_key=machine_key,
        node_key=node_key,
        hostname=section["hostname"],
        routes=list(section["routes"]),
    )
    if node is None:
        return _crash(
            state,
            f"failed to auth tailscale: failed to auth tailscale: backend error: {problem}",
        )
    data[PROFILE_ITEM] = _encoded("profile-router")
    return _running(state, node, "tailscaled: Running (logged in with the auth key)")


def _running(state: State, node: dict[str, Any], line: str) -> str:
    node["online"] = True
    node["last_seen"] = clock.now(state)
    router(state)["status"] = "Running"
    router(state)["log"].append(line)
    _set_pod(state, ready=True)
    return "Running"


def _crash(state: State, line: str) -> str:
    router(state)["status"] = "CrashLoopBackOff"
    router(state)["log"].append(line)
    _set_pod(state, ready=False)
    return "CrashLoopBackOff"


def _set_pod(state: State, *, ready: bool) -> None:
    for pod in cluster.kube(state)["pods"].values():
        if pod.get("workload") == f"{NAMESPACE}/Deployment/subnet-router":
            pod["crashing"] = not ready
            pod["ready"] = ready and pod["phase"] == "Running"


def stop(state: State) -> None:
    """The pod goes away: the node goes offline in Headscale (its last_seen stays)."""
    secret = stored(state, "Secret", NAMESPACE, STATE_SECRET)
    known = headscale.node_by_machine_key(state, _decoded(secret, MACHINE_KEY_ITEM))
    if known is not None:
        known["online"] = False
    router(state)["status"] = "NotStarted"
