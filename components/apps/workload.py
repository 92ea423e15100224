"""What an app workload builder (components/apps/grafana.py) is given and gives back.

A builder registers its objects with the Apps component as parent (`Site.owner`), so every app's
resources keep their names and URNs whichever module builds them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pulumi

from components.shared.common import ClusterAccess
from components.shared.ingress import Backend
from config.model import App, ExposedHost


@dataclass(frozen=True)
class Site:
    """Where a workload goes: the Apps component, the cluster, and what its state needs."""

    owner: pulumi.Resource
    access: ClusterAccess
    # The class for state (volumes retained when their claim goes, components/platform/storage.py).
    storage_class: pulumi.Output[str]
    protect: bool
    # The app's namespace, when the stack creates it: every object waits for it.
    in_namespace: Sequence[pulumi.Resource]


@dataclass(frozen=True)
class Deployed:
    """A deployed workload: the Service to route to, what the route waits for, its secrets."""

    backend: Backend
    ready: list[pulumi.Resource]
    # Grafana's `admin` login, when the workload has one.
    admin_password: pulumi.Output[str] | None = None


# A builder: (resource name prefix, the app, its host, where it goes) -> what was deployed.
Workload = Callable[[str, App, ExposedHost, Site], Deployed]
