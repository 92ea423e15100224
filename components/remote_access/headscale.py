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

Headscale runs as the distroless `nonroot` user 65532, gets no service account token, and a
NetworkPolicy admits only Traefik's namespace and Headplane's pods on its HTTP port, and STUN from
anywhere (components/shared/security.py says when flannel enforces it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final, cast

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.platform.metallb import LoadBalancerRequest
from components.platform.traefik import TraefikRouting, external_traffic_policy
from components.remote_access import keys, litestream
from components.remote_access.headplane_deployment import Headplane, HeadplaneArgs
from components.remote_access.headscale_config import (
    CONFIG_DIR,
    CONFIG_FILE,
    DATA_DIR,
    HTTP_PORT,
    POLICY_FILE,
    SOCKET_DIR,
    headscale_config,
    startup_problems,
)
from components.remote_access.subnet_router import ROUTER_KEY_HOLDER
from components.shared.common import HEADSCALE_NAMESPACE, ClusterAccess
from components.shared.ingress import Backend, route_host
from components.shared.kube import namespace as kube_namespace
from components.shared.security import (
    IMAGE_PULL_POLICY,
    NONROOT_ID,
    PINNED_IMAGE_SKIPS,
    checkov_skips,
    from_namespace,
    hardened_container_security_context,
    ingress_network_policy,
    policy_ports,
    visibility_annotations,
)
from config import pins
from config.access import stack_policy_document
from config.model import HomelabConfig

RUN_AS: Final = NONROOT_ID
# Tailscale clients reach the control server (and the embedded DERP) on HTTPS 443 only
# (components.md 2.3), which Traefik's websecure entrypoint serves on its LoadBalancer IP.
HTTPS_PORT: Final = 443
API_KEY_EXPIRY: Final = "90d"
LABELS: Final = {"app.kubernetes.io/name": "headscale", "app.kubernetes.io/part-of": "homelab"}
CONFIG_MAP: Final = "headscale-config"
DATA_CLAIM: Final = "headscale-data"
SERVICE: Final = "headscale"
# Headplane's API key, held in the cluster so its renewal check can find it (components/remote_access/keys.py);
# readable by whoever may read Secrets here, who could read the cookie secret anyway.
API_KEY_HOLDER: Final = keys.HeldKey(
    namespace=HEADSCALE_NAMESPACE, secret="headplane-api-key", item="api_key"
)

# What Tailscale clients ask of Headscale's HTTP router (hscontrol/app.go createRouter @ v0.28.0):
# the Noise upgrade (the whole control protocol, /machine/* included, runs inside it), the
# server key, health, the web-login page, the Apple/Windows setup pages, and with the embedded
# DERP its relay, probes and bootstrap DNS. Not here: /api/v1 (REST with an API key), /swagger,
# /version, /verify (only for external derpers' --verify-client-url; there are none) and
# /oidc/callback (registered only with OIDC, which this stack does not configure).
CLIENT_PATHS: Final = ("/ts2021", "/key", "/health", "/apple", "/windows")
CLIENT_PATH_PREFIXES: Final = ("/register/", "/apple/")
DERP_PATHS: Final = ("/derp", "/bootstrap-dns")
DERP_PATH_PREFIXES: Final = ("/derp/",)


@dataclass(frozen=True)
class HeadscaleArgs:
    access: ClusterAccess
    config: HomelabConfig
    storage_class: pulumi.Output[str]
    traefik: TraefikRouting
    stun_load_balancer: LoadBalancerRequest


def as_input(value: dict[str, Any]) -> Any:
    """A raw camelCase Kubernetes fragment, passed through as written.

    The typed SDK inputs would be equivalent; plain manifests read like the upstream docs, and
    the tests validate every rendered object against the strict Kubernetes schemas.
    """
    return cast(Any, value)


def dump_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=True, default_flow_style=False)


def dump_json(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, indent=2) + "\n"


def public_match(fqdn: str, *, derp: bool) -> str:
    """The Traefik rule for what the internet may ask of Headscale (CLIENT_PATHS)."""
    paths = CLIENT_PATHS + (DERP_PATHS if derp else ())
    prefixes = CLIENT_PATH_PREFIXES + (DERP_PATH_PREFIXES if derp else ())
    alternatives = [f"Path(`{p}`)" for p in paths] + [f"PathPrefix(`{p}`)" for p in prefixes]
    return f"Host(`{fqdn}`) && ({' || '.join(alternatives)})"


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
        config = args.config
        settings = headscale_config(config, traefik_ip=args.traefik.load_balancer_ip)
        problems = startup_problems(settings)
        if problems:  # a bug here, not bad user config: config/rules.py guards the inputs
            raise ValueError("generated Headscale config is invalid: " + "; ".join(problems))
        # The same document config/access.py evaluates for the policy tests and access.md.
        policy = stack_policy_document(config)
        files = {CONFIG_FILE: dump_yaml(settings), POLICY_FILE: dump_json(policy)}

        # Deleting the namespace deletes the claims in it: protected wherever the claims are.
        namespace = kube_namespace(
            f"{name}-namespace",
            HEADSCALE_NAMESPACE,
            access=args.access,
            parent=self,
            pod_security="restricted",
            labels={"app.kubernetes.io/part-of": "homelab"},
            protect=config.lifecycle.protect_stateful,
        )
        self._namespace = namespace.metadata.name
        deployment = self._workload(name, args, files)
        service = self._services(name, args)
        self._routes(name, args, depends_on=[namespace, service])

        headplane: Headplane | None = None
        if (headplane_host := config.headplane_exposure) is not None:
            headplane = Headplane(
                f"{name}-headplane",
                HeadplaneArgs(
                    access=args.access,
                    config=config,
                    host=headplane_host,
                    namespace=self._namespace,
                    storage_class=args.storage_class,
                    traefik=args.traefik,
                    headscale_config_map=CONFIG_MAP,
                    protect=config.lifecycle.protect_stateful,
                    depends_on=[namespace, service],
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self._network_policy(name, args, headplane)
        self._keys(name, args, deployment, with_headplane=headplane is not None)
        self.headplane_url = headplane.url if headplane is not None else None

        self.server_url = pulumi.Output.from_input(str(settings["server_url"]))
        self.port_forwards = self._port_forwards(args)
        self.public_dns_record = {
            "name": config.headscale_fqdn,
            "type": "A",
            "value": "<the home connection's public IPv4>",
            "proxied": False,
            "note": "DNS-only: a proxying CDN breaks Tailscale's control-protocol upgrade "
            "(components.md 2.3). The only public name; every other host resolves over MagicDNS.",
        }
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

    # --- pieces ----------------------------------------------------------------------------

    def _meta(self, object_name: str, **extra: Any) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=object_name, namespace=self._namespace, labels=dict(LABELS), **extra
        )

    def _workload(
        self, name: str, args: HeadscaleArgs, files: dict[str, str]
    ) -> k8s.apps.v1.Deployment:
        """The claim, the ConfigMap and the single-replica Deployment."""
        access = args.access
        # skipAwait: with a WaitForFirstConsumer class (local-path) the claim binds only once the
        # pod is scheduled; the Deployment's own readiness is the wait that matters.
        data_claim = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-data",
            metadata=self._meta(DATA_CLAIM, annotations={"pulumi.com/skipAwait": "true"}),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"],
                storage_class_name=args.storage_class,
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": "1Gi"}),
            ),
            opts=access.opts(self, protect=args.config.lifecycle.protect_stateful),
        )
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=self._meta(CONFIG_MAP), data=files, opts=access.opts(self)
        )
        checksum = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
        # With a backup target: restore-if-absent before Headscale starts, replicate beside it.
        replication = litestream.headscale_replication(
            f"{name}-litestream",
            args.config,
            access=access,
            namespace=self._namespace,
            parent=self,
            data_volume="data",
            data_dir=DATA_DIR,
            files=litestream.headscale_files(files[CONFIG_FILE]),
        )
        return k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=self._meta("headscale", annotations=checkov_skips(PINNED_IMAGE_SKIPS)),
            spec=as_input(
                {
                    "replicas": 1,
                    # SQLite on a ReadWriteOnce volume: never two pods at once (components.md 2.6 #6).
                    "strategy": {"type": "Recreate"},
                    "revisionHistoryLimit": 3,
                    "selector": {"matchLabels": dict(LABELS)},
                    "template": {
                        "metadata": {
                            "labels": dict(LABELS),
                            "annotations": {"checksum/config": checksum, **replication.annotations},
                        },
                        "spec": {
                            # Headscale never calls the Kubernetes API.
                            "automountServiceAccountToken": False,
                            # Service links would inject HEADSCALE_* variables, which Headscale
                            # reads as config overrides (viper's automatic env).
                            "enableServiceLinks": False,
                            "securityContext": {
                                "runAsNonRoot": True,
                                "runAsUser": RUN_AS,
                                "runAsGroup": RUN_AS,
                                "fsGroup": RUN_AS,
                                "fsGroupChangePolicy": "OnRootMismatch",
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            **replication.pod_fields,
                            "containers": [
                                self._headscale_container(args.config),
                                *replication.containers,
                            ],
                            "volumes": [
                                {"name": "config", "configMap": {"name": CONFIG_MAP}},
                                {
                                    "name": "data",
                                    "persistentVolumeClaim": {"claimName": DATA_CLAIM},
                                },
                                # The CLI's unix socket; EnsureDir needs a writable directory.
                                {"name": "socket", "emptyDir": {}},
                                {"name": "tmp", "emptyDir": {}},
                                *replication.volumes,
                            ],
                        },
                    },
                }
            ),
            opts=access.opts(self, depends_on=[data_claim, config_map, *replication.depends_on]),
        )

    def _services(self, name: str, args: HeadscaleArgs) -> k8s.core.v1.Service:
        """The ClusterIP Service Traefik and Headplane use, and STUN's LoadBalancer."""
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=self._meta(SERVICE),
            spec=as_input(
                {
                    "type": "ClusterIP",
                    "selector": dict(LABELS),
                    "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http"}],
                }
            ),
            opts=args.access.opts(self),
        )
        if args.config.remote_access.derp.enabled:
            self._stun_service(name, args)
            if args.stun_load_balancer.ip != args.traefik.load_balancer_ip:
                self._in_cluster_stun(name, args)
        return service

    def _in_cluster_stun(self, name: str, args: HeadscaleArgs) -> k8s.core.v1.Service:
        """STUN also on Traefik's IP, for clients inside the cluster (the subnet router).

        The embedded DERP region names no IP (derp.server.ipv4 unset), so a client probes STUN
        and dials DERP at whatever the Headscale name resolves to (hscontrol/derp/server/
        derp_server.go GenerateRegion @ v0.28.0; tailscale net/netcheck/netcheck.go nodeAddrPort
        @ v1.102.3). The router's host alias resolves it to Traefik's IP, which serves 443; with
        STUN on its own LoadBalancer IP nothing would answer STUN there. kube-proxy programs a
        Service's externalIPs for traffic from pods and to the nodes, so this ClusterIP Service
        answers STUN on Traefik's IP (UDP, a port Traefik does not use) without MetalLB, whose
        sharing rules would force Traefik back to `Cluster`. Internet clients keep the STUN
        LoadBalancer through the port-forward.
        """
        port = args.config.remote_access.derp.stun_port
        return k8s.core.v1.Service(
            f"{name}-stun-in-cluster",
            metadata=self._meta("headscale-stun-in-cluster"),
            spec=as_input(
                {
                    "type": "ClusterIP",
                    "externalIPs": [args.traefik.load_balancer_ip],
                    "selector": dict(LABELS),
                    "ports": [
                        {"name": "stun", "protocol": "UDP", "port": port, "targetPort": port}
                    ],
                }
            ),
            opts=args.access.opts(self),
        )

    def _routes(self, name: str, args: HeadscaleArgs, *, depends_on: list[pulumi.Resource]) -> None:
        """The whole host on the private entrypoint; only client paths on the public one."""
        host = args.config.headscale_exposure
        routing = args.traefik
        # LAN and VPN clients, and the subnet router through its host alias, arrive on
        # websecure: everything, the REST API and Swagger included, behind the allowlist.
        route_host(
            f"{name}-route",
            access=args.access,
            parent=self,
            routing=routing,
            host=dataclasses.replace(host, visibility="private"),
            # Plain http: /ts2021 upgrades, /derp, /key, /api... (components.md 2.3).
            backends=[Backend(SERVICE, HTTP_PORT)],
            depends_on=depends_on,
        )
        # The internet (WAN 443 -> `public`): the client paths only, no allowlist.
        k8s.apiextensions.CustomResource(
            f"{name}-public-route",
            api_version="traefik.io/v1alpha1",
            kind="IngressRoute",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{host.name}-public",
                namespace=host.namespace,
                annotations=visibility_annotations("public"),
            ),
            spec={
                "entryPoints": [routing.public_entrypoint],
                "routes": [
                    {
                        "kind": "Rule",
                        "match": public_match(
                            host.fqdn, derp=args.config.remote_access.derp.enabled
                        ),
                        "services": [{"name": SERVICE, "port": HTTP_PORT}],
                    }
                ],
                "tls": {"secretName": routing.wildcard.secret_name},
            },
            opts=args.access.opts(
                self, depends_on=[*routing.ready, *routing.wildcard.ready, *depends_on]
            ),
        )

    def _keys(
        self,
        name: str,
        args: HeadscaleArgs,
        deployment: k8s.apps.v1.Deployment,
        *,
        with_headplane: bool,
    ) -> None:
        remote = args.config.remote_access
        kubeconfig = args.access.kubeconfig
        target = keys.HeadscaleTarget(HEADSCALE_NAMESPACE, "deployment/headscale", "headscale")
        key_deps: list[pulumi.Resource] = [deployment, args.access.cluster]
        router_key = keys.mint_key(
            f"{name}-router-key",
            keys.KeyRequest(
                kind="preauthkey",
                expiration=keys.ROUTER_KEY_EXPIRY,
                # Creating the key creates this user when missing, so 'admin@' in group:admins
                # names a real user before the admin's first device joins.
                user=remote.admin_user,
                tags=(remote.router.tag,),
            ),
            target=target,
            held=ROUTER_KEY_HOLDER,
            kubeconfig=kubeconfig,
            parent=self,
            depends_on=key_deps,
            deleted_with=args.access.cluster,
        )
        self.router_auth_key = router_key.key
        self.router_auth_key_generation = router_key.generation
        self.router_auth_key_expiry = router_key.expiration
        self.headplane_api_key = None
        self.headplane_api_key_expiry = None
        if with_headplane:
            # No OIDC here, so Headplane runs in limited mode: the admin logs in by pasting an API
            # key (docs/install/limited-mode.md): a secret stack output, and a Secret here for
            # its renewal check.
            api_key = keys.mint_key(
                f"{name}-headplane-api-key",
                keys.KeyRequest(kind="apikey", expiration=API_KEY_EXPIRY),
                target=target,
                held=API_KEY_HOLDER,
                kubeconfig=kubeconfig,
                parent=self,
                depends_on=key_deps,
                deleted_with=args.access.cluster,
            )
            k8s.core.v1.Secret(
                f"{name}-headplane-api-key-secret",
                metadata=self._meta(
                    API_KEY_HOLDER.secret,
                    annotations={keys.GENERATION_ANNOTATION: api_key.generation},
                ),
                type="Opaque",
                string_data={API_KEY_HOLDER.item: api_key.key},
                opts=args.access.opts(self),
            )
            self.headplane_api_key = api_key.key
            self.headplane_api_key_expiry = api_key.expiration

    def _headscale_container(self, config: HomelabConfig) -> dict[str, Any]:
        ports: list[dict[str, Any]] = [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
        ]
        if config.remote_access.derp.enabled:
            port = config.remote_access.derp.stun_port
            ports.append({"name": "stun", "containerPort": port, "protocol": "UDP"})
        health = {"httpGet": {"path": "/health", "port": "http"}}
        return {
            "name": "headscale",
            "image": pins.HEADSCALE_IMAGE,
            # The image's entrypoint is the headscale binary (components.md 2.5).
            "args": ["serve"],
            "imagePullPolicy": IMAGE_PULL_POLICY,
            "ports": ports,
            "startupProbe": {**health, "periodSeconds": 5, "failureThreshold": 60},
            "readinessProbe": {**health, "periodSeconds": 10, "timeoutSeconds": 3},
            "livenessProbe": {**health, "periodSeconds": 30, "timeoutSeconds": 5},
            "resources": {
                "requests": {"cpu": "50m", "memory": "64Mi"},
                "limits": {"cpu": "1", "memory": "256Mi"},
            },
            "securityContext": hardened_container_security_context(user=RUN_AS),
            "volumeMounts": [
                {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                {"name": "data", "mountPath": DATA_DIR},
                {"name": "socket", "mountPath": SOCKET_DIR},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        }

    def _stun_service(self, name: str, args: HeadscaleArgs) -> k8s.core.v1.Service:
        request = args.stun_load_balancer
        shares_traefik_ip = request.ip == args.traefik.load_balancer_ip
        if shares_traefik_ip and "metallb.io/allow-shared-ip" not in request.annotations:
            raise ValueError("STUN shares Traefik's IP but its request lacks allow-shared-ip")
        port = args.config.remote_access.derp.stun_port
        return k8s.core.v1.Service(
            f"{name}-stun",
            metadata=self._meta(
                "headscale-stun", annotations=dict(sorted(request.annotations.items()))
            ),
            spec=as_input(
                {
                    "type": "LoadBalancer",
                    # `Local` keeps the client's address, which is what STUN reports back;
                    # sharing Traefik's IP forces `Cluster` (MetalLB: both Services use
                    # Cluster or select the same pods, components.md 5), the same rule Traefik
                    # follows, so the two Services always agree.
                    "externalTrafficPolicy": external_traffic_policy(args.config),
                    "selector": dict(LABELS),
                    # Same port outside and inside: the DERP map advertises the listen port.
                    "ports": [
                        {"name": "stun", "protocol": "UDP", "port": port, "targetPort": port}
                    ],
                }
            ),
            opts=args.access.opts(self, depends_on=request.depends_on),
        )

    def _network_policy(
        self, name: str, args: HeadscaleArgs, headplane: Headplane | None
    ) -> k8s.networking.v1.NetworkPolicy:
        """Who may connect to the pod: Traefik and Headplane on HTTP, anyone on STUN.

        Nothing else connects over the network: keys are minted with `kubectl exec` through the
        API server, and the kubelet probes from the pod's node. The metrics listener is on the
        pod's loopback (headscale_config.py), so no rule could reach it anyway.
        """
        remote = args.config.remote_access
        sources = [from_namespace(args.traefik.namespace)]
        if headplane is not None:
            # Headplane's own pods in this namespace, for the REST API on the HTTP port.
            sources.append(
                k8s.networking.v1.NetworkPolicyPeerArgs(
                    pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=headplane.labels)
                )
            )
        rules = [
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=sources, ports=policy_ports("TCP", HTTP_PORT)
            )
        ]
        if remote.derp.enabled:
            # Internet clients through the STUN LoadBalancer: with `Local` their own address
            # arrives, with `Cluster` another node's, so no source can be named.
            rules.append(
                k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                    ports=policy_ports("UDP", remote.derp.stun_port)
                )
            )
        return ingress_network_policy(
            f"{name}-network-policy",
            metadata=self._meta("headscale"),
            pod_labels=LABELS,
            ingress=rules,
            opts=args.access.opts(self),
        )

    def _port_forwards(self, args: HeadscaleArgs) -> list[dict[str, Any]]:
        """What to forward on the home router so clients on the internet reach Headscale."""
        forwards: list[dict[str, Any]] = [
            {
                "protocol": "tcp",
                "externalPort": HTTPS_PORT,
                "internalIp": args.traefik.load_balancer_ip,
                # Traefik's `public` entrypoint: only public hosts are routed there, so the
                # internet never reaches a private host (components/platform/traefik.py, fence 1).
                "internalPort": args.traefik.public_port,
                "purpose": f"https://{args.config.headscale_fqdn}: control plane and DERP relay",
            }
        ]
        derp = args.config.remote_access.derp
        if derp.enabled:
            forwards.append(
                {
                    "protocol": "udp",
                    "externalPort": derp.stun_port,
                    "internalIp": args.stun_load_balancer.ip,
                    "internalPort": derp.stun_port,
                    "purpose": "STUN of the embedded DERP server (NAT traversal)",
                }
            )
        return forwards
