"""The fake `kubectl`: flags, the kubeconfig, reaching the API server, then one small module per
area (objects.py, nodes.py, exec.py). kubectl 1.36.3 is the one mise.toml pins."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from tests.world import clock, configs
from tests.world.flags import FlagError, parse
from tests.world.kube import cluster, exec, nodes, objects
from tests.world.kube.context import API_NAMES, Call, KubectlError, not_found, targets

State = dict[str, Any]

VERSION: Final = "v1.36.3"

FLAGS: Final = {
    "kubeconfig": ("string", None),
    "context": ("string", None),
    "namespace": ("string", "n"),
    "request-timeout": ("string", None),
    "all-namespaces": ("bool", "A"),
    "output": ("string", "o"),
    "selector": ("string", "l"),
    "ignore-not-found": ("bool", None),
    "timeout": ("duration", None),
    "for": ("array", None),
    "filename": ("array", "f"),
    "server-side": ("bool", None),
    "force-conflicts": ("bool", None),
    "field-manager": ("string", None),
    "dry-run": ("string", None),
    "container": ("string", "c"),
    "ignore-daemonsets": ("bool", None),
    "delete-emptydir-data": ("bool", None),
    "skip-wait-for-delete-timeout": ("int", None),
    "force": ("bool", None),
    "grace-period": ("int", None),
    "disable-eviction": ("bool", None),
    "pod-selector": ("string", None),
    "stdin": ("bool", "i"),
    "tty": ("bool", "t"),
    "watch": ("bool", "w"),
    "client": ("bool", None),
}


def kubeconfig_path(parsed_path: str | None, env: dict[str, str]) -> str:
    """--kubeconfig, else the first file of $KUBECONFIG, else ~/.kube/config (client-go
    tools/clientcmd loader.go `NewDefaultClientConfigLoadingRules`)."""
    if parsed_path:
        return parsed_path
    listed = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return listed[0]
    return str(Path(env.get("HOME", "/nonexistent")) / ".kube" / "config")


def run(state: State, argv: list[str], env: dict[str, str], stdin: str) -> tuple[int, str, str]:
    try:
        parsed = parse(argv, FLAGS)
    except FlagError as error:
        return 1, "", f"error: {error}\nSee 'kubectl --help' for usage.\n"
    call = Call(
        state=state, parsed=parsed, namespace=parsed.get("namespace") or "default", stdin=stdin
    )
    try:
        code = _dispatch(call, env)
    except KubectlError as failure:
        call.warn(str(failure))
        return 1, "".join(call.out), "".join(call.err)
    return code, "".join(call.out), "".join(call.err)


def _connect(call: Call, env: dict[str, str]) -> None:
    path = kubeconfig_path(call.flag("kubeconfig"), env)
    if not Path(path).is_file():
        if call.flag("kubeconfig"):
            raise KubectlError(f"error: stat {path}: no such file or directory")
        raise KubectlError(
            "The connection to the server localhost:8080 was refused - did you specify the "
            "right host or port?"
        )
    document = configs.load(call.state, Path(path).read_text()) or {}
    server, _, _ = cluster.credential_of(document)
    problem = cluster.api_problem(call.state, server) or cluster.auth_problem(call.state, document)
    if problem:
        raise KubectlError(problem)


def _dispatch(call: Call, env: dict[str, str]) -> int:
    words = call.parsed.args
    if not words:
        raise KubectlError("error: no command given")
    verb, args = words[0], words[1:]
    if verb == "version":
        call.say(f"Client Version: {VERSION}")
        return 0
    _connect(call, env)
    cluster.settle(call.state)
    if verb == "get":
        _get(call, args)
    elif verb == "delete":
        for kind, _, name in targets(args):
            if kind == "Node" and name:
                nodes.delete_node(call, name)
            else:
                objects.delete(call, args)
                break
    elif verb == "drain" and args:
        nodes.drain(call, args[0])
    elif verb in ("cordon", "uncordon") and args:
        nodes.cordon(call, args[0], unschedulable=verb == "cordon")
    elif verb == "apply":
        objects.apply(call)
    elif verb == "wait":
        wait(call, args)
    elif verb == "rollout" and args[:1] == ["status"]:
        objects.rollout_status(call, args[1:])
    elif verb == "exec":
        return exec.run(call, args)
    else:
        raise KubectlError(f'error: unknown command "{verb}" for "kubectl"')
    return 0


def _get(call: Call, args: list[str]) -> None:
    for kind, _, name in targets(args):
        if kind == "Node":
            nodes.get_nodes(call, name)
        elif kind == "Pod":
            nodes.get_pods(call, name)
        else:
            objects.get(call, args)
            return


def lookup(state: State, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    if kind == "Node":
        node = cluster.kube(state)["nodes"].get(name)
        return nodes.node_document(state, node) if node else None
    if kind == "Pod":
        pod = cluster.kube(state)["pods"].get(f"{namespace}/{name}")
        return nodes.pod_document(pod) if pod else None
    return objects.stored(state, kind, namespace, name)


def wait(call: Call, args: list[str]) -> None:
    """`kubectl wait` (kubernetes/kubectl@kubernetes-1.36.3: pkg/cmd/wait/wait.go
    `RunWaitContext`): `--for=create` polls until the object exists; any other condition reads
    the object first, so one that does not exist yet fails at once with NotFound; the condition
    is then watched until `--timeout` (30 s by default)."""
    conditions = list(call.flag("for") or [])
    timeout = call.flag("timeout")
    deadline = clock.now(call.state) + (30.0 if timeout is None else float(timeout))
    for kind, namespaced, name in targets(args):
        if name is None:
            raise KubectlError("error: resource name must be provided")
        _wait_for(call, deadline, conditions, kind, call.namespace if namespaced else "", name)


def _wait_for(
    call: Call, deadline: float, conditions: list[str], kind: str, namespace: str, name: str
) -> None:
    def exists() -> bool:
        return lookup(call.state, kind, namespace, name) is not None

    if any(c.lower() == "create" for c in conditions):
        _until(call, deadline, exists, "error: timed out waiting for the condition")
    for condition in conditions:
        if condition.lower() == "create":
            continue
        if not exists():
            raise KubectlError(not_found(kind, name))
        wanted = condition.partition("=")[2]

        def met(wanted: str = wanted) -> bool:
            return objects.condition_met(lookup(call.state, kind, namespace, name) or {}, wanted)

        resource = API_NAMES.get(kind, kind.lower())
        _until(
            call, deadline, met, f"error: timed out waiting for the condition on {resource}/{name}"
        )
        call.say(f"{kind.lower()}/{name} condition met")


def _until(call: Call, deadline: float, done: Callable[[], bool], message: str) -> None:
    while True:
        cluster.settle(call.state)
        if done():
            return
        step = cluster.next_change(call.state)
        target = deadline if step is None else min(step, deadline)
        if target <= clock.now(call.state):
            raise KubectlError(message)
        clock.advance(call.state, target - clock.now(call.state))
