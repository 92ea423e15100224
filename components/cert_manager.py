"""cert-manager and the DNS-01 wildcard certificate for `*.<domain>` and `<domain>`.

A ClusterIssuer keeps its secrets (DNS token, ACME account key) in the cluster resource namespace,
which defaults to cert-manager's own (components.md 7, pitfall 2), so the token Secret lives there.
Issuer and Certificate are custom resources checked by cert-manager's webhook: they are created only
after the Release is ready (components.md 7 #3). The certificate's Secret carries the Reflector
annotations through `secretTemplate`, so it is mirrored into every namespace that serves TLS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.common import CERT_MANAGER_NAMESPACE, ClusterAccess
from components.kube import HelmChart, helm_release, namespace, secret_output
from components.reflector import reflection_annotations, tls_namespaces
from config import pins
from config.model import CloudflareDns01, Dns01Provider, HomelabConfig

CHART: Final = HelmChart(
    pins.CERT_MANAGER_CHART_REPO, "cert-manager", pins.CERT_MANAGER_CHART_VERSION
)
ACME_SERVERS: Final[dict[Literal["staging", "production"], str]] = {
    "production": "https://acme-v02.api.letsencrypt.org/directory",
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
WILDCARD_CERTIFICATE: Final = "wildcard"
WILDCARD_SECRET: Final = "wildcard-tls"
DNS_TOKEN_KEY: Final = "api-token"


@dataclass(frozen=True)
class CertManagerArgs:
    access: ClusterAccess
    config: HomelabConfig
    dns_api_token: pulumi.Output[str]
    reflector: pulumi.Resource


@dataclass(frozen=True)
class WildcardCertificate:
    """The wildcard Secret's name, and every namespace it is mirrored into."""

    secret_name: str
    namespaces: tuple[str, ...]
    ready: list[pulumi.Resource]
    # Where cert-manager writes the Secret; Reflector copies it from here.
    source_namespace: str = CERT_MANAGER_NAMESPACE


# --- DNS-01 solvers: one function per provider, chosen by `tls.dns01.provider` -------------------


def _cloudflare_solver(provider: CloudflareDns01, token_secret: str) -> dict[str, Any]:
    # A scoped API token (Zone-DNS-Edit + Zone-Zone-Read), not the global key (components.md 7).
    return {"cloudflare": {"apiTokenSecretRef": {"name": token_secret, "key": DNS_TOKEN_KEY}}}


# Another provider is a config model in config/model.py plus one entry here.
DNS01_SOLVERS: Final[dict[str, Callable[[Any, str], dict[str, Any]]]] = {
    "cloudflare": _cloudflare_solver,
}


def token_secret_name(provider: Dns01Provider) -> str:
    return f"dns01-{provider.provider}-api-token"


def issuer_name(config: HomelabConfig) -> str:
    return f"letsencrypt-{config.acme_environment}"


def chart_values(config: HomelabConfig) -> dict[str, Any]:
    """CRDs from the chart (off by default, components.md 7 #1), recursive-only DNS-01 checks.

    Self-checks against public resolvers only: a home router or split-horizon DNS answers the
    propagation check with its own view and it never passes (cert-manager #5917, peers.md 10).
    """
    small = {"requests": {"cpu": "10m", "memory": "32Mi"}}
    return {
        # Modest requests for every pod of the chart (its values.yaml `resources` keys): the
        # controller, its webhook, the CA injector and the one-shot startup API check.
        "cainjector": {"resources": small},
        "crds": {"enabled": True, "keep": True},
        "dns01RecursiveNameservers": ",".join(config.tls.recursive_nameservers),
        "dns01RecursiveNameserversOnly": True,
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}},
        "startupapicheck": {"resources": small},
        "webhook": {"resources": small},
    }


def cluster_issuer_spec(config: HomelabConfig) -> dict[str, Any]:
    """ACME DNS-01 against Let's Encrypt: staging for labs, production for the homelab."""
    provider = config.tls.dns01
    solver = DNS01_SOLVERS[provider.provider](provider, token_secret_name(provider))
    return {
        "acme": {
            "email": config.tls.acme_email,
            "server": ACME_SERVERS[config.acme_environment],
            "privateKeySecretRef": {"name": f"{issuer_name(config)}-account-key"},
            "solvers": [
                {"dns01": solver, "selector": {"dnsZones": [provider.zone or config.domain]}}
            ],
        }
    }


def certificate_spec(config: HomelabConfig) -> dict[str, Any]:
    return {
        "secretName": WILDCARD_SECRET,
        "dnsNames": [config.domain, f"*.{config.domain}"],
        "issuerRef": {
            "group": "cert-manager.io",
            "kind": "ClusterIssuer",
            "name": issuer_name(config),
        },
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "secretTemplate": {"annotations": reflection_annotations(tls_namespaces(config))},
    }


class CertManager(pulumi.ComponentResource):
    wildcard: WildcardCertificate

    def __init__(
        self, name: str, args: CertManagerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:platform:CertManager", name, None, opts)
        config = args.config
        ns = namespace(f"{name}-namespace", CERT_MANAGER_NAMESPACE, access=args.access, parent=self)
        release = helm_release(
            name,
            access=args.access,
            parent=self,
            chart=CHART,
            namespace=CERT_MANAGER_NAMESPACE,
            values=chart_values(config),
            depends_on=[ns],
        )
        # `string_data` from the secret Output: the token stays a Pulumi secret end to end.
        api_token: pulumi.Output[str] = secret_output(args.dns_api_token)
        token = k8s.core.v1.Secret(
            f"{name}-dns-api-token",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=token_secret_name(config.tls.dns01), namespace=CERT_MANAGER_NAMESPACE
            ),
            type="Opaque",
            string_data={DNS_TOKEN_KEY: api_token},
            opts=args.access.opts(self, depends_on=[ns]),
        )
        issuer = k8s.apiextensions.CustomResource(
            f"{name}-cluster-issuer",
            api_version="cert-manager.io/v1",
            kind="ClusterIssuer",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=issuer_name(config)),
            spec=cluster_issuer_spec(config),
            opts=args.access.opts(self, depends_on=[release, token]),
        )
        certificate = k8s.apiextensions.CustomResource(
            f"{name}-wildcard",
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=WILDCARD_CERTIFICATE, namespace=CERT_MANAGER_NAMESPACE
            ),
            spec=certificate_spec(config),
            opts=args.access.opts(self, depends_on=[release, issuer, args.reflector]),
        )
        self.wildcard = WildcardCertificate(
            secret_name=WILDCARD_SECRET,
            namespaces=tls_namespaces(config),
            ready=[certificate],
        )
        self.register_outputs(
            {
                "issuer": issuer_name(config),
                "secretName": WILDCARD_SECRET,
                "namespaces": list(self.wildcard.namespaces),
            }
        )
