"""The fake kubectl's rules (kubernetes/kubectl@kubernetes-1.36.3, the kubectl mise.toml pins,
unless said otherwise)."""

from __future__ import annotations

import json

import pytest

from tests.world.conftest import CONTROL_PLANES, WORKER, write
from tests.world.world import World

CP1, CP2, CP3 = list(CONTROL_PLANES)
(W1,) = list(WORKER)


def kubectl(world: World, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    config = write(world, "kubeconfig", world.kubeconfig())
    result = world.cli("kubectl", "--kubeconfig", config, *argv, stdin=stdin)
    return result.returncode, result.stdout, result.stderr


def pods_on(world: World, node: str) -> list[str]:
    return sorted(p["name"] for p in world.state["kube"]["pods"].values() if p["node"] == node)


def test_get_ignore_not_found_prints_nothing_for_a_missing_object(world: World) -> None:
    """pkg/cmd/get/get.go: `--ignore-not-found` turns NotFound into an empty answer."""
    assert kubectl(
        world, "get", "crd", "serviceaccounts.talos.dev", "--ignore-not-found", "-o", "json"
    ) == (0, "", "")
    code, _, err = kubectl(world, "get", "crd", "serviceaccounts.talos.dev", "-o", "json")
    assert code == 1
    assert err == (
        'Error from server (NotFound): customresourcedefinitions.apiextensions.k8s.io "serviceaccounts.talos.dev" not found\n'
    )


def test_wait_for_a_condition_of_a_missing_object_fails_at_once(world: World) -> None:
    """pkg/cmd/wait/wait.go `RunWaitContext`: a condition is read from the object, so a
    missing one is NotFound without waiting; only `--for=create` polls for it (kubectl >=
    1.31). A renamed machine's kubelet registers the new Node some seconds later."""
    with world.edit() as state:
        machine = state["talos"]["nodes"][W1]
        machine["hostname"] = "w-renamed"
        machine["kubelet_from"] = state["clock"] + 20
    start = world.now
    code, _, err = kubectl(
        world, "wait", "--for=condition=Ready", "node/w-renamed", "--timeout=600s"
    )
    assert code == 1
    assert err == 'Error from server (NotFound): nodes "w-renamed" not found\n'
    assert world.now == start
    code, _, err = kubectl(
        world, "wait", "--for=create", "--for=condition=Ready", "node/w-renamed", "--timeout=600s"
    )
    assert code == 0, err
    assert world.now - start == 20


def test_a_renamed_machine_leaves_its_old_node_not_ready(world: World) -> None:
    """The kubelet registers a Node under the machine's hostname; the old Node is never
    updated again and turns NotReady (kubernetes/kubernetes@v1.36.3:
    pkg/controller/nodelifecycle)."""
    with world.edit() as state:
        state["talos"]["nodes"][W1]["hostname"] = "w-renamed"
    world.settle()
    nodes = world.state["kube"]["nodes"]
    assert nodes["w-renamed"]["ready"] is True
    assert nodes["w-1"]["ready"] is False
    assert nodes["w-1"]["address"] == nodes["w-renamed"]["address"] == W1


def test_a_local_path_volume_keeps_its_pod_on_the_node_it_was_provisioned_on(world: World) -> None:
    """rancher/local-path-provisioner@v0.0.37 provisioner.go `provisionFor`: the PV is pinned
    by `kubernetes.io/hostname In [<node>]`; a pod of its claim can only go there, so after a
    rename (the old Node gone) it stays Pending."""
    world.deploy("apps", "grafana", claims=("grafana-data",))
    (pod,) = [p for p in world.state["kube"]["pods"].values() if p["namespace"] == "apps"]
    pinned = pod["node"]
    pv = next(
        o for k, o in world.state["kube"]["objects"].items() if k.startswith("PersistentVolume//")
    )
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][
        0
    ] == {
        "key": "kubernetes.io/hostname",
        "operator": "In",
        "values": [pinned],
    }
    address = world.state["kube"]["nodes"][pinned]["address"]
    with world.edit() as state:
        state["talos"]["nodes"][address]["hostname"] = pinned + "-renamed"
    assert kubectl(world, "delete", "node", pinned)[0] == 0
    world.settle()
    assert pinned + "-renamed" in world.state["kube"]["nodes"]
    (pod,) = [p for p in world.state["kube"]["pods"].values() if p["namespace"] == "apps"]
    assert (pod["node"], pod["phase"]) == (None, "Pending")


def test_drain_evicts_and_the_pods_come_back_elsewhere(world: World) -> None:
    """pkg/drain: cordon, evict what the filters let through, wait for each pod to go; the
    controllers create replacements the scheduler puts on the other Nodes."""
    world.deploy("apps", "web", replicas=2)
    victim = next(p for p in world.state["kube"]["pods"].values() if p["namespace"] == "apps")[
        "node"
    ]
    code, out, err = kubectl(
        world, "drain", victim, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=600s"
    )
    assert code == 0, err
    assert out.endswith(f"node/{victim} drained\n")
    assert not [p for p in pods_on(world, victim) if p.startswith("web")]
    assert len([p for p in world.state["kube"]["pods"].values() if p["namespace"] == "apps"]) == 2


def test_drain_refuses_what_its_flags_do_not_allow(world: World) -> None:
    """pkg/drain/filters.go: DaemonSet pods need `--ignore-daemonsets` (kube-proxy runs on
    every node), emptyDir pods need `--delete-emptydir-data`; the error names the pods."""
    code, _, err = kubectl(world, "drain", "w-1")
    assert code == 1
    assert (
        "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): kube-system/kube-proxy-w-1"
        in err
    )
    world.deploy("apps", "cache", emptydir=True)
    node = next(p for p in world.state["kube"]["pods"].values() if p["namespace"] == "apps")["node"]
    code, _, err = kubectl(world, "drain", node, "--ignore-daemonsets")
    assert code == 1
    assert (
        "cannot delete Pods with local storage (use --delete-emptydir-data to override): apps/cache-"
        in err
    )


def test_drain_of_a_dead_node_waits_for_pods_that_never_finish(world: World) -> None:
    """A dead kubelet never confirms a pod's end: it stays Terminating, and drain's wait runs
    until `--timeout` (pkg/drain/drain.go `evictPods`/`waitForDelete`: "error when waiting for
    pod ... to terminate"); `--skip-wait-for-delete-timeout=N` skips pods terminating for more
    than N seconds (filters.go `shouldSkipPod`)."""
    world.deploy("apps", "web")
    node = next(p for p in world.state["kube"]["pods"].values() if p["namespace"] == "apps")["node"]
    address = world.state["kube"]["nodes"][node]["address"]
    world.node_dies(address)
    start = world.now
    code, _, err = kubectl(
        world, "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=600s"
    )
    assert code == 1
    assert world.now - start == 600
    assert 'error when waiting for pod "web-' in err
    assert "to terminate: context deadline exceeded" in err
    code, _, err = kubectl(
        world,
        "drain",
        node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=600s",
        "--skip-wait-for-delete-timeout=30",
    )
    assert code == 0, err


def test_pods_of_an_unreachable_node_terminate_after_their_toleration(world: World) -> None:
    """kubernetes/kubernetes@v1.36.3 DefaultTolerationSeconds (300 s) and the taint eviction
    controller: the pods are deleted, stay Terminating on the dead kubelet, and a Deployment
    gets a replacement elsewhere."""
    world.deploy("apps", "web")
    old = next(p for p in world.state["kube"]["pods"].values() if p["namespace"] == "apps")
    world.node_dies(world.state["kube"]["nodes"][old["node"]]["address"])
    world.advance(299)
    assert world.state["kube"]["pods"][f"apps/{old['name']}"]["deletion"] is None
    world.advance(2)
    pods = [p for p in world.state["kube"]["pods"].values() if p["namespace"] == "apps"]
    assert {p["name"] for p in pods if p["deletion"] is not None} == {old["name"]}
    assert [p["phase"] for p in pods if p["deletion"] is None] == ["Running"]


def test_a_pod_disruption_budget_holds_the_eviction_until_the_timeout(world: World) -> None:
    """The eviction API answers 429 while the budget allows no disruption; drain retries until
    its global timeout (pkg/drain/drain.go `evictPods`: "global timeout reached")."""
    world.deploy("apps", "db", labels={"app": "db"})
    world.put_object(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "db"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}},
        },
        "apps",
    )
    node = next(p for p in world.state["kube"]["pods"].values() if p["namespace"] == "apps")["node"]
    code, _, err = kubectl(world, "drain", node, "--ignore-daemonsets", "--timeout=120s")
    assert code == 1
    assert "Cannot evict pod as it would violate the pod's disruption budget." in err
    assert 'error when evicting pods/"db-' in err
    assert "global timeout reached: 2m0s" in err


def test_a_webhook_that_is_not_serving_fails_a_dry_run_until_it_serves(world: World) -> None:
    """kube-apiserver calls validating webhooks on a server-side dry run; one with
    `failurePolicy: Fail` whose service does not answer fails the request ("failed calling
    webhook"), MetalLB's until its controller serves (metallb/metallb@v0.16.1:
    internal/k8s/k8s.go `startListeners`)."""
    world.put_object(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "ipaddresspools.metallb.io"},
            "spec": {"group": "metallb.io", "names": {"kind": "IPAddressPool"}},
        }
    )
    world.webhook(
        "ipaddresspoolvalidationwebhook.metallb.io",
        group="metallb.io",
        service="metallb-webhook-service.metallb-system",
        serving_in=30,
    )
    pool = json.dumps(
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "lan", "namespace": "metallb-system"},
        }
    )
    code, _, err = kubectl(world, "apply", "--dry-run=server", "-f", "-", stdin=pool)
    assert code == 1
    assert 'failed calling webhook "ipaddresspoolvalidationwebhook.metallb.io"' in err
    world.advance(30)
    code, out, _ = kubectl(world, "apply", "--dry-run=server", "-f", "-", stdin=pool)
    assert code == 0
    assert out == "ipaddresspool.metallb.io/lan configured (server dry run)\n"
    assert kubectl(world, "get", "ipaddresspool", "lan")[0] == 1  # nothing stored


def test_crds_applied_from_a_url_are_established(world: World) -> None:
    """`kubectl apply --server-side -f <url>` downloads the manifest; the API server marks a
    CRD Established once its names are accepted (kubernetes/kubernetes@v1.36.3 apiextensions
    establishing controller); an unknown URL is a 404."""
    url = "https://example.test/crds.yaml"
    world.serve_url(
        url,
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata: {name: middlewares.traefik.io}\nspec: {group: traefik.io, names: {kind: Middleware}}\n",
    )
    assert kubectl(world, "apply", "--server-side", "--force-conflicts", "-f", url)[0] == 0
    code, out, _ = kubectl(
        world, "wait", "--for=condition=Established", "--timeout=120s", "crd/middlewares.traefik.io"
    )
    assert code == 0
    assert "condition met" in out
    code, _, err = kubectl(
        world, "apply", "--server-side", "-f", "https://example.test/missing.yaml"
    )
    assert code == 1
    assert "server reported 404 Not Found" in err


def test_rollout_status_fails_after_the_progress_deadline(world: World) -> None:
    """pkg/polymorphichelpers/rollout_status.go: done when the replicas are available; a
    Deployment without progress for progressDeadlineSeconds (600) "exceeded its progress
    deadline"."""
    world.deploy_headscale()
    code, out, _ = kubectl(
        world, "rollout", "status", "deployment/headscale", "-n", "headscale", "--timeout=600s"
    )
    assert (code, out) == (0, 'deployment "headscale" successfully rolled out\n')
    with world.edit() as state:
        for pod in state["kube"]["pods"].values():
            if pod["namespace"] == "headscale":
                pod["crashing"] = True
                pod["ready"] = False
    code, _, err = kubectl(
        world, "rollout", "status", "deployment/headscale", "-n", "headscale", "--timeout=900s"
    )
    assert code == 1
    assert err == 'error: deployment "headscale" exceeded its progress deadline\n'


def test_exec_runs_the_program_in_the_container_and_reports_its_exit(world: World) -> None:
    """`kubectl exec deployment/x -c c -- cmd`: a pod of the workload, the program in the
    container; a failure ends with "command terminated with exit code N"
    (client-go tools/remotecommand/v4.go `errorDecoderV4`)."""
    world.deploy_headscale()
    code, out, _ = kubectl(
        world,
        "-n",
        "headscale",
        "exec",
        "deployment/headscale",
        "--container",
        "headscale",
        "--",
        "headscale",
        "users",
        "list",
        "-o",
        "json",
    )
    assert (code, out) == (0, "null\n")
    code, _, err = kubectl(
        world,
        "-n",
        "headscale",
        "exec",
        "deployment/headscale",
        "-c",
        "headscale",
        "--",
        "headscale",
        "users",
        "create",
    )
    assert code == 1
    assert err.endswith("command terminated with exit code 1\n")


def test_secrets_are_stored_as_base64_and_survive_a_pod_restart(world: World) -> None:
    world.deploy("tailscale", "subnet-router", containers=("tailscale",))
    world.put_object(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "state"},
            "stringData": {"k": "v"},
        },
        "tailscale",
    )
    pod = next(p for p in world.state["kube"]["pods"].values() if p["namespace"] == "tailscale")
    world.reschedule("tailscale", pod["name"])
    code, out, _ = kubectl(world, "-n", "tailscale", "get", "secret", "state", "-o", "json")
    assert code == 0
    assert json.loads(out)["data"] == {"k": "dg=="}


@pytest.mark.parametrize("flag", ["--ignore-daemonset", "--delete-local-data"])
def test_unknown_flags_are_refused(world: World, flag: str) -> None:
    code, _, err = kubectl(world, "drain", "w-1", flag)
    assert code == 1
    assert err.startswith(f"error: unknown flag: {flag}")
