"""Contracts over the whole render: every record of every stack shape meets its upstream contract.

Three renders are walked: the committed homelab (`Pulumi.homelab.yaml`), the committed lab
template (`Pulumi.lab.yaml`) and a single-node cluster (valid fixture). Each record is *claimed* by
exactly the contract for its type; a type no contract claims fails the suite, so a new kind of
resource cannot slip in unchecked. Expectations come from upstream data (Kubernetes strict schemas,
CRD schemas, chart values schemas, the Talos schema, Headscale's and Headplane's example configs)
and from the pins, never from the program's own output.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from components.cluster import node_lifecycle, upgrade
from components.remote_access import headplane as headplane_component
from components.remote_access.headscale_config import REMOVED_KEYS, startup_problems
from components.shared import kubectl
from config import pins
from homelab import engine, graph
from homelab.engine import InvokeRecord, Render, ResourceRecord
from homelab.fakes import program_of
from programs import change_guard, headscale_key, node_set
from programs.build import PROGRAM_ENV, ProgramError, name_of, parameters, with_parameters
from tests.components.remote_access.remote_access import key_paths
from tests.config.corpus import VALID_DIR, valid_raw_config
from tests.contracts import (
    CHARTS,
    custom_resource_errors,
    helm_values_errors,
    is_custom_resource,
    leaves,
    talos_config_errors,
)
from tests.harness import (
    committed_render,
    homelab_render,
    manifest,
    reference,
    render_config,
    render_stack,
    validate_kubernetes,
)
from tests.homelab.test_render_backups import backup_render, crd_gates

Errors = list[str]
Check = Callable[[ResourceRecord, Render], Errors]

RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
BOOTSTRAP = "talos:machine/bootstrap:Bootstrap"
APPLY = "talos:machine/configurationApply:ConfigurationApply"
KUBECONFIG = "talos:cluster/kubeconfig:Kubeconfig"
SECRETS = "talos:machine/secrets:Secrets"
PROVIDER = "pulumi:providers:kubernetes"

# chart name -> (repository, version) from the one place versions are pinned.
PINNED_CHARTS: dict[str, tuple[str, str]] = {
    "metallb": (pins.METALLB_CHART_REPO, pins.METALLB_CHART_VERSION),
    "traefik": (pins.TRAEFIK_CHART_REPO, pins.TRAEFIK_CHART_VERSION),
    "cert-manager": (pins.CERT_MANAGER_CHART_REPO, pins.CERT_MANAGER_CHART_VERSION),
    "reflector": (pins.REFLECTOR_CHART_REPO, pins.REFLECTOR_CHART_VERSION),
    "grafana": (pins.GRAFANA_CHART_REPO, pins.GRAFANA_CHART_VERSION),
}


# --- renders ---------------------------------------------------------------------------------


def committed_homelab() -> Render:
    return committed_render("homelab")


def committed_lab() -> Render:
    return committed_render("lab")


@functools.cache
def single_node_render() -> Render:
    return render_config(valid_raw_config(VALID_DIR / "single-node.yaml"), stack="single-node")


@functools.cache
def nfs_backups_render() -> Render:
    """The fixture homelab backing up to NFS: the pre-bound volume and claim instead of S3."""
    return render_stack(overrides={"backups": {"nfs": {"server": "192.168.0.5", "path": "/b"}}})


# The project's own stack files (whatever a fork wrote into them) and fixture stacks.
RENDERS: dict[str, Callable[[], Render]] = {
    "homelab": committed_homelab,
    "lab": committed_lab,
    "single-node": single_node_render,
    "backups-s3": backup_render,
    "backups-nfs": nfs_backups_render,
}


# --- the contracts ---------------------------------------------------------------------------


def _errors_of(check: Callable[[], None]) -> Errors:
    try:
        check()
    except Exception as error:  # every validator's failure becomes one reported line
        # Some validators raise with no message (kubernetes-validate's SchemaNotFoundError).
        first_line = next(iter(str(error).splitlines()), "")
        return [f"{type(error).__name__}: {first_line}".rstrip(": ")]
    return []


def kubernetes_object(record: ResourceRecord, render: Render) -> Errors:
    """Built-in kinds against the strict schemas; custom resources against their strict CRD
    schema. Either way the object goes through the stack's one provider."""
    document = manifest(record)
    errors = (
        custom_resource_errors(document)
        if is_custom_resource(document)
        else _errors_of(lambda: validate_kubernetes(document))
    )
    providers = render.by_type(PROVIDER)
    if not (len(providers) == 1 and (record.provider or "").startswith(providers[0].urn + "::")):
        errors.append(f"not created through the stack's one Kubernetes provider: {record.provider}")
    return errors + _config_file_errors(record)


def _config_file_errors(record: ResourceRecord) -> Errors:
    """Generated application config inside ConfigMaps against its upstream contract."""
    if record.type != CONFIG_MAP:
        return []
    name = record.input("metadata.name")
    data = record.inputs.get("data") or {}
    if name == "headscale-config":
        return headscale_config_errors(yaml.safe_load(data["config.yaml"]))
    if name == "headplane-config":
        return headplane_config_errors(yaml.safe_load(data["config.yaml"]))
    return []


def headscale_config_errors(settings: Mapping[str, Any]) -> Errors:
    """Every key exists in the pinned version's example config, none is a removed key, and
    Headscale's startup validation passes (components.md 2.2)."""
    version = pins.HEADSCALE_IMAGE.rpartition(":")[2]
    example = yaml.safe_load(
        reference(f"upstream/headscale/v{version}/config-example.yaml").read_text()
    )
    errors = [
        f"{p}: not in Headscale {version}'s example config"
        for p in sorted(key_paths(settings) - key_paths(example))
    ]
    errors += [f"{k}: removed key" for k in REMOVED_KEYS if k in key_paths(settings)]
    return errors + startup_problems(settings)


def headplane_config_errors(settings: Mapping[str, Any]) -> Errors:
    """Every key is documented by the pinned Headplane's example config (keys it mentions only
    in comments, and the `_path` twins it points to, included) and its loader's checks pass."""
    text = reference("upstream/headplane/config.example.yaml").read_text()
    example = key_paths(yaml.safe_load(text))
    commented = set(re.findall(r"#\s*`?([a-z_]+)`?:", text)) | set(
        re.findall(r"`([a-z_]+_path)`", text)
    )
    errors = []
    for path in sorted(key_paths(settings)):
        parent, _, leaf = path.rpartition(".")
        if path not in example and not (
            leaf in commented and any(p.startswith(parent + ".") for p in example)
        ):
            errors.append(f"{path}: not in Headplane's example config")
    # No integration, no HEADPLANE_* variables in its pod: the file alone is the config.
    return errors + headplane_component.config_problems(settings)


def helm_release(record: ResourceRecord, render: Render) -> Errors:
    """A pinned chart from its pinned repository, with values its chart's schema accepts."""
    chart = str(record.input("chart"))
    if chart not in PINNED_CHARTS:
        return [f"chart {chart!r} has no pin in config/pins.py"]
    repo, version = PINNED_CHARTS[chart]
    errors = []
    if record.input("version") != version:
        errors.append(f"version {record.input('version')!r} is not the pin {version!r}")
    if record.input("repositoryOpts.repo") != repo:
        errors.append(f"repository {record.input('repositoryOpts.repo')!r} is not the pin {repo!r}")
    if chart in CHARTS:
        errors += helm_values_errors(chart, record.inputs.get("values") or {})
    # Grafana's chart is not among the upstream reference data: its values are checked by
    # tests/components/apps/test_apps.py against the keys its pinned values.yaml documents.
    return errors + kubernetes_object_provider_errors(record, render)


def kubernetes_object_provider_errors(record: ResourceRecord, render: Render) -> Errors:
    (provider,) = render.by_type(PROVIDER)
    if not (record.provider or "").startswith(provider.urn + "::"):
        return [f"not created through the stack's one Kubernetes provider: {record.provider}"]
    return []


def talos_apply(record: ResourceRecord, render: Render) -> Errors:
    errors = talos_config_errors(record)
    if not record.is_secret("machineConfigurationInput"):
        errors.append("machineConfigurationInput (holds the cluster's keys) is not a secret")
    return errors


def _depends_on_type(record: ResourceRecord, render: Render, type_token: str) -> bool:
    urns = set(record.dependencies) | {
        u for us in record.property_dependencies.values() for u in us
    }
    return any(render.by_urn(u).type == type_token for u in urns if _known(render, u))


def _known(render: Render, urn: str) -> bool:
    return any(r.urn == urn for r in render.resources)


def talos_secrets(record: ResourceRecord, render: Render) -> Errors:
    # Pinned contract (components.md 1.4 #5): a newer provider must not change what is generated.
    version = record.inputs.get("talosVersion")
    return [] if version == pins.TALOS_VERSION else [f"talosVersion {version!r} is not the pin"]


def talos_bootstrap(record: ResourceRecord, render: Render) -> Errors:
    errors = [] if len(render.by_type(BOOTSTRAP)) == 1 else ["more than one Bootstrap"]
    if not _depends_on_type(record, render, APPLY):
        errors.append("Bootstrap does not wait for a ConfigurationApply")
    return errors


def talos_kubeconfig(record: ResourceRecord, render: Render) -> Errors:
    return [] if _depends_on_type(record, render, BOOTSTRAP) else ["Kubeconfig before Bootstrap"]


def kubernetes_provider(record: ResourceRecord, render: Render) -> Errors:
    errors = [] if len(render.by_type(PROVIDER)) == 1 else ["more than one Kubernetes provider"]
    if not record.is_secret("kubeconfig"):
        errors.append("kubeconfig is not a secret")
    if not _depends_on_type(record, render, KUBECONFIG):
        errors.append("the provider's kubeconfig does not come from the Talos Kubeconfig")
    return errors


def talos_health_command(record: ResourceRecord, render: Render) -> Errors:
    """The Talos health wait: after the bootstrap and every apply, its talosconfig a secret,
    replaced with the Bootstrap (components/cluster/talos_health.py)."""
    errors = []
    if not record.is_secret("environment"):
        errors.append("the talosconfig it is handed is not a secret")
    if not _depends_on_type(record, render, BOOTSTRAP):
        errors.append("does not wait for the Bootstrap")
    applies = {a.urn for a in render.by_type(APPLY)}
    if not applies <= set(record.dependencies):
        errors.append("does not wait for every ConfigurationApply")
    if [render.by_urn(u).type for u in record.replace_with] != [BOOTSTRAP]:
        errors.append("is not replaced with the Bootstrap")
    return errors


def talos_node_set_command(record: ResourceRecord, render: Render) -> Errors:
    """The node set (components/cluster/node_lifecycle.py): both credentials secret, after every
    apply and the Kubeconfig, replaced with the Bootstrap, and the health wait waits for it (a
    departing Node must be gone before `talosctl health` checks the set)."""
    errors = _plaintext_secret_errors(record)
    for env in (node_lifecycle.KUBECONFIG_ENV, node_lifecycle.TALOSCONFIG_ENV):
        if not record.is_secret(f"environment.{env}"):
            errors.append(f"{env} in its environment is not a secret")
    if not {a.urn for a in render.by_type(APPLY)} <= set(record.dependencies):
        errors.append("does not wait for every ConfigurationApply")
    if not _depends_on_type(record, render, KUBECONFIG):
        errors.append("does not wait for the Kubeconfig")
    if [render.by_urn(u).type for u in record.replace_with] != [BOOTSTRAP]:
        errors.append("is not replaced with the Bootstrap")
    health = [r for r in render.by_type(record.type) if r.name.endswith("-health")]
    if any(record.urn not in h.dependencies for h in health):
        errors.append("the health wait does not wait for it")
    return errors


def upgrade_command(record: ResourceRecord, render: Render) -> Errors:
    """An upgrade step (components/cluster/upgrade.py): its talosconfig a secret; it runs before
    every config apply (each waits for the whole chain), never after one."""
    errors = []
    if not record.is_secret(f"environment.{upgrade.TALOSCONFIG_ENV}"):
        errors.append("the talosconfig it is handed is not a secret")
    applies = render.by_type(APPLY)
    if {a.urn for a in applies} & set(record.dependencies):
        errors.append("waits for a ConfigurationApply: upgrades run before the configs")
    edges = graph.waits_for(render)

    def waits_on(urn: str, seen: set[str]) -> bool:
        direct = edges.get(urn, set())
        if record.urn in direct:
            return True
        return any(waits_on(u, seen | {u}) for u in direct - seen)

    if not all(waits_on(a.urn, {a.urn}) for a in applies):
        errors.append("a ConfigurationApply does not wait for it")
    return errors


def change_guard_command(record: ResourceRecord, render: Render) -> Errors:
    """The change guard (components/cluster/change_guard.py): its talosconfig a secret; it runs
    before every step of the roll and so before every config apply, never after one."""
    errors = []
    if not record.is_secret(f"environment.{upgrade.TALOSCONFIG_ENV}"):
        errors.append("the talosconfig it is handed is not a secret")
    if {a.urn for a in render.by_type(APPLY)} & set(record.dependencies):
        errors.append("waits for a ConfigurationApply: it checks before anything changes")
    steps = [r for r in render.by_type(record.type) if upgrade.TALOS_STEP_INFIX in r.name]
    if not steps or record.urn not in steps[0].dependencies:
        errors.append("the first step of the roll does not wait for it")
    return errors


def reboot_command(record: ResourceRecord, render: Render) -> Errors:
    """A reboot step (components/cluster/upgrade.py `rolling_reboots`): its talosconfig a
    secret; after every config apply, since it reboots into what they staged."""
    errors = []
    if not record.is_secret(f"environment.{upgrade.TALOSCONFIG_ENV}"):
        errors.append("the talosconfig it is handed is not a secret")
    if not {a.urn for a in render.by_type(APPLY)} <= set(record.dependencies):
        errors.append("does not wait for every ConfigurationApply")
    return errors


def _plaintext_secret_errors(record: ResourceRecord) -> Errors:
    return [
        f"{path} carries a config secret in plaintext"
        for path, value in leaves(dict(record.inputs))
        if isinstance(value, str)
        and any(s in value for s in engine.SENTINEL_SECRETS.values())
        and not record.is_secret(path)
    ]


def _script_params(record: ResourceRecord) -> dict[str, Any]:
    """The parameters the program a Command runs carries (programs/build.py)."""
    try:
        return parameters(str(record.inputs.get("create", "")))
    except (ProgramError, SyntaxError, ValueError):
        return {}


def kubectl_command(record: ResourceRecord, render: Render) -> Errors:
    """Cluster commands (components/shared/kubectl.py): the kubeconfig reaches them as a secret; a
    webhook gate runs after its chart's Release and before every object its webhook checks; a
    CRD gate runs after the Kubernetes provider (so after the cluster's health wait and config
    applies, which make Talos apply its CRDs) and before a custom resource of the CRD's group; a
    CRD apply runs before the Release that skips those CRDs."""
    errors = _plaintext_secret_errors(record)
    if not record.is_secret(f"environment.{kubectl.KUBECONFIG_ENV}"):
        errors.append("the kubeconfig in its environment is not a secret")
    edges = graph.waits_for(render)
    dependants = [r for r in render.resources if r.custom and record.urn in edges[r.urn]]
    if record.name.endswith(kubectl.GATE_SUFFIX):
        if not _depends_on_type(record, render, RELEASE):
            errors.append("the webhook gate does not wait for its chart's Release")
        if not any(is_custom_resource(manifest(r)) for r in dependants):
            errors.append("no custom resource waits for the webhook gate")
    elif record.name.endswith(kubectl.CRD_GATE_SUFFIX):
        # A CRD's name is `<plural>.<group>` (apiextensions v1 `CustomResourceDefinition`).
        group = str(_script_params(record).get("crd", "")).partition(".")[2]
        if not _depends_on_type(record, render, PROVIDER):
            errors.append("the CRD gate does not wait for the Kubernetes provider")
        if not group or not any(
            r.type.startswith("kubernetes:")
            and str(manifest(r).get("apiVersion", "")).rpartition("/")[0] == group
            for r in dependants
        ):
            errors.append("no custom resource of its CRD's group waits for the CRD gate")
    elif not any(r.type == RELEASE and r.inputs.get("skipCrds") for r in dependants):
        errors.append("no Release that skips its CRDs waits for the CRD apply")
    return errors


def command(record: ResourceRecord, render: Render) -> Errors:
    """Key-minting commands: stdout is the key, so it is a secret; they run against a cluster
    that exists (Bootstrap) and a workload that exists (a Deployment). The Talos health wait is
    the one command of the cluster component, checked by `talos_health_command`; cluster commands
    (webhook gates, CRD gates, CRD applies) are checked by `kubectl_command`."""
    if record.name.endswith((kubectl.GATE_SUFFIX, kubectl.CRD_GATE_SUFFIX, kubectl.CRDS_SUFFIX)):
        return kubectl_command(record, render)
    parent = (
        render.by_urn(record.parent) if record.parent and _known(render, record.parent) else None
    )
    if upgrade.TALOS_STEP_INFIX in record.name or record.name.endswith(
        upgrade.KUBERNETES_STEP_SUFFIX
    ):
        return upgrade_command(record, render)
    if upgrade.REBOOT_STEP_INFIX in record.name:
        return reboot_command(record, render)
    if program_of(dict(record.inputs)) == name_of(change_guard):
        return change_guard_command(record, render)
    if parent is not None and parent.type == "homelab:talos:Cluster":
        if program_of(dict(record.inputs)) == name_of(node_set):
            return talos_node_set_command(record, render)
        return talos_health_command(record, render)
    errors = []
    if "stdout" not in record.additional_secret_outputs:
        errors.append("stdout (the minted key) is not an additional secret output")
    for path, value in leaves(dict(record.inputs)):
        if (
            isinstance(value, str)
            and any(s in value for s in engine.SENTINEL_SECRETS.values())
            and not record.is_secret(path)
        ):
            errors.append(f"{path} carries a config secret in plaintext")
    if not _depends_on_type(record, render, "kubernetes:apps/v1:Deployment"):
        errors.append("does not wait for the Deployment it execs into")
    return errors


def random_password(record: ResourceRecord, render: Render) -> Errors:
    length = record.inputs.get("length")
    return [] if isinstance(length, int) and length >= 16 else [f"length {length!r} < 16"]


def component(record: ResourceRecord, render: Render) -> Errors:
    """Components sit in the stack (or another component) and register their outputs."""
    errors = []
    if record.urn not in render.component_outputs:
        errors.append("never called register_outputs")
    if not record.type.startswith("homelab:"):
        errors.append("component type token outside the homelab: package")
    return errors


@dataclass(frozen=True)
class Contract:
    name: str
    claims: Callable[[str], bool]
    check: Check


CONTRACTS: tuple[Contract, ...] = (
    Contract("helm release", lambda t: t == RELEASE, helm_release),
    Contract(
        "kubernetes object",
        lambda t: t.startswith("kubernetes:") and t != RELEASE,
        kubernetes_object,
    ),
    Contract("kubernetes provider", lambda t: t == PROVIDER, kubernetes_provider),
    Contract("talos apply", lambda t: t == APPLY, talos_apply),
    Contract("talos secrets", lambda t: t == SECRETS, talos_secrets),
    Contract("talos bootstrap", lambda t: t == BOOTSTRAP, talos_bootstrap),
    Contract("talos kubeconfig", lambda t: t == KUBECONFIG, talos_kubeconfig),
    Contract("command", lambda t: t.startswith("command:"), command),
    Contract(
        "random password",
        lambda t: t == "random:index/randomPassword:RandomPassword",
        random_password,
    ),
    Contract("component", lambda t: t.startswith("homelab:"), component),
)


def contracts_for(type_token: str) -> list[Contract]:
    return [c for c in CONTRACTS if c.claims(type_token)]


# --- invokes ---------------------------------------------------------------------------------


def talos_invoke(invoke: InvokeRecord) -> Errors:
    """Data sources get their credentials and the pinned contract version."""
    errors = []
    if invoke.token == "talos:machine/getConfiguration:getConfiguration":
        if invoke.args.get("talosVersion") != pins.TALOS_VERSION:
            errors.append(f"talosVersion {invoke.args.get('talosVersion')!r} is not the pin")
        if not invoke.args.get("machineSecrets"):
            errors.append("no machine secrets")
    elif not invoke.args.get("clientConfiguration"):
        errors.append("no client configuration")
    return errors


def key_check_invoke(invoke: InvokeRecord) -> Errors:
    """A key's renewal check (components/remote_access/keys.py): a check-mode script of the key scripts, run
    with python3 and the kubeconfig in its environment, printing only the generation."""
    errors = []
    if program_of(dict(invoke.args)) != name_of(headscale_key):
        errors.append("does not run the key program")
    elif parameters(str(invoke.args.get("command", ""))).get("mode") != "check":
        errors.append("is not a key check")
    if invoke.args.get("interpreter") != ["python3", "-c"]:
        errors.append(f"interpreter {invoke.args.get('interpreter')!r} is not python3 -c")
    environment = invoke.args.get("environment")
    if not isinstance(environment, Mapping) or set(environment) != {
        "HOMELAB_KUBECONFIG",
        PROGRAM_ENV,
    }:
        errors.append("its environment must be the kubeconfig and the program's name alone")
    if invoke.args.get("logging") != "stderr":
        errors.append("must log stderr only")
    return errors


INVOKE_CONTRACTS: dict[str, Callable[[InvokeRecord], Errors]] = {
    "command:local:run": key_check_invoke,
    "talos:machine/getConfiguration:getConfiguration": talos_invoke,
    "talos:client/getConfiguration:getConfiguration": talos_invoke,
}


# --- the tests -------------------------------------------------------------------------------


@pytest.mark.stack_files
@pytest.mark.parametrize("stack", list(RENDERS))
def test_every_record_is_claimed_by_exactly_one_contract(stack: str) -> None:
    render = RENDERS[stack]()
    unclaimed = sorted({r.type for r in render.resources if not contracts_for(r.type)})
    assert unclaimed == [], f"resource types with no contract: {unclaimed}"
    doubly = sorted({r.type for r in render.resources if len(contracts_for(r.type)) > 1})
    assert doubly == [], f"resource types claimed twice: {doubly}"
    unclaimed_invokes = sorted({i.token for i in render.invokes} - set(INVOKE_CONTRACTS))
    assert unclaimed_invokes == [], f"invokes with no contract: {unclaimed_invokes}"


@pytest.mark.stack_files
@pytest.mark.parametrize("stack", list(RENDERS))
def test_every_record_meets_its_contract(stack: str) -> None:
    render = RENDERS[stack]()
    failures = [
        f"{record.type} {record.name}: {error}"
        for record in render.resources
        for contract in contracts_for(record.type)
        for error in contract.check(record, render)
    ]
    failures += [
        f"invoke {invoke.token}: {error}"
        for invoke in render.invokes
        if invoke.token in INVOKE_CONTRACTS
        for error in INVOKE_CONTRACTS[invoke.token](invoke)
    ]
    assert failures == [], "\n".join(failures)


def test_the_contracts_cover_every_layer_of_the_homelab() -> None:
    # A guard against a render that silently lost a layer: each contract family has work to do.
    claimed = {c.name for r in homelab_render().resources for c in contracts_for(r.type)}
    assert claimed == {c.name for c in CONTRACTS}


# --- the contracts fail when they must -------------------------------------------------------


def _record(type_token: str, **changes: Any) -> ResourceRecord:
    base = next(r for r in homelab_render().resources if r.type == type_token)
    return ResourceRecord(**{**base.__dict__, **changes})


def test_a_misspelled_field_in_a_built_in_object_breaks_its_contract() -> None:
    namespace = _record("kubernetes:core/v1:Namespace")
    broken = _record(
        "kubernetes:core/v1:Namespace", inputs={**namespace.inputs, "spec": {"finalisers": []}}
    )
    assert kubernetes_object(namespace, homelab_render()) == []
    assert kubernetes_object(broken, homelab_render()) != []


def test_an_unknown_field_in_a_custom_resource_breaks_its_contract() -> None:
    pool = _record("kubernetes:metallb.io/v1beta1:IPAddressPool")
    spec = {**pool.inputs["spec"], "autoAssing": False}
    broken = _record(
        "kubernetes:metallb.io/v1beta1:IPAddressPool", inputs={**pool.inputs, "spec": spec}
    )
    assert any("autoAssing" in e for e in kubernetes_object(broken, homelab_render()))


def test_an_object_on_another_provider_breaks_its_contract() -> None:
    stray = _record(
        "kubernetes:core/v1:Namespace",
        provider="urn:pulumi:x::y::pulumi:providers:kubernetes::default::id",
    )
    assert any("one Kubernetes provider" in e for e in kubernetes_object(stray, homelab_render()))


def test_an_unpinned_chart_version_breaks_its_contract() -> None:
    release = next(r for r in homelab_render().by_type(RELEASE) if r.input("chart") == "traefik")
    drifted = ResourceRecord(
        **{**release.__dict__, "inputs": {**release.inputs, "version": "1.0.0"}}
    )
    assert any("not the pin" in e for e in helm_release(drifted, homelab_render()))


def test_a_headscale_config_with_an_unknown_or_removed_key_breaks_its_contract() -> None:
    configmap = next(
        r
        for r in homelab_render().by_type(CONFIG_MAP)
        if r.input("metadata.name") == "headscale-config"
    )
    settings = yaml.safe_load(configmap.input("data")["config.yaml"])
    assert headscale_config_errors(settings) == []
    # `acl_policy_path` was removed before the pinned 0.28 (components.md 2.2): fatal at startup.
    assert any(
        "acl_policy_path" in e
        for e in headscale_config_errors({**settings, "acl_policy_path": "/etc/acl.hujson"})
    )
    assert any("not_a_key" in e for e in headscale_config_errors({**settings, "not_a_key": 1}))


def test_a_headplane_config_with_an_unknown_key_breaks_its_contract() -> None:
    configmap = next(
        r
        for r in homelab_render().by_type(CONFIG_MAP)
        if r.input("metadata.name") == "headplane-config"
    )
    settings = yaml.safe_load(configmap.input("data")["config.yaml"])
    assert headplane_config_errors(settings) == []
    server = {**settings["server"], "cookie_secrets": "x"}
    assert any(
        "cookie_secrets" in e for e in headplane_config_errors({**settings, "server": server})
    )


def test_a_type_without_a_contract_is_reported() -> None:
    assert contracts_for("aws:s3/bucket:Bucket") == []
    assert [c.name for c in contracts_for(RELEASE)] == ["helm release"]


def test_a_cluster_command_with_a_plain_kubeconfig_or_nothing_waiting_breaks_its_contract() -> None:
    render = homelab_render()
    gate = next(r for r in render.by_type("command:local:Command") if r.name.endswith("-ready"))
    assert command(gate, render) == []
    plain = ResourceRecord(**{**gate.__dict__, "secret_paths": ()})
    assert any("not a secret" in e for e in command(plain, render))
    orphan = ResourceRecord(**{**gate.__dict__, "urn": gate.urn + "-copy"})
    assert any("waits for the webhook gate" in e for e in command(orphan, render))


def test_a_crd_gate_with_a_plain_kubeconfig_or_nothing_of_its_group_waiting_breaks_its_contract() -> (
    None
):
    """The backup render has the one CRD gate (the fixture stacks have no backup target)."""
    render = backup_render()
    (gate,) = crd_gates(render)
    assert command(gate, render) == []
    plain = ResourceRecord(**{**gate.__dict__, "secret_paths": ()})
    assert any("not a secret" in e for e in command(plain, render))
    orphan = ResourceRecord(**{**gate.__dict__, "urn": gate.urn + "-copy"})
    assert any("waits for the CRD gate" in e for e in command(orphan, render))
    other_crd = with_parameters(gate.inputs["create"], {"crd": "widgets.example.com"})
    elsewhere = ResourceRecord(**{**gate.__dict__, "inputs": {**gate.inputs, "create": other_crd}})
    assert any("waits for the CRD gate" in e for e in command(elsewhere, render))
    early = ResourceRecord(**{**gate.__dict__, "dependencies": (), "property_dependencies": {}})
    assert any("Kubernetes provider" in e for e in command(early, render))
