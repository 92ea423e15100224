"""Storage: local-path-provisioner under /var on Talos, or an existing StorageClass."""

from __future__ import annotations

import json
from typing import Any

import yaml

from components.shared import security
from config import pins
from config.loader import validate_config
from homelab.engine import Render, ResourceRecord
from tests.components.shared.hardening import (
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
CLAIM = "kubernetes:core/v1:PersistentVolumeClaim"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
# rancher/local-path-provisioner@v0.0.37:main.go, the `start` command's flags.
UPSTREAM_FLAGS: dict[str, tuple[str | None, str | None]] = {
    # flag: (environment variable it also reads, default)
    "config": (None, None),
    "provisioner-name": ("PROVISIONER_NAME", "rancher.io/local-path"),
    "namespace": ("POD_NAMESPACE", "local-path-storage"),
    "service-account-name": ("SERVICE_ACCOUNT_NAME", "local-path-provisioner-service-account"),
    "configmap-name": (None, "local-path-config"),
    "health-port": ("HEALTH_PORT", "8080"),
    "helper-pod-file": (None, None),
}


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
    # NetworkPolicy, two classes.
    assert validate_objects(component_records(homelab_render(), STORAGE)) == 11


def storage_class(render: Render, reclaim_policy: str) -> ResourceRecord:
    (record,) = [
        r
        for r in component_records(render, STORAGE)
        if r.type == STORAGE_CLASS and r.input("reclaimPolicy") == reclaim_policy
    ]
    return record


def test_default_is_a_local_path_storage_class_marked_default() -> None:
    scratch = storage_class(homelab_render(), "Delete")
    assert scratch.input("metadata.name") == "local-path"
    assert scratch.input("provisioner") == "rancher.io/local-path"
    # Volumes are node-local directories: bind only when the consuming pod's node is known.
    for reclaim in ("Delete", "Retain"):
        bound = storage_class(homelab_render(), reclaim).input("volumeBindingMode")
        assert bound == "WaitForFirstConsumer"
    annotations = scratch.input("metadata.annotations")
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
    # The helper pods pull like every other container of ours (components/shared/security.py).
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


def test_grafana_claims_from_the_state_class_after_it_exists() -> None:
    render = homelab_render()
    state = storage_class(render, "Retain")
    grafana = render.one(RELEASE, "apps-grafana")
    claim_name = helm_values(grafana)["persistence"]["existingClaim"]
    claim = render.one(CLAIM, "apps-grafana-data")
    assert claim.input("metadata.name") == claim_name
    assert claim.input("spec.storageClassName") == state.input("metadata.name")
    assert depends_on(claim, state)
    assert depends_on(grafana, claim)


def test_an_existing_storage_class_deploys_nothing_and_is_used() -> None:
    render = render_stack("homelab", overrides={"storage": {"storageClass": "longhorn"}})
    assert component_records(render, STORAGE) == []
    assert render.by_type(STORAGE_CLASS) == []
    claims = render.by_type(CLAIM)
    assert claims
    assert {c.input("spec.storageClassName") for c in claims} == {"longhorn"}


# --- the provisioner's runtime contract (rancher/local-path-provisioner@v0.0.37) --------------


def provisioner_container(render: Render) -> dict[str, Any]:
    (container,) = one_under_storage(render, DEPLOYMENT).input("spec.template.spec.containers")
    assert isinstance(container, dict)
    return container


def resolved_flag(render: Render, flag: str, container: dict[str, Any] | None = None) -> str | None:
    """What the provisioner reads for `flag`, by urfave/cli's rule: the command line, else the
    environment variable the flag names as its source, else the default.

    rancher/local-path-provisioner@v0.0.37:main.go (StartCmd flags: `Sources: cli.EnvVars(...)`,
    `Value: Default...`). An env var from `valueFrom` is resolved from the pod's metadata.
    """
    container = container or provisioner_container(render)
    words = [*container.get("command", []), *container.get("args", [])]
    for index, word in enumerate(words):
        if word == f"--{flag}":
            return str(words[index + 1])
        if word.startswith(f"--{flag}="):
            return str(word.partition("=")[2])
    env_name, default = UPSTREAM_FLAGS[flag]
    for env in container.get("env", []):
        if env["name"] != env_name:
            continue
        if "value" in env:
            return str(env["value"])
        field = env["valueFrom"]["fieldRef"]["fieldPath"]
        assert field == "metadata.namespace"
        return str(one_under_storage(render, DEPLOYMENT).input("metadata.namespace"))
    return default


def test_helper_pods_run_as_the_service_account_this_stack_creates() -> None:
    """rancher/local-path-provisioner@v0.0.37:main.go (`--service-account-name`, env
    SERVICE_ACCOUNT_NAME, default `local-path-provisioner-service-account`) and provisioner.go
    createHelperPod (`helperPod.Namespace = p.namespace`, `Spec.ServiceAccountName =
    p.serviceAccountName`): a pod naming an account that does not exist is rejected by the API
    server's ServiceAccount admission, and then no claim ever binds."""
    render = homelab_render()
    (account,) = [r for r in component_records(render, STORAGE) if r.type == SERVICE_ACCOUNT]
    assert resolved_flag(render, "service-account-name") == account.input("metadata.name")
    assert resolved_flag(render, "namespace") == account.input("metadata.namespace")
    # The provisioner itself runs under that account too (it is what the bindings grant).
    deployment = one_under_storage(render, DEPLOYMENT)
    assert deployment.input("spec.template.spec.serviceAccountName") == account.input(
        "metadata.name"
    )


def test_without_the_env_var_upstreams_default_account_would_be_used() -> None:
    # The bug this guards against: the provisioner names an account that does not exist here.
    render = homelab_render()
    container = provisioner_container(render)
    without = {
        **container,
        "env": [e for e in container["env"] if e["name"] != "SERVICE_ACCOUNT_NAME"],
    }
    (account,) = [r for r in component_records(render, STORAGE) if r.type == SERVICE_ACCOUNT]
    fallback = resolved_flag(render, "service-account-name", without)
    assert fallback == "local-path-provisioner-service-account"
    assert fallback != account.input("metadata.name")
    # The command line wins over the environment.
    flagged = {**container, "args": ["--service-account-name", "other"]}
    assert resolved_flag(render, "service-account-name", flagged) == "other"


# What the provisioner asks the API for, by upstream code path (namespace None: cluster-wide;
# "own": the provisioner's namespace). rancher/local-path-provisioner@v0.0.37.
PROVISIONER_API_CALLS: tuple[tuple[str, str, str, str | None], ...] = (
    # main.go findConfigFileFromConfigMap (helperPod.yaml, as no --helper-pod-file is given)
    ("", "configmaps", "get", "own"),
    # main.go checkReadiness (the /ready probe)
    ("", "configmaps", "list", "own"),
    ("", "pods", "list", "own"),
    ("", "persistentvolumeclaims", "list", "own"),
    ("", "persistentvolumes", "list", None),
    ("storage.k8s.io", "storageclasses", "list", None),
    # provisioner.go createHelperPod: create, poll, read logs, delete the helper pod
    ("", "pods", "create", "own"),
    ("", "pods", "get", "own"),
    ("", "pods/log", "get", "own"),
    ("", "pods", "delete", "own"),
    # provisioner.go deleteFor: does the volume's node still exist
    ("", "nodes", "get", None),
    # sig-storage-lib-external-provisioner: watch claims/classes/volumes, write volumes, events
    ("", "persistentvolumeclaims", "watch", None),
    ("", "persistentvolumes", "create", None),
    ("", "persistentvolumes", "delete", None),
    ("storage.k8s.io", "storageclasses", "get", None),
    ("", "events", "create", None),
)


def rbac_allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule.get("apiGroups", [])
        and (resource in rule.get("resources", []) or "*" in rule.get("resources", []))
        and (verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
        for rule in rules
    )


def test_rbac_lets_the_account_do_what_the_provisioner_and_its_helpers_need() -> None:
    """Every API call of rancher/local-path-provisioner@v0.0.37 (main.go checkReadiness and
    findConfigFileFromConfigMap, provisioner.go createHelperPod/deleteFor) is granted to the
    account, in the namespace it makes it in. The helper pods themselves call no API (they run
    `/script/setup` or `/script/teardown` on a hostPath), so the account only has to exist."""
    render = homelab_render()
    records = component_records(render, STORAGE)
    (account,) = [r for r in records if r.type == SERVICE_ACCOUNT]
    subject = {
        "kind": "ServiceAccount",
        "name": account.input("metadata.name"),
        "namespace": account.input("metadata.namespace"),
    }
    roles = {(r.type.rpartition(":")[2], r.input("metadata.name")): r for r in records}
    cluster_rules: list[dict[str, Any]] = []
    namespace_rules: dict[str, list[dict[str, Any]]] = {}
    for binding in (r for r in records if r.type.endswith("RoleBinding")):
        if subject not in binding.input("subjects"):
            continue
        ref = binding.input("roleRef")
        role = roles[(ref["kind"], ref["name"])]
        if binding.type.endswith("ClusterRoleBinding"):
            cluster_rules += role.input("rules")
        else:
            ns = binding.input("metadata.namespace")
            namespace_rules.setdefault(ns, []).extend(role.input("rules"))
    own = resolved_flag(render, "namespace")
    assert own is not None
    for group, resource, verb, where in PROVISIONER_API_CALLS:
        rules = cluster_rules + (namespace_rules.get(own, []) if where == "own" else [])
        assert rbac_allows(rules, group, resource, verb), (group, resource, verb, where)


def test_config_and_helper_template_are_read_from_the_mounted_config_map() -> None:
    """rancher/local-path-provisioner@v0.0.37: main.go (`--config`: a path; provisioner.go
    loadConfigFile reads a file only when it ends in `.json`, otherwise it parses the string as
    JSON), provisioner.go refreshHelperPod (rereads `$CONFIG_MOUNT_PATH/helperPod.yaml`),
    createHelperPod (mounts `setup`/`teardown` from the ConfigMap named by `--configmap-name`)."""
    render = homelab_render()
    container = provisioner_container(render)
    spec = one_under_storage(render, DEPLOYMENT).input("spec.template.spec")
    config_map = one_under_storage(render, CONFIG_MAP)
    (mount,) = container["volumeMounts"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == config_map.input("metadata.name")
    assert resolved_flag(render, "configmap-name") == config_map.input("metadata.name")
    folder = mount["mountPath"].rstrip("/") + "/"
    config_path = resolved_flag(render, "config")
    assert config_path is not None
    assert config_path.endswith(".json")
    assert config_path.startswith(folder)
    assert config_path.removeprefix(folder) in config_map.input("data")
    (mount_path,) = [e["value"] for e in container["env"] if e["name"] == "CONFIG_MOUNT_PATH"]
    assert mount_path.rstrip("/") + "/" == folder
    assert {"helperPod.yaml", "setup", "teardown"} <= set(config_map.input("data"))
    # The provisioner name is what the classes ask for.
    for reclaim in ("Delete", "Retain"):
        provisioner = storage_class(render, reclaim).input("provisioner")
        assert resolved_flag(render, "provisioner-name") == provisioner


def test_probes_reach_the_health_port_the_provisioner_listens_on() -> None:
    """rancher/local-path-provisioner@v0.0.37:main.go startHealthServer: `/health` and `/ready` on
    `--health-port` (env HEALTH_PORT, default 8080)."""
    render = homelab_render()
    container = provisioner_container(render)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (
        ("startupProbe", "/health"),
        ("livenessProbe", "/health"),
        ("readinessProbe", "/ready"),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert str(ports[get["port"]]) == resolved_flag(render, "health-port")


def test_helper_pod_template_passes_upstreams_safety_check() -> None:
    """rancher/local-path-provisioner@v0.0.37:util.go validateHelperPodTemplate (without
    `--allow-unsafe-helper-pod-template`): exactly one container; no volumes, host namespaces,
    nodeName, serviceAccountName, volumeMounts, envFrom, probes, lifecycle or valueFrom env;
    no root runAsUser at pod level, no privileged/added capabilities. A template breaking
    it makes the provisioner exit at start."""
    helper = yaml.safe_load(config_file(homelab_render(), "helperPod.yaml"))
    spec = helper["spec"]
    (container,) = spec["containers"]
    for key in ("initContainers", "ephemeralContainers", "volumes", "nodeName"):
        assert key not in spec, key
    assert "serviceAccountName" not in spec
    for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(host_namespace), host_namespace
    for key in (
        "volumeMounts",
        "envFrom",
        "lifecycle",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
    ):
        assert key not in container, key
    assert all("valueFrom" not in env for env in container.get("env", []))
    assert (spec.get("securityContext") or {}).get("runAsUser") != 0
    context = container.get("securityContext") or {}
    assert not context.get("privileged")
    assert not (context.get("capabilities") or {}).get("add")


def test_state_lives_on_a_class_whose_volumes_outlive_their_claims() -> None:
    """rancher/local-path-provisioner@v0.0.37:provisioner.go: Provision copies the class's
    `reclaimPolicy` into the PersistentVolume, and deleteFor runs the `teardown` helper (rm -rf)
    only when that policy is not Retain ("Retained volume"). So Headscale's and Grafana's data
    survive a deleted claim or namespace; scratch claims keep the deleting default class."""
    render = homelab_render()
    state = storage_class(render, "Retain")
    scratch = storage_class(render, "Delete")
    assert state.input("metadata.name") != scratch.input("metadata.name")
    assert state.input("provisioner") == scratch.input("provisioner")
    # Only one default: claims without a class get scratch space.
    assert "storageclass.kubernetes.io/is-default-class" not in (
        state.input("metadata").get("annotations") or {}
    )
    assert scratch.input("metadata.annotations")["storageclass.kubernetes.io/is-default-class"] == (
        "true"
    )
    claims = {c.input("metadata.name"): c for c in render.by_type(CLAIM)}
    for stateful in ("headscale-data", "grafana-data"):
        assert claims[stateful].input("spec.storageClassName") == state.input("metadata.name")
    # Both classes use the one default config (no storageClassConfigs): pickConfig accepts any.
    assert "storageClassConfigs" not in json.loads(config_file(render, "config.json"))
