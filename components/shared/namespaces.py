"""The namespaces the stack creates for its platform pieces, and those Kubernetes itself owns.

Kept free of imports so `config/` can refuse an app in one of them without importing the
components (and Pulumi) it validates for; `components/shared/common.py` re-exports the constants.
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

# Each platform namespace and the piece it belongs to; each is created exactly once in the stack.
PLATFORM_NAMESPACES: Final[Mapping[str, str]] = {
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
