"""What ./scripts/checkov scans: the project's own objects, secrets redacted, skips well formed.

checkov itself runs in ./scripts/checkov (its own virtualenv, a few seconds per scan), not here."""

from __future__ import annotations

from pathlib import Path

from tests.harness import homelab_render, kubernetes_records
from tests.synthetic import deployment, record, render_of
from tools.checkov import render_manifests

SECRET = "SENTINEL-never-on-disk"


def test_values_at_secret_paths_are_redacted_and_the_rest_kept() -> None:
    secret = record(
        "kubernetes:core/v1:Secret",
        "router-key",
        inputs={"metadata": {"name": "router-key"}, "stringData": {"authkey": SECRET}},
        secret_paths=["stringData"],
    )
    body = render_manifests.redacted_manifest(secret)
    assert body["stringData"] == {"authkey": render_manifests.REDACTED}
    assert body["kind"] == "Secret"
    assert body["apiVersion"] == "v1"


def test_a_secret_path_inside_a_list_is_redacted() -> None:
    inputs = deployment()
    inputs["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "A", "value": "plain"},
        {"name": "B", "value": SECRET},
    ]
    workload = record(
        "kubernetes:apps/v1:Deployment",
        "web",
        inputs=inputs,
        secret_paths=["spec.template.spec.containers.0.env.1.value"],
    )
    env = render_manifests.redacted_manifest(workload)["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    assert env == [
        {"name": "A", "value": "plain"},
        {"name": "B", "value": render_manifests.REDACTED},
    ]


def test_config_group_objects_are_scanned_too() -> None:
    group = record(
        "kubernetes:yaml/v2:ConfigGroup",
        "extras",
        custom=False,
        inputs={
            "objs": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}],
            "yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: b\n",
        },
    )
    kinds = [m["kind"] for m in render_manifests.project_manifests(render_of([group]))]
    assert kinds == ["ConfigMap", "Service"]


def test_project_manifests_are_every_kubernetes_object_of_the_render() -> None:
    render = homelab_render()
    assert len(render_manifests.project_manifests(render)) == len(kubernetes_records(render))


def test_the_committed_stack_is_scanned() -> None:
    assert "homelab" in render_manifests.stacks()


def test_skip_annotations_without_a_reason_are_reported() -> None:
    bad = deployment(
        annotations={"checkov.io/skip1": "CKV_K8S_43", "checkov.io/skip2": "CKV_K8S_8= "}
    )
    good = deployment(annotations={"checkov.io/skip1": "CKV_K8S_43=pinned by tag"})
    problems = render_manifests.skip_annotation_problems(bad)
    assert len(problems) == 2
    assert all("Deployment apps/web" in p for p in problems)
    assert render_manifests.skip_annotation_problems(good) == []


def test_written_files_are_yaml_named_after_the_object(tmp_path: Path) -> None:
    render_manifests.write_manifests([deployment()], tmp_path)
    (written,) = tmp_path.iterdir()
    assert written.name == "000-deployment-apps-web.yaml"
    assert "kind: Deployment" in written.read_text()
