"""cert-manager and the DNS-01 wildcard certificate for `*.<domain>` and `<domain>`.

A ClusterIssuer keeps its secrets (DNS token, ACME account key) in the cluster resource namespace,
which defaults to cert-manager's own (components.md 7, pitfall 2), so the token Secret lives there.
Issuer and Certificate are custom resources checked by cert-manager's webhook: they are created only
after the Release is ready (components.md 7 #3). The certificate's Secret carries the Reflector
annotations through `secretTemplate`, so it is mirrored into every namespace that serves TLS.

The Certificate is awaited: pulumi-kubernetes waits on a custom resource only when it carries
`pulumi.com/waitFor` (pulumi-kubernetes @ v4.32.0 : provider/pkg/metadata/overrides.go
ReadyCondition; without it, or PULUMI_K8S_AWAIT_ALL, it does not wait), so everything that needs
trusted TLS can depend on `WildcardCertificate.ready` and a failed DNS-01 fails `up` at the
Certificate instead of later at the router.

A certificate saved by `lab destroy` (`homelab:wildcardCertificate`) pre-seeds the Secret before
the Certificate exists, so cert-manager finds a valid Secret and orders nothing: Let's Encrypt
allows 5 certificates per exact set of names per 7 days, which a lab recreated a few times a week
would otherwise exhaust. tests/components/platform/test_cert_manager.py encodes the rule cert-manager
applies before it keeps a Secret.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.platform.reflector import reflection_annotations
from components.shared.common import CERT_MANAGER_NAMESPACE, ClusterAccess
from components.shared.kube import HelmChart, helm_release, namespace, secret_output
from config import pins
from config.model import CloudflareDns01, Dns01Provider, SavedCertificate
from config.views import CertificateRequest

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
# The Secret type cert-manager creates (and keeps: a Secret's type is immutable; cert-manager @
# v1.21.1 : pkg/controller/certificates/issuing/internal/secret.go getCertificateSecret).
TLS_SECRET_TYPE: Final = "kubernetes.io/tls"
# cert-manager's own label on the Secrets it manages (pkg/apis/certmanager/v1/types.go
# PartOfCertManagerControllerLabelKey), set by it on every issued Secret.
CERT_MANAGER_SECRET_LABEL: Final = "controller.cert-manager.io/fao"

# Awaiting the Certificate (pulumi-kubernetes @ v4.32.0 : provider/pkg/metadata/annotations.go,
# overrides.go ReadyCondition / TimeoutDuration; condition/custom.go NewCustom).
WAIT_FOR_ANNOTATION: Final = "pulumi.com/waitFor"
TIMEOUT_ANNOTATION: Final = "pulumi.com/timeoutSeconds"
# The condition cert-manager sets when the Secret holds a valid certificate for the spec
# (cert-manager @ v1.21.1 : pkg/apis/certmanager/v1/types_certificate.go CertificateConditionReady).
READY_CONDITION: Final = "Ready"
# 15 minutes. A healthy DNS-01 order takes 1-5 minutes: cert-manager re-runs its self-check every
# 10 s (internal/apis/config/controller/v1alpha1/defaults.go defaultDNS01CheckRetryPeriod), the
# Cloudflare solver writes its TXT records with TTL 120 (pkg/issuer/acme/dns/cloudflare), so the
# recursive resolvers may serve the first of the two values (apex and wildcard share one name) for
# up to 2 minutes, then Let's Encrypt validates and signs in well under a minute. 15 minutes is
# three times that worst case, and short enough that a bad token or zone fails `up` promptly:
# a Challenge that cannot be presented never succeeds however long `up` waits.
CERTIFICATE_TIMEOUT_SECONDS: Final = 900


@dataclass(frozen=True)
class CertManagerArgs:
    access: ClusterAccess
    request: CertificateRequest
    dns_api_token: pulumi.Output[str]
    reflector: pulumi.Resource


@dataclass(frozen=True)
class WildcardCertificate:
    """The wildcard Secret's name, every namespace it is mirrored into, and what to wait on.

    `ready` holds the awaited Certificate: a resource that depends on it is created only once
    cert-manager reports it Ready, i.e. a trusted certificate is in the Secret.
    """

    secret_name: str
    namespaces: tuple[str, ...]
    ready: list[pulumi.Resource]
    certificate: pulumi.Resource | None = None
    # Where cert-manager writes the Secret; Reflector copies it from here.
    source_namespace: str = CERT_MANAGER_NAMESPACE
    # Names a failure message points at: the Certificate and the DNS-01 solver behind it.
    certificate_name: str = WILDCARD_CERTIFICATE
    solver: str = ""


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


def issuer_name(request: CertificateRequest) -> str:
    return f"letsencrypt-{request.acme_environment}"


def chart_values(request: CertificateRequest) -> dict[str, Any]:
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
        "dns01RecursiveNameservers": ",".join(request.tls.recursive_nameservers),
        "dns01RecursiveNameserversOnly": True,
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}},
        "startupapicheck": {"resources": small},
        "webhook": {"resources": small},
    }


def cluster_issuer_spec(request: CertificateRequest) -> dict[str, Any]:
    """ACME DNS-01 against Let's Encrypt: staging for labs, production for the homelab."""
    provider = request.tls.dns01
    solver = DNS01_SOLVERS[provider.provider](provider, token_secret_name(provider))
    return {
        "acme": {
            "email": request.tls.acme_email,
            "server": ACME_SERVERS[request.acme_environment],
            "privateKeySecretRef": {"name": f"{issuer_name(request)}-account-key"},
            "solvers": [{"dns01": solver, "selector": {"dnsZones": [request.zone]}}],
        }
    }


def certificate_annotations() -> dict[str, str]:
    """Make pulumi-kubernetes wait for Ready, for at most CERTIFICATE_TIMEOUT_SECONDS.

    The annotation timeout applies because the resource sets no customTimeouts (those win:
    provider/pkg/metadata/overrides.go TimeoutDuration).
    """
    return {
        TIMEOUT_ANNOTATION: str(CERTIFICATE_TIMEOUT_SECONDS),
        WAIT_FOR_ANNOTATION: f"condition={READY_CONDITION}",
    }


def seeded_secret_annotations(
    request: CertificateRequest, saved: SavedCertificate
) -> dict[str, str]:
    """What cert-manager wrote on the saved Secret, plus the Reflector annotations it would copy
    from `secretTemplate`, so the mirrors appear at once rather than after cert-manager's update."""
    return dict(sorted({**saved.annotations, **reflection_annotations(request.namespaces)}.items()))


def certificate_spec(request: CertificateRequest) -> dict[str, Any]:
    return {
        "secretName": WILDCARD_SECRET,
        "dnsNames": list(request.dns_names),
        "issuerRef": {
            "group": "cert-manager.io",
            "kind": "ClusterIssuer",
            "name": issuer_name(request),
        },
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "secretTemplate": {"annotations": reflection_annotations(request.namespaces)},
    }


class CertManager(pulumi.ComponentResource):
    wildcard: WildcardCertificate

    def __init__(
        self, name: str, args: CertManagerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:platform:CertManager", name, None, opts)
        request = args.request
        ns = namespace(f"{name}-namespace", CERT_MANAGER_NAMESPACE, access=args.access, parent=self)
        release = helm_release(
            name,
            access=args.access,
            parent=self,
            chart=CHART,
            namespace=CERT_MANAGER_NAMESPACE,
            values=chart_values(request),
            depends_on=[ns],
        )
        # `string_data` from the secret Output: the token stays a Pulumi secret end to end.
        api_token: pulumi.Output[str] = secret_output(args.dns_api_token)
        token = k8s.core.v1.Secret(
            f"{name}-dns-api-token",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=token_secret_name(request.tls.dns01), namespace=CERT_MANAGER_NAMESPACE
            ),
            type="Opaque",
            string_data={DNS_TOKEN_KEY: api_token},
            opts=args.access.opts(self, depends_on=[ns]),
        )
        issuer = k8s.apiextensions.CustomResource(
            f"{name}-cluster-issuer",
            api_version="cert-manager.io/v1",
            kind="ClusterIssuer",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=issuer_name(request)),
            spec=cluster_issuer_spec(request),
            opts=args.access.opts(self, depends_on=[release, token]),
        )
        certificate_deps: list[pulumi.Resource] = [release, issuer, args.reflector]
        if (saved := request.saved) is not None:
            certificate_deps.append(seed_secret(name, self, args, saved, depends_on=[ns]))
        certificate = k8s.apiextensions.CustomResource(
            f"{name}-wildcard",
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=WILDCARD_CERTIFICATE,
                namespace=CERT_MANAGER_NAMESPACE,
                annotations=certificate_annotations(),
            ),
            spec=certificate_spec(request),
            opts=args.access.opts(self, depends_on=certificate_deps),
        )
        self.wildcard = WildcardCertificate(
            secret_name=WILDCARD_SECRET,
            namespaces=request.namespaces,
            ready=[certificate],
            certificate=certificate,
            solver=request.solver_description,
        )
        self.register_outputs(
            {
                "issuer": issuer_name(request),
                "secretName": WILDCARD_SECRET,
                "namespaces": list(self.wildcard.namespaces),
                "certificate": f"{CERT_MANAGER_NAMESPACE}/{WILDCARD_CERTIFICATE}",
                "dns01Solver": self.wildcard.solver,
                "reusesSavedCertificate": saved is not None,
            }
        )


def seed_secret(
    name: str,
    owner: pulumi.Resource,
    args: CertManagerArgs,
    saved: SavedCertificate,
    *,
    depends_on: list[pulumi.Resource],
) -> k8s.core.v1.Secret:
    """The saved Secret, created before the Certificate so cert-manager keeps it.

    After creation the Secret is cert-manager's: it renews into it (a forced server-side
    apply, issuing/internal/secret.go UpdateData), so Pulumi ignores `data` changes, and
    `retain_on_delete` leaves it in place should the saved value ever be removed.
    """
    data: pulumi.Output[dict[str, str]] = pulumi.Output.secret(
        {"tls.crt": saved.tls_crt, "tls.key": saved.tls_key}
    )
    options = args.access.opts(owner, depends_on=[*depends_on, args.reflector])
    return k8s.core.v1.Secret(
        f"{name}-saved-wildcard-tls",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=WILDCARD_SECRET,
            namespace=CERT_MANAGER_NAMESPACE,
            annotations=seeded_secret_annotations(args.request, saved),
            labels={CERT_MANAGER_SECRET_LABEL: "true"},
        ),
        type=TLS_SECRET_TYPE,
        data=data,
        opts=pulumi.ResourceOptions.merge(
            options, pulumi.ResourceOptions(ignore_changes=["data"], retain_on_delete=True)
        ),
    )
