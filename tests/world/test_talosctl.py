"""The fake talosctl's rules, each against the upstream code it models (siderolabs/talos@v1.13.9
unless said otherwise)."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.world.conftest import CONTROL_PLANES, VIP, WORKER, write
from tests.world.world import World

CP1, CP2, CP3 = list(CONTROL_PLANES)
(W1,) = list(WORKER)
ALL_CPS = ",".join(CONTROL_PLANES)


def talosctl(
    world: World,
    *argv: str,
    endpoints: tuple[str, ...] = (CP1, CP2, CP3),
    nodes: tuple[str, ...] = (),
) -> tuple[int, str, str]:
    config = write(world, "talosconfig", world.talosconfig(list(endpoints), list(nodes)))
    result = world.cli("talosctl", "--talosconfig", config, *argv)
    return result.returncode, result.stdout, result.stderr


def test_version_prints_the_client_block_then_server_then_each_node(world: World) -> None:
    """cmd/talosctl/cmd/talos/version.go `versionCmd`/`cmdVersion` with
    pkg/machinery/version/version.go `versionTemplate`: "Client:", the client's block,
    "Server:", then per node "\\tNODE:" and its block, whose first line is the Tag."""
    code, out, _ = talosctl(world, "--nodes", CP2, "version")
    assert code == 0
    client, server = out.split("Server:\n")
    assert client.startswith("Client:\n\tTag:         v1.13.9\n")
    assert server.splitlines()[:2] == [f"\tNODE:        {CP2}", "\tTag:         v1.13.9"]
    code, out, _ = talosctl(world, "version", "--client", "--short")
    assert (code, out) == (0, "Client:\nTalos v1.13.9\n")


def test_tls_is_decided_by_the_endpoint_not_by_the_target(world: World) -> None:
    """pkg/machinery/client/connection.go `buildTLSConfig`: the talosconfig's CA verifies the
    ENDPOINT's certificate; a machine in maintenance mode presents a self-signed one. So an
    installed target behind a maintenance endpoint is out of reach, and a maintenance target
    behind an installed endpoint fails in the endpoint's apid, which verifies it with the
    cluster CA (internal/app/apid/pkg/backend/apid.go `GetConnection`)."""
    world.add_machine("10.0.0.14")
    code, _, err = talosctl(world, "--nodes", CP1, "version", endpoints=("10.0.0.14",))
    assert code == 1
    assert "x509: certificate signed by unknown authority" in err
    assert err.startswith("error getting version: rpc error: code = Unavailable")
    code, _, err = talosctl(world, "--nodes", "10.0.0.14", "version", endpoints=(CP1,))
    assert code == 1
    assert err.startswith("error getting version: 1 error occurred:\n\t* 10.0.0.14: ")
    assert "certificate signed by unknown authority" in err


def test_one_usable_endpoint_among_several_is_enough(world: World) -> None:
    """pkg/machinery/client/resolver/roundrobin.go and connection.go `getTarget`: several
    endpoints use gRPC's round_robin, which sends calls over any READY connection."""
    world.add_machine("10.0.0.14")
    world.node_dies(CP2)
    code, _, _ = talosctl(world, "--nodes", CP3, "version", endpoints=("10.0.0.14", CP2, CP1))
    assert code == 0
    code, _, err = talosctl(world, "--nodes", CP3, "version", endpoints=("10.0.0.14", CP2))
    assert code == 1
    assert "no route to host" in err  # the last endpoint's error


def test_the_maintenance_api_answers_insecure_calls_only(fresh: World, world: World) -> None:
    """global/client.go `WithClientMaintenance`: InsecureSkipVerify, no client certificate,
    the `--nodes` as endpoints. A machine in maintenance answers it (api_service_config.go:
    SkipVerifyingClientCert); an installed one requires a client certificate."""
    result = fresh.cli("talosctl", "--endpoints", CP1, "--nodes", CP1, "version", "--insecure")
    assert result.returncode == 0
    assert f"\tNODE:        {CP1}\n\tTag:         v1.13.9\n" in result.stdout
    result = world.cli("talosctl", "--endpoints", CP1, "--nodes", CP1, "version", "--insecure")
    assert result.returncode == 1
    assert "tls: certificate required" in result.stderr
    disks = fresh.cli("talosctl", "--nodes", CP1, "get", "disks", "--insecure", "-o", "json")
    assert disks.returncode == 0
    assert '"dev_path": "/dev/nvme0n1"' in disks.stdout


def test_a_talosconfig_without_nodes_needs_nodes_on_the_command_line(world: World) -> None:
    """global/client.go `getNodes`: no `--nodes` and none in the context stops WithClient with
    "nodes are not set for the command"; talosctl then prints the usage (cmd/root.go `Execute`:
    the message mentions a "command")."""
    code, _, err = talosctl(world, "etcd", "members")
    assert code == 1
    assert err.startswith("nodes are not set for the command: please use `--nodes` flag")
    assert "Usage:" in err
    code, out, _ = talosctl(world, "etcd", "members", nodes=(CP1,))
    assert code == 0
    assert out.startswith("NODE")


def test_a_service_account_talosconfig_reaches_talos_default_but_needs_nodes(world: World) -> None:
    """kubeaccess/serviceaccount/crd_controller.go: the talosconfig Talos writes for a
    `talos.dev` ServiceAccount has the endpoint `talos.default` and no nodes; the role
    os:etcd:backup may take snapshots (internal/app/machined/pkg/system/services/machined.go
    `rules`: EtcdSnapshot) and nothing that changes a machine."""
    config = write(world, "sa", world.service_account_talosconfig())
    env = {"TALOSCONFIG": config}
    target = str(world.tmp / "etcd.db")
    refused = world.cli("talosctl", "etcd", "snapshot", target, env=env)
    assert refused.returncode == 1
    assert "nodes are not set for the command" in refused.stderr
    taken = world.cli("talosctl", "--nodes", CP2, "etcd", "snapshot", target, env=env)
    assert taken.returncode == 0, taken.stderr
    assert f'etcd snapshot saved to "{target}"' in taken.stdout
    assert Path(target).stat().st_size % 512 == 32  # cmd/etcd.go: the SHA-256 check
    reboot = world.cli("talosctl", "--nodes", CP2, "reboot", env=env)
    assert reboot.returncode == 1
    assert "PermissionDenied desc = not authorized" in reboot.stderr


def test_server_side_health_runs_on_one_control_plane_only(world: World) -> None:
    """cmd/health.go `healthOnServer` (`FailIfMultiNodes`) and machinehelper.go
    `CheckControlplane`: a worker refuses the server-side check."""
    code, _, err = talosctl(world, "--nodes", W1, "health", "--wait-timeout", "30s")
    assert code == 1
    assert "cluster health check is only available on control plane nodes" in err
    code, _, err = talosctl(world, "--nodes", f"{CP1},{CP2}", "health")
    assert code == 1
    assert 'command "health" is not supported with multiple nodes' in err
    code, _, err = talosctl(
        world, "--nodes", CP1, "health", "--control-plane-nodes", ALL_CPS, "--worker-nodes", W1
    )
    assert code == 0, err


def test_health_waits_on_the_clock_and_fails_after_its_timeout(world: World) -> None:
    """check.go `Wait` polls every check until `--wait-timeout`; a rebooting machine that is
    back in time passes, a dead one fails when the time is up."""
    world.cli(
        "talosctl",
        "--talosconfig",
        write(world, "tc", world.talosconfig([CP1])),
        "--nodes",
        CP2,
        "reboot",
        "--wait=false",
    )
    start = world.now
    code, _, err = talosctl(
        world,
        "--nodes",
        CP1,
        "health",
        "--control-plane-nodes",
        ALL_CPS,
        "--worker-nodes",
        W1,
        "--wait-timeout",
        "600s",
        endpoints=(CP1,),
    )
    assert code == 0, err
    assert 0 < world.now - start < 600
    world.node_dies(W1)
    start = world.now
    code, _, err = talosctl(
        world,
        "--nodes",
        CP1,
        "health",
        "--control-plane-nodes",
        ALL_CPS,
        "--worker-nodes",
        W1,
        "--wait-timeout",
        "600s",
        endpoints=(CP1,),
    )
    assert code == 1
    assert world.now - start == 600
    assert f"waiting for apid to be ready: 1 error occurred:\n\t* {W1}" in err
    assert err.endswith(
        "healthcheck error: rpc error: code = DeadlineExceeded desc = context deadline exceeded\n"
    )


def test_health_sees_every_node_kubernetes_has(world: World) -> None:
    """pkg/cluster/cluster.go `NodesMatch`: a Node not in the list fails "all k8s nodes to
    report" (a renamed machine leaves its old Node behind); a cordoned one fails "all k8s
    nodes to report schedulable" (check/kubernetes.go `K8sAllNodesSchedulableAssertion`)."""
    code, _, err = talosctl(
        world, "--nodes", CP1, "health", "--control-plane-nodes", ALL_CPS, "--wait-timeout", "60s"
    )
    assert code == 1
    assert f'unexpected nodes with IPs ["{W1}"]' in err
    kubeconfig = write(world, "kc", world.kubeconfig())
    assert world.cli("kubectl", "--kubeconfig", kubeconfig, "cordon", "w-1").returncode == 0
    code, _, err = talosctl(
        world,
        "--nodes",
        CP1,
        "health",
        "--control-plane-nodes",
        ALL_CPS,
        "--worker-nodes",
        W1,
        "--wait-timeout",
        "60s",
    )
    assert code == 1
    assert "some nodes are not schedulable: [w-1]" in err


def test_upgrade_stages_the_image_reboots_and_comes_back_on_it(world: World) -> None:
    """cmd/upgrade.go `upgradeViaLifecycleService`: the installer runs in upgrade mode
    (internal/app/lifecycle/lifecycle.go `Upgrade`), the node is drained and rebooted, and
    `--wait` tracks it back (cmd/reboot.go `rebootInternal`); it then runs the new version.
    Nothing checks etcd on this path."""
    image = "ghcr.io/siderolabs/installer:v1.13.10"
    code, _, err = talosctl(
        world, "--nodes", CP2, "upgrade", "--image", image, "--wait", endpoints=(CP1,)
    )
    assert code == 0, err
    assert world.machine(CP2)["version"] == "v1.13.10"
    assert world.machine(CP2)["image"] == image
    assert world.state["kube"]["nodes"]["cp-2"]["unschedulable"] is False  # uncordoned after
    world.node_dies(CP3)
    code, _, err = talosctl(world, "--nodes", CP3, "upgrade", "--image", image, endpoints=(CP1,))
    assert code == 1
    assert err.startswith(
        "error checking Talos version compatibility: 1 error occurred:\n\t* 10.0.0.13:"
    )


def test_get_extensions_tells_the_schematic_a_machine_runs(world: World) -> None:
    """`talosctl get extensions` lists what the running image carries; an Image Factory image
    carries the virtual `schematic` extension whose version is the schematic ID
    (siderolabs/image-factory@v1.5.0: internal/artifacts/schematic.go `schematicExtension`),
    a plain installer none."""
    world.register_schematic("abc123", [{"name": "iscsi-tools", "version": "v0.2.0"}])
    code, _, err = talosctl(
        world,
        "--nodes",
        CP1,
        "upgrade",
        "--image",
        "factory.talos.dev/installer/abc123:v1.13.9",
        endpoints=(CP2,),
    )
    assert code == 0, err
    code, out, _ = talosctl(world, "--nodes", CP1, "get", "extensions", "-o", "json")
    assert code == 0
    assert '"name": "iscsi-tools"' in out
    assert '"name": "schematic",\n            "version": "abc123"' in out
    code, out, _ = talosctl(world, "--nodes", CP2, "get", "extensions", "-o", "json")
    assert (code, out) == (0, "")


def test_reset_without_labels_wipes_the_system_disk_and_with_them_returns_to_maintenance(
    world: World,
) -> None:
    """internal/app/machined/internal/server/v1alpha1/v1alpha1_server.go `Reset`: no
    SystemPartitionsToWipe wipes the whole system disk (nothing is left to boot); STATE and
    EPHEMERAL leave the installed image, which boots into maintenance mode."""
    code, _, err = talosctl(
        world, "--nodes", W1, "reset", "--graceful=false", "--reboot", "--wait=false"
    )
    assert code == 0, err
    world.advance(600)
    assert world.machine(W1)["state"] == "wiped"
    code, _, err = talosctl(
        world,
        "--nodes",
        CP3,
        "reset",
        "--graceful=false",
        "--reboot",
        "--wait=false",
        "--system-labels-to-wipe",
        "STATE,EPHEMERAL",
    )
    assert code == 0, err
    world.advance(600)
    assert world.machine(CP3)["state"] == "maintenance"


def test_kubeconfig_writes_a_private_file_the_cluster_accepts(world: World) -> None:
    """cmd/kubeconfig.go: `--merge=false` writes a new file (mode 0600); it is refused without
    `--force` when the file exists."""
    target = world.tmp / "kubeconfig"
    code, _, err = talosctl(
        world, "--nodes", CP1, "kubeconfig", str(target), "--merge=false", "--force"
    )
    assert code == 0, err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert world.cli("kubectl", "--kubeconfig", str(target), "get", "nodes").returncode == 0
    code, _, err = talosctl(world, "--nodes", CP1, "kubeconfig", str(target), "--merge=false")
    assert code == 1
    assert "kubeconfig file already exists, use --force to overwrite" in err


def test_upgrade_k8s_reaches_every_node_and_moves_the_versions(world: World) -> None:
    """cmd/upgrade-k8s.go through one control plane; pkg/cluster/kubernetes/talos_managed.go
    `Upgrade` patches every node's config through the Talos API, so a dead node stops it."""
    code, _, err = talosctl(world, "--nodes", CP1, "upgrade-k8s", "--to", "1.36.4")
    assert code == 0, err
    kubeconfig = write(world, "kc", world.kubeconfig())
    pods = world.cli(
        "kubectl", "--kubeconfig", kubeconfig, "get", "pods", "-n", "kube-system", "-o", "json"
    )
    assert "registry.k8s.io/kube-apiserver:v1.36.4" in pods.stdout
    world.node_dies(W1)
    code, _, err = talosctl(world, "--nodes", CP1, "upgrade-k8s", "--to", "1.36.5")
    assert code == 1
    assert f"error updating node '{W1}'" in err


def test_client_certificates_expire_after_a_year(world: World) -> None:
    """pkg/machinery/constants `TalosAPIDefaultCertificateValidityDuration` (one year): apid
    refuses an expired client certificate (Go crypto/tls: "expired certificate"); the admin
    kubeconfig Talos issues expires likewise (kubectl: Unauthorized)."""
    config = write(world, "tc", world.talosconfig([CP1], [CP1]))
    kubeconfig = write(world, "kc", world.kubeconfig())
    world.a_year_passes()
    result = world.cli("talosctl", "--talosconfig", config, "version")
    assert result.returncode == 1
    assert "remote error: tls: expired certificate" in result.stderr
    result = world.cli("kubectl", "--kubeconfig", kubeconfig, "get", "nodes")
    assert result.returncode == 1
    assert result.stderr == "error: You must be logged in to the server (Unauthorized)\n"


def test_unknown_flags_are_refused_as_pflag_refuses_them(world: World) -> None:
    code, _, err = talosctl(world, "--nodes", CP1, "upgrade", "--imag", "x")
    assert code == 1
    assert err.startswith("unknown flag: --imag")


def test_the_api_server_answers_behind_the_vip_only_with_etcd_quorum(world: World) -> None:
    """internal/app/machined/pkg/controllers/network/operator/vip.go: the VIP goes to a control
    plane whose etcd is healthy; without quorum nobody holds it."""
    kubeconfig = write(world, "kc", world.kubeconfig(f"https://{VIP}:6443"))
    world.node_dies(CP2)
    assert world.cli("kubectl", "--kubeconfig", kubeconfig, "get", "nodes").returncode == 0
    world.node_dies(CP3)
    result = world.cli("kubectl", "--kubeconfig", kubeconfig, "get", "nodes")
    assert result.returncode == 1
    assert result.stderr.startswith(f"Unable to connect to the server: dial tcp {VIP}:6443")
