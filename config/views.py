"""What each component receives of the stack config: its own section, or a small typed view.

No component takes `HomelabConfig` whole (tests/components/test_args.py holds them to it), so a
component's Args say what it depends on. The values several components share are derived here
once, from the one model: the exposed hosts (`HomelabConfig.exposed_hosts`, behind the TLS
namespaces, MagicDNS records and app routes), whether STUN shares Traefik's IP (MetalLB's sharing
key, Traefik's and STUN's traffic policy). What a component produces (the wildcard Secret's name,
Traefik's IP) is returned by that component instead (`WildcardCertificate`, `TraefikRouting`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import SecretStr

from config.access import stack_policy_document
from config.model import App, ExposedHost, HomelabConfig, RemoteAccess, SavedCertificate, Tls
from config.namespaces import TRAEFIK_NAMESPACE

# --- TLS: the wildcard certificate ------------------------------------------------------------


@dataclass(frozen=True)
class CertificateRequest:
    """What cert-manager needs to issue the wildcard certificate and have it mirrored."""

    tls: Tls
    acme_environment: Literal["staging", "production"]
    # The DNS-01 zone: `tls.dns01.zone`, else the stack domain.
    zone: str
    dns_names: tuple[str, str]
    # Every namespace that serves TLS with it (`tls_namespaces`).
    namespaces: tuple[str, ...]
    # A certificate saved by `lab destroy`, to pre-seed the Secret with.
    saved: SavedCertificate | None

    @property
    def solver_description(self) -> str:
        """The DNS-01 solver in words, for messages: 'DNS-01 via cloudflare in zone example.com'."""
        return f"DNS-01 via {self.tls.dns01.provider} in zone {self.zone}"


def tls_namespaces(config: HomelabConfig) -> tuple[str, ...]:
    """Every namespace that serves TLS with the wildcard certificate, sorted.

    Traefik's (its default certificate) plus the namespace of every exposed host (the
    IngressRoutes' `tls.secretName`), so adding an app adds its namespace here by construction.
    """
    return tuple(sorted({TRAEFIK_NAMESPACE, *(h.namespace for h in config.exposed_hosts())}))


def certificate_request(config: HomelabConfig) -> CertificateRequest:
    return CertificateRequest(
        tls=config.tls,
        acme_environment=config.acme_environment,
        zone=config.tls.dns01.zone or config.domain,
        dns_names=config.certificate_dns_names,
        namespaces=tls_namespaces(config),
        saved=config.saved_certificate,
    )


def solver_description(config: HomelabConfig) -> str:
    return certificate_request(config).solver_description


# --- Traefik: the front door ------------------------------------------------------------------


def traefik_ip_is_shared(config: HomelabConfig) -> bool:
    """Whether the STUN Service shares Traefik's LoadBalancer IP (forcing `Cluster` policy)."""
    return config.remote_access.derp.enabled and config.stun_ip == config.network.traefik_ip


@dataclass(frozen=True)
class FrontDoor:
    """What Traefik needs of the config beyond its LoadBalancer request and the certificate."""

    # Private hosts admit the LAN (plus the tailnet and pods).
    lan_cidr: ipaddress.IPv4Network
    # Nodes ordinary pods may run on: how many replicas make sense.
    schedulable_nodes: int
    # STUN on Traefik's IP: MetalLB then needs `Cluster` policy on both Services.
    shares_ip_with_stun: bool


def front_door(config: HomelabConfig) -> FrontDoor:
    cluster = config.cluster
    return FrontDoor(
        lan_cidr=config.network.lan_cidr,
        schedulable_nodes=len(cluster.workers)
        + (len(cluster.control_planes) if cluster.schedule_on_control_planes else 0),
        shares_ip_with_stun=traefik_ip_is_shared(config),
    )


# --- remote access ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadplaneSite:
    """Headplane's private host and its cookie secret (None: generated once, kept in state)."""

    host: ExposedHost
    cookie_secret: SecretStr | None


@dataclass(frozen=True)
class ControlServer:
    """What Headscale serves: its section of the config, plus what it derives from the rest."""

    remote_access: RemoteAccess
    domain: str
    # Its own public host.
    host: ExposedHost
    # Every other exposed host: MagicDNS resolves them to Traefik's IP.
    tailnet_hosts: tuple[ExposedHost, ...]
    # The ACL document config/access.py evaluates for the policy tests and access.md.
    policy: Mapping[str, Any]
    headplane: HeadplaneSite | None

    @property
    def server_url(self) -> str:
        return f"https://{self.host.fqdn}"


def control_server(config: HomelabConfig) -> ControlServer:
    own = config.headscale_exposure
    headplane = config.headplane_exposure
    return ControlServer(
        remote_access=config.remote_access,
        domain=config.domain,
        host=own,
        tailnet_hosts=tuple(h for h in config.exposed_hosts() if h != own),
        policy=stack_policy_document(config),
        headplane=HeadplaneSite(headplane, config.headplane_cookie_secret)
        if headplane is not None
        else None,
    )


# --- apps -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExposedApp:
    """One configured app and the host it is served at."""

    app: App
    host: ExposedHost

    @property
    def url(self) -> str:
        return f"https://{self.host.fqdn}"


# The Apps component's name in __main__.py: it names each deployed workload's resources, its
# Helm release included, `<component>-<app name>` (components/apps/exposed.py).
APPS_COMPONENT: Final = "apps"


def workload_release_name(app: App) -> str:
    """The Helm release of an app's workload (config/reserved.py keeps it within Helm's limit;
    tests/config/test_reserved.py checks it against the render)."""
    return f"{APPS_COMPONENT}-{app.name}"


def exposed_apps(config: HomelabConfig) -> tuple[ExposedApp, ...]:
    """The apps in config order, each with its host (`HomelabConfig.app_exposure`)."""
    return tuple(ExposedApp(app, config.app_exposure(app)) for app in config.apps)
