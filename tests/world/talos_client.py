"""talosctl's client side: the talosconfig, endpoints, `--nodes`, and how errors come back."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from tests.world import configs, talos_model
from tests.world.talos_model import TalosError

State = dict[str, Any]

# The Service in front of the control planes' apid that a Talos ServiceAccount's talosconfig
# names (siderolabs/talos@v1.13.9: internal/app/machined/pkg/controllers/kubeaccess/
# serviceaccount/crd_controller.go `endpoint`, kubeaccess/endpoint.go).
TALOS_SERVICE: Final = "talos.default"

_ALL: Final = {"os:admin"}
_READ: Final = {"os:admin", "os:operator", "os:reader"}
# Who may call what (internal/app/machined/pkg/system/services/machined.go `rules`).
METHOD_ROLES: Final[dict[str, set[str]]] = {
    "/machine.MachineService/Version": _READ,
    "/cluster.ClusterService/HealthCheck": _READ,
    "/cosi.resource.State/List": _READ,
    "/machine.MachineService/EtcdMemberList": _READ | {"os:etcd:backup"},
    "/machine.MachineService/EtcdSnapshot": {"os:admin", "os:operator", "os:etcd:backup"},
    "/machine.MachineService/EtcdLeaveCluster": _ALL,
    "/machine.MachineService/EtcdRemoveMemberByID": _ALL,
    "/machine.MachineService/Reboot": {"os:admin", "os:operator"},
    "/machine.MachineService/Shutdown": {"os:admin", "os:operator"},
    "/machine.MachineService/Reset": _ALL,
    "/machine.MachineService/Kubeconfig": _ALL,
    "/machine.MachineService/Bootstrap": _ALL,
    "/machine.LifecycleService/Upgrade": _ALL,
    "/machine.ImageService/Pull": {"os:admin", "os:operator"},
}
NOT_AUTHORIZED: Final = "rpc error: code = PermissionDenied desc = not authorized"


class Call:
    """One talosctl call: its command path, flags, arguments and what it prints."""

    def __init__(
        self,
        *,
        state: State,
        path: tuple[str, ...],
        flags: dict[str, Any],
        args: list[str],
        env: dict[str, str],
    ) -> None:
        self.state, self.path, self.flags, self.args, self.env = state, path, flags, args, env
        self.out: list[str] = []
        self.err: list[str] = []
        self.crt = ""


def talosconfig_path(flag: str | None, env: dict[str, str]) -> Path:
    """--talosconfig, else $TALOSCONFIG, ~/.talos/config, then the path Talos mounts a
    ServiceAccount's talosconfig at (pkg/machinery/client/config/path.go `GetDefaultPaths`)."""
    if flag:
        return Path(flag)
    candidates = [
        *([Path(env["TALOSCONFIG"])] if "TALOSCONFIG" in env else []),
        Path(env.get("HOME", "/nonexistent")) / ".talos" / "config",
        Path("/var/run/secrets/talos.dev/config"),
    ]
    return next((p for p in candidates if p.is_file()), candidates[0])


def context_of(call: Call) -> dict[str, Any]:
    """The talosconfig context (pkg/machinery/client/client.go `resolveConfigContext`)."""
    path = talosconfig_path(call.flags.get("talosconfig"), call.env)
    document = (configs.load(call.state, path.read_text()) if path.is_file() else None) or {}
    contexts = document.get("contexts") or {}
    name = call.flags.get("context") or document.get("context") or ""
    if not contexts and not name:
        raise TalosError(
            "error constructing client: failed to resolve configuration context: talos config "
            "file is empty"
        )
    if name not in contexts:
        raise TalosError(
            "error constructing client: failed to resolve configuration context: default "
            f'context "{name}" not found in config'
        )
    found: dict[str, Any] = contexts[name]
    return found


def nodes_for(call: Call, context: dict[str, Any]) -> list[str]:
    """--nodes, else the context's `nodes` (cmd/talosctl/pkg/talos/global/client.go
    `getNodes`); WithClient and WithClientAndNodes stop here without any."""
    nodes: list[str] = list(call.flags.get("nodes") or context.get("nodes") or [])
    if not nodes:
        raise TalosError(
            "nodes are not set for the command: please use `--nodes` flag or configuration "
            "file to set the nodes to run the command against"
        )
    return nodes


def resolve(state: State, endpoints: list[str]) -> list[str]:
    """`talos.default` is a Service whose endpoints are the control planes whose kube-apiserver
    is up (siderolabs/talos@v1.13.9: internal/app/machined/pkg/controllers/kubeaccess/
    endpoint.go, from k8s.ControlPlaneAPIServerEndpointsID, the `kubernetes` EndpointSlice);
    the world expands it to the installed control planes' addresses."""
    found: list[str] = []
    for endpoint in endpoints:
        host = endpoint.split(":")[0]
        if host == TALOS_SERVICE or host.startswith(TALOS_SERVICE + "."):
            found += [
                m["address"]
                for m in talos_model.nodes(state).values()
                if m.get("role") == "controlplane" and m["state"] == "installed"
            ]
        else:
            found.append(host)
    return found


def secure(
    call: Call, prefix: str = "", *, with_nodes: bool = True
) -> tuple[talos_model.Node, list[str]]:
    """WithClient (`with_nodes`) or WithClientNoNodes: the nodes are resolved before any
    connection, then the call goes through a usable endpoint."""
    context = context_of(call)
    endpoints = list(call.flags.get("endpoints") or context.get("endpoints") or [])
    if not endpoints:
        raise TalosError("error constructing client: failed to determine endpoints")
    nodes = nodes_for(call, context) if with_nodes else []
    call.crt = str(context.get("crt", ""))
    via, problem = talos_model.pick_endpoint(
        call.state, resolve(call.state, endpoints), ca=str(context.get("ca", "")), crt=call.crt
    )
    if via is None:
        raise TalosError(f"{prefix}: {problem}" if prefix else str(problem))
    return via, nodes


def single(call: Call, command: str, prefix: str = "") -> tuple[talos_model.Node, str]:
    via, nodes = secure(call, prefix)
    if len(nodes) > 1:
        # cmd/talosctl/pkg/talos/helpers/checks.go `FailIfMultiNodes`.
        raise TalosError(f'command "{command}" is not supported with multiple nodes')
    return via, nodes[0]


def authorized(call: Call, method: str) -> bool:
    roles = set(talos_model.roles_of(call.state, call.crt))
    return bool(roles & METHOD_ROLES.get(method, _ALL))


def each_node(
    call: Call, via: talos_model.Node, nodes: list[str], method: str
) -> tuple[list[tuple[str, talos_model.Node]], list[tuple[str, str]]]:
    """One request to every `--nodes` target through the endpoint's apid (one-to-many proxying,
    internal/app/apid/pkg/director/director.go `aggregateDirector`): each target answers or
    contributes an error tagged with its name; roles travel with the request and the target's
    machined authorizes them."""
    answers: list[tuple[str, talos_model.Node]] = []
    errors: list[tuple[str, str]] = []
    for node in nodes:
        machine, problem = talos_model.forward(call.state, via, node)
        if machine is None:
            errors.append((node, problem or ""))
        elif not authorized(call, method):
            errors.append((node, NOT_AUTHORIZED))
        else:
            answers.append((node, machine))
    return answers, errors


def one_node(call: Call, via: talos_model.Node, node: str, method: str) -> talos_model.Node:
    """`each_node` for one target, its error raised as talosctl prints it."""
    answers, errors = each_node(call, via, [node], method)
    if errors:
        raise TalosError(multierror(errors))
    return answers[0][1]


def multierror(errors: list[tuple[str, str]]) -> str:
    """hashicorp/go-multierror's list format of NodeErrors ("<node>: <error>";
    pkg/machinery/client/reply.go `NodeError`)."""
    head = "1 error occurred:" if len(errors) == 1 else f"{len(errors)} errors occurred:"
    return head + "".join(f"\n\t* {node}: {error}" for node, error in errors) + "\n\n"


def connect_insecure_any(state: State, nodes: list[str]) -> tuple[talos_model.Node | None, str]:
    """The maintenance client dials the `--nodes` as its endpoints (global/client.go
    `WithClientMaintenance`), any usable one answering."""
    last = "no endpoints"
    for node in nodes:
        machine, problem = talos_model.connect_insecure(state, node)
        if machine is not None:
            return machine, ""
        last = problem or last
    return None, last
