"""Headscale: MagicDNS, DERP/STUN and the ACL policy, in namespace `headscale`.

One pod (single replica, `Recreate`: SQLite on a ReadWriteOnce volume) runs Headscale alone;
Headplane, when enabled, is its own pod (components/remote_access/headplane_deployment.py) so the UI's readiness
never gates the control server's. Config and policy are generated from the typed stack config,
serialised once with sorted keys into a ConfigMap, and their checksum on the pod template rolls the
pod when they change (Headscale reads the policy only at start or on SIGHUP, components.md 2.4).

Traefik publishes `headscale.<domain>`: on the `public` entrypoint (what WAN 443 reaches) only the
paths Tailscale clients use, on the private `websecure` entrypoint the whole host behind the
LAN/tailnet allowlist (the REST API and Swagger stay off the internet). STUN cannot go through an
HTTP proxy, so it has its own UDP LoadBalancer Service from MetalLB. What cannot be declared (the
router's pre-auth key, Headplane's API key) is minted in the running pod by `components/remote_access/keys.py`.

The pieces live beside this file: the pod (headscale_pod.py), its Services (headscale_services.py)
and its routes (headscale_routes.py), built as children of this one component, so their names and
URNs are those they always had.

Headscale runs as the distroless `nonroot` user 65532, gets no service account token, and a
NetworkPolicy admits only Traefik's namespace and Headplane's pods on its HTTP port, and STUN from
anywhere (components/shared/security.py says when flannel enforces it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.platform.metallb import LoadBalancerRequest
from components.platform.traefik import TraefikRouting
from components.remote_access import (
    headscale_pod,
    headscale_routes,
    headscale_services,
    keys,
    litestream,
)
from components.remote_access.headplane_deployment import Headplane, HeadplaneArgs
from components.remote_access.headscale_config import (
    CONFIG_FILE,
    POLICY_FILE,
    headscale_config,
    startup_problems,
)
from components.remote_access.subnet_router import ROUTER_KEY_HOLDER
from components.shared.common import HEADSCALE_NAMESPACE, ClusterAccess
from components.shared.kube import namespace as kube_namespace
from components.shared.placement import Placement
from config.model import Derp
from config.views import ControlServer

# Tailscale clients reach the control server (and the embedded DERP) on HTTPS 443 only
# (components.md 2.3), which Traefik's websecure entrypoint serves on its LoadBalancer IP.
HTTPS_PORT: Final = 443
API_KEY_EXPIRY: Final = "90d"
# Headplane's API key, held in the cluster so its renewal check can find it (components/remote_access/keys.py);
# readable by whoever may read Secrets here, who could read the cookie secret anyway.
API_KEY_HOLDER: Final = keys.HeldKey(
    namespace=HEADSCALE_NAMESPACE, secret="headplane-api-key", item="api_key"
)


@dataclass(frozen=True)
class HeadscaleArgs:
    access: ClusterAccess
    # What it serves, derived from the stack config (config/views.py `control_server`).
    server: ControlServer
    storage_class: pulumi.Output[str]
    traefik: TraefikRouting
    stun_load_balancer: LoadBalancerRequest
    # Protect its state (the namespace and the claims), `lifecycle.protect_stateful`.
    protect: bool
    # Where Litestream replicates its database (components/remote_access/litestream.py); None: nowhere.
    backup: litestream.BackupTarget | None = None


def dump_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=True, default_flow_style=False)


def dump_json(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, indent=2) + "\n"


def config_files(
    server: ControlServer, *, traefik_ip: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """Headscale's config (checked against its startup rules) and the ConfigMap's files."""
    settings = headscale_config(server, traefik_ip=traefik_ip)
    problems = startup_problems(settings)
    if problems:  # a bug here, not bad user config: config/rules.py guards the inputs
        raise ValueError("generated Headscale config is invalid: " + "; ".join(problems))
    # The same policy document config/access.py evaluates for the policy tests and access.md.
    files = {CONFIG_FILE: dump_yaml(settings), POLICY_FILE: dump_json(dict(server.policy))}
    return settings, files


class Headscale(pulumi.ComponentResource):
    server_url: pulumi.Output[str]
    router_auth_key: pulumi.Output[str]
    router_auth_key_generation: pulumi.Output[str]
    router_auth_key_expiry: pulumi.Output[str]
    headplane_url: str | None
    headplane_api_key: pulumi.Output[str] | None
    headplane_api_key_expiry: pulumi.Output[str] | None
    port_forwards: list[dict[str, Any]]
    public_dns_record: dict[str, Any]
    join_command: str

    def __init__(
        self, name: str, args: HeadscaleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:remote-access:Headscale", name, None, opts)
        server = args.server
        derp = server.remote_access.derp
        settings, files = config_files(server, traefik_ip=args.traefik.load_balancer_ip)

        # Deleting the namespace deletes the claims in it: protected wherever the claims are.
        namespace = kube_namespace(
            f"{name}-namespace",
            HEADSCALE_NAMESPACE,
            access=args.access,
            parent=self,
            pod_security="restricted",
            labels={"app.kubernetes.io/part-of": "homelab"},
            protect=args.protect,
        )
        at = Placement(
            owner=self,
            access=args.access,
            namespace=namespace.metadata.name,
            labels=headscale_pod.LABELS,
        )
        deployment = headscale_pod.workload(
            name,
            at,
            files=files,
            derp=derp,
            storage_class=args.storage_class,
            protect=args.protect,
            backup=args.backup,
        )
        service = headscale_services.services(
            name, at, derp=derp, traefik=args.traefik, stun_load_balancer=args.stun_load_balancer
        )
        headscale_routes.routes(
            name,
            at,
            host=server.host,
            derp_enabled=derp.enabled,
            routing=args.traefik,
            depends_on=[namespace, service],
        )
        headplane: Headplane | None = None
        if server.headplane is not None:
            headplane = Headplane(
                f"{name}-headplane",
                HeadplaneArgs(
                    access=args.access,
                    site=server.headplane,
                    headscale_url=server.server_url,
                    namespace=at.namespace,
                    storage_class=args.storage_class,
                    traefik=args.traefik,
                    headscale_config_map=headscale_pod.CONFIG_MAP,
                    protect=args.protect,
                    depends_on=[namespace, service],
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        headscale_pod.network_policy(
            name,
            at,
            derp=derp,
            traefik_namespace=args.traefik.namespace,
            headplane_labels=headplane.labels if headplane is not None else None,
        )
        minted = mint_keys(
            name,
            at,
            deployment,
            admin_user=server.remote_access.admin_user,
            router_tag=server.remote_access.router.tag,
            with_headplane=headplane is not None,
        )
        self.router_auth_key = minted.router.key
        self.router_auth_key_generation = minted.router.generation
        self.router_auth_key_expiry = minted.router.expiration
        self.headplane_api_key = minted.headplane.key if minted.headplane else None
        self.headplane_api_key_expiry = minted.headplane.expiration if minted.headplane else None
        self.headplane_url = headplane.url if headplane is not None else None

        self.server_url = pulumi.Output.from_input(str(settings["server_url"]))
        self.port_forwards = port_forwards(
            server.host.fqdn, derp, traefik=args.traefik, stun_ip=args.stun_load_balancer.ip
        )
        self.public_dns_record = public_dns_record(server.host.fqdn)
        self.join_command = f"tailscale up --login-server {settings['server_url']} --accept-routes"
        self.register_outputs(
            {
                "serverUrl": self.server_url,
                "routerAuthKey": self.router_auth_key,
                "routerAuthKeyExpiry": self.router_auth_key_expiry,
                "headplaneApiKeyExpiry": self.headplane_api_key_expiry,
                "headplaneUrl": self.headplane_url,
                "portForwards": self.port_forwards,
                "publicDnsRecord": self.public_dns_record,
                "joinCommand": self.join_command,
            }
        )


def port_forwards(
    fqdn: str, derp: Derp, *, traefik: TraefikRouting, stun_ip: str
) -> list[dict[str, Any]]:
    """What to forward on the home router so clients on the internet reach Headscale."""
    forwards: list[dict[str, Any]] = [
        {
            "protocol": "tcp",
            "externalPort": HTTPS_PORT,
            "internalIp": traefik.load_balancer_ip,
            # Traefik's `public` entrypoint: only public hosts are routed there, so the
            # internet never reaches a private host (components/platform/traefik.py, fence 1).
            "internalPort": traefik.public_port,
            "purpose": f"https://{fqdn}: control plane and DERP relay",
        }
    ]
    if derp.enabled:
        forwards.append(
            {
                "protocol": "udp",
                "externalPort": derp.stun_port,
                "internalIp": stun_ip,
                "internalPort": derp.stun_port,
                "purpose": "STUN of the embedded DERP server (NAT traversal)",
            }
        )
    return forwards


@dataclass(frozen=True)
class HeadscaleKeys:
    router: keys.MintedKey
    headplane: keys.MintedKey | None


def mint_keys(
    name: str,
    at: Placement,
    deployment: k8s.apps.v1.Deployment,
    *,
    admin_user: str,
    router_tag: str,
    with_headplane: bool,
) -> HeadscaleKeys:
    """The router's pre-auth key and, with Headplane, its API key: minted in the running pod."""
    kubeconfig = at.access.kubeconfig
    target = keys.HeadscaleTarget(
        HEADSCALE_NAMESPACE, f"deployment/{headscale_pod.DEPLOYMENT}", "headscale"
    )
    key_deps: list[pulumi.Resource] = [deployment, at.access.cluster]
    router_key = keys.mint_key(
        f"{name}-router-key",
        keys.KeyRequest(
            kind="preauthkey",
            expiration=keys.ROUTER_KEY_EXPIRY,
            # Creating the key creates this user when missing, so 'admin@' in group:admins
            # names a real user before the admin's first device joins.
            user=admin_user,
            tags=(router_tag,),
        ),
        target=target,
        held=ROUTER_KEY_HOLDER,
        kubeconfig=kubeconfig,
        parent=at.owner,
        depends_on=key_deps,
        deleted_with=at.access.cluster,
    )
    if not with_headplane:
        return HeadscaleKeys(router=router_key, headplane=None)
    # No OIDC here, so Headplane runs in limited mode: the admin logs in by pasting an API
    # key (docs/install/limited-mode.md): a secret stack output, and a Secret here for
    # its renewal check.
    api_key = keys.mint_key(
        f"{name}-headplane-api-key",
        keys.KeyRequest(kind="apikey", expiration=API_KEY_EXPIRY),
        target=target,
        held=API_KEY_HOLDER,
        kubeconfig=kubeconfig,
        parent=at.owner,
        depends_on=key_deps,
        deleted_with=at.access.cluster,
    )
    k8s.core.v1.Secret(
        f"{name}-headplane-api-key-secret",
        metadata=at.meta(
            API_KEY_HOLDER.secret,
            annotations={keys.GENERATION_ANNOTATION: api_key.generation},
        ),
        type="Opaque",
        string_data={API_KEY_HOLDER.item: api_key.key},
        opts=at.opts(),
    )
    return HeadscaleKeys(router=router_key, headplane=api_key)


def public_dns_record(fqdn: str) -> dict[str, Any]:
    """The one record a person creates at the public DNS provider."""
    return {
        "name": fqdn,
        "type": "A",
        "value": "<the home connection's public IPv4>",
        "proxied": False,
        "note": "DNS-only: Headscale does not work behind a proxying CDN such as Cloudflare's, "
        "which does not pass the Tailscale control protocol (juanfont/headscale@v0.28.0:"
        "docs/ref/integration/reverse-proxy.md). The only public name; every other host "
        "resolves over MagicDNS.",
    }
