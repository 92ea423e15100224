"""talosctl's commands against the machines (siderolabs/talos@v1.13.9 unless said otherwise;
`cmd/` is cmd/talosctl/cmd/talos/, `machined` is
internal/app/machined/internal/server/v1alpha1/v1alpha1_server.go)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

from tests.world import clock, configs, etcd, talos_etcd, talos_model
from tests.world.flags import Parsed
from tests.world.kube import cluster
from tests.world.kube import nodes as kube_nodes
from tests.world.kube.context import Call as KubeCall
from tests.world.kube.context import KubectlError
from tests.world.talos_client import (
    Call,
    connect_insecure_any,
    each_node,
    multierror,
    one_node,
    secure,
    single,
)
from tests.world.talos_model import TalosError

State = dict[str, Any]

# upgrade-k8s: a rough time per node (images pulled, static pods replaced, kubelet restarted).
K8S_UPGRADE_SECONDS_PER_NODE: Final = 60.0


def settle(state: State) -> None:
    cluster.settle(state)


# --- health ------------------------------------------------------------------------------------


def _go_list(items: list[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(f'"{i}"' for i in items) + "]"


def health_problem(
    state: State, via: talos_model.Node, control_planes: list[str], workers: list[str]
) -> tuple[list[str], str, str] | None:
    """The first failing check of pkg/cluster/check/default.go `DefaultClusterChecks`, run from
    `via`: (the checks that passed, the failing check, its error), or None when all pass."""
    passed: list[str] = []
    everyone = [*control_planes, *workers]

    def reach(address: str) -> str | None:
        machine, problem = talos_model.forward(state, via, address)
        if machine is None:
            return problem
        if machine["state"] != "installed":
            return "machine is not running"
        return None

    etcd_errors = []
    for address in control_planes:
        problem = reach(address)
        machine = talos_model.node_at(state, address)
        member = etcd.member_of(state, machine) if machine else None
        if problem is None and (member is None or not etcd.alive(state, member)):
            problem = 'service "etcd" not in expected state "Running"'
        if problem is None and not etcd.has_quorum(state):
            problem = "etcdserver: request timed out"
        if problem:
            etcd_errors.append((address, problem))
    if etcd_errors:
        return passed, "etcd to be healthy", multierror(etcd_errors).strip()
    passed += ["etcd to be healthy", "etcd members to be consistent across nodes"]
    member_ips = sorted({m["address"] for m in etcd.members(state)})
    if not set(member_ips) <= set(control_planes):
        return (
            passed,
            "etcd members to be control plane nodes",
            f"etcd member ips {_go_list(member_ips)} are not subset of control plane node ips "
            f"{_go_list(sorted(control_planes))}",
        )
    passed.append("etcd members to be control plane nodes")
    unreachable = [(a, p) for a in everyone if (p := reach(a))]
    if unreachable:
        return passed, "apid to be ready", multierror(unreachable).strip()
    passed += [
        "apid to be ready",
        "all nodes memory sizes",
        "all nodes disk sizes",
        "no diagnostics",
        "kubelet to be healthy",
        "all nodes to finish boot sequence",
    ]
    k8s_nodes = cluster.kube(state)["nodes"]
    # pkg/cluster/cluster.go `NodesMatch`: every expected IP among the Nodes, no other Node.
    actual = sorted(n["address"] for n in k8s_nodes.values())
    for address in everyone:
        if address not in actual:
            return (
                passed,
                "all k8s nodes to report",
                f'can\'t find expected node with IPs ["{address}"]',
            )
        actual.remove(address)
    if actual:
        return passed, "all k8s nodes to report", f"unexpected nodes with IPs {_go_list(actual)}"
    passed += [
        "all k8s nodes to report",
        "all control plane static pods to be running",
        "all control plane components to be ready",
    ]
    not_ready = sorted(n for n, node in k8s_nodes.items() if not node["ready"])
    if not_ready:
        return (
            passed,
            "all k8s nodes to report ready",
            f"some nodes are not ready: [{' '.join(not_ready)}]",
        )
    passed += [
        "all k8s nodes to report ready",
        "kube-proxy to report ready",
        "coredns to report ready",
    ]
    cordoned = sorted(n for n, node in k8s_nodes.items() if node["unschedulable"])[:1]
    if cordoned:
        # pkg/cluster/check/kubernetes.go `K8sAllNodesSchedulableAssertion` stops at the first.
        return (
            passed,
            "all k8s nodes to report schedulable",
            f"some nodes are not schedulable: [{cordoned[0]}]",
        )
    return None


def health(call: Call) -> None:
    """cmd/health.go: server-side by default (WithClient, one node, which must be a control
    plane: machinehelper.go `CheckControlplane`), or client-side (`--server=false`,
    WithClientNoNodes). Either polls the checks until `--wait-timeout`."""
    state = call.state
    if call.flags.get("server"):
        via, node = single(call, "health")
        # A streamed one-to-many reply: a target's failure arrives as the message's error.
        answers, errors = each_node(call, via, [node], "/cluster.ClusterService/HealthCheck")
        if errors:
            raise TalosError(f"healthcheck error: {errors[0][1]}")
        target = answers[0][1]
        if target.get("role") != "controlplane":
            raise TalosError(
                "healthcheck error: rpc error: code = Unimplemented desc = cluster health check "
                "is only available on control plane nodes"
            )
        via = target
    else:
        via, _ = secure(call, with_nodes=False)
    control_planes = list(call.flags.get("control-plane-nodes") or [])
    workers = list(call.flags.get("worker-nodes") or [])
    if not control_planes and not workers:
        for machine in talos_model.nodes(state).values():
            if machine.get("role") == "controlplane":
                control_planes.append(machine["address"])
            elif machine.get("role"):
                workers.append(machine["address"])
    call.err.append(f"discovered nodes: {_go_list([*control_planes, *workers])}\n")
    deadline = clock.now(state) + float(call.flags["wait-timeout"])
    while True:
        settle(state)
        problem = health_problem(state, via, control_planes, workers)
        if problem is None:
            call.err.append("waiting for all k8s nodes to report schedulable: OK\n")
            return
        step = cluster.next_change(state)
        if step is None or step > deadline:
            passed, check, error = problem
            for name in passed:
                call.err.append(f"waiting for {name}: OK\n")
            call.err.append(f"waiting for {check}: {error}\n")
            clock.advance(state, deadline - clock.now(state))
            if call.flags.get("server"):
                raise TalosError(
                    "healthcheck error: rpc error: code = DeadlineExceeded desc = context "
                    "deadline exceeded"
                )
            raise TalosError("context deadline exceeded")
        clock.advance(state, step - clock.now(state))


# --- upgrade, reboot, reset, shutdown -------------------------------------------------------------


def _drain(call: Call, machine: talos_model.Node, timeout: float) -> str:
    """talosctl drains the Kubernetes node with kubectl's drain helper: Force,
    IgnoreAllDaemonSets, DeleteEmptyDirData, its own timeout (5 minutes by default), no
    skip-wait (cmd/talosctl/pkg/talos/nodedrain/nodedrain.go `CordonAndDrain`)."""
    name = str(machine["hostname"])
    flags = {
        "ignore-daemonsets": True,
        "delete-emptydir-data": True,
        "force": True,
        "timeout": timeout,
    }
    kube_call = KubeCall(state=call.state, parsed=Parsed(flags=flags), namespace="default")
    try:
        kube_nodes.drain(kube_call, name)
    except KubectlError as failure:
        raise TalosError(
            f'error draining node "{name}": {str(failure).removeprefix("error: ")}'
        ) from None
    return name


def _uncordon(call: Call, name: str) -> None:
    node = cluster.kube(call.state)["nodes"].get(name)
    if node is not None:
        node["unschedulable"] = False


def _wait_back(call: Call, machines: list[talos_model.Node], prefix: str) -> None:
    """`--wait` tracks the reboot until the node is back with a new boot ID, within `--timeout`
    (cmd/reboot.go `rebootInternal`)."""
    deadline = clock.now(call.state) + float(call.flags["timeout"])
    for machine in machines:
        back = machine.get("back_at")
        if back is None or back > deadline:
            clock.advance(call.state, deadline - clock.now(call.state))
            raise TalosError(f"{prefix}: timeout")
        clock.advance(call.state, float(back) - clock.now(call.state))
        settle(call.state)


def upgrade(call: Call) -> None:
    """cmd/upgrade.go `upgradeViaLifecycleService` (nodes >= v1.13.0-alpha.2): check the
    version of every node, pull the image, run the installer in upgrade mode
    (internal/app/lifecycle/lifecycle.go `Upgrade`: "machine is not installed" otherwise),
    drain (`--drain`, default true), reboot and with `--wait` track it; nothing checks etcd
    here. The new image runs from the next boot."""
    via, nodes = secure(call, "error checking Talos version compatibility")
    image = str(call.flags.get("image") or "")
    answers, errors = each_node(call, via, nodes, "/machine.MachineService/Version")
    if errors:
        raise TalosError(f"error checking Talos version compatibility: {multierror(errors)}")
    machines = [machine for _, machine in answers]
    for node in nodes:
        try:
            one_node(call, via, node, "/machine.ImageService/Pull")
        except TalosError as error:
            raise TalosError(f"error pulling upgrade image: {error}") from None
        if image in talos_model.talos(call.state).get("missing_images", []):
            raise TalosError(
                f"error pulling upgrade image: 1 error occurred:\n\t* {node}: rpc error: code = "
                f'NotFound desc = failed to pull image "{image}": not found\n\n'
            )
    for node, machine in zip(nodes, machines, strict=True):
        one_node(call, via, node, "/machine.LifecycleService/Upgrade")
        if machine["state"] != "installed":
            raise TalosError(
                "error during upgrade: rpc error: code = FailedPrecondition desc = machine is not "
                "installed"
            )
        machine["staged_image"] = image
    clock.advance(call.state, talos_model.INSTALL_SECONDS)
    drained: list[str] = []
    if call.flags.get("drain", True) and not call.flags.get("no-reboot"):
        drained = [_drain(call, m, float(call.flags["drain-timeout"])) for m in machines]
    if not call.flags.get("no-reboot"):
        for machine in machines:
            talos_model.reboot(call.state, machine)
        if call.flags.get("wait"):
            _wait_back(call, machines, "error during upgrade")
    for name in drained:
        _uncordon(call, name)


def reboot(call: Call) -> None:
    via, nodes = secure(call, "error executing reboot")
    machines = [one_node(call, via, n, "/machine.MachineService/Reboot") for n in nodes]
    drained = (
        [_drain(call, m, float(call.flags["drain-timeout"])) for m in machines]
        if call.flags.get("drain")
        else []
    )
    for machine in machines:
        talos_model.reboot(call.state, machine)
    if call.flags.get("wait") or call.flags.get("drain"):
        _wait_back(call, machines, "error executing reboot")
    for name in drained:
        _uncordon(call, name)


def reset(call: Call) -> None:
    """machined `Reset`: a graceful reset of a control plane leaves etcd first (with etcd's
    own check); `--system-labels-to-wipe` chooses the partitions, none means the whole system
    disk (talos_model.reset)."""
    via, nodes = secure(call, "error executing reset")
    for node in nodes:
        machine = one_node(call, via, node, "/machine.MachineService/Reset")
        if call.flags.get("graceful") and machine.get("role") == "controlplane":
            member = etcd.member_of(call.state, machine)
            if member is not None:
                problem = etcd.remove(call.state, member["id"], member)
                if problem:
                    raise TalosError(
                        multierror(
                            [
                                (
                                    node,
                                    f"rpc error: code = Unknown desc = failed to leave etcd: {problem}",
                                )
                            ]
                        )
                    )
        talos_model.reset(
            call.state,
            machine,
            labels=list(call.flags.get("system-labels-to-wipe") or []),
            reboot_after=bool(call.flags.get("reboot")),
        )


def shutdown(call: Call) -> None:
    via, nodes = secure(call, "error executing shutdown")
    for node in nodes:
        machine = one_node(call, via, node, "/machine.MachineService/Shutdown")
        machine.update(state="off", back_at=None)


# --- Kubernetes ----------------------------------------------------------------------------------


def kubeconfig(call: Call) -> None:
    """cmd/kubeconfig.go: an admin kubeconfig from a control plane, for the cluster endpoint;
    `--merge=false` writes a new file with mode 0600, refused without `--force` when it exists."""
    via, node = single(call, "kubeconfig", "error copying")
    machine = one_node(call, via, node, "/machine.MachineService/Kubeconfig")
    if machine.get("role") != "controlplane":
        raise TalosError(
            "error copying: 1 error occurred:\n\t* "
            f"{node}: rpc error: code = Unimplemented desc = kubeconfig is only available on control plane nodes\n\n"
        )
    path = Path(call.args[0] if call.args else Path.cwd())
    if path.is_dir():
        path = path / "kubeconfig"
    if path.exists() and not call.flags.get("force"):
        raise TalosError(f'kubeconfig file already exists, use --force to overwrite: "{path}"')
    endpoint = (
        talos_model.talos(call.state).get("cluster", {}).get("endpoint", f"https://{node}:6443")
    )
    document = cluster.issue_kubeconfig(call.state, str(endpoint))
    previous = os.umask(0o077)
    try:
        # JSON is YAML: what kubectl reads, without PyYAML in this process.
        text = json.dumps(document, indent=2, sort_keys=True)
        configs.remember(call.state, text, document)
        path.write_text(text)
        path.chmod(0o600)
    finally:
        os.umask(previous)


def upgrade_k8s(call: Call) -> None:
    """cmd/upgrade-k8s.go through one control plane (`FailIfMultiNodes`): it lists the Nodes
    and patches every node's machine config through the Talos API
    (pkg/cluster/kubernetes/talos_managed.go `Upgrade`, patch.go `patchNodeConfig`), so every
    Node must be reachable."""
    via, node = single(call, "upgrade-k8s")
    one_node(call, via, node, "/machine.MachineService/Kubeconfig")
    target = str(call.flags.get("to") or "")
    endpoint = (
        talos_model.talos(call.state).get("cluster", {}).get("endpoint", f"https://{node}:6443")
    )
    problem = cluster.api_problem(call.state, str(endpoint))
    if problem:
        raise TalosError(f"error building kubernetes client: {problem}")
    k8s_nodes = cluster.kube(call.state)["nodes"]
    for name in sorted(k8s_nodes):
        address = k8s_nodes[name]["address"]
        machine, unreachable = talos_model.forward(call.state, via, address)
        if machine is None:
            raise TalosError(f"error updating node {address!r}: {unreachable}")
    cluster_section = talos_model.talos(call.state).setdefault("cluster", {})
    call.err.append(
        f"automatically detected the lower Kubernetes version {cluster_section.get('kubernetes_version')}\n"
    )
    cluster_section["kubernetes_version"] = target
    for node_state in k8s_nodes.values():
        node_state["kubelet_version"] = target
    clock.advance(call.state, K8S_UPGRADE_SECONDS_PER_NODE * max(1, len(k8s_nodes)))


def bootstrap(call: Call) -> None:
    """cmd/bootstrap.go: with `--recover-from` the snapshot file is checked and uploaded first
    (`EtcdRecover`), then machined's `Bootstrap` starts etcd from it (RecoverEtcd); it refuses a
    node whose etcd data directory is not empty (v1alpha1_server.go `Bootstrap`). A recovered
    etcd holds what the snapshot held (tests/world/talos_etcd.py `etcd_snapshot`)."""
    via, node = single(call, "bootstrap")
    machine = one_node(call, via, node, "/machine.MachineService/Bootstrap")
    recover_from = str(call.flags.get("recover-from") or "")
    held = None
    if recover_from:
        held = talos_etcd.snapshot_content(call.state, Path(recover_from))
        call.out.append(f'recovering from snapshot "{recover_from}": hash 0000beef\n')
    problem = etcd.bootstrap(call.state, machine)
    if problem:
        raise TalosError(f"error executing bootstrap: {problem}")
    talos_model.talos(call.state)["cluster"]["api_from"] = (
        clock.now(call.state) + cluster.APISERVER_START_SECONDS
    )
    if held is not None:
        cluster.restore(call.state, held)


# --- resources -------------------------------------------------------------------------------------


def _resources(state: State, machine: talos_model.Node, kind: str) -> list[dict[str, Any]]:
    if kind in ("disks", "disk"):
        return [
            {
                "metadata": {
                    "namespace": "runtime",
                    "type": "Disks.block.talos.dev",
                    "id": d["dev_path"].rpartition("/")[2],
                },
                "spec": {"dev_path": d["dev_path"], "size": d["size"]},
            }
            for d in machine.get("disks", [])
        ]
    if kind in ("extensions", "extensionstatuses", "extensionstatus"):
        return [
            {
                "metadata": {
                    "namespace": "runtime",
                    "type": "ExtensionStatuses.runtime.talos.dev",
                    "id": str(i),
                },
                "spec": {
                    "image": f"{e['name']}.sqsh",
                    "metadata": {"name": e["name"], "version": e["version"]},
                },
            }
            for i, e in enumerate(talos_model.extensions(state, machine))
        ]
    if kind in ("machineconfig", "machineconfigs", "mc"):
        return _machine_configs(machine)
    raise TalosError(f'resource "{kind}" is not registered')


def _machine_configs(machine: talos_model.Node) -> list[dict[str, Any]]:
    """MachineConfigs.config.talos.dev: `v1alpha1` the active config, `persistent` the one saved
    to STATE when it was set apart from the active one since boot (a `staged` apply puts it
    ahead: pkg/machinery/resources/config/machine_config.go `PersistentID`). The spec is the
    config as a YAML string (`v1alpha1Spec.MarshalYAML`); here, the world's summary as JSON
    (JSON is YAML)."""
    found = []
    for resource_id, config in (
        ("v1alpha1", machine.get("config")),
        ("persistent", machine.get("persistent_config")),
    ):
        if config is None:
            continue
        found.append(
            {
                "metadata": {
                    "namespace": "config",
                    "type": "MachineConfigs.config.talos.dev",
                    "id": resource_id,
                    "annotations": {"talos.dev/yaml-spec": "1"},
                },
                "spec": json.dumps(config, sort_keys=True) + "\n",
            }
        )
    return found


def get(call: Call) -> None:
    """cmd/get.go: `-o json` prints each resource as an indented JSON object with its node
    (cmd/talosctl/cmd/talos/output/json.go `WriteResource`)."""
    kind = call.args[0] if call.args else ""
    if call.flags.get("insecure"):
        machine, problem = connect_insecure_any(call.state, list(call.flags.get("nodes") or []))
        if machine is None:
            raise TalosError(problem)
        found = [("", machine)]
    else:
        via, nodes = secure(call)
        found, errors = each_node(call, via, nodes, "/cosi.resource.State/List")
        if errors:
            call.err.append(multierror(errors))
    for node, machine in found:
        for resource in _resources(call.state, machine, kind):
            if call.flags.get("output") == "json":
                call.out.append(json.dumps({**resource, "node": node}, indent=4) + "\n")
            else:
                call.out.append(
                    f"{node}   {resource['metadata']['namespace']}   {resource['metadata']['type']}   {resource['metadata']['id']}\n"
                )
