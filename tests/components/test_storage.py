"""Storage: local-path-provisioner under /var on Talos, or an existing StorageClass."""

from __future__ import annotations

import json

import yaml

from components import security
from config import pins
from config.loader import validate_config
from homelab.engine import Render, ResourceRecord
from tests.components.hardening import (
    admits,
    checkov_skipped,
    hardening_problems,
    policies_selecting,
)
from tests.contracts import component_records, depends_on, validate_objects
from tests.harness import helm_values, homelab_render, render_stack, stack_raw_config

STORAGE = "homelab:platform:Storage"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NAMESPACE = "kubernetes:core/v1:Namespace"
RELEASE = "kubernetes:helm.sh/v3:Release"


def config_file(render: Render, key: str) -> str:
    # Keys like `config.json` contain dots, so no dotted-path lookup here.
    value = one_under_storage(render, CONFIG_MAP).input("data")[key]
    assert isinstance(value, str)
    return value


def one_under_storage(render: Render, type_token: str) -> ResourceRecord:
    (record,) = [r for r in component_records(render, STORAGE) if r.type == type_token]
    return record


def test_every_storage_object_meets_the_strict_kubernetes_schema() -> None:
    # Namespace, ServiceAccount, Role(+Binding), ClusterRole(+Binding), ConfigMap, Deployment,
    # NetworkPolicy, class.
    assert validate_objects(component_records(homelab_render(), STORAGE)) == 10


def test_default_is_a_local_path_storage_class_marked_default() -> None:
    storage_class = one_under_storage(homelab_render(), STORAGE_CLASS)
    assert storage_class.input("metadata.name") == "local-path"
    assert storage_class.input("provisioner") == "rancher.io/local-path"
    # Volumes are node-local directories: bind only when the consuming pod's node is known.
    assert storage_class.input("volumeBindingMode") == "WaitForFirstConsumer"
    annotations = storage_class.input("metadata.annotations")
    assert annotations["storageclass.kubernetes.io/is-default-class"] == "true"


def test_volumes_live_under_the_configured_root_below_var() -> None:
    root = validate_config(stack_raw_config()).storage.local_path_root
    assert root.startswith("/var/")  # /opt is read-only on Talos (components.md 1.4 #4)
    config = json.loads(config_file(homelab_render(), "config.json"))
    assert [path for entry in config["nodePathMap"] for path in entry["paths"]] == [root]
    custom = render_stack("homelab", overrides={"storage": {"localPathRoot": "/var/lib/volumes"}})
    config = json.loads(config_file(custom, "config.json"))
    assert config["nodePathMap"][0]["paths"] == ["/var/lib/volumes"]


def test_provisioner_namespace_admits_the_hostpath_helper_pods() -> None:
    render = homelab_render()
    namespace = one_under_storage(render, NAMESPACE)
    assert namespace.input("metadata.labels")["pod-security.kubernetes.io/enforce"] == "privileged"
    deployment = one_under_storage(render, DEPLOYMENT)
    assert deployment.input("metadata.namespace") == namespace.input("metadata.name")


def test_provisioner_runs_hardened_though_its_namespace_admits_privileged_helpers() -> None:
    # Only the hostPath helper pods need the privileged namespace; the provisioner is an API client.
    spec = one_under_storage(homelab_render(), DEPLOYMENT).input("spec.template.spec")
    assert hardening_problems(spec) == []
    assert "hostPath" not in {k for v in spec["volumes"] for k in v}


def test_nothing_may_connect_to_the_provisioner() -> None:
    render = homelab_render()
    deployment = one_under_storage(render, DEPLOYMENT)
    labels = deployment.input("spec.template.metadata.labels")
    policies = policies_selecting(render, deployment.input("metadata.namespace"), labels)
    assert policies
    (container,) = deployment.input("spec.template.spec.containers")
    for port in container["ports"]:
        for policy in policies:
            for source in (None, "traefik", deployment.input("metadata.namespace")):
                assert not admits(
                    policy,
                    protocol=port["protocol"],
                    port=port["containerPort"],
                    source_namespace=source,
                )


def test_provisioner_keeps_the_api_token_it_needs_as_a_written_exception() -> None:
    deployment = one_under_storage(homelab_render(), DEPLOYMENT)
    assert deployment.input("spec.template.spec").get("automountServiceAccountToken") is not False
    skipped = checkov_skipped(deployment)
    assert "API" in skipped["CKV_K8S_38"]
    assert skipped["CKV_K8S_43"] == security.IMAGES_PINNED_BY_TAG


def test_images_are_pinned() -> None:
    render = homelab_render()
    (container,) = one_under_storage(render, DEPLOYMENT).input("spec.template.spec.containers")
    assert container["image"] == pins.LOCAL_PATH_PROVISIONER_IMAGE
    helper = yaml.safe_load(config_file(render, "helperPod.yaml"))
    assert [c["image"] for c in helper["spec"]["containers"]] == [pins.LOCAL_PATH_HELPER_IMAGE]
    for image in (pins.LOCAL_PATH_PROVISIONER_IMAGE, pins.LOCAL_PATH_HELPER_IMAGE):
        assert image.rpartition(":")[2] not in ("", "latest")
    # The helper pods pull like every other container of ours (components/security.py).
    assert [c["imagePullPolicy"] for c in helper["spec"]["containers"]] == [
        security.IMAGE_PULL_POLICY
    ]
    assert container["imagePullPolicy"] == security.IMAGE_PULL_POLICY


def test_service_account_is_the_one_the_bindings_grant() -> None:
    records = component_records(homelab_render(), STORAGE)
    (account,) = [r for r in records if r.type == "kubernetes:core/v1:ServiceAccount"]
    deployment = one_under_storage(homelab_render(), DEPLOYMENT)
    name = account.input("metadata.name")
    assert deployment.input("spec.template.spec.serviceAccountName") == name
    bindings = [r for r in records if r.type.endswith("RoleBinding")]
    assert len(bindings) == 2
    for binding in bindings:
        assert binding.input("subjects") == [
            {
                "kind": "ServiceAccount",
                "name": name,
                "namespace": account.input("metadata.namespace"),
            }
        ]


def test_grafana_claims_from_the_class_after_it_exists() -> None:
    render = homelab_render()
    storage_class = one_under_storage(render, STORAGE_CLASS)
    grafana = render.one(RELEASE, "apps-grafana")
    persistence = helm_values(grafana)["persistence"]
    assert persistence["storageClassName"] == storage_class.input("metadata.name")
    assert depends_on(grafana, storage_class)


def test_an_existing_storage_class_deploys_nothing_and_is_used() -> None:
    render = render_stack("homelab", overrides={"storage": {"storageClass": "longhorn"}})
    assert component_records(render, STORAGE) == []
    assert render.by_type(STORAGE_CLASS) == []
    persistence = helm_values(render.one(RELEASE, "apps-grafana"))["persistence"]
    assert persistence["storageClassName"] == "longhorn"
