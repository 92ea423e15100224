"""A stack with a backup target: the render summary says whether anything is backed up, and where
to (never with credentials); the Talos ServiceAccount waits for its CRD, and that wait for the
cluster."""

from __future__ import annotations

import functools
from pathlib import Path

from components.shared import kubectl
from homelab import graph
from homelab.engine import Render, ResourceRecord
from homelab.render import summary_markdown
from programs.build import parameters, with_parameters
from tests.components.shared.test_kubectl import (
    ESTABLISHED,
    MISSING,
    assert_kubeconfig_handled_as_a_secret,
    run,
)
from tests.harness import (
    homelab_render,
    manifest,
    render_stack,
    stack_raw_config,
    with_changes,
)

SECRET_KEY = "SENTINEL-render-backup-secret"
S3 = {"endpoint": "https://minio.lan:9000", "bucket": "bkt", "accessKeyId": "writer"}
# The CRD of `talos.dev/v1alpha1` `ServiceAccount`: `<plural>.<group>` with plural
# `serviceaccounts` and group `talos.dev` (siderolabs/talos@v1.13.9:pkg/machinery/constants/
# constants.go ServiceAccountResourcePlural/Group; the CRD's name in
# internal/app/machined/pkg/controllers/k8s/internal/k8stemplates/crds.go).
TALOS_SERVICE_ACCOUNT_CRD = "serviceaccounts.talos.dev"
# The machine config feature that makes Talos apply it (talos@v1.13.9:
# internal/app/machined/pkg/controllers/k8s/control_plane.go `TalosAPIServiceEnabled`).
TALOS_API_ACCESS_FEATURE = "machine.features.kubernetesTalosAPIAccess"
APPLY = "talos:machine/configurationApply:ConfigurationApply"
BOOTSTRAP = "talos:machine/bootstrap:Bootstrap"


@functools.cache
def backup_render() -> Render:
    """The fixture homelab stack with an S3 backup target, rendered once."""
    return render_stack(
        overrides={"backups": {"s3": S3}}, secrets={"backupSecretAccessKey": SECRET_KEY}
    )


def talos_service_account(render: Render) -> ResourceRecord:
    (account,) = [r for r in render.resources if r.type.startswith("kubernetes:talos.dev/")]
    return account


def crd_gates(render: Render) -> list[ResourceRecord]:
    return [
        r
        for r in render.by_type("command:local:Command")
        if r.name.endswith(kubectl.CRD_GATE_SUFFIX)
    ]


def waits_for_transitively(render: Render, urn: str) -> set[str]:
    edges = graph.waits_for(render)
    seen: set[str] = set()
    pending = [urn]
    while pending:
        for before in edges.get(pending.pop(), set()) - seen:
            seen.add(before)
            pending.append(before)
    return seen


def script_params(record: ResourceRecord) -> dict[str, object]:
    """The parameters of the program a Command runs."""
    return parameters(str(record.inputs["create"]))


def backups_section(summary: str) -> str:
    _, found, rest = summary.partition("\n## Backups\n")
    assert found, "no Backups section in the summary"
    return rest.partition("\n## ")[0]


def test_a_stack_without_a_target_renders_and_says_nothing_is_backed_up() -> None:
    render = homelab_render()
    assert render.outputs["backupTarget"] == "none"
    assert "No backup is configured" in backups_section(summary_markdown(render))


def test_a_stack_with_a_target_names_it_without_credentials() -> None:
    render = backup_render()
    assert render.outputs["backupTarget"] == "https://minio.lan:9000/bkt/homelab"
    assert not render.output_is_secret("backupTarget")
    summary = summary_markdown(render)
    section = backups_section(summary)
    assert "https://minio.lan:9000/bkt/homelab" in section
    assert "No backup" not in section
    assert SECRET_KEY not in summary


def test_without_a_target_there_is_no_crd_gate() -> None:
    assert crd_gates(homelab_render()) == []


def test_the_talos_service_account_waits_for_the_gate_on_its_own_crd() -> None:
    render = backup_render()
    account = talos_service_account(render)
    (gate,) = crd_gates(render)
    assert gate.urn in account.dependencies
    crd = script_params(gate)["crd"]
    assert crd == TALOS_SERVICE_ACCOUNT_CRD
    # The gated CRD is the one that serves the custom resource's group.
    group = str(manifest(account)["apiVersion"]).rpartition("/")[0]
    assert str(crd).partition(".")[2] == group
    assert gate.is_secret(f"environment.{kubectl.KUBECONFIG_ENV}")


def test_the_crd_gate_waits_for_the_health_wait_and_every_control_plane_apply() -> None:
    render = backup_render()
    (gate,) = crd_gates(render)
    before = waits_for_transitively(render, gate.urn)
    health = [
        r
        for r in render.by_type("command:local:Command")
        if r.name.endswith("-health") and r.parent and "homelab:talos:Cluster" in r.parent
    ]
    assert health, "the fixture stack waits for health"
    assert {h.urn for h in health} <= before
    applies = render.by_type(APPLY)
    assert applies
    assert {a.urn for a in applies} <= before


def test_without_the_health_wait_the_crd_gate_still_waits_for_the_bootstrapped_control_plane() -> (
    None
):
    """One control plane with the feature applies the cluster-scoped CRD (Talos's manifest
    controller runs on each control plane, talos@v1.13.9:internal/app/machined/pkg/controllers/k8s/
    manifest.go): the apply Bootstrap waits for is enough."""
    cluster = with_changes(stack_raw_config()["cluster"], {"waitForHealth": False})
    render = render_stack(
        overrides={"backups": {"s3": S3}, "cluster": cluster},
        secrets={"backupSecretAccessKey": SECRET_KEY},
    )
    assert not [r for r in render.by_type("command:local:Command") if r.name.endswith("-health")]
    (gate,) = crd_gates(render)
    before = waits_for_transitively(render, gate.urn)
    (bootstrap,) = render.by_type(BOOTSTRAP)
    bootstrapped = {u for u in bootstrap.dependencies if render.by_urn(u).type == APPLY}
    assert bootstrapped
    assert bootstrapped | {bootstrap.urn} <= before


def test_the_rendered_crd_gate_fails_naming_the_crd_the_feature_and_what_to_check(
    tmp_path: Path,
) -> None:
    """The program's own gate, sped up (attempts and delay in its parameters), against the fake
    kubectl: a CRD Talos never applies fails the `up` with a message that says what to do."""
    (gate,) = crd_gates(backup_render())
    fast = with_parameters(str(gate.inputs["create"]), {"attempts": 2, "retry_delay_seconds": 0})
    result, calls = run(fast, tmp_path, [MISSING])
    assert result.returncode == 1
    for needle in (
        TALOS_SERVICE_ACCOUNT_CRD,
        TALOS_API_ACCESS_FEATURE,
        "get manifests",
        f"kubectl get crd {TALOS_SERVICE_ACCOUNT_CRD}",
    ):
        assert needle in result.stderr
    assert_kubeconfig_handled_as_a_secret(result, calls)
    (tmp_path / "ok").mkdir()
    ok, _ = run(fast, tmp_path / "ok", [MISSING, ESTABLISHED])
    assert ok.returncode == 0, ok.stderr
