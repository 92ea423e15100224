"""The Talos cluster: booted nodes in, the stack's one Kubernetes provider out.

Secrets -> machine configuration per role -> one ConfigurationApply per node (its own patches)
-> Bootstrap on the first control plane -> Kubeconfig -> (health wait) -> Kubernetes provider
(components.md 1.2 "Canonical ordering").

Talos API calls (apply, bootstrap, kubeconfig, health, talosconfig endpoints) address node IPs:
the VIP only exists once etcd is up and Talos advises against using it for the Talos API
(components.md 1.3). Kubernetes clients use `cluster.endpoint` (the VIP when configured).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pulumi
import pulumi_kubernetes as k8s
import pulumiverse_talos as talos
from pulumiverse_talos.machine import outputs as machine_outputs

from components.cluster.change_guard import change_guard_command
from components.cluster.image_factory import (
    SCHEMATIC_CHANGE_NOTE,
    BootMedia,
    boot_media,
    checked_schematic_id,
)
from components.cluster.node_lifecycle import node_set
from components.cluster.talos_health import HealthTarget, wait_for_health
from components.cluster.talos_patches import node_config_patches
from components.cluster.upgrade import (
    APPLY_MODE,
    UpgradePlan,
    plan_for,
    rolling_reboots,
    upgrade_chain,
)
from components.shared.common import ClusterAccess
from config.model import Cluster, Lifecycle, Network, Node

ClientConfigurationT = TypeVar("ClientConfigurationT")


def node_resource_name(component: str, node: Node) -> str:
    """The name of a node's Talos resources: keyed by its IP, its identity on the LAN.

    Not by hostname: renaming a node must update its resources, not replace them (a replaced
    ConfigurationApply in a lab resets the machine when the old one is deleted). The IP has
    dots, which a hostname (a DNS label) never has, so no key can be another node's old name.
    """
    return f"{component}-{node.ip}"


def node_aliases(component: str, node: Node) -> list[pulumi.Alias]:
    """Earlier names of the node's resources, so adopting them changes nothing.

    The name from before resources were keyed by IP (`<component>-<hostname>`), and, while the
    node moves (`currentAddress`), the name under its current address. The engine uses an alias
    only when the resource's own URN is not in the state.
    """
    names = [f"{component}-{node.hostname}"]
    if node.current_address is not None:
        names.append(f"{component}-{node.current_address}")
    return [pulumi.Alias(name=n) for n in names]


def cluster_identifier(cluster: Cluster) -> str:
    """What names this cluster to pulumi-kubernetes, known at every preview.

    With an identifier that is known and unchanged, the provider's DiffConfig drops every
    replacement, including the one it otherwise forces when the kubeconfig is unknown
    (pulumi/pulumi-kubernetes@v4.32.0: provider/pkg/provider/provider.go `DiffConfig`,
    `diff.Same(clusterIdentifierKey) && news.HasValue(...)`; the pinned 4.34.2 is newer). It is
    made of config only, never of a provider output, so it is never unknown. A rebuilt cluster
    still replaces every object: they are `deleted_with` the Bootstrap, and "if the named resource
    is being replaced, this resource will be replaced as well" (pulumi 3.272.0
    sdk/python pulumi/resource.py `ResourceOptions.deleted_with`). Adding the identifier to an
    existing provider changes nothing by itself: DiffConfig skips both branches when the key is
    only added ("to make on- and off-boarding less risky").
    """
    return f"talos/{cluster.name}"


@dataclass(frozen=True)
class TalosClusterArgs:
    cluster: Cluster
    network: Network
    lifecycle: Lifecycle
    # Host directories pods mount with hostPath (e.g. local-path volumes) that the kubelet must see.
    kubelet_host_paths: tuple[str, ...] = ()
    # A `machine.features.kubernetesTalosAPIAccess` patch for control planes (etcd snapshots).
    talos_api_access: dict[str, Any] | None = None


def machine_secrets_args(
    secrets: machine_outputs.MachineSecretsResult,
) -> talos.machine.MachineSecretsArgs:
    """The secrets bundle rebuilt field by field as the input type the data source accepts.

    Passed straight through, the output object is flattened with its Python names
    (`bootstrap_token`, `k8s_aggregator`) instead of the wire names, and the provider reports
    "bootstrap_token missing" (pulumi-talos #103/#251; peers.md "What users trip over" 8).
    """

    def pair(cert: machine_outputs.CertificateResult) -> talos.machine.CertificateArgs:
        return talos.machine.CertificateArgs(cert=cert.cert, key=cert.key)

    certs = secrets.certs
    kubernetes = secrets.secrets
    return talos.machine.MachineSecretsArgs(
        certs=talos.machine.CertificatesArgs(
            etcd=pair(certs.etcd),
            k8s=pair(certs.k8s),
            k8s_aggregator=pair(certs.k8s_aggregator),
            k8s_serviceaccount=talos.machine.KeyArgs(key=certs.k8s_serviceaccount.key),
            os=pair(certs.os),
        ),
        cluster=talos.machine.ClusterArgs(id=secrets.cluster.id, secret=secrets.cluster.secret),
        secrets=talos.machine.KubernetesSecretsArgs(
            bootstrap_token=kubernetes.bootstrap_token,
            secretbox_encryption_secret=kubernetes.secretbox_encryption_secret,
            # Only set by bundles of older contracts; None is left out of the inputs.
            aescbc_encryption_secret=kubernetes.aescbc_encryption_secret,
        ),
        trustdinfo=talos.machine.TrustdInfoArgs(token=secrets.trustdinfo.token),
    )


def client_configuration_as(
    source: pulumi.Output[machine_outputs.ClientConfiguration],
    factory: Callable[..., ClientConfigurationT],
) -> pulumi.Output[ClientConfigurationT]:
    """The client credentials as one consumer's input type, field by field, kept secret.

    Each resource/data source has its own client-configuration type with the same three fields.
    Only the key is secret upstream; the whole triple is kept secret here because the CA and
    client certificates are only useful together with it, and one rule is easier to check.
    """
    return pulumi.Output.secret(
        source.apply(
            lambda c: factory(
                ca_certificate=c.ca_certificate,
                client_certificate=c.client_certificate,
                client_key=c.client_key,
            )
        )
    )


@dataclass(frozen=True)
class _Credentials:
    """The cluster's secrets bundle and the client credentials cut from it, all secret."""

    secrets: talos.machine.Secrets
    machine_secrets: pulumi.Output[talos.machine.MachineSecretsArgs]
    machine_client: pulumi.Output[talos.machine.ClientConfigurationArgs]
    talosconfig: pulumi.Output[str]


def _credentials(
    name: str, cluster: Cluster, lifecycle: Lifecycle, parent: pulumi.Resource
) -> _Credentials:
    """Secrets -> the machine client and the exported talosconfig."""
    # Pinned contract: a newer provider must not silently change what is generated
    # (components.md 1.4 #5). A raised version is an in-place update; only a downgrade
    # replaces the bundle (terraform-provider-talos v0.11.0 talos_machine_secrets_resource.go
    # talosMachineFeaturesVersionPlanModifier), which `protect` refuses on the real homelab.
    secrets = talos.machine.Secrets(
        f"{name}-secrets",
        talos_version=cluster.config_contract,
        opts=pulumi.ResourceOptions(parent=parent, protect=lifecycle.protect_stateful),
    )
    # Under the mock engine the provider's own secret markings are not honoured
    # (components.md 1.2 "Secrecy"), so secrecy is declared here, once, at the source.
    machine_secrets: pulumi.Output[talos.machine.MachineSecretsArgs] = pulumi.Output.secret(
        secrets.machine_secrets.apply(machine_secrets_args)
    )
    machine_client = client_configuration_as(
        secrets.client_configuration, talos.machine.ClientConfigurationArgs
    )

    talos_client = client_configuration_as(
        secrets.client_configuration, talos.client.GetConfigurationClientConfigurationArgs
    )
    # Endpoints only, no `nodes`: talosctl then needs `-n` for every command instead of
    # sending it to every node of the context (siderolabs/talos@v1.13.9:
    # cmd/talosctl/pkg/talos/global/client.go `getNodes`), so `talosctl reboot` cannot reboot
    # the whole cluster by accident. The data source writes `nodes` only when given
    # (terraform-provider-talos@v0.11.0: talos_client_configuration_data_source.go).
    talosconfig: pulumi.Output[str] = pulumi.Output.secret(
        talos.client.get_configuration_output(
            cluster_name=cluster.name,
            client_configuration=talos_client,
            endpoints=[n.talos_address for n in cluster.control_planes],
            opts=pulumi.InvokeOutputOptions(parent=parent),
        ).talos_config
    )

    return _Credentials(secrets, machine_secrets, machine_client, talosconfig)


def _role_configurations(
    cluster: Cluster,
    machine_secrets: pulumi.Output[talos.machine.MachineSecretsArgs],
    parent: pulumi.Resource,
) -> dict[str, pulumi.Output[str]]:
    """One generated machine configuration per role; each node patches its own."""
    return {
        role: talos.machine.get_configuration_output(
            cluster_name=cluster.name,
            cluster_endpoint=cluster.endpoint,
            machine_type=role,
            machine_secrets=machine_secrets,
            talos_version=cluster.config_contract,
            kubernetes_version=cluster.kubernetes_version,
            docs=False,
            examples=False,
            opts=pulumi.InvokeOutputOptions(parent=parent),
        ).machine_configuration
        for role in sorted({n.role for n in cluster.nodes})
    }


def _register_schematic(
    name: str, media: BootMedia, parent: pulumi.Resource
) -> tuple[list[pulumi.Resource], dict[str, pulumi.Output[str]]]:
    """What every install waits for, and the outputs that check the factory's answer."""
    # A custom schematic is registered with the factory before any node installs from it.
    # Its id is computed from the config (image_factory.py), so the URLs and the installer
    # are known in every preview, also for a schematic about to change; the factory's answer
    # must agree, which the component's `registeredSchematicId` output checks during `up`.
    factory_waits: list[pulumi.Resource] = []
    registered: dict[str, pulumi.Output[str]] = {}
    if not media.is_vanilla:
        schematic = talos.imagefactory.Schematic(
            f"{name}-schematic",
            schematic=media.schematic,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        factory_waits.append(schematic)
        registered["registeredSchematicId"] = schematic.id.apply(
            lambda got: checked_schematic_id(media.schematic_id, got)
        )
        pulumi.log.info(f"Talos schematic {media.schematic_id}: {SCHEMATIC_CHANGE_NOTE}", parent)

    return factory_waits, registered


@dataclass(frozen=True)
class _Installed:
    """The nodes configured (after any upgrade) and the cluster bootstrapped on them."""

    applies: dict[str, talos.machine.ConfigurationApply]
    bootstrap: talos.machine.Bootstrap


def _install(
    name: str,
    args: TalosClusterArgs,
    credentials: _Credentials,
    media: BootMedia,
    plan: UpgradePlan,
    factory_waits: list[pulumi.Resource],
    parent: pulumi.Resource,
) -> _Installed:
    """Upgrades -> one ConfigurationApply per node -> rolling reboots -> the Bootstrap."""
    cluster, lifecycle = args.cluster, args.lifecycle
    role_configurations = _role_configurations(cluster, credentials.machine_secrets, parent)
    on_destroy = (
        # A lab's nodes go back to maintenance mode, ready for the next `up`. Not graceful:
        # destroy resets every node at once, so a graceful etcd leave (with its quorum
        # checks) cannot succeed on the last members (terraform-provider-talos v0.11.0
        # on_destroy.graceful: "enforces etcd checks before leaving").
        talos.machine.ConfigurationApplyOnDestroyArgs(reset=True, graceful=False, reboot=True)
        if lifecycle.reset_on_destroy
        else None
    )
    # Before anything of the cluster changes: refuse what one `up` may not change together
    # (components/cluster/change_guard.py).
    guard = change_guard_command(
        f"{name}-changes",
        cluster,
        installer_image=media.installer_image,
        talosconfig=credentials.talosconfig,
        parent=parent,
    )
    # Upgrades run before the applies, so a Kubernetes bump reaches the nodes through
    # upgrade-k8s one at a time, not through every apply at once (components/cluster/upgrade.py).
    upgrades = upgrade_chain(
        name,
        plan,
        # The schematic's installer (image_factory.py), registered before a node pulls it.
        installer_image=media.installer_image,
        talosconfig=credentials.talosconfig,
        parent=parent,
        depends_on=[*factory_waits, guard],
    )

    def apply(node: Node) -> talos.machine.ConfigurationApply:
        return talos.machine.ConfigurationApply(
            node_resource_name(name, node),
            node=node.talos_address,
            endpoint=node.talos_address,
            client_configuration=credentials.machine_client,
            machine_configuration_input=role_configurations[node.role],
            config_patches=node_config_patches(
                cluster,
                args.network,
                node,
                kubelet_host_paths=args.kubelet_host_paths,
                talos_api_access=args.talos_api_access,
            ),
            on_destroy=on_destroy,
            # A change that needs a reboot is staged; `rolling_reboots` reboots one node at
            # a time (components/cluster/upgrade.py). A first apply is never staged: the
            # provider's dry run (terraform-provider-talos@v0.11.0
            # talos_machine_configuration_apply_resource.go `dryRunNeedsReboot`) asks a node
            # in maintenance mode, which answers AUTO as NO_REBOOT (siderolabs/talos@v1.13.9
            # internal/app/machined/internal/server/v1alpha1/v1alpha1_server.go), so it installs.
            apply_mode=APPLY_MODE,
            opts=pulumi.ResourceOptions(
                parent=parent,
                aliases=node_aliases(name, node),
                depends_on=[upgrades.done, *factory_waits],
            ),
        )

    applies = {node.hostname: apply(node) for node in cluster.nodes}
    rolling_reboots(name, plan, applies, talosconfig=credentials.talosconfig, parent=parent)

    # Exactly one bootstrap, on the first control plane, once it has its config. The two
    # have no data dependency, hence the explicit one (components.md 1.4 #6).
    first_control_plane = cluster.control_planes[0]
    bootstrap = talos.machine.Bootstrap(
        f"{name}-bootstrap",
        node=first_control_plane.talos_address,
        endpoint=first_control_plane.talos_address,
        client_configuration=credentials.machine_client,
        opts=pulumi.ResourceOptions(
            parent=parent, depends_on=[applies[first_control_plane.hostname]]
        ),
    )
    return _Installed(applies, bootstrap)


def _kubernetes_access(
    name: str,
    cluster: Cluster,
    lifecycle: Lifecycle,
    credentials: _Credentials,
    installed: _Installed,
    parent: pulumi.Resource,
) -> ClusterAccess:
    """Kubeconfig -> node set -> (health wait) -> the stack's one Kubernetes provider."""
    first_control_plane = cluster.control_planes[0]
    # Talos API calls go where each node answers now: its `currentAddress` while it moves.
    control_plane_ips = tuple(n.talos_address for n in cluster.control_planes)
    bootstrap, applies = installed.bootstrap, installed.applies
    # From the first control plane's configured address, not the one it answers on before this
    # `up`: the kubeconfig is fetched after the node's apply, which moves a node that changes
    # address to the new one (its LinkConfig applies live). A new endpoint (the first control
    # plane's address without a VIP) replaces the resource through `replacement_trigger`, since
    # its Update fetches nothing unless the certificate is due (terraform-provider-talos@v0.11.0
    # talos_cluster_kubeconfig_resource.go `Update`).
    kubeconfig = talos.cluster.Kubeconfig(
        f"{name}-kubeconfig",
        node=str(first_control_plane.ip),
        endpoint=str(first_control_plane.ip),
        client_configuration=client_configuration_as(
            credentials.secrets.client_configuration,
            talos.cluster.KubeconfigClientConfigurationArgs,
        ),
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[bootstrap],
            # The kubeconfig's server is the cluster endpoint, but neither is an input of
            # the resource (its Read is a no-op: terraform-provider-talos@v0.11.0
            # talos_cluster_kubeconfig_resource.go), so a new VIP would never reach the
            # provider. The 0.8.1 resource has no trigger argument of its own; Pulumi's
            # `replacement_trigger` option refetches it when the endpoint changes. A trigger
            # that was not set before replaces nothing (pulumi/pulumi#20936, step_generator
            # `triggerReplace`: null on either side is "no trigger"), so adding it is safe.
            replacement_trigger=cluster.endpoint,
        ),
    )
    kubeconfig_raw: pulumi.Output[str] = pulumi.Output.secret(kubeconfig.kubeconfig_raw)
    # Nodes that left the config leave Kubernetes and etcd (quorum checked) before the health
    # wait checks the new node set, and a renamed node's old Node goes
    # (components/cluster/node_lifecycle.py).
    nodes_reconciled = node_set(
        f"{name}-node-set",
        cluster,
        lifecycle,
        kubeconfig=kubeconfig_raw,
        talosconfig=credentials.talosconfig,
        bootstrap=bootstrap,
        parent=parent,
        depends_on=[*applies.values(), kubeconfig],
    )
    provider_waits_for: list[pulumi.Resource] = []
    if cluster.wait_for_health:
        # Charts installed before the API and every node are ready fail or time out. The
        # wait runs when the cluster is created and when its node set changes, never on a
        # preview (components/cluster/talos_health.py). The provider waits for it by
        # `depends_on`, not through the kubeconfig's value: a wait about to run again would
        # otherwise make the kubeconfig unknown in that preview for no reason.
        provider_waits_for.append(
            wait_for_health(
                f"{name}-health",
                HealthTarget(
                    talos_version=cluster.talos_version,
                    control_plane_nodes=control_plane_ips,
                    worker_nodes=tuple(n.talos_address for n in cluster.workers),
                    endpoints=control_plane_ips,
                ),
                talosconfig=credentials.talosconfig,
                bootstrap=bootstrap,
                parent=parent,
                depends_on=[*applies.values(), nodes_reconciled],
            )
        )
    provider = k8s.Provider(
        f"{name}-kubernetes",
        kubeconfig=kubeconfig_raw,
        cluster_identifier=cluster_identifier(cluster),
        # A destroyed lab cluster is unreachable for good: drop its objects from state
        # instead of failing. The real homelab keeps the default, so a cluster that is only
        # down for a moment never loses state.
        delete_unreachable=lifecycle.is_lab,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=provider_waits_for),
    )
    # `cluster`, what every Kubernetes object is `deleted_with`, is the Bootstrap: it stands
    # for the control plane it brought up, so it is deleted exactly when that cluster is torn
    # down, and objects on it are then dropped instead of hanging on an API that is gone
    # (pulumi-kubernetes #491). Not the Secrets: protected on the homelab, never deleted there.
    return ClusterAccess(provider=provider, kubeconfig=kubeconfig_raw, cluster=bootstrap)


class TalosCluster(pulumi.ComponentResource):
    """A Talos cluster built from booted nodes, and access to its Kubernetes API."""

    access: ClusterAccess
    kubeconfig: pulumi.Output[str]
    talosconfig: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    nodes: pulumi.Output[dict[str, str]]
    boot_iso_url: pulumi.Output[str]
    # The bundle, for its export in the format talosctl reads (components/cluster/secrets_bundle.py).
    machine_secrets: pulumi.Output[talos.machine.MachineSecretsArgs]
    boot_pxe_url: pulumi.Output[str]
    schematic_id: pulumi.Output[str]
    # The installer of the pinned Talos and the cluster's schematic, for install and upgrades.
    installer_image: pulumi.Output[str]
    upgrade_plan: UpgradePlan

    def __init__(
        self, name: str, args: TalosClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:talos:Cluster", name, None, opts)
        cluster = args.cluster
        media = boot_media(cluster)
        credentials = _credentials(name, cluster, args.lifecycle, self)
        factory_waits, registered = _register_schematic(name, media, self)
        self.upgrade_plan = plan_for(cluster)
        installed = _install(name, args, credentials, media, self.upgrade_plan, factory_waits, self)
        self.access = _kubernetes_access(
            name, cluster, args.lifecycle, credentials, installed, self
        )

        self.machine_secrets = credentials.machine_secrets
        self.talosconfig = credentials.talosconfig
        self.kubeconfig = self.access.kubeconfig
        self.endpoint = pulumi.Output.from_input(cluster.endpoint)
        self.nodes = pulumi.Output.from_input({n.hostname: str(n.ip) for n in cluster.nodes})
        self.boot_iso_url = pulumi.Output.from_input(media.iso_url)
        self.boot_pxe_url = pulumi.Output.from_input(media.pxe_url)
        self.schematic_id = pulumi.Output.from_input(media.schematic_id)
        self.installer_image = pulumi.Output.from_input(media.installer_image)
        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "nodes": self.nodes,
                "kubeconfig": self.kubeconfig,
                "talosconfig": self.talosconfig,
                "bootIsoUrl": self.boot_iso_url,
                "bootPxeUrl": self.boot_pxe_url,
                "schematicId": self.schematic_id,
                "installerImage": self.installer_image,
                **registered,
            }
        )
