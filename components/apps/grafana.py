"""Grafana, the worked example of an app workload this project deploys (`apps[].workload`)."""

from __future__ import annotations

from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random

from components.apps.workload import Deployed, Site
from components.shared.ingress import Backend
from components.shared.kube import HelmChart, helm_release, secret_output
from config import pins
from config.model import App, ExposedHost

GRAFANA_CHART: Final = HelmChart(pins.GRAFANA_CHART_REPO, "grafana", pins.GRAFANA_CHART_VERSION)
GRAFANA_ADMIN_USER: Final = "admin"
GRAFANA_USER_KEY: Final = "admin-user"
GRAFANA_PASSWORD_KEY: Final = "admin-password"
GRAFANA_VOLUME_SIZE: Final = "5Gi"
# Modest requests so the scheduler reserves room and Grafana is not the first evicted; the keys are
# the chart's `resources` and `initChownData.resources` (grafana-community/helm-charts
# charts/grafana/values.yaml).
GRAFANA_RESOURCES: Final = {"requests": {"cpu": "50m", "memory": "128Mi"}}
GRAFANA_INIT_RESOURCES: Final = {"requests": {"cpu": "10m", "memory": "16Mi"}}


def grafana_values(app: App, fqdn: str, admin_secret: str, claim: str) -> dict[str, Any]:
    """Values of the Grafana chart (keys from its values.yaml).

    The data volume is our own claim (`existingClaim`), so it can be protected and outlive the
    release; it is ReadWriteOnce on one node, so a rollout must stop the old pod before the new one
    mounts it: `Recreate` (a RollingUpdate's surge pod would wait on the volume forever when it
    lands on another node).
    """
    return {
        "fullnameOverride": app.name,
        # The admin credentials come from our Secret; the chart never generates or templates one.
        "admin": {
            "existingSecret": admin_secret,
            "userKey": GRAFANA_USER_KEY,
            "passwordKey": GRAFANA_PASSWORD_KEY,
        },
        "grafana.ini": {"server": {"domain": fqdn, "root_url": f"https://{fqdn}"}},
        "deploymentStrategy": {"type": "Recreate"},
        "initChownData": {"resources": GRAFANA_INIT_RESOURCES},
        "persistence": {"enabled": True, "existingClaim": claim},
        "resources": GRAFANA_RESOURCES,
        "service": {"port": app.port, "type": "ClusterIP"},
    }


def grafana(name: str, app: App, host: ExposedHost, site: Site) -> Deployed:
    """Grafana from its chart, with our admin Secret and our (protectable) data claim."""
    access = site.access
    password = pulumi_random.RandomPassword(
        f"{name}-admin-password",
        length=32,
        special=False,
        opts=pulumi.ResourceOptions(parent=site.owner),
    )
    # Random's `result` is secret in the engine; wrapping it keeps it so under every engine.
    admin_password: pulumi.Output[str] = secret_output(password.result)
    admin_secret_name = f"{app.name}-admin"
    admin_secret = k8s.core.v1.Secret(
        f"{name}-admin",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=admin_secret_name, namespace=app.namespace),
        type="Opaque",
        string_data={
            GRAFANA_USER_KEY: GRAFANA_ADMIN_USER,
            GRAFANA_PASSWORD_KEY: admin_password,
        },
        opts=access.opts(site.owner, depends_on=site.in_namespace),
    )
    claim_name = f"{app.name}-data"
    claim = k8s.core.v1.PersistentVolumeClaim(
        f"{name}-data",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=claim_name,
            namespace=app.namespace,
            # With a WaitForFirstConsumer class the claim binds once Grafana's pod is
            # scheduled; the Release's own wait is the one that matters.
            annotations={"pulumi.com/skipAwait": "true"},
        ),
        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteOnce"],
            storage_class_name=site.storage_class,
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                requests={"storage": GRAFANA_VOLUME_SIZE}
            ),
        ),
        opts=access.opts(site.owner, depends_on=site.in_namespace, protect=site.protect),
    )
    release = helm_release(
        name,
        access=access,
        parent=site.owner,
        chart=GRAFANA_CHART,
        namespace=app.namespace,
        values=grafana_values(app, host.fqdn, admin_secret_name, claim_name),
        depends_on=[*site.in_namespace, admin_secret, claim],
    )
    return Deployed(Backend(app.name, app.port), [release], admin_password=admin_password)
