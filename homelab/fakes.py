"""Deterministic stand-ins for what providers return, keyed by type token.

Values are derived from the resource name only (never random, never the clock) so two renders are
byte-identical. Keys are the provider's wire names (camelCase), which the SDKs map to Python names.
Anything secret-shaped starts with `FAKE-` so a test can prove it never leaks into plaintext.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml
from pulumi.runtime import rpc

from programs import (
    headscale_key,
    kubernetes_upgrade,
    node_set,
    talos_health,
    talos_reboot,
    talos_upgrade,
)
from programs.build import PROGRAM_ENV, name_of


def _digest(*parts: str, length: int = 16) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _pem(kind: str, name: str) -> str:
    return f"-----BEGIN {kind}-----\nFAKE-{_digest(kind, name, length=48)}\n-----END {kind}-----\n"


def _cert_pair(name: str, part: str) -> dict[str, str]:
    return {
        "cert": _pem("CERTIFICATE", f"{name}/{part}"),
        "key": _pem("PRIVATE KEY", f"{name}/{part}"),
    }


def talos_machine_secrets(name: str) -> dict[str, Any]:
    return {
        "certs": {
            "etcd": _cert_pair(name, "etcd"),
            "k8s": _cert_pair(name, "k8s"),
            "k8sAggregator": _cert_pair(name, "k8s-aggregator"),
            "k8sServiceaccount": {"key": _pem("PRIVATE KEY", f"{name}/sa")},
            "os": _cert_pair(name, "os"),
        },
        "cluster": {
            "id": f"FAKE-{_digest(name, 'id')}",
            "secret": f"FAKE-{_digest(name, 'secret')}",
        },
        "secrets": {
            "bootstrapToken": f"{_digest(name, 'bt', length=6)}.FAKE{_digest(name, 'bt2', length=12)}",
            "secretboxEncryptionSecret": f"FAKE-{_digest(name, 'secretbox', length=32)}",
        },
        "trustdinfo": {"token": f"FAKE-{_digest(name, 'trustd')}"},
    }


def talos_client_configuration(name: str) -> dict[str, str]:
    return {
        "caCertificate": _pem("CERTIFICATE", f"{name}/os-ca"),
        "clientCertificate": _pem("CERTIFICATE", f"{name}/admin"),
        "clientKey": _pem("PRIVATE KEY", f"{name}/admin"),
    }


def kubeconfig(name: str, server: str) -> str:
    """A kubeconfig of the real shape, so code that parses it sees what Talos would return."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": "RkFLRQ=="}}
        ],
        "contexts": [
            {"name": f"admin@{name}", "context": {"cluster": name, "user": f"admin@{name}"}}
        ],
        "current-context": f"admin@{name}",
        "users": [
            {
                "name": f"admin@{name}",
                "user": {
                    "client-certificate-data": "RkFLRQ==",
                    "client-key-data": f"FAKE-{_digest(name, 'kubeconfig-key')}",
                },
            }
        ],
    }
    return yaml.safe_dump(document, sort_keys=True)


def talosconfig(cluster_name: str, endpoints: list[str], nodes: list[str]) -> str:
    """A talosconfig as the client-configuration data source writes it.

    `nodes` is left out when empty, as talosctl's own encoder does (`yaml:"nodes,omitempty"`,
    siderolabs/talos@v1.13.9: pkg/machinery/client/config/config.go `Context`), and the data
    source only sets it when given (terraform-provider-talos@v0.11.0:
    pkg/talos/talos_client_configuration_data_source.go `Read`).
    """
    context: dict[str, Any] = {
        "endpoints": endpoints,
        "ca": "RkFLRQ==",
        "crt": "RkFLRQ==",
        "key": f"FAKE-{_digest(cluster_name, 'talosconfig-key')}",
    }
    if nodes:
        context["nodes"] = nodes
    document = {"context": cluster_name, "contexts": {cluster_name: context}}
    return yaml.safe_dump(document, sort_keys=True)


def machine_configuration(args: dict[str, Any]) -> str:
    """A minimal machine config of the real shape for the getConfiguration data source.

    Mirrors what the Talos v1.13 generator emits where patches touch it: control planes carry
    the exclude-from-external-load-balancers label, and a >= v1.12 contract adds a
    `HostnameConfig` document with `auto: stable` (pkg/machinery/config/generate @ v1.13.9).
    """
    machine_type = args.get("machineType", "controlplane")
    machine: dict[str, Any] = {"type": machine_type, "install": {"disk": "/dev/sda"}}
    if machine_type == "controlplane":
        machine["nodeLabels"] = {"node.kubernetes.io/exclude-from-external-load-balancers": ""}
    document = {
        "version": "v1alpha1",
        "machine": machine,
        "cluster": {
            "clusterName": args.get("clusterName", ""),
            "controlPlane": {"endpoint": args.get("clusterEndpoint", "")},
            "secretboxEncryptionSecret": f"FAKE-{_digest(str(args.get('clusterName')), 'cfg')}",
        },
    }
    hostname = {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "auto": "stable"}
    return yaml.safe_dump_all([document, hostname], sort_keys=True)


def _kubernetes_outputs(type_token: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs = dict(inputs)
    metadata = dict(inputs.get("metadata") or {})
    metadata.setdefault("name", name)
    if type_token.startswith("kubernetes:core/v1:Namespace"):
        metadata.pop("namespace", None)
    outputs["metadata"] = metadata
    return outputs


# The expiry a fake key-minting command reports: fixed, so renders stay byte-identical.
FAKE_KEY_EXPIRY = "2000-01-01T00:00:00Z"


def resource_id(type_token: str, name: str, inputs: dict[str, Any]) -> str:
    """The id a provider gives a new resource; the name-derived default unless it means more.

    The Image Factory names a schematic by the SHA-256 of its canonical form, and the provider
    returns that as the id (terraform-provider-talos@v0.11.0:
    pkg/talos/talos_image_factory_schematic_resource.go `Create`; image-factory@v1.5.0
    pkg/schematic/schematic.go `ID`); the stack sends the canonical form, so the fake hashes it.
    """
    if type_token == "talos:imageFactory/schematic:Schematic":
        return hashlib.sha256(str(inputs.get("schematic", "")).encode()).hexdigest()
    return f"{name}-id"


def program_of(inputs: dict[str, Any]) -> str:
    """The program a Command (or a `command:local:run` invoke) runs, as its environment names it
    (programs/build.py `PROGRAM_ENV`); "" when it names none."""
    environment = inputs.get("environment")
    # A secret value in it (a credential) makes the whole map a secret, which the mock monitor
    # hands over wrapped.
    if rpc.is_rpc_secret(environment):
        environment = rpc.unwrap_rpc_secret(environment)
    return str(environment.get(PROGRAM_ENV, "")) if isinstance(environment, dict) else ""


UPGRADE_STEPS = frozenset(name_of(p) for p in (talos_upgrade, talos_reboot, kubernetes_upgrade))


def command_outputs(name: str, program: str) -> dict[str, str]:
    """What a Command prints, by the program it runs."""
    if program == name_of(node_set):
        # The node set's record is the configured nodes, which its text carries as parameters;
        # the render needs no more than a marker.
        return {"stdout": "[recorded node set]"}
    if program in UPGRADE_STEPS:
        # An upgrade or reboot step prints what it did; offline, nothing.
        return {"stdout": f"{name}: nothing to upgrade (offline render)", "stderr": ""}
    if program == name_of(talos_health):
        return {"stdout": "cluster healthy", "stderr": ""}
    if program == name_of(headscale_key):
        # The key and, on a second line, its expiry.
        key = f"FAKE-hskey-{_digest(name, 'stdout', length=24)}"
        return {"stdout": f"{key}\n{FAKE_KEY_EXPIRY}", "stderr": ""}
    # The gates print only progress, to stderr.
    return {"stdout": "", "stderr": ""}


def resource_outputs(type_token: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Echo the inputs and add what the real provider computes."""
    outputs = dict(inputs)
    if type_token == "talos:machine/secrets:Secrets":
        outputs["machineSecrets"] = talos_machine_secrets(name)
        outputs["clientConfiguration"] = talos_client_configuration(name)
        outputs.setdefault("talosVersion", inputs.get("talosVersion", ""))
    elif type_token == "talos:machine/configurationApply:ConfigurationApply":
        outputs["machineConfiguration"] = inputs.get("machineConfigurationInput", "")
        # staged_if_needing_reboot resolves to "auto" when the provider cannot dry-run against
        # the node, as for a first install (terraform-provider-talos@v0.11.0
        # talos_machine_configuration_apply_resource.go `handleRebootPrevention`).
        mode = inputs.get("applyMode") or "auto"
        outputs["resolvedApplyMode"] = "auto" if mode == "staged_if_needing_reboot" else mode
    elif type_token == "talos:cluster/kubeconfig:Kubeconfig":
        endpoint = inputs.get("endpoint") or inputs.get("node") or "127.0.0.1"
        outputs["kubeconfigRaw"] = kubeconfig(name, f"https://{endpoint}:6443")
        outputs["kubernetesClientConfiguration"] = {
            "host": f"https://{endpoint}:6443",
            "caCertificate": "RkFLRQ==",
            "clientCertificate": "RkFLRQ==",
            "clientKey": f"FAKE-{_digest(name, 'k8s-client-key')}",
        }
    elif type_token.startswith("kubernetes:") and type_token != "pulumi:providers:kubernetes":
        outputs = _kubernetes_outputs(type_token, name, inputs)
        if type_token == "kubernetes:helm.sh/v3:Release":
            outputs["status"] = {
                "name": inputs.get("name", name),
                "namespace": inputs.get("namespace", "default"),
                "status": "deployed",
                "version": inputs.get("version", ""),
                "revision": 1,
            }
    elif type_token == "command:local:Command":
        outputs.update(command_outputs(name, program_of(inputs)))
    elif type_token.startswith("random:"):
        length = int(inputs.get("length", 32))
        outputs["result"] = ("FAKE" + _digest(name, "random", length=64))[:length]
    return outputs


def invoke_result(token: str, args: dict[str, Any]) -> dict[str, Any]:
    if token == "talos:machine/getConfiguration:getConfiguration":
        return {**args, "machineConfiguration": machine_configuration(args)}
    if token == "talos:client/getConfiguration:getConfiguration":
        return {
            **args,
            "talosConfig": talosconfig(
                str(args.get("clusterName", "")),
                [str(x) for x in args.get("endpoints", [])],
                [str(x) for x in args.get("nodes", [])],
            ),
        }
    if token == "talos:cluster/getHealth:getHealth":
        return {**args, "id": "healthy"}
    if token == "command:local:run" and program_of(args) == name_of(headscale_key):
        # A key check (components/remote_access/keys.py) on a cluster that holds no key yet.
        return {**args, "stdout": "initial", "stderr": ""}
    return dict(args)
