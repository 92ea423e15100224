"""Every namespace the stack owns, and those Kubernetes itself keeps: the one list.

The config refuses an app in any of them (config/model.py `_app_namespace`), and the components
import their namespace from here, so a namespace the stack starts creating is refused for apps
by being added once, here. Kept free of imports: `config/` is the layer below the components.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

METALLB_NAMESPACE: Final = "metallb-system"
TRAEFIK_NAMESPACE: Final = "traefik"
CERT_MANAGER_NAMESPACE: Final = "cert-manager"
REFLECTOR_NAMESPACE: Final = "reflector"
STORAGE_NAMESPACE: Final = "local-path-storage"
HEADSCALE_NAMESPACE: Final = "headscale"
TAILSCALE_NAMESPACE: Final = "tailscale"
# The scheduled etcd snapshot job and its Talos API access (components/cluster/etcd_snapshots.py).
BACKUP_NAMESPACE: Final = "backups"

# Each namespace the stack creates (and deletes on destroy) and the piece it belongs to; each is
# created exactly once in the stack, so an app may not name one of them.
OWNED_NAMESPACES: Final[Mapping[str, str]] = {
    BACKUP_NAMESPACE: "the etcd snapshot job (backups)",
    CERT_MANAGER_NAMESPACE: "cert-manager",
    HEADSCALE_NAMESPACE: "Headscale and Headplane",
    METALLB_NAMESPACE: "MetalLB",
    REFLECTOR_NAMESPACE: "Reflector",
    STORAGE_NAMESPACE: "local-path-provisioner",
    TAILSCALE_NAMESPACE: "the Tailscale subnet router",
    TRAEFIK_NAMESPACE: "Traefik",
}

# Namespaces the API server creates and keeps (kubernetes/kubernetes
# staging/src/k8s.io/api/core/v1/types.go NamespaceDefault, NamespaceSystem, NamespacePublic,
# NamespaceNodeLease); the stack must neither create nor delete them.
KUBERNETES_NAMESPACES: Final = ("default", "kube-node-lease", "kube-public", "kube-system")
