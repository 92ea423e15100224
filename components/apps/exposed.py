"""The exposed apps, Grafana (components/apps/grafana.py) as the worked example.

The `apps` config list drives everything per app: a workload this project deploys (`workload`) or
an existing Service to route to (`service`), its route through Traefik (`route_host`: wildcard
certificate, allowlist when private), the reflection of the certificate into its namespace
(components/platform/reflector.py) and, in the remote-access branch, its MagicDNS record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import pulumi

from components.apps.grafana import grafana
from components.apps.workload import Deployed, Site, Workload
from components.platform.traefik import TraefikRouting
from components.shared.common import ClusterAccess
from components.shared.ingress import Backend, route_host
from components.shared.kube import namespace
from config.model import App
from config.namespaces import OWNED_NAMESPACES
from config.views import ExposedApp

# The workloads an app may name (`apps[].workload`, config/model.py).
WORKLOADS: Final[dict[str, Workload]] = {"grafana": grafana}


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
    return sorted({a.namespace for a in apps} - set(OWNED_NAMESPACES))


class Apps(pulumi.ComponentResource):
    urls: dict[str, str]
    # Grafana's admin password (a secret), when a Grafana is deployed.
    grafana_admin_password: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: AppsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:apps:Apps", name, None, opts)
        self.grafana_admin_password = None
        # Deleting a namespace deletes the claims in it: protected where state is.
        namespaces = {
            ns: namespace(
                f"{name}-namespace-{ns}",
                ns,
                access=args.access,
                parent=self,
                protect=args.protect,
            )
            for ns in app_namespaces([exposed.app for exposed in args.apps])
        }
        for exposed in args.apps:
            app, host = exposed.app, exposed.host
            ns = namespaces.get(app.namespace)
            in_namespace: list[pulumi.Resource] = [ns] if ns is not None else []
            if app.workload is not None:
                site = Site(self, args.access, args.storage_class, args.protect, in_namespace)
                deployed = WORKLOADS[app.workload](f"{name}-{app.name}", app, host, site)
            else:
                # config/rules.py guarantees exactly one of workload/service.
                assert app.service is not None
                deployed = Deployed(Backend(app.service, app.port), in_namespace)
            if self.grafana_admin_password is None:
                self.grafana_admin_password = deployed.admin_password
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
