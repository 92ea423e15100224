"""The homelab, in the order a request travels.

VPN client -> subnet router -> Traefik LB IP (MetalLB) -> Traefik -> app.
Each step is a component whose typed outputs are the next step's inputs, so this data flow is
the dependency graph: cluster -> network -> TLS -> remote access -> apps.
"""

import pulumi

from components.apps.exposed import Apps, AppsArgs
from components.cluster.etcd_snapshots import ETCD_BACKUP_ROLE, EtcdSnapshots, EtcdSnapshotsArgs
from components.cluster.secrets_bundle import secrets_bundle_yaml
from components.cluster.talos import TalosCluster, TalosClusterArgs
from components.cluster.talos_patches import talos_api_access_document
from components.platform.cert_manager import CertManager, CertManagerArgs
from components.platform.metallb import MetalLB, MetalLBArgs
from components.platform.reflector import Reflector, ReflectorArgs
from components.platform.storage import Storage, StorageArgs, kubelet_host_paths
from components.platform.traefik import Traefik, TraefikArgs
from components.remote_access.headscale import Headscale, HeadscaleArgs
from components.remote_access.litestream import BackupTarget
from components.remote_access.subnet_router import SubnetRouter, SubnetRouterArgs
from components.shared.backup_names import BACKUP_NAMESPACE
from config import load_stack_config, views

config = load_stack_config()

# Cluster: booted Talos nodes -> a Kubernetes provider for everything below.
cluster = TalosCluster(
    "cluster",
    TalosClusterArgs(
        cluster=config.cluster,
        network=config.network,
        lifecycle=config.lifecycle,
        kubelet_host_paths=kubelet_host_paths(config.storage),
        # Etcd snapshots from a pod need the Talos API (only with a backup target).
        talos_api_access=talos_api_access_document(BACKUP_NAMESPACE, ETCD_BACKUP_ROLE)
        if config.backups is not None
        else None,
    ),
)
access = cluster.access
storage = Storage("storage", StorageArgs(access=access, storage=config.storage))

# Network: real LAN IPs for Services, and Traefik on its fixed one. MetalLB lets Traefik and
# STUN share one IP only when both Services carry the same key (components.md 5).
ip_sharing_key = "traefik" if views.traefik_ip_is_shared(config) else None
metallb = MetalLB(
    "metallb",
    MetalLBArgs(
        access=access,
        network=config.network,
        announce_from_control_planes=config.cluster.schedule_on_control_planes,
    ),
)

# TLS: a wildcard certificate by DNS-01, mirrored to every namespace that serves TLS.
reflector = Reflector("reflector", ReflectorArgs(access=access))
cert_manager = CertManager(
    "cert-manager",
    CertManagerArgs(
        access=access,
        request=views.certificate_request(config),
        dns_api_token=pulumi.Output.secret(config.dns_api_token.get_secret_value()),
        reflector=reflector.ready,
    ),
)
traefik = Traefik(
    "traefik",
    TraefikArgs(
        access=access,
        front_door=views.front_door(config),
        load_balancer=metallb.request_ip(config.network.traefik_ip, sharing_key=ip_sharing_key),
        wildcard=cert_manager.wildcard,
    ),
)

# Remote access: Headscale (+ Headplane, MagicDNS, DERP/STUN, ACL policy) and the subnet router.
# Backups: one target for Headscale's Litestream and etcd's snapshots; the S3 key stays secret.
backup_secret_key = (
    pulumi.Output.secret(config.backup_secret_access_key.get_secret_value())
    if config.backup_secret_access_key is not None
    else None
)
backup = BackupTarget(config.backups, backup_secret_key) if config.backups is not None else None
headscale = Headscale(
    "headscale",
    HeadscaleArgs(
        access=access,
        server=views.control_server(config),
        storage_class=storage.state_storage_class_name,
        traefik=traefik.routing,
        stun_load_balancer=metallb.request_ip(config.stun_ip, sharing_key=ip_sharing_key),
        protect=config.lifecycle.protect_stateful,
        backup=backup,
    ),
)
router = SubnetRouter(
    "subnet-router",
    SubnetRouterArgs(
        access=access,
        login_server=headscale.server_url,
        auth_key=headscale.router_auth_key,
        auth_key_generation=headscale.router_auth_key_generation,
        routes=[str(r) for r in config.subnet_routes],
        hostname=config.remote_access.router.hostname,
        tag=config.remote_access.router.tag,
        # Its first login needs the trusted certificate, not Traefik's self-signed default.
        tls_ready=cert_manager.wildcard.ready,
        login_server_ip=traefik.routing.load_balancer_ip,
    ),
)

# Apps: each exposed service, reached at https://<host>.<domain> over the VPN.
apps = Apps(
    "apps",
    AppsArgs(
        access=access,
        apps=views.exposed_apps(config),
        traefik=traefik.routing,
        storage_class=storage.state_storage_class_name,
        protect=config.lifecycle.protect_stateful,
    ),
)

# Backups: etcd snapshots on a schedule (Headscale's Litestream is part of its pod).
if backup is not None:
    EtcdSnapshots(
        "etcd-snapshots",
        EtcdSnapshotsArgs(
            access=access,
            backups=backup.backups,
            talos_version=config.cluster.talos_version,
            secret_access_key=backup.secret_access_key,
        ),
    )

pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("talosconfig", cluster.talosconfig)
pulumi.export("kubernetesEndpoint", cluster.endpoint)
# The ISO (or iPXE script) every node boots before its first apply, and the installer it installs
# and upgrades from, all of the cluster's Image Factory schematic (docs/boot-media.md).
pulumi.export("talosBootIsoUrl", cluster.boot_iso_url)
pulumi.export("talosBootPxeUrl", cluster.boot_pxe_url)
pulumi.export("talosSchematicId", cluster.schematic_id)
pulumi.export("talosInstallerImage", cluster.installer_image)
pulumi.export("traefikIp", traefik.load_balancer_ip)
pulumi.export("headscaleUrl", headscale.server_url)
# What a person sets up once, outside the cluster, and how a device joins.
pulumi.export("routerPortForwards", headscale.port_forwards)
pulumi.export("publicDnsRecord", headscale.public_dns_record)
pulumi.export("tailscaleJoinCommand", headscale.join_command)
if headscale.headplane_url is not None:
    pulumi.export("headplaneUrl", headscale.headplane_url)
if headscale.headplane_api_key is not None:
    pulumi.export("headplaneApiKey", headscale.headplane_api_key)
    pulumi.export("headplaneApiKeyExpiry", headscale.headplane_api_key_expiry)
# The router's single-use key: used once at first login, then only the state Secret matters.
pulumi.export("routerAuthKeyExpiry", headscale.router_auth_key_expiry)
pulumi.export("urls", apps.urls)
# Grafana's `admin` login (a secret output: `pulumi stack output --show-secrets`).
if apps.grafana_admin_password is not None:
    pulumi.export("grafanaAdminPassword", apps.grafana_admin_password)
# Where backups go, without credentials ("none" when nothing is backed up), for `status`.
pulumi.export("backupTarget", config.backups.target.url if config.backups is not None else "none")
# The Talos secrets bundle as talosctl's secrets.yaml: with it a lost state can be rebuilt
# (`pulumi stack output --show-secrets talosSecrets > secrets.yaml`, docs/operations.md).
pulumi.export(
    "talosSecrets", pulumi.Output.secret(cluster.machine_secrets.apply(secrets_bundle_yaml))
)
