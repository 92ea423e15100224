"""The Talos cluster component: the graph from booted nodes to the one Kubernetes provider.

Expectations come from the config (node IPs, roles, versions) and from upstream facts (the Talos
config schema, the provider's wire names); the component's own output is never the oracle.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from components.cluster import talos_patches
from config.loader import validate_config
from config.model import HomelabConfig, Node
from homelab import engine, fakes
from homelab.engine import Render, ResourceRecord
from tests.contracts import (
    leaves,
    merged_machine_config,
    of_kind,
    patch_documents,
    talos_config_errors,
    v1alpha1_part,
)
from tests.harness import (
    fixture_stack_config,
    homelab_render,
    reference_json,
    render_config,
    stack_raw_config,
    with_changes,
    yaml_documents,
)

APPLY = "talos:machine/configurationApply:ConfigurationApply"
BOOTSTRAP = "talos:machine/bootstrap:Bootstrap"
KUBECONFIG = "talos:cluster/kubeconfig:Kubeconfig"
SECRETS = "talos:machine/secrets:Secrets"
KUBERNETES_PROVIDER = "pulumi:providers:kubernetes"
GET_CONFIGURATION = "talos:machine/getConfiguration:getConfiguration"
GET_HEALTH = "talos:cluster/getHealth:getHealth"
COMMAND = "command:local:Command"
GET_TALOSCONFIG = "talos:client/getConfiguration:getConfiguration"


# --- configs and renders ---------------------------------------------------------------------


def _nodes(control_planes: int, workers: int) -> list[dict[str, str]]:
    """Nodes on the seed LAN, clear of the seed's VIP (.10) and MetalLB pool (.220-.239)."""
    return [
        {"hostname": f"cp-{i}", "ip": f"192.168.0.{10 + i}", "role": "controlplane"}
        for i in range(1, control_planes + 1)
    ] + [
        {"hostname": f"worker-{i}", "ip": f"192.168.0.{20 + i}", "role": "worker"}
        for i in range(1, workers + 1)
    ]


def ha_raw() -> dict[str, Any]:
    return with_changes(
        stack_raw_config(),
        {"cluster.nodes": _nodes(3, 2), "cluster.allowSchedulingOnControlPlanes": False},
    )


def single_node_raw() -> dict[str, Any]:
    return with_changes(stack_raw_config(), {"cluster.nodes": _nodes(1, 0)})


def lab_raw() -> dict[str, Any]:
    return with_changes(stack_raw_config(), {"lifecycle": {"environment": "lab"}})


@functools.cache
def ha_render() -> Render:
    return render_config(ha_raw())


@functools.cache
def single_node_render() -> Render:
    return render_config(single_node_raw())


@functools.cache
def lab_render() -> Render:
    return render_config(lab_raw())


def model(raw: Mapping[str, Any]) -> HomelabConfig:
    return validate_config(raw)


# --- reading records -------------------------------------------------------------------------


def applies_by_ip(render: Render) -> dict[str, ResourceRecord]:
    applies = render.by_type(APPLY)
    by_ip = {str(r.input("node")): r for r in applies}
    assert len(by_ip) == len(applies), "two applies target the same node"
    return by_ip


def is_secret_material(value: Any) -> bool:
    return isinstance(value, str) and (
        "FAKE" in value or any(s in value for s in engine.SENTINEL_SECRETS.values())
    )


# --- every node, its own apply ---------------------------------------------------------------


@pytest.mark.parametrize("raw", [stack_raw_config(), ha_raw()], ids=["homelab", "ha"])
def test_every_node_gets_one_apply_with_its_own_patches(raw: dict[str, Any]) -> None:
    config = model(raw)
    render = render_config(raw)
    applies = applies_by_ip(render)
    assert set(applies) == {str(n.ip) for n in config.cluster.nodes}
    for node in config.cluster.nodes:
        apply = applies[str(node.ip)]
        # Talos API calls go to the node itself, never to the VIP (components.md 1.3).
        assert apply.input("endpoint") == str(node.ip)
        documents = patch_documents(apply)
        (hostname,) = of_kind(documents, "HostnameConfig")
        assert hostname["hostname"] == node.hostname
        (link,) = of_kind(documents, "LinkConfig")
        assert link["addresses"] == [{"address": f"{node.ip}/{config.network.lan_cidr.prefixlen}"}]
        assert link["routes"] == [{"gateway": str(config.network.gateway)}]
        (resolver,) = of_kind(documents, "ResolverConfig")
        assert [ns["address"] for ns in resolver["nameservers"]] == [
            str(ns) for ns in config.network.node_nameservers
        ]
        install = v1alpha1_part(documents)["machine"]["install"]
        assert install == {
            "disk": node.install_disk,
            "image": f"ghcr.io/siderolabs/installer:{config.cluster.talos_version}",
        }


def test_each_apply_starts_from_the_generated_config_of_its_role() -> None:
    render = ha_render()
    config = model(ha_raw())
    for node in config.cluster.nodes:
        base = yaml_documents(
            applies_by_ip(render)[str(node.ip)].input("machineConfigurationInput")
        )
        assert v1alpha1_part(base)["machine"]["type"] == node.role


def test_installer_follows_the_installed_version_and_the_contract_its_own_value() -> None:
    """The contract is moved on purpose only (`cluster.talosConfigContract`), never by a Talos
    bump; the installer image follows the installed version (components/cluster/upgrade.py)."""
    raw = with_changes(
        stack_raw_config(),
        {
            "cluster.talosVersion": "v1.13.8",
            "cluster.talosConfigContract": "v1.12.0",
            "cluster.kubernetesVersion": "1.36.1",
        },
    )
    render = render_config(raw)
    assert render.one(SECRETS).input("talosVersion") == "v1.12.0"
    configurations = [i for i in render.invokes if i.token == GET_CONFIGURATION]
    assert {i.args["machineType"] for i in configurations} == {"controlplane"}
    for invoke in configurations:
        assert invoke.args["talosVersion"] == "v1.12.0"
        assert invoke.args["kubernetesVersion"] == "1.36.1"
        assert invoke.args["clusterEndpoint"] == "https://192.168.0.10:6443"  # the seed's VIP
    for apply in render.by_type(APPLY):
        image = v1alpha1_part(patch_documents(apply))["machine"]["install"]["image"]
        assert image.endswith(":v1.13.8")


def test_one_machine_configuration_per_role() -> None:
    roles = [i.args["machineType"] for i in ha_render().invokes if i.token == GET_CONFIGURATION]
    assert sorted(roles) == ["controlplane", "worker"]


# --- the order of things ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_of", "render_of"), [(stack_raw_config, homelab_render), (ha_raw, ha_render)]
)
def test_bootstrap_is_single_and_follows_the_first_control_plane_apply(
    raw_of: Any, render_of: Any
) -> None:
    render: Render = render_of()
    first = model(raw_of()).cluster.control_planes[0]
    bootstrap = render.one(BOOTSTRAP)
    assert bootstrap.input("node") == str(first.ip)
    assert bootstrap.input("endpoint") == str(first.ip)
    assert applies_by_ip(render)[str(first.ip)].urn in bootstrap.dependencies


def test_kubeconfig_follows_the_bootstrap_and_feeds_the_only_kubernetes_provider() -> None:
    render = homelab_render()
    bootstrap = render.one(BOOTSTRAP)
    kubeconfig = render.one(KUBECONFIG)
    assert bootstrap.urn in kubeconfig.dependencies
    provider = render.one(KUBERNETES_PROVIDER)
    assert kubeconfig.urn in provider.property_dependencies["kubeconfig"]
    assert provider.input("kubeconfig") == kubeconfig.outputs["kubeconfigRaw"]


def health_command(render: Render) -> ResourceRecord:
    (found,) = [r for r in render.by_type(COMMAND) if r.name == "cluster-health"]
    return found


def test_health_wait_holds_the_kubeconfig_until_every_node_is_configured() -> None:
    render = ha_render()
    health = health_command(render)
    # It runs after every apply and the bootstrap, and the provider's kubeconfig waits for it.
    assert {a.urn for a in render.by_type(APPLY)} | {render.one(BOOTSTRAP).urn} <= set(
        health.dependencies
    )
    provider = render.one(KUBERNETES_PROVIDER)
    assert health.urn in provider.dependencies
    # ...by ordering, not through the kubeconfig's value: a wait about to run again must not
    # make the kubeconfig unknown in a preview.
    assert set(provider.property_dependencies["kubeconfig"]) == {render.one(KUBECONFIG).urn}


def test_health_is_never_an_invoke_so_a_preview_runs_no_check() -> None:
    """A preview of an existing stack registers no health check at all.

    Invokes run on every preview once the stack exists, and the provider's health data source
    runs the full checks when read, with a 10-minute timeout (terraform-provider-talos@v0.11.0:
    pkg/talos/talos_cluster_health_data_source.go `Read`: check.Wait(..., 10*time.Minute)). Every
    invoke left must be one that computes locally: the machine- and client-configuration data
    sources never dial a node (same tag: talos_machine_configuration_data_source.go,
    talos_client_configuration_data_source.go have no client.New).
    """
    config, secret_keys = fixture_stack_config("homelab")
    render = engine.render("homelab", config=config, secret_keys=secret_keys, preview=True)
    # The Headscale key check (`command:local:run`, components/remote_access/keys.py) is remote access's own
    # preview-time call, not the cluster's; the cluster's invokes are the two local ones.
    talos_invokes = {i.token for i in render.invokes if i.token.startswith("talos:")}
    assert talos_invokes == {GET_CONFIGURATION, GET_TALOSCONFIG}
    assert [r.name for r in render.by_type(COMMAND) if r.parent == talos_component(render).urn]
    for render_of in (homelab_render, ha_render, lab_render):
        assert GET_HEALTH not in {i.token for i in render_of().invokes}


def talos_component(render: Render) -> ResourceRecord:
    return render.one("homelab:talos:Cluster")


def test_without_the_health_wait_the_kubeconfig_comes_straight_from_talos() -> None:
    raw = with_changes(stack_raw_config(), {"cluster.waitForHealth": False})
    render = render_config(raw)
    assert not [r for r in render.by_type(COMMAND) if r.name == "cluster-health"]
    provider = render.one(KUBERNETES_PROVIDER)
    assert render.one(KUBECONFIG).urn in provider.property_dependencies["kubeconfig"]
    assert not [u for u in provider.dependencies if "Command" in u]


@pytest.mark.parametrize("render_of", [homelab_render, ha_render, lab_render])
def test_every_kubernetes_resource_uses_the_one_provider_and_goes_with_the_cluster(
    render_of: Any,
) -> None:
    render: Render = render_of()
    provider = render.one(KUBERNETES_PROVIDER)  # also: there is exactly one
    bootstrap = render.one(BOOTSTRAP)
    # Holds for any number of Kubernetes objects, which the platform components add.
    for record in render.resources:
        if record.custom and record.type.startswith("kubernetes:"):
            # A provider reference is "<provider urn>::<provider id>".
            assert (record.provider or "").startswith(f"{provider.urn}::"), record.urn
            assert record.deleted_with == bootstrap.urn, record.urn


# --- topology: VIP and scheduling ------------------------------------------------------------


def test_ha_cluster_puts_the_vip_on_control_planes_only_and_keeps_them_for_the_system() -> None:
    config = model(ha_raw())
    applies = applies_by_ip(ha_render())
    for node in config.cluster.nodes:
        documents = patch_documents(applies[str(node.ip)])
        vips = of_kind(documents, "Layer2VIPConfig")
        (link,) = of_kind(documents, "LinkConfig")
        cluster_part = v1alpha1_part(documents).get("cluster", {})
        if node.role == "controlplane":
            assert vips == [
                {
                    "apiVersion": "v1alpha1",
                    "kind": "Layer2VIPConfig",
                    "name": str(config.cluster.vip),
                    "link": link["name"],
                }
            ]
            assert cluster_part["allowSchedulingOnControlPlanes"] is False
        else:
            assert vips == []
            assert "allowSchedulingOnControlPlanes" not in cluster_part


def test_single_node_cluster_schedules_workloads_on_its_control_plane() -> None:
    (apply,) = single_node_render().by_type(APPLY)
    documents = patch_documents(apply)
    assert v1alpha1_part(documents)["cluster"]["allowSchedulingOnControlPlanes"] is True


def test_control_planes_that_run_workloads_may_announce_load_balancer_ips() -> None:
    # components.md 1.4 #2: with the generated label, MetalLB never announces from the node.
    label = "node.kubernetes.io/exclude-from-external-load-balancers"
    for node_ip, apply in applies_by_ip(homelab_render()).items():
        generated = v1alpha1_part(yaml_documents(apply.input("machineConfigurationInput")))
        assert label in generated["machine"]["nodeLabels"], "the fake must mirror Talos"
        merged = v1alpha1_part(merged_machine_config(apply))
        assert label not in merged["machine"].get("nodeLabels", {}), node_ip
    # With dedicated workers the control planes keep Talos' default.
    config = model(ha_raw())
    applies = applies_by_ip(ha_render())
    for node in config.cluster.control_planes:
        merged = v1alpha1_part(merged_machine_config(applies[str(node.ip)]))
        assert label in merged["machine"]["nodeLabels"]


def test_static_hostname_replaces_the_generated_automatic_one() -> None:
    # HostnameConfig.Validate (hostname.go @ v1.13.9): `hostname` needs `auto` unset or "off".
    for apply in homelab_render().by_type(APPLY):
        (hostname,) = of_kind(merged_machine_config(apply), "HostnameConfig")
        assert hostname.get("auto", "off") == "off"
        assert hostname["hostname"]


# --- upstream schema -------------------------------------------------------------------------


@pytest.mark.parametrize("render_of", [homelab_render, ha_render, single_node_render, lab_render])
def test_every_node_config_validates_against_the_talos_schema(render_of: Any) -> None:
    """Each document of each node's config (patches merged onto the generated base) is valid.

    The schema's top level is a oneOf over document kinds, so documents are checked one by
    one. Patches are validated merged, not raw: the `$patch: delete` directive is an object
    where the schema wants a string (nodeLabels), and merging is what Talos does with it.
    v1alpha1.Config requires no keys, the multi-doc kinds require apiVersion/kind (and name
    for named ones), which the patches carry themselves.
    """
    render: Render = render_of()
    applies = render.by_type(APPLY)
    assert applies
    for apply in applies:
        assert talos_config_errors(apply) == [], apply.name


def test_patches_without_directives_validate_on_their_own() -> None:
    validator = Draft202012Validator(reference_json("upstream/talos/config.schema.json"))
    for apply in ha_render().by_type(APPLY):
        for document in patch_documents(apply):
            if any(path.endswith("$patch") for path, _ in leaves(document)):
                continue
            error = best_match(validator.iter_errors(document))
            assert error is None, f"{apply.name}: {document}: {error.message if error else ''}"


def test_a_named_interface_replaces_the_physical_nic_alias() -> None:
    raw = with_changes(stack_raw_config(), {"cluster.nodes.0.interface": "enp1s0"})
    applies = applies_by_ip(render_config(raw))
    named = patch_documents(applies["192.168.0.11"])
    assert of_kind(named, "LinkAliasConfig") == []
    assert [d["name"] for d in of_kind(named, "LinkConfig")] == ["enp1s0"]
    assert [d["link"] for d in of_kind(named, "Layer2VIPConfig")] == ["enp1s0"]
    default = patch_documents(applies["192.168.0.12"])
    (alias,) = of_kind(default, "LinkAliasConfig")
    assert [d["name"] for d in of_kind(default, "LinkConfig")] == [alias["name"]]


def test_configured_nameservers_replace_the_gateway() -> None:
    raw = with_changes(stack_raw_config(), {"network.nameservers": ["9.9.9.9", "1.1.1.1"]})
    for apply in render_config(raw).by_type(APPLY):
        (resolver,) = of_kind(patch_documents(apply), "ResolverConfig")
        assert resolver["nameservers"] == [{"address": "9.9.9.9"}, {"address": "1.1.1.1"}]


def test_patches_are_serialised_canonically() -> None:
    # Sorted keys, one document per patch: the same config gives byte-identical inputs.
    for apply in ha_render().by_type(APPLY):
        for text in apply.input("configPatches"):
            assert yaml.safe_dump(yaml.safe_load(text), sort_keys=True) == text


def test_patch_building_is_pure() -> None:
    config = model(ha_raw())
    node: Node = config.cluster.control_planes[0]
    first = talos_patches.node_config_patches(config.cluster, config.network, node)
    assert first == talos_patches.node_config_patches(config.cluster, config.network, node)
    assert [yaml.safe_load(t) for t in first] == talos_patches.node_patch_documents(
        config.cluster, config.network, node
    )


# --- secrets ---------------------------------------------------------------------------------


def test_machine_secrets_reach_the_data_source_field_by_field() -> None:
    # Passing the output object through sends snake_case keys (`bootstrap_token`), which the
    # provider does not know (pulumi-talos #103/#251): every field must arrive by its wire name.
    render = ha_render()
    expected = fakes.talos_machine_secrets(render.one(SECRETS).name)
    configurations = [i for i in render.invokes if i.token == GET_CONFIGURATION]
    assert configurations
    for invoke in configurations:
        assert invoke.args["machineSecrets"] == expected


def test_client_configuration_reaches_every_talos_call_field_by_field() -> None:
    render = ha_render()
    expected = fakes.talos_client_configuration(render.one(SECRETS).name)
    records = [*render.by_type(APPLY), render.one(BOOTSTRAP), render.one(KUBECONFIG)]
    invokes = [i for i in render.invokes if i.token == GET_TALOSCONFIG]
    assert len(invokes) == 1
    for record in records:
        assert record.input("clientConfiguration") == expected, record.name
        assert record.is_secret("clientConfiguration"), record.name
    for invoke in invokes:
        assert invoke.args["clientConfiguration"] == expected, invoke.token


@pytest.mark.parametrize("render_of", [homelab_render, ha_render, lab_render])
def test_kubeconfig_and_talosconfig_outputs_are_secret(render_of: Any) -> None:
    render: Render = render_of()
    assert render.output_is_secret("kubeconfig")
    assert render.output_is_secret("talosconfig")
    assert render.one(KUBERNETES_PROVIDER).is_secret("kubeconfig")


# talosctl's client configuration (siderolabs/talos@v1.13.9: pkg/machinery/client/config/
# config.go): `Config` is {context, contexts}; each `Context` has these YAML keys.
TALOSCONFIG_KEYS = {"context", "contexts"}
TALOSCONFIG_CONTEXT_KEYS = {"target", "endpoints", "nodes", "ca", "crt", "key", "auth", "cluster"}


def test_exported_talosconfig_targets_no_node_until_one_is_named() -> None:
    """The talosconfig names endpoints only, so a command without `-n` goes nowhere.

    talosctl takes the nodes of a command from `--nodes`, else from the context's `nodes`, and
    refuses to run without either (siderolabs/talos@v1.13.9: cmd/talosctl/pkg/talos/global/
    client.go `getNodes`: "nodes are not set for the command"). With every node in the context,
    `talosctl reboot` would reboot the whole cluster. `endpoints` is what talosctl dials
    (client.go `WithClientNoNodes`): control planes, not the VIP (components.md 1.3).
    """
    render = ha_render()
    config = model(ha_raw())
    (invoke,) = [i for i in render.invokes if i.token == GET_TALOSCONFIG]
    assert invoke.args["clusterName"] == config.cluster.name
    assert "nodes" not in invoke.args
    exported = yaml.safe_load(render.outputs["talosconfig"])
    assert set(exported) <= TALOSCONFIG_KEYS
    context = exported["contexts"][exported["context"]]
    assert set(context) <= TALOSCONFIG_CONTEXT_KEYS
    assert "nodes" not in context
    assert context["endpoints"] == [str(n.ip) for n in config.cluster.control_planes]
    assert str(config.cluster.vip) not in context["endpoints"]


@pytest.mark.parametrize("render_of", [homelab_render, ha_render, lab_render])
def test_no_secret_material_in_plaintext_inputs(render_of: Any) -> None:
    render: Render = render_of()
    for record in render.resources:
        for path, value in leaves(dict(record.inputs)):
            if is_secret_material(value):
                assert record.is_secret(path), f"{record.urn}: {path}"


@pytest.mark.parametrize("render_of", [homelab_render, ha_render])
def test_secret_material_in_invokes_is_only_the_credentials_they_need(render_of: Any) -> None:
    # The SDK unwraps secret markers before an invoke goes out (pulumi/runtime/invoke.py
    # `_unwrap_rpc_secret_struct_properties`; invoke arguments are not stored in state) and marks
    # the result secret instead, so the check here is that credentials go nowhere else.
    # The key checks (components/remote_access/keys.py) take the kubeconfig, in their environment only.
    needed = {"machineSecrets", "clientConfiguration", "environment.HOMELAB_KUBECONFIG"}
    render: Render = render_of()
    for invoke in render.invokes:
        for path, value in leaves(dict(invoke.args)):
            if is_secret_material(value):
                assert path.split(".")[0] in needed or path in needed, f"{invoke.token}: {path}"


# --- lifecycle -------------------------------------------------------------------------------


def test_homelab_protects_its_secrets_and_never_resets_nodes() -> None:
    render = homelab_render()
    assert render.one(SECRETS).protect
    for apply in render.by_type(APPLY):
        assert not apply.inputs.get("onDestroy", {}).get("reset", False), apply.name
    assert render.one(KUBERNETES_PROVIDER).input("deleteUnreachable") == "false"


def test_lab_resets_its_nodes_on_destroy_and_is_not_protected() -> None:
    render = lab_render()
    assert not render.one(SECRETS).protect
    for apply in render.by_type(APPLY):
        assert apply.input("onDestroy") == {"reset": True, "graceful": False, "reboot": True}
    assert render.one(KUBERNETES_PROVIDER).input("deleteUnreachable") == "true"


def test_without_a_vip_the_api_endpoint_is_the_first_control_plane() -> None:
    raw = stack_raw_config()
    raw["cluster"] = {k: v for k, v in raw["cluster"].items() if k != "vip"}
    render = render_config(raw)
    first = model(raw).cluster.control_planes[0]
    for invoke in render.invokes:
        if invoke.token == GET_CONFIGURATION:
            assert invoke.args["clusterEndpoint"] == f"https://{first.ip}:6443"
    for apply in render.by_type(APPLY):
        assert of_kind(patch_documents(apply), "Layer2VIPConfig") == []


def test_kubelet_sees_the_local_path_volume_root_on_every_node() -> None:
    raw = stack_raw_config()
    root = model(raw).storage.local_path_root
    for apply in homelab_render().by_type(APPLY):
        mounts = v1alpha1_part(patch_documents(apply))["machine"]["kubelet"]["extraMounts"]
        assert [(m["source"], m["destination"]) for m in mounts] == [(root, root)]
        assert "rshared" in mounts[0]["options"]
    # With an existing StorageClass nothing is provisioned on the host, so nothing is mounted.
    external = with_changes(raw, {"storage": {"storageClass": "nfs-client"}})
    for apply in render_config(external).by_type(APPLY):
        assert "kubelet" not in v1alpha1_part(patch_documents(apply))["machine"]


def test_control_planes_enforce_the_stacks_network_policies() -> None:
    # The stack creates NetworkPolicies (components/shared/security.py); with flannel they only take
    # effect when kube-network-policies is deployed (Talos v1.13 FlannelCNIConfig).
    assert homelab_render().by_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    config = model(ha_raw())
    applies = applies_by_ip(ha_render())
    for node in config.cluster.nodes:
        cluster_part = v1alpha1_part(patch_documents(applies[str(node.ip)])).get("cluster", {})
        cni = cluster_part.get("network", {}).get("cni", {})
        if node.role == "controlplane":
            assert cni == {"name": "flannel", "flannel": {"kubeNetworkPoliciesEnabled": True}}
        else:
            assert cni == {}


# --- multi-NIC nodes: the link alias controller's rule -----------------------------------------


def aliased_links(selector: str, links: list[dict[str, Any]]) -> list[str]:
    """Which physical links a fixed-name LinkAliasConfig aliases, by Talos' rule.

    siderolabs/talos@v1.13.9: internal/app/machined/pkg/controllers/network/link_alias_config.go
    `Run`: only physical links are offered; a fixed name (no `%d`) must match exactly one of them,
    else "link selector matched multiple links, skipping" and nothing is aliased. `mac()` is Go's
    `net.HardwareAddr.String()` (pkg/machinery/cel/celenv/celenv.go `LinkLocator`): lowercase
    hex pairs joined by ':'. The selectors evaluated here are the two forms the patches emit
    (`true`, and the MAC equality of link_alias.go `exampleLinkSelector1`); any other is a failure.
    """
    physical = [link for link in links if link["physical"]]
    mac_form = re.fullmatch(r'mac\(link\.permanent_addr\) == "([0-9a-f:]+)"', selector)
    if selector == "true":
        matched = physical
    elif mac_form is not None:
        matched = [
            link
            for link in physical
            if ":".join(f"{b:02x}" for b in link["permanent_addr"]) == mac_form.group(1)
        ]
    else:
        raise AssertionError(f"selector outside the forms Talos documents: {selector!r}")
    return [link["id"] for link in matched] if len(matched) == 1 else []


ONE_NIC = [
    {"id": "enp1s0", "physical": True, "permanent_addr": bytes.fromhex("001a2b3c4d5e")},
    {"id": "lo", "physical": False, "permanent_addr": b""},
]
TWO_NICS = [
    *ONE_NIC,
    {"id": "enp2s0", "physical": True, "permanent_addr": bytes.fromhex("001a2b3c4d5f")},
]


def _alias_of(raw: dict[str, Any], ip: str) -> dict[str, Any]:
    (alias,) = of_kind(patch_documents(applies_by_ip(render_config(raw))[ip]), "LinkAliasConfig")
    return alias


def test_a_single_nic_node_keeps_the_catch_all_alias() -> None:
    alias = _alias_of(stack_raw_config(), "192.168.0.11")
    assert aliased_links(alias["selector"]["match"], ONE_NIC) == ["enp1s0"]
    # The same selector on a second NIC aliases nothing: why a multi-NIC node needs `mac`.
    assert aliased_links(alias["selector"]["match"], TWO_NICS) == []


def test_a_node_selected_by_mac_aliases_exactly_its_nic_among_several() -> None:
    # Written the way a BIOS shows it; Talos compares against the lowercase ':' form.
    raw = with_changes(stack_raw_config(), {"cluster.nodes.0.mac": "00-1A-2B-3C-4D-5F"})
    config = model(raw)
    assert config.cluster.nodes[0].mac == "00:1a:2b:3c:4d:5f"
    alias = _alias_of(raw, "192.168.0.11")
    assert aliased_links(alias["selector"]["match"], TWO_NICS) == ["enp2s0"]
    documents = patch_documents(applies_by_ip(render_config(raw))["192.168.0.11"])
    # The static address and the VIP go on the alias, so on the selected NIC.
    assert [d["name"] for d in of_kind(documents, "LinkConfig")] == [alias["name"]]
    assert [d["link"] for d in of_kind(documents, "Layer2VIPConfig")] == [alias["name"]]
    # Other nodes keep the single-NIC default.
    assert _alias_of(raw, "192.168.0.12")["selector"]["match"] == "true"


def test_alias_documents_validate_against_the_talos_schema() -> None:
    raw = with_changes(stack_raw_config(), {"cluster.nodes.0.mac": "00:1a:2b:3c:4d:5f"})
    for apply in render_config(raw).by_type(APPLY):
        assert talos_config_errors(apply) == [], apply.name


# --- preview: the provider's identity ----------------------------------------------------------


def provider_replaces(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
    """The replacements pulumi-kubernetes' DiffConfig plans for its provider.

    pulumi/pulumi-kubernetes@v4.32.0 (newest tag mirrored; we pin 4.34.2):
    provider/pkg/provider/provider.go `DiffConfig`: a changed clusterIdentifier replaces; an
    unknown kubeconfig/context/cluster replaces ("We can't tell for sure if a computed value has
    changed"); and when clusterIdentifier is the same and known in the news, the deferred
    handler clears every replacement. (A changed known kubeconfig replaces only when its active
    cluster changes; not modelled, the cases here are unknown or identical kubeconfigs.)
    """
    replaces: list[str] = []
    key = "clusterIdentifier"
    if key in olds and key in news and olds[key] != news[key]:
        replaces.append(key)
    same = olds.get(key) == news.get(key) and news.get(key) not in (None, engine.UNKNOWN)
    replaces += [k for k in ("kubeconfig", "context", "cluster") if news.get(k) == engine.UNKNOWN]
    return [] if same else replaces


def preview_render(raw: dict[str, Any]) -> Render:
    """A preview of an existing stack whose kubeconfig the update is about to refetch."""
    config = {f"{engine.PROJECT}:{k}": v for k, v in raw.items()}
    return engine.render(
        "test",
        config=config,
        secret_keys=[f"{engine.PROJECT}:dnsApiToken"],
        preview=True,
        unknown_outputs={KUBECONFIG: ["kubeconfigRaw"], COMMAND: ["stdout"]},
    )


def test_the_model_of_diffconfig_replaces_without_an_identifier() -> None:
    # The model itself: no identifier and an unknown kubeconfig is the replace-everything case.
    assert provider_replaces({"kubeconfig": "a"}, {"kubeconfig": engine.UNKNOWN}) == ["kubeconfig"]
    assert provider_replaces({"clusterIdentifier": "a"}, {"clusterIdentifier": "b"}) == [
        "clusterIdentifier"
    ]


def test_adding_a_node_keeps_the_provider_so_no_kubernetes_object_is_replaced() -> None:
    before = stack_raw_config()
    worker = {"hostname": "talos-w-1", "ip": "192.168.0.21", "role": "worker"}
    after = with_changes(
        before,
        {
            "cluster.nodes": [*before["cluster"]["nodes"], worker],
            "cluster.allowSchedulingOnControlPlanes": True,
        },
    )
    olds = dict(render_config(before).one(KUBERNETES_PROVIDER).inputs)
    preview = preview_render(after)
    news = dict(preview.one(KUBERNETES_PROVIDER).inputs)
    assert news["kubeconfig"] == engine.UNKNOWN, "the preview must see an unknown kubeconfig"
    assert news["clusterIdentifier"] == olds["clusterIdentifier"]
    assert news["clusterIdentifier"] != engine.UNKNOWN
    assert provider_replaces(olds, news) == []
    # Without the identifier the same preview would replace the provider, and with it every
    # Kubernetes object of the stack.
    bare = {k: v for k, v in news.items() if k != "clusterIdentifier"}
    assert provider_replaces({"kubeconfig": olds["kubeconfig"]}, bare) == ["kubeconfig"]


def test_the_identifier_is_stable_across_renders_and_names_the_cluster() -> None:
    first = homelab_render().one(KUBERNETES_PROVIDER).input("clusterIdentifier")
    assert first == render_config(stack_raw_config()).one(KUBERNETES_PROVIDER).input(
        "clusterIdentifier"
    )
    renamed = with_changes(stack_raw_config(), {"cluster.name": "other"})
    assert render_config(renamed).one(KUBERNETES_PROVIDER).input("clusterIdentifier") != first


def trigger_replaces(old: Any, new: Any) -> bool:
    """The engine's rule for `replacement_trigger` (pulumi/pulumi#20936,
    pkg/resource/deploy/step_generator.go `triggerReplace`): replace when both are set and differ;
    null on either side means "no trigger" and replaces nothing."""
    return old is not None and new is not None and old != new


def test_the_kubeconfig_is_refetched_when_the_endpoint_changes() -> None:
    # Neither the endpoint nor the VIP is an input of the Kubeconfig resource, and its Read is a
    # no-op (terraform-provider-talos@v0.11.0: talos_cluster_kubeconfig_resource.go), so only the
    # replacement trigger brings a new server address to the provider.
    base = homelab_render().one(KUBECONFIG)
    assert base.replacement_trigger == model(stack_raw_config()).cluster.endpoint
    moved = render_config(with_changes(stack_raw_config(), {"cluster.vip": "192.168.0.9"}))
    assert trigger_replaces(base.replacement_trigger, moved.one(KUBECONFIG).replacement_trigger)
    # Same endpoint: no refetch; a state from before the trigger existed: no refetch either.
    again = render_config(stack_raw_config()).one(KUBECONFIG).replacement_trigger
    assert not trigger_replaces(base.replacement_trigger, again)
    assert not trigger_replaces(None, base.replacement_trigger)
    assert moved.one(KUBECONFIG).inputs == render_config(stack_raw_config()).one(KUBECONFIG).inputs


# --- boot media --------------------------------------------------------------------------------


def test_the_boot_iso_is_the_vanilla_factory_image_of_the_configured_talos() -> None:
    """siderolabs/talos@v1.13.9: talosctl builds an Image Factory ISO URL as
    <factory>/image/<schematic>/<version>/<platform>-<arch>.iso (cmd/talosctl/cmd/mgmt/cluster/
    create/clusterops/configmaker/preset/iso_preset.go `getISOURL`, pkg/machinery/platforms/
    platforms.go `ISOPath`), with factory https://factory.talos.dev and the empty schematic
    376567988ad3…b4ba (cmd/talosctl/cmd/constants/constants.go)."""
    expected = (
        "https://factory.talos.dev/image/"
        "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba/v1.13.9/metal-amd64.iso"
    )
    assert homelab_render().outputs["talosBootIsoUrl"] == expected
    older = with_changes(stack_raw_config(), {"cluster.talosVersion": "v1.13.8"})
    assert render_config(older).outputs["talosBootIsoUrl"].endswith("/v1.13.8/metal-amd64.iso")


def test_a_health_wait_about_to_rerun_leaves_the_kubeconfig_known_in_a_preview() -> None:
    # The Command is replaced when a node is added: in that preview its outputs are unknown.
    worker = {"hostname": "talos-w-1", "ip": "192.168.0.21", "role": "worker"}
    raw = with_changes(
        stack_raw_config(),
        {
            "cluster.nodes": [*stack_raw_config()["cluster"]["nodes"], worker],
            "cluster.allowSchedulingOnControlPlanes": True,
        },
    )
    config = {f"{engine.PROJECT}:{k}": v for k, v in raw.items()}
    preview = engine.render(
        "test",
        config=config,
        secret_keys=[f"{engine.PROJECT}:dnsApiToken"],
        preview=True,
        unknown_outputs={COMMAND: ["stdout", "stderr"]},
    )
    kubeconfig = preview.one(KUBERNETES_PROVIDER).input("kubeconfig")
    assert kubeconfig != engine.UNKNOWN
    assert kubeconfig == preview.one(KUBECONFIG).outputs["kubeconfigRaw"]


@pytest.mark.parametrize("choice", [True, False])
def test_with_workers_control_plane_scheduling_is_what_the_config_says(choice: bool) -> None:
    """The choice reaches Talos as written, with its consequences.

    siderolabs/talos@v1.13.9: internal/app/machined/pkg/controllers/k8s/kubelet_spec.go registers
    a control plane with the `node-role.kubernetes.io/control-plane:NoSchedule` taint unless
    allowSchedulingOnControlPlanes; the generated exclude-from-external-load-balancers label
    stays unless the patch deletes it (CHANGELOG.md "Default Node Labels"), and MetalLB honours
    it (components.md 1.4 #2).
    """
    raw = with_changes(ha_raw(), {"cluster.allowSchedulingOnControlPlanes": choice})
    applies = applies_by_ip(render_config(raw))
    label = talos_patches.EXCLUDE_FROM_LOAD_BALANCERS_LABEL
    for node in model(raw).cluster.control_planes:
        merged = v1alpha1_part(merged_machine_config(applies[str(node.ip)]))
        assert merged["cluster"]["allowSchedulingOnControlPlanes"] is choice
        assert (label in merged["machine"].get("nodeLabels", {})) is not choice


def test_introducing_the_identifier_with_a_known_kubeconfig_replaces_nothing() -> None:
    # DiffConfig ignores an identifier that is only added (provider.go: "We don't do this when
    # adding or removing the identifier"), so the first `up` with it relies on the kubeconfig
    # staying known: the new health Command (unknown outputs) must not make it unknown.
    previous = {
        k: v
        for k, v in homelab_render().one(KUBERNETES_PROVIDER).inputs.items()
        if k != "clusterIdentifier"
    }
    # The fixture stack, as `homelab_render` above: the user's stack file has other values.
    config, secret_keys = fixture_stack_config("homelab")
    preview = engine.render(
        "homelab",
        config=config,
        secret_keys=secret_keys,
        preview=True,
        unknown_outputs={COMMAND: ["stdout", "stderr"]},
    )
    news = dict(preview.one(KUBERNETES_PROVIDER).inputs)
    assert news["kubeconfig"] == previous["kubeconfig"]
    assert provider_replaces(previous, news) == []
