"""The exposed apps, Grafana as the worked example.

The `apps` config list drives everything per app: a workload this project deploys (`workload`) or
an existing Service to route to (`service`), its route through Traefik (`route_host`: wildcard
certificate, allowlist when private), the reflection of the certificate into its namespace
(components/platform/reflector.py) and, in the remote-access branch, its MagicDNS record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random

from components.platform.traefik import TraefikRouting
from components.shared.common import ClusterAccess
from components.shared.ingress import Backend, route_host
from components.shared.kube import HelmChart, helm_release, namespace, secret_output
from components.shared.namespaces import PLATFORM_NAMESPACES
from config import pins
from config.model import App, ExposedHost
from config.views import ExposedApp

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


@dataclass(frozen=True)
class AppsArgs:
    access: ClusterAccess
    # The configured apps with their hosts (config/views.py `exposed_apps`).
    apps: tuple[ExposedApp, ...]
    traefik: TraefikRouting
    # The class for state (volumes retained when their claim goes, components/platform/storage.py).
    storage_class: pulumi.Output[str]
    # Protect their state (namespaces and claims), `lifecycle.protect_stateful`.
    protect: bool


def app_namespaces(apps: Sequence[App]) -> list[str]:
    """Namespaces this component creates and owns: every app's, for deployed workloads and
    routes to a `service` alike, since the route and the reflected certificate live there too.

    The config refuses the platform's and Kubernetes' own namespaces (config/model.py
    `_app_namespace`); the subtraction keeps each namespace created exactly once regardless.
    """
    return sorted({a.namespace for a in apps} - set(PLATFORM_NAMESPACES))


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


@dataclass(frozen=True)
class _Deployed:
    """A deployed workload: the Service to route to, and what the route waits for."""

    backend: Backend
    ready: list[pulumi.Resource]


class Apps(pulumi.ComponentResource):
    urls: dict[str, str]
    # Grafana's admin password (a secret), when a Grafana is deployed.
    grafana_admin_password: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: AppsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:apps:Apps", name, None, opts)
        self._args = args
        self.grafana_admin_password = None
        # Deleting a namespace deletes the claims in it: protected where state is.
        self._namespaces = {
            ns: namespace(
                f"{name}-namespace-{ns}",
                ns,
                access=args.access,
                parent=self,
                protect=args.protect,
            )
            for ns in app_namespaces([exposed.app for exposed in args.apps])
        }
        workloads: dict[str, Callable[[str, App, ExposedHost], _Deployed]] = {
            "grafana": self._grafana,
        }
        for exposed in args.apps:
            app, host = exposed.app, exposed.host
            if app.workload is not None:
                deployed = workloads[app.workload](f"{name}-{app.name}", app, host)
            else:
                # config/rules.py guarantees exactly one of workload/service.
                assert app.service is not None
                deployed = _Deployed(Backend(app.service, app.port), self._in_namespace(app))
            route_host(
                f"{name}-{app.name}-route",
                access=args.access,
                parent=self,
                routing=args.traefik,
                host=host,
                backends=[deployed.backend],
                depends_on=deployed.ready,
            )
        self.urls = {exposed.app.name: exposed.url for exposed in args.apps}
        outputs: dict[str, Any] = {"urls": self.urls}
        if self.grafana_admin_password is not None:
            outputs["grafanaAdminPassword"] = self.grafana_admin_password
        self.register_outputs(outputs)

    def _in_namespace(self, app: App) -> list[pulumi.Resource]:
        ns = self._namespaces.get(app.namespace)
        return [ns] if ns is not None else []

    def _grafana(self, name: str, app: App, host: ExposedHost) -> _Deployed:
        access = self._args.access
        password = pulumi_random.RandomPassword(
            f"{name}-admin-password",
            length=32,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
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
            opts=access.opts(self, depends_on=self._in_namespace(app)),
        )
        if self.grafana_admin_password is None:
            self.grafana_admin_password = admin_password
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
                storage_class_name=self._args.storage_class,
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                    requests={"storage": GRAFANA_VOLUME_SIZE}
                ),
            ),
            opts=access.opts(
                self,
                depends_on=self._in_namespace(app),
                protect=self._args.protect,
            ),
        )
        release = helm_release(
            name,
            access=access,
            parent=self,
            chart=GRAFANA_CHART,
            namespace=app.namespace,
            values=grafana_values(app, host.fqdn, admin_secret_name, claim_name),
            depends_on=[*self._in_namespace(app), admin_secret, claim],
        )
        return _Deployed(Backend(app.name, app.port), [release])
