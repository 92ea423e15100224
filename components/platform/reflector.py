"""Reflector: mirrors the wildcard certificate Secret into every namespace that serves TLS.

Traefik's default certificate (TLSStore) and every IngressRoute's `tls.secretName` name a Secret
in their *own* namespace (components.md 6 #2), so the one wildcard Secret has to be copied there.
Which namespaces those are is derived from the hosts that serve TLS (config/views.py
`tls_namespaces`), never a hand-kept list, and it goes into both the allowed and the auto
annotations: auto mirrors must also be allowed or nothing is mirrored (reflector #525, components.md 8 #1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import pulumi

from components.shared.common import REFLECTOR_NAMESPACE, ClusterAccess
from components.shared.kube import HelmChart, helm_release, namespace
from config import pins

CHART: Final = HelmChart(pins.REFLECTOR_CHART_REPO, "reflector", pins.REFLECTOR_CHART_VERSION)

# Annotation names of Reflector >= 2022 (the older `secret-reflection-*` ones no longer work,
# components.md 8 #2); see the upstream README.
ANNOTATION_PREFIX: Final = "reflector.v1.k8s.emberstack.com/"
ALLOWED: Final = ANNOTATION_PREFIX + "reflection-allowed"
ALLOWED_NAMESPACES: Final = ANNOTATION_PREFIX + "reflection-allowed-namespaces"
AUTO_ENABLED: Final = ANNOTATION_PREFIX + "reflection-auto-enabled"
AUTO_NAMESPACES: Final = ANNOTATION_PREFIX + "reflection-auto-namespaces"

# System namespaces never receive a reflected Secret; skipping them saves Reflector work.
EXCLUDED_NAMESPACES: Final = ("kube-node-lease", "kube-public", "kube-system")


def reflection_annotations(namespaces: Iterable[str]) -> dict[str, str]:
    """Annotations for a source Secret mirrored into exactly `namespaces`.

    Entries are regular expressions that must match a whole namespace name (kubernetes-reflector
    @ v10.0.63 : MirroringPropertiesExtensions.cs `PatternListMatch`), so a plain DNS label names
    exactly that namespace and never a longer one sharing its prefix.
    """
    listed = ",".join(sorted(set(namespaces)))
    if not listed:
        raise ValueError("a reflected Secret needs at least one target namespace")
    return {
        ALLOWED: "true",
        ALLOWED_NAMESPACES: listed,
        AUTO_ENABLED: "true",
        AUTO_NAMESPACES: listed,
    }


def chart_values() -> dict[str, object]:
    return {
        "configuration": {"watcher": {"excludedNamespaces": ",".join(EXCLUDED_NAMESPACES)}},
        # A modest request (the chart's `resources`, empty by default): a .NET controller.
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}},
    }


@dataclass(frozen=True)
class ReflectorArgs:
    access: ClusterAccess


class Reflector(pulumi.ComponentResource):
    """The Reflector controller; `ready` is its Release, for sources created after it watches."""

    ready: pulumi.Resource

    def __init__(
        self, name: str, args: ReflectorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:platform:Reflector", name, None, opts)
        ns = namespace(f"{name}-namespace", REFLECTOR_NAMESPACE, access=args.access, parent=self)
        release = helm_release(
            name,
            access=args.access,
            parent=self,
            chart=CHART,
            namespace=REFLECTOR_NAMESPACE,
            values=chart_values(),
            depends_on=[ns],
        )
        # Sources annotated before Reflector watches them were missed by older versions
        # (components.md 8 #4): the certificate waits for this.
        self.ready = release
        self.register_outputs({})
