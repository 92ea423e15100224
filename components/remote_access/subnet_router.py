"""The Tailscale subnet router: a pod that advertises the LAN to the tailnet (namespace `tailscale`).

A plain `tailscale/tailscale` container driven by containerboot's environment (the Tailscale
operator needs APIs Headscale lacks; peers.md), following upstream's docs/k8s manifests:

- userspace networking (`TS_USERSPACE=true`): tailscaled's netstack forwards subnet traffic without
  /dev/net/tun or NET_ADMIN, so the pod runs unprivileged as a non-root user, like upstream's
  userspace sidecar example (components.md 4);
- it logs in once with a tagged, single-use, short-lived pre-auth key read from a mounted Secret
  file (`TS_AUTHKEY=file:...`, `TS_AUTH_ONCE=true`: containerboot runs `tailscale up` only while
  tailscaled reports NeedsLogin, cmd/containerboot/main.go @ v1.102.3), keeps its state in a
  Secret it creates itself (`TS_KUBE_SECRET`, not managed here: components.md 4 pitfall 1), and
  advertises the LAN routes, which the ACL policy auto-approves for its tag. The tag comes from
  the key alone: it never asks for one (`--advertise-tags`), because Headscale 0.28 refuses every
  pre-auth-key registration whose Hostinfo requests tags (hscontrol/state/state.go @ v0.28.0);
- nothing connects to it: tailnet traffic is its own outbound connections (to Headscale, DERP
  relays and peers) and their replies, so its NetworkPolicy admits no ingress.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from components.remote_access import keys
from components.shared.common import TAILSCALE_NAMESPACE, ClusterAccess
from components.shared.kube import namespace as kube_namespace
from components.shared.placement import Placement
from components.shared.security import (
    IMAGE_PULL_POLICY,
    NONROOT_ID,
    PINNED_IMAGE_SKIPS,
    checkov_skips,
    hardened_container_security_context,
    hardened_pod_security_context,
    ingress_network_policy,
)
from config import pins

STATE_SECRET: Final = "subnet-router-state"
AUTH_KEY_SECRET: Final = "subnet-router-authkey"
AUTH_KEY_ITEM: Final = "authkey"
# The Secret is mounted here; containerboot passes `file:<path>` on to `tailscale up --authkey`,
# which reads and trims the file (cmd/containerboot/main.go header, cmd/tailscale/cli/up.go
# resolveValueFromFile @ v1.102.3). A file keeps the key out of the process environment.
AUTH_KEY_DIR: Final = "/var/run/secrets/tailscale"
AUTH_KEY_FILE: Final = f"{AUTH_KEY_DIR}/{AUTH_KEY_ITEM}"
ACCOUNT: Final = "subnet-router"
# containerboot serves /healthz here when TS_ENABLE_HEALTH_CHECK is on: 200 once the node has a
# tailnet IP (cmd/containerboot/main.go @ v1.102.3). IPv4 wildcard: '[::]' fails without IPv6.
HEALTH_ADDR: Final = "0.0.0.0:9002"
HEALTH_PORT: Final = 9002
# Upstream's userspace example runs as 1000:1000 (docs/k8s/userspace-sidecar.yaml). Any UID works:
# state is in the kube Secret, socket and statedir in /tmp (cmd/containerboot/settings.go,
# tailscaled.go @ v1.102.3). So the high `nonroot` UID, which cannot collide with a host user.
RUN_AS: Final = NONROOT_ID
LABELS: Final = {"app.kubernetes.io/name": "subnet-router", "app.kubernetes.io/part-of": "homelab"}
CHECKOV_SKIPS: Final = {
    **PINNED_IMAGE_SKIPS,
    "CKV_K8S_38": "containerboot needs its service account token: it keeps tailscaled's state in "
    "the Secret named by TS_KUBE_SECRET and records events through the Kubernetes API",
}


# Where the router's key is held, and the state Secret that says it is logged in: the key's
# renewal check reads both (components/remote_access/keys.py).
ROUTER_KEY_HOLDER: Final = keys.HeldKey(
    namespace=TAILSCALE_NAMESPACE,
    secret=AUTH_KEY_SECRET,
    item=AUTH_KEY_ITEM,
    login_state=(TAILSCALE_NAMESPACE, STATE_SECRET),
)


@dataclass(frozen=True)
class SubnetRouterArgs:
    access: ClusterAccess
    login_server: pulumi.Output[str]
    auth_key: pulumi.Output[str]
    routes: list[str]
    hostname: str
    tag: str = "tag:k8s-router"
    """The ACL tag the router's pre-auth key carries (reported, never requested by the router)."""
    auth_key_generation: pulumi.Input[str] = keys.INITIAL_GENERATION
    """The generation the key was minted under, recorded on its Secret for the renewal check."""
    tls_ready: Sequence[pulumi.Resource] = ()
    """Resources that stand for "the login server's trusted certificate is served" (the awaited
    wildcard Certificate): the router's first login fails on any other certificate."""
    login_server_ip: str | None = None
    """LAN address serving the login server's host (Traefik). Pinned in the pod's /etc/hosts so
    the router reaches Headscale without the home router's NAT loopback."""


def router_env(*, login_server: str, routes: Sequence[str], hostname: str) -> list[dict[str, Any]]:
    """containerboot's environment (cmd/containerboot/main.go header @ v1.102.3)."""
    return [
        {"name": "TS_USERSPACE", "value": "true"},
        {"name": "TS_ROUTES", "value": ",".join(routes)},
        {"name": "TS_AUTHKEY", "value": f"file:{AUTH_KEY_FILE}"},
        # Without --login-server the pod would try login.tailscale.com (components.md 4 #3).
        # Nothing else: `--advertise-tags` would become Hostinfo.RequestTags, which Headscale
        # refuses on a pre-auth-key registration; the key's tags are authoritative.
        {"name": "TS_EXTRA_ARGS", "value": f"--login-server={login_server}"},
        {"name": "TS_HOSTNAME", "value": hostname},
        {"name": "TS_KUBE_SECRET", "value": STATE_SECRET},
        # Log in only when the state Secret has no identity yet: restarts never need the key.
        {"name": "TS_AUTH_ONCE", "value": "true"},
        {"name": "TS_ACCEPT_DNS", "value": "false"},
        {"name": "TS_ENABLE_HEALTH_CHECK", "value": "true"},
        {"name": "TS_LOCAL_ADDR_PORT", "value": HEALTH_ADDR},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
    ]


class SubnetRouter(pulumi.ComponentResource):
    hostname: str
    tag: str

    def __init__(
        self, name: str, args: SubnetRouterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("homelab:remote-access:SubnetRouter", name, None, opts)
        namespace = kube_namespace(
            f"{name}-namespace",
            TAILSCALE_NAMESPACE,
            access=args.access,
            parent=self,
            pod_security="restricted",
            labels={"app.kubernetes.io/part-of": "homelab"},
        )
        at = Placement(
            owner=self, access=args.access, namespace=namespace.metadata.name, labels=LABELS
        )
        binding = rbac(name, at)
        key: pulumi.Output[str] = pulumi.Output.secret(args.auth_key)
        auth_key = k8s.core.v1.Secret(
            f"{name}-authkey",
            metadata=at.meta(
                AUTH_KEY_SECRET,
                annotations={keys.GENERATION_ANNOTATION: args.auth_key_generation},
            ),
            type="Opaque",
            string_data={AUTH_KEY_ITEM: key},
            opts=at.opts(),
        )
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=at.meta("subnet-router", annotations=checkov_skips(CHECKOV_SKIPS)),
            spec=cast(
                Any,
                {
                    "replicas": 1,
                    # One identity in one state Secret: never two pods at once.
                    "strategy": {"type": "Recreate"},
                    "revisionHistoryLimit": 3,
                    "selector": {"matchLabels": dict(LABELS)},
                    "template": {"metadata": {"labels": dict(LABELS)}, "spec": pod_spec(args)},
                },
            ),
            opts=at.opts(depends_on=[binding, auth_key, *args.tls_ready]),
        )
        ingress_network_policy(
            f"{name}-network-policy",
            metadata=at.meta("subnet-router"),
            pod_labels=LABELS,
            opts=at.opts(),
        )
        self.hostname = args.hostname
        self.tag = args.tag
        self.register_outputs({"hostname": self.hostname, "tag": self.tag})


def rbac(name: str, at: Placement) -> k8s.rbac.v1.RoleBinding:
    """The router's account, and what it may do: its own state Secret and events."""
    account = k8s.core.v1.ServiceAccount(
        f"{name}-service-account", metadata=at.meta(ACCOUNT), opts=at.opts()
    )
    # RBAC of upstream docs/k8s/role.yaml: create any Secret (create cannot be limited by
    # name), read/write only the state Secret, and record events.
    role = k8s.rbac.v1.Role(
        f"{name}-role",
        metadata=at.meta(ACCOUNT),
        rules=[
            k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["secrets"], verbs=["create"]),
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=[""],
                resources=["secrets"],
                resource_names=[STATE_SECRET],
                verbs=["get", "update", "patch"],
            ),
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=[""], resources=["events"], verbs=["get", "create", "patch"]
            ),
        ],
        opts=at.opts(),
    )
    return k8s.rbac.v1.RoleBinding(
        f"{name}-role-binding",
        metadata=at.meta(ACCOUNT),
        role_ref=k8s.rbac.v1.RoleRefArgs(
            api_group="rbac.authorization.k8s.io", kind="Role", name=ACCOUNT
        ),
        subjects=[
            k8s.rbac.v1.SubjectArgs(
                kind="ServiceAccount", name=ACCOUNT, namespace=TAILSCALE_NAMESPACE
            )
        ],
        opts=at.opts(depends_on=[role, account]),
    )


def pod_spec(args: SubnetRouterArgs) -> dict[str, Any]:
    """The router's pod: containerboot in userspace mode, its key a read-only file."""
    env = args.login_server.apply(
        lambda url: router_env(login_server=url, routes=args.routes, hostname=args.hostname)
    )
    # /healthz answers 200 once the node has a tailnet IP, 503 before (kube/health @ v1.102.3).
    health = {"httpGet": {"path": "/healthz", "port": "health"}}
    spec: dict[str, Any] = {
        "serviceAccountName": ACCOUNT,
        "enableServiceLinks": False,
        # fsGroup: the key file is group-readable for the router's group only.
        "securityContext": hardened_pod_security_context(user=RUN_AS, fs_group=RUN_AS),
        "containers": [
            {
                "name": "tailscale",
                "image": pins.TAILSCALE_IMAGE,
                "imagePullPolicy": IMAGE_PULL_POLICY,
                "env": env,
                "ports": [{"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"}],
                # The first login waits for Headscale, which may still be starting after a
                # reboot: up to 10 minutes before the kubelet restarts the container.
                "startupProbe": {**health, "periodSeconds": 10, "failureThreshold": 60},
                "readinessProbe": {**health, "periodSeconds": 10},
                # Logged in, the node keeps its addresses through Headscale outages (the last
                # netmap stays); losing them means Headscale removed or expired the node, and
                # containerboot logs in again (with the key, while valid) only when it starts.
                "livenessProbe": {**health, "periodSeconds": 30, "failureThreshold": 4},
                "resources": {
                    "requests": {"cpu": "20m", "memory": "64Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                },
                "securityContext": hardened_container_security_context(user=RUN_AS),
                "volumeMounts": [
                    # containerboot puts tailscaled's socket and statedir in /tmp.
                    {"name": "tmp", "mountPath": "/tmp"},
                    {"name": "authkey", "mountPath": AUTH_KEY_DIR, "readOnly": True},
                ],
            }
        ],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {
                "name": "authkey",
                "secret": {"secretName": AUTH_KEY_SECRET, "defaultMode": 0o440},
            },
        ],
    }
    if args.login_server_ip is not None:
        login_ip = args.login_server_ip
        spec["hostAliases"] = args.login_server.apply(
            lambda url: [{"ip": login_ip, "hostnames": [urlsplit(url).hostname or ""]}]
        )
    return spec
