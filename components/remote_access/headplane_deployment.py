"""Headplane in its own pod, beside (never inside) Headscale's.

Its own Deployment, Service and route: when Headplane is not Ready (a crash loop after a bump, a
slow start) only the UI is down; Headscale's pod, and with it control, DERP and key minting, does
not depend on it. It reaches Headscale through Headscale's ClusterIP Service, reads Headscale's
config from the same ConfigMap mounted read-only, keeps its own state on a small claim and needs
no Kubernetes API access at all (no integration, components/remote_access/headplane.py): no service account
token, no RBAC, no shared process namespace.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from components.platform.traefik import MiddlewareRef, TraefikRouting
from components.remote_access import headplane
from components.remote_access.headscale_config import CONFIG_DIR as HEADSCALE_CONFIG_DIR
from components.shared.common import HEADSCALE_NAMESPACE, ClusterAccess
from components.shared.ingress import Backend, route_host
from components.shared.placement import Placement
from components.shared.security import (
    IMAGE_PULL_POLICY,
    NONROOT_ID,
    PINNED_IMAGE_SKIPS,
    checkov_skips,
    from_namespace,
    hardened_container_security_context,
    hardened_pod_security_context,
    ingress_network_policy,
    policy_ports,
)
from config import pins
from config.model import ExposedHost
from config.views import HeadplaneSite

LABELS: Final = {"app.kubernetes.io/name": "headplane", "app.kubernetes.io/part-of": "homelab"}
NAME: Final = "headplane"
DATA_CLAIM: Final = "headplane-data"
CONFIG_MAP: Final = "headplane-config"
COOKIE_SECRET: Final = "headplane-cookie-secret"
REDIRECT_MIDDLEWARE: Final = "headplane-root-redirect"


@dataclass(frozen=True)
class HeadplaneArgs:
    access: ClusterAccess
    site: HeadplaneSite
    # Headscale's public URL, which the UI shows for joining devices.
    headscale_url: str
    namespace: pulumi.Input[str]
    storage_class: pulumi.Output[str]
    traefik: TraefikRouting
    headscale_config_map: str
    """Headscale's ConfigMap (same namespace); mounted read-only at headscale.config_path."""
    protect: bool = False
    depends_on: Sequence[pulumi.Resource] = ()


def dump_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=True, default_flow_style=False)


class Headplane(pulumi.ComponentResource):
    url: str
    labels: dict[str, str]

    def __init__(
        self, name: str, args: HeadplaneArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:remote-access:Headplane", name, None, opts)
        settings = headplane.headplane_config(
            args.site.host, headscale_public_url=args.headscale_url
        )
        problems = headplane.config_problems(settings)
        if problems:  # a bug here, not bad user config: config/rules.py guards the inputs
            raise ValueError("generated Headplane config is invalid: " + "; ".join(problems))
        at = Placement(owner=self, access=args.access, namespace=args.namespace, labels=LABELS)
        secret = cookie_secret(name, at, args.site)
        deployment = workload(
            name,
            at,
            files={headplane.CONFIG_FILE: dump_yaml(settings)},
            storage_class=args.storage_class,
            headscale_config_map=args.headscale_config_map,
            protect=args.protect,
            depends_on=[secret, *args.depends_on],
        )
        publish(name, at, host=args.site.host, traefik=args.traefik, deployment=deployment)
        self.url = headplane.ui_url(args.site.host)
        self.labels = dict(LABELS)
        self.register_outputs({"url": self.url})


def cookie_secret(name: str, at: Placement, site: HeadplaneSite) -> k8s.core.v1.Secret:
    secret_value = site.cookie_secret
    if secret_value is not None:
        value = pulumi.Output.secret(secret_value.get_secret_value())
    else:
        # Generated once and kept in state: a new value would log every session out.
        generated = random.RandomPassword(
            f"{name}-cookie-secret",
            length=headplane.COOKIE_SECRET_LENGTH,
            special=False,
            opts=pulumi.ResourceOptions(parent=at.owner),
        )
        value = pulumi.Output.secret(generated.result)
    return k8s.core.v1.Secret(
        f"{name}-secret",
        metadata=at.meta(COOKIE_SECRET),
        type="Opaque",
        string_data={headplane.COOKIE_SECRET_KEY: value},
        opts=at.opts(),
    )


def workload(
    name: str,
    at: Placement,
    *,
    files: dict[str, str],
    storage_class: pulumi.Input[str],
    headscale_config_map: str,
    protect: bool,
    depends_on: Sequence[pulumi.Resource],
) -> k8s.apps.v1.Deployment:
    """The ConfigMap, the claim and the single-replica Deployment."""
    config_map = k8s.core.v1.ConfigMap(
        f"{name}-config", metadata=at.meta(CONFIG_MAP), data=files, opts=at.opts()
    )
    # skipAwait: with a WaitForFirstConsumer class the claim binds only once the pod is
    # scheduled; the Deployment's readiness is the wait that matters.
    claim = k8s.core.v1.PersistentVolumeClaim(
        f"{name}-data",
        metadata=at.meta(DATA_CLAIM, annotations={"pulumi.com/skipAwait": "true"}),
        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteOnce"],
            storage_class_name=storage_class,
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": "1Gi"}),
        ),
        opts=at.opts(protect=protect),
    )
    checksum = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return k8s.apps.v1.Deployment(
        f"{name}-deployment",
        metadata=at.meta(NAME, annotations=checkov_skips(PINNED_IMAGE_SKIPS)),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=1,
            # Its SQLite file is on a ReadWriteOnce claim: never two pods at once.
            strategy=k8s.apps.v1.DeploymentStrategyArgs(type="Recreate"),
            revision_history_limit=3,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(LABELS)),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    labels=dict(LABELS), annotations={"checksum/config": checksum}
                ),
                spec=pod_spec(headscale_config_map),
            ),
        ),
        opts=at.opts(depends_on=[*depends_on, config_map, claim]),
    )


def publish(
    name: str,
    at: Placement,
    *,
    host: ExposedHost,
    traefik: TraefikRouting,
    deployment: k8s.apps.v1.Deployment,
) -> None:
    """Its Service, the route (the bare host redirected to /admin) and who may connect."""
    service = k8s.core.v1.Service(
        f"{name}-service",
        metadata=at.meta(NAME),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="ClusterIP",
            selector=dict(LABELS),
            ports=[
                k8s.core.v1.ServicePortArgs(
                    name="http", port=headplane.PORT, target_port="headplane"
                )
            ],
        ),
        opts=at.opts(),
    )
    redirect = root_redirect(name, at, fqdn=host.fqdn, traefik=traefik)
    route_host(
        f"{name}-route",
        access=at.access,
        parent=at.owner,
        routing=traefik,
        host=host,
        backends=[
            Backend(
                NAME,
                headplane.PORT,
                middlewares=(MiddlewareRef(REDIRECT_MIDDLEWARE, HEADSCALE_NAMESPACE),),
            )
        ],
        depends_on=[service, redirect, deployment],
    )
    # Only Traefik connects to Headplane; Headplane's own calls to Headscale are admitted by
    # Headscale's policy.
    ingress_network_policy(
        f"{name}-network-policy",
        metadata=at.meta(NAME),
        pod_labels=LABELS,
        ingress=[
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=[from_namespace(traefik.namespace)],
                ports=policy_ports("TCP", headplane.PORT),
            )
        ],
        opts=at.opts(),
    )


def root_redirect(
    name: str, at: Placement, *, fqdn: str, traefik: TraefikRouting
) -> k8s.apiextensions.CustomResource:
    # The whole host goes to Headplane, whose UI lives under /admin (the URL in the stack
    # outputs); the bare host redirects there instead of answering 404.
    return k8s.apiextensions.CustomResource(
        f"{name}-redirect",
        api_version="traefik.io/v1alpha1",
        kind="Middleware",
        metadata=at.meta(REDIRECT_MIDDLEWARE),
        spec={
            "redirectRegex": {
                "regex": f"^https://{re.escape(fqdn)}/?$",
                "replacement": f"https://{fqdn}/admin/",
                "permanent": True,
            }
        },
        opts=at.opts(depends_on=traefik.ready),
    )


def pod_spec(headscale_config_map: str) -> k8s.core.v1.PodSpecArgs:
    """Headplane's pod: the UI alone, its config and Headscale's read-only, its state on the claim."""
    health = k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(
            path=f"{headplane.UI_PATH}/healthz", port="headplane"
        ),
        period_seconds=10,
        timeout_seconds=3,
    )
    mount = k8s.core.v1.VolumeMountArgs
    container = k8s.core.v1.ContainerArgs(
        name="headplane",
        image=pins.HEADPLANE_IMAGE,
        image_pull_policy=IMAGE_PULL_POLICY,
        ports=[
            k8s.core.v1.ContainerPortArgs(
                name="headplane", container_port=headplane.PORT, protocol="TCP"
            )
        ],
        readiness_probe=health,
        liveness_probe=k8s.core.v1.ProbeArgs(
            http_get=health.http_get,
            initial_delay_seconds=30,
            period_seconds=30,
            timeout_seconds=5,
        ),
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": "25m", "memory": "128Mi"},
            limits={"cpu": "500m", "memory": "512Mi"},
        ),
        security_context=hardened_container_security_context(user=NONROOT_ID),
        volume_mounts=[
            mount(name="config", mount_path=headplane.CONFIG_DIR, read_only=True),
            # Headscale's config, read-only: the UI shows it, the stack config owns it.
            mount(name="headscale-config", mount_path=HEADSCALE_CONFIG_DIR, read_only=True),
            mount(name="data", mount_path=headplane.DATA_DIR),
            mount(name="secrets", mount_path=headplane.SECRET_DIR, read_only=True),
            mount(name="tmp", mount_path="/tmp"),
        ],
    )
    volume = k8s.core.v1.VolumeArgs
    return k8s.core.v1.PodSpecArgs(
        # Headplane never calls the Kubernetes API.
        automount_service_account_token=False,
        # Service links would inject HEADSCALE_*/HEADPLANE_* variables, which Headplane
        # reads as config overrides (load.ts loadConfigEnv).
        enable_service_links=False,
        security_context=hardened_pod_security_context(user=NONROOT_ID, fs_group=NONROOT_ID),
        containers=[container],
        volumes=[
            volume(
                name="config", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=CONFIG_MAP)
            ),
            volume(
                name="headscale-config",
                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=headscale_config_map),
            ),
            volume(
                name="data",
                persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
                    claim_name=DATA_CLAIM
                ),
            ),
            volume(
                name="secrets",
                # Group-readable: the pod's fsGroup lets the nonroot user read it.
                secret=k8s.core.v1.SecretVolumeSourceArgs(
                    secret_name=COOKIE_SECRET, default_mode=0o440
                ),
            ),
            volume(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()),
        ],
    )
