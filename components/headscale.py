"""Headscale + Headplane, MagicDNS, DERP/STUN and the ACL policy, in namespace `headscale`.

One pod (single replica, `Recreate`: SQLite on a ReadWriteOnce volume) runs Headscale and, when
enabled, Headplane beside it with a shared process namespace so Headplane can signal Headscale
(components.md 3.3). Config and policy are generated from the typed stack config, serialised once
with sorted keys into a ConfigMap, and their checksum on the pod template rolls the pod when they
change (Headscale reads the policy only at start or on SIGHUP, components.md 2.4).

Traefik publishes `headscale.<domain>` (public, the whole host, plain-HTTP backend) and
`headplane.<domain>` (private). STUN cannot go through an HTTP proxy, so it has its own UDP
LoadBalancer Service from MetalLB. What cannot be declared (the router's pre-auth key, Headplane's
API key) is minted in the running pod by `components/keys.py`.

Both containers run as the distroless `nonroot` user 65532 rather than the images' default root:
Headplane's SIGHUP reaches Headscale because both processes share that one UID (a signal needs the
same UID or CAP_KILL), and the pod meets the `restricted` Pod Security profile.

Only Headplane gets a service account token (a projected volume in its container; the pod does not
automount one), and a NetworkPolicy admits only Traefik's namespace on the HTTP ports and STUN
from anywhere (components/security.py says when flannel enforces it).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from components import headplane, keys
from components.common import HEADSCALE_NAMESPACE, ClusterAccess
from components.headscale_config import (
    CONFIG_DIR,
    CONFIG_FILE,
    DATA_DIR,
    HTTP_PORT,
    METRICS_PORT,
    POLICY_FILE,
    SOCKET_DIR,
    headscale_config,
    startup_problems,
)
from components.ingress import Backend, route_host
from components.kube import namespace as kube_namespace
from components.metallb import LoadBalancerRequest
from components.security import (
    IMAGE_PULL_POLICY,
    IMAGES_PINNED_BY_TAG,
    NONROOT_ID,
    checkov_skips,
    from_namespace,
    hardened_container_security_context,
    ingress_network_policy,
    policy_ports,
)
from components.traefik import MiddlewareRef, TraefikRouting, external_traffic_policy
from config import pins
from config.access import stack_policy_document
from config.model import HomelabConfig

# The distroless images' `nonroot` user: the same UID in both containers (see module docstring).
RUN_AS: Final = NONROOT_ID
# Tailscale clients reach the control server (and the embedded DERP) on HTTPS 443 only
# (components.md 2.3), which Traefik's websecure entrypoint serves on its LoadBalancer IP.
HTTPS_PORT: Final = 443
ROUTER_KEY_EXPIRY: Final = "365d"
API_KEY_EXPIRY: Final = "90d"
LABELS: Final = {"app.kubernetes.io/name": "headscale", "app.kubernetes.io/part-of": "homelab"}


# Builds namespaced, labelled metadata for one object of the component.
Meta = Callable[..., k8s.meta.v1.ObjectMetaArgs]


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


class Headscale(pulumi.ComponentResource):
    server_url: pulumi.Output[str]
    router_auth_key: pulumi.Output[str]
    headplane_url: str | None
    headplane_api_key: pulumi.Output[str] | None
    port_forwards: list[dict[str, Any]]
    public_dns_record: dict[str, Any]
    join_command: str

    def __init__(
        self, name: str, args: HeadscaleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:remote-access:Headscale", name, None, opts)
        config = args.config
        access = args.access
        remote = config.remote_access
        with_headplane = remote.headplane.enabled
        derp = remote.derp
        traefik_ip = args.traefik.load_balancer_ip

        settings = headscale_config(config, traefik_ip=traefik_ip)
        problems = startup_problems(settings)
        if problems:  # a bug here, not bad user config: config/rules.py guards the inputs
            raise ValueError("generated Headscale config is invalid: " + "; ".join(problems))
        # The same document config/access.py evaluates for the policy tests and access.md.
        policy = stack_policy_document(config)
        files = {CONFIG_FILE: dump_yaml(settings), POLICY_FILE: dump_json(policy)}
        ui_files: dict[str, str] = {}
        if with_headplane:
            ui_settings = headplane.headplane_config(config)
            ui_problems = headplane.config_problems(
                ui_settings, {headplane.POD_NAME_ENV: "<metadata.name>"}
            )
            if ui_problems:
                raise ValueError("generated Headplane config is invalid: " + "; ".join(ui_problems))
            ui_files = {headplane.CONFIG_FILE: dump_yaml(ui_settings)}

        namespace = kube_namespace(
            f"{name}-namespace",
            HEADSCALE_NAMESPACE,
            access=access,
            parent=self,
            pod_security="restricted",
            labels={"app.kubernetes.io/part-of": "homelab"},
        )
        ns = namespace.metadata.name

        def meta(object_name: str, **extra: Any) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(
                name=object_name, namespace=ns, labels=dict(LABELS), **extra
            )

        data_claim = self._claim(
            f"{name}-data",
            meta("headscale-data", annotations={"pulumi.com/skipAwait": "true"}),
            args,
            protect=config.lifecycle.protect_stateful,
        )
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=meta("headscale-config"),
            data=files,
            opts=access.opts(self),
        )
        volumes: list[dict[str, Any]] = [
            {"name": "config", "configMap": {"name": "headscale-config"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "headscale-data"}},
            # The CLI's unix socket; EnsureDir needs a writable directory (components.md 2.1).
            {"name": "socket", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ]
        containers = [self._headscale_container(config)]
        # Headscale never calls the Kubernetes API; Headplane mounts its own token (below).
        pod_extra: dict[str, Any] = {}
        depends: list[pulumi.Resource] = [data_claim, config_map]

        if with_headplane:
            ui_resources, ui_volumes = self._headplane_objects(name, args, meta, ui_files)
            depends += ui_resources
            volumes += ui_volumes
            containers.append(self._headplane_container())
            pod_extra = {
                # Headplane reads its own pod through the API (validate_manifest) with this
                # account's token, mounted into its container only.
                "serviceAccountName": "headscale",
                # Headplane finds `headscale serve` in /proc and signals it (components.md 3.3).
                "shareProcessNamespace": True,
            }

        checksum = hashlib.sha256(
            json.dumps({**files, **ui_files}, sort_keys=True).encode()
        ).hexdigest()
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta(
                "headscale", annotations=checkov_skips({"CKV_K8S_43": IMAGES_PINNED_BY_TAG})
            ),
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
                            "annotations": {"checksum/config": checksum},
                        },
                        "spec": {
                            **pod_extra,
                            "automountServiceAccountToken": False,
                            # Service links would inject HEADSCALE_*/HEADPLANE_* variables that
                            # both programs read as config overrides.
                            "enableServiceLinks": False,
                            "securityContext": {
                                "runAsNonRoot": True,
                                "runAsUser": RUN_AS,
                                "runAsGroup": RUN_AS,
                                "fsGroup": RUN_AS,
                                "fsGroupChangePolicy": "OnRootMismatch",
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "containers": containers,
                            "volumes": volumes,
                        },
                    },
                }
            ),
            opts=access.opts(self, depends_on=depends),
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta("headscale"),
            spec=as_input(
                {
                    "type": "ClusterIP",
                    "selector": dict(LABELS),
                    "ports": [
                        {"name": "http", "port": HTTP_PORT, "targetPort": "http"},
                        {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"},
                    ],
                }
            ),
            opts=access.opts(self),
        )
        route_host(
            f"{name}-route",
            access=access,
            parent=self,
            routing=args.traefik,
            host=config.headscale_exposure,
            # The whole host, plain http: /ts2021 upgrades, /derp, /key, /api... (components.md 2.3).
            backends=[Backend("headscale", HTTP_PORT)],
            depends_on=[namespace, service],
        )
        if derp.enabled:
            self._stun_service(name, args, meta)
        self._network_policy(name, args, meta)

        kubeconfig = access.kubeconfig
        target = keys.HeadscaleTarget(HEADSCALE_NAMESPACE, "deployment/headscale", "headscale")
        key_deps: list[pulumi.Resource] = [deployment, access.cluster]
        self.router_auth_key = keys.mint_key(
            f"{name}-router-key",
            keys.KeyRequest(
                kind="preauthkey",
                expiration=ROUTER_KEY_EXPIRY,
                # Creating the key creates this user when missing, so 'admin@' in group:admins
                # names a real user before the admin's first device joins.
                user=remote.admin_user,
                tags=(remote.router.tag,),
                reusable=True,
            ),
            target=target,
            kubeconfig=kubeconfig,
            parent=self,
            depends_on=key_deps,
        )
        self.headplane_api_key = None
        self.headplane_url = None
        if with_headplane:
            # No OIDC here, so Headplane runs in limited mode: the admin logs in by pasting an API
            # key (docs/install/limited-mode.md). It is a secret stack output, not a Secret the
            # UI would read.
            self.headplane_api_key = keys.mint_key(
                f"{name}-headplane-api-key",
                keys.KeyRequest(kind="apikey", expiration=API_KEY_EXPIRY),
                target=target,
                kubeconfig=kubeconfig,
                parent=self,
                depends_on=key_deps,
            )
            self.headplane_url = headplane.ui_url(config)

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
                "headplaneUrl": self.headplane_url,
                "portForwards": self.port_forwards,
                "publicDnsRecord": self.public_dns_record,
                "joinCommand": self.join_command,
            }
        )

    # --- pieces ----------------------------------------------------------------------------

    def _claim(
        self,
        resource_name: str,
        metadata: k8s.meta.v1.ObjectMetaArgs,
        args: HeadscaleArgs,
        *,
        protect: bool = False,
    ) -> k8s.core.v1.PersistentVolumeClaim:
        # skipAwait: with a WaitForFirstConsumer class (local-path) the claim binds only once the
        # pod is scheduled; the Deployment's own readiness is the wait that matters.
        return k8s.core.v1.PersistentVolumeClaim(
            resource_name,
            metadata=metadata,
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"],
                storage_class_name=args.storage_class,
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": "1Gi"}),
            ),
            opts=args.access.opts(self, protect=protect),
        )

    def _headscale_container(self, config: HomelabConfig) -> dict[str, Any]:
        ports: list[dict[str, Any]] = [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ]
        if config.remote_access.derp.enabled:
            port = config.remote_access.derp.stun_port
            ports.append({"name": "stun", "containerPort": port, "protocol": "UDP"})
        health = {"httpGet": {"path": "/health", "port": "http"}}
        return {
            "name": "headscale",
            "image": pins.HEADSCALE_IMAGE,
            # The image's entrypoint is the headscale binary; Headplane looks for argv[1] ==
            # "serve", so no flags before it (components.md 2.5, 3.3).
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

    def _headplane_container(self) -> dict[str, Any]:
        health = {"httpGet": {"path": f"{headplane.UI_PATH}/healthz", "port": "headplane"}}
        return {
            "name": "headplane",
            "image": pins.HEADPLANE_IMAGE,
            "imagePullPolicy": IMAGE_PULL_POLICY,
            "env": [
                {
                    "name": headplane.POD_NAME_ENV,
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                }
            ],
            "ports": [{"name": "headplane", "containerPort": headplane.PORT, "protocol": "TCP"}],
            "readinessProbe": {**health, "periodSeconds": 10, "timeoutSeconds": 3},
            "livenessProbe": {
                **health,
                "initialDelaySeconds": 30,
                "periodSeconds": 30,
                "timeoutSeconds": 5,
            },
            "resources": {
                "requests": {"cpu": "25m", "memory": "128Mi"},
                "limits": {"cpu": "500m", "memory": "512Mi"},
            },
            "securityContext": hardened_container_security_context(user=RUN_AS),
            "volumeMounts": [
                {"name": "headplane-config", "mountPath": headplane.CONFIG_DIR, "readOnly": True},
                # Headscale's config, read-only: the UI shows it, the stack config owns it.
                {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                {"name": "headplane-data", "mountPath": headplane.DATA_DIR},
                {"name": "headplane-secrets", "mountPath": headplane.SECRET_DIR, "readOnly": True},
                {"name": "headplane-tmp", "mountPath": "/tmp"},
                {
                    "name": headplane.SERVICE_ACCOUNT_VOLUME,
                    "mountPath": headplane.SERVICE_ACCOUNT_DIR,
                    "readOnly": True,
                },
            ],
        }

    def _headplane_objects(
        self,
        name: str,
        args: HeadscaleArgs,
        meta: Meta,
        files: dict[str, str],
    ) -> tuple[list[pulumi.Resource], list[dict[str, Any]]]:
        """Headplane's claim, config, cookie secret, RBAC, Service and route."""
        access = args.access
        config = args.config
        secret_value = config.headplane_cookie_secret
        if secret_value is not None:
            cookie_secret = pulumi.Output.secret(secret_value.get_secret_value())
        else:
            # Generated once and kept in state: a new value would log every session out.
            generated = random.RandomPassword(
                f"{name}-headplane-cookie-secret",
                length=headplane.COOKIE_SECRET_LENGTH,
                special=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            cookie_secret = pulumi.Output.secret(generated.result)
        secret = k8s.core.v1.Secret(
            f"{name}-headplane-secret",
            metadata=meta("headplane-cookie-secret"),
            type="Opaque",
            string_data={headplane.COOKIE_SECRET_KEY: cookie_secret},
            opts=access.opts(self),
        )
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-headplane-config",
            metadata=meta("headplane-config"),
            data=files,
            opts=access.opts(self),
        )
        claim = self._claim(
            f"{name}-headplane-data",
            meta("headplane-data", annotations={"pulumi.com/skipAwait": "true"}),
            args,
        )
        account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account", metadata=meta("headscale"), opts=access.opts(self)
        )
        role = k8s.rbac.v1.Role(
            f"{name}-headplane-role",
            metadata=meta("headplane"),
            rules=[k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["pods"], verbs=["get"])],
            opts=access.opts(self),
        )
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-headplane-role-binding",
            metadata=meta("headplane"),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="Role", name="headplane"
            ),
            subjects=[
                k8s.rbac.v1.SubjectArgs(
                    kind="ServiceAccount", name="headscale", namespace=HEADSCALE_NAMESPACE
                )
            ],
            opts=access.opts(self, depends_on=[role, account]),
        )
        service = k8s.core.v1.Service(
            f"{name}-headplane-service",
            metadata=meta("headplane"),
            spec=as_input(
                {
                    "type": "ClusterIP",
                    "selector": dict(LABELS),
                    "ports": [{"name": "http", "port": headplane.PORT, "targetPort": "headplane"}],
                }
            ),
            opts=access.opts(self),
        )
        # The whole host goes to Headplane, whose UI lives under /admin (the URL in the stack
        # outputs); the bare host redirects there instead of answering 404.
        host = config.headplane_exposure
        assert host is not None  # only called with Headplane enabled
        redirect = k8s.apiextensions.CustomResource(
            f"{name}-headplane-redirect",
            api_version="traefik.io/v1alpha1",
            kind="Middleware",
            metadata=meta("headplane-root-redirect"),
            spec={
                "redirectRegex": {
                    "regex": f"^https://{re.escape(host.fqdn)}/?$",
                    "replacement": f"https://{host.fqdn}/admin/",
                    "permanent": True,
                }
            },
            opts=access.opts(self, depends_on=args.traefik.ready),
        )
        route_host(
            f"{name}-headplane-route",
            access=access,
            parent=self,
            routing=args.traefik,
            host=host,
            backends=[
                Backend(
                    "headplane",
                    headplane.PORT,
                    middlewares=(MiddlewareRef("headplane-root-redirect", HEADSCALE_NAMESPACE),),
                )
            ],
            depends_on=[service, redirect],
        )
        volumes: list[dict[str, Any]] = [
            {"name": "headplane-config", "configMap": {"name": "headplane-config"}},
            {"name": "headplane-data", "persistentVolumeClaim": {"claimName": "headplane-data"}},
            {
                "name": "headplane-secrets",
                # Group-readable: the pod's fsGroup lets the nonroot user read it.
                "secret": {"secretName": "headplane-cookie-secret", "defaultMode": 0o440},
            },
            {"name": "headplane-tmp", "emptyDir": {}},
            headplane.service_account_volume(),
        ]
        return [secret, config_map, claim, account, binding], volumes

    def _stun_service(self, name: str, args: HeadscaleArgs, meta: Meta) -> k8s.core.v1.Service:
        request = args.stun_load_balancer
        shares_traefik_ip = request.ip == args.traefik.load_balancer_ip
        if shares_traefik_ip and "metallb.io/allow-shared-ip" not in request.annotations:
            raise ValueError("STUN shares Traefik's IP but its request lacks allow-shared-ip")
        port = args.config.remote_access.derp.stun_port
        return k8s.core.v1.Service(
            f"{name}-stun",
            metadata=meta("headscale-stun", annotations=dict(sorted(request.annotations.items()))),
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
        self, name: str, args: HeadscaleArgs, meta: Meta
    ) -> k8s.networking.v1.NetworkPolicy:
        """Who may connect to the pod: Traefik on the routed ports, anyone on STUN.

        Nothing else connects over the network: Headplane reaches Headscale on the pod's loopback,
        keys are minted with `kubectl exec` through the API server, and the kubelet probes from
        the pod's node. The metrics port is not admitted; a scraper would need its own rule.
        """
        remote = args.config.remote_access
        routed = [HTTP_PORT] + ([headplane.PORT] if remote.headplane.enabled else [])
        rules = [
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=[from_namespace(args.traefik.namespace)],
                ports=policy_ports("TCP", *routed),
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
            metadata=meta("headscale"),
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
                # internet never reaches a private host (components/traefik.py, fence 1).
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
