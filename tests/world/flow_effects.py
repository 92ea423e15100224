"""What each resource type does to the world when `pulumi up` creates, updates or deletes it.

Commands run their program (tests/world/world.py `World.run`); the Talos provider's resources
install, configure, bootstrap and read the kubeconfig through the world's apid rules; Kubernetes
objects are stored (workloads get pods). Helm releases are not rendered; the world knows only what
a chart does that the programs depend on (MetalLB's webhook).
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Mapping
from typing import Any, Final

import yaml

from tests.world import clock, configs, etcd, talos_model
from tests.world.kube import cluster
from tests.world.kube.objects import key, objects, put
from tests.world.world import Result, World

State = dict[str, Any]
Inputs = Mapping[str, Any]

# terraform-provider-talos@v0.11.0: the apply, bootstrap and kubeconfig resources retry for
# their create timeout, 10 minutes by default (`retry.RetryContext(ctxDeadline, createTimeout`).
PROVIDER_RETRY_SECONDS: Final = 600.0
# MetalLB's controller starts its webhook only after its certificate rotator wrote the serving
# certificate (metallb/metallb@v0.16.1: internal/k8s/k8s.go `startListeners`): some seconds
# after the release is deployed. A bound, not a measurement.
METALLB_WEBHOOK_DELAY_SECONDS: Final = 30.0


class StepError(Exception):
    """The step failed; the message is what Pulumi would print for it."""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- Commands ------------------------------------------------------------------------------------


def run_command(
    world: World, inputs: Inputs, program_key: str, previous: Mapping[str, Any] | None
) -> Result:
    """pulumi/pulumi-command@v1.2.1 provider/pkg/provider/local/commandOutputs.go `run`: the
    interpreter and the text; the provider's environment plus `environment`; on update and
    delete PULUMI_COMMAND_STDOUT / _STDERR carry the previous outputs when not empty
    (`addPreviousOutputInEnv`, default true); stdout and stderr lose one trailing newline."""
    environment = {str(k): str(v) for k, v in (inputs.get("environment") or {}).items()}
    if previous is not None and inputs.get("addPreviousOutputInEnv", True) is not False:
        if previous.get("stdout"):
            environment["PULUMI_COMMAND_STDOUT"] = str(previous["stdout"])
        if previous.get("stderr"):
            environment["PULUMI_COMMAND_STDERR"] = str(previous["stderr"])
    interpreter = tuple(inputs.get("interpreter") or ("/bin/sh", "-c"))
    result = world.run(
        str(inputs[program_key]), environment, interpreter=interpreter, stdin=inputs.get("stdin")
    )
    return Result(
        result.returncode, result.stdout.removesuffix("\n"), result.stderr.removesuffix("\n")
    )


# --- Talos ---------------------------------------------------------------------------------------


def _documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text or "") if isinstance(d, dict)]


def config_summary(inputs: Inputs, kubernetes_version: str) -> dict[str, Any]:
    """What of a machine config decides outcomes here: role, hostname, installer image and
    disk, the OS CA (base64 of the PEM, as a talosconfig carries it), the cluster endpoint and
    VIP, the Kubernetes version, and a digest of the whole."""
    documents = _documents(str(inputs.get("machineConfigurationInput", "")))
    for patch in inputs.get("configPatches") or []:
        documents += _documents(str(patch))
    summary: dict[str, Any] = {"kubernetes_version": kubernetes_version}
    for document in documents:
        machine = document.get("machine") or {}
        if machine.get("type"):
            summary["role"] = machine["type"]
        install = machine.get("install") or {}
        if install.get("image"):
            summary["image"] = install["image"]
        if install.get("disk"):
            summary["install_disk"] = install["disk"]
        endpoint = ((document.get("cluster") or {}).get("controlPlane") or {}).get("endpoint")
        if endpoint:
            summary["endpoint"] = endpoint
        if document.get("kind") == "HostnameConfig" and document.get("hostname"):
            summary["hostname"] = document["hostname"]
        if document.get("kind") == "Layer2VIPConfig":
            summary["vip"] = document.get("name")
        if document.get("kind") == "LinkConfig" and document.get("addresses"):
            summary["address"] = str(document["addresses"][0]["address"]).partition("/")[0]
    ca = ((inputs.get("clientConfiguration") or {}).get("caCertificate")) or ""
    summary["ca"] = b64(str(ca))
    summary["digest"] = hashlib.sha256(
        yaml.safe_dump(documents, sort_keys=True).encode()
    ).hexdigest()[:16]
    return summary


def client_of(inputs: Inputs) -> tuple[str, str]:
    client = inputs.get("clientConfiguration") or {}
    return b64(str(client.get("caCertificate", ""))), b64(str(client.get("clientCertificate", "")))


def talos_client_op(
    state: State, endpoint: str, node: str, ca: str, crt: str
) -> tuple[talos_model.Node | None, str | None]:
    """terraform-provider-talos@v0.11.0 pkg/talos/util.go `talosClientOp`: first an insecure
    client to the endpoint (a machine in maintenance answers, and forwards nothing: its apid
    serves every request itself), else the client of the talosconfig's credentials through
    the endpoint to the node."""
    machine, problem = talos_model.connect_insecure(state, endpoint)
    if machine is not None:
        return machine, None
    via, problem = talos_model.connect(state, endpoint, ca=ca, crt=crt)
    if via is None:
        return None, problem
    return talos_model.forward(state, via, node)


def _retrying(world: World, attempt: Any, what: str) -> Any:
    """Retry a provider operation on the clock until it succeeds or its timeout runs out."""
    with world.edit() as state:
        deadline = clock.now(state) + PROVIDER_RETRY_SECONDS
    while True:
        with world.edit() as state:
            cluster.settle(state)
            done, problem = attempt(state)
            if problem is None:
                return done
            step = cluster.next_change(state)
            if step is None or step > deadline:
                clock.advance(state, deadline - clock.now(state))
                raise StepError(f"{what}: {problem}")
            clock.advance(state, step - clock.now(state))


def resolved_apply_mode(
    world: World, inputs: Inputs, previous: Mapping[str, Any] | None, kubernetes_version: str
) -> str:
    """At plan time (`handleRebootPrevention`): `staged_if_needing_reboot` becomes `staged` when
    a dry run on the node says the change needs a reboot, `auto` otherwise, also when the node
    cannot be asked; an unchanged config keeps its last resolved mode."""
    mode = str(inputs.get("applyMode") or "auto").lower()
    if mode != "staged_if_needing_reboot":
        return mode
    if (
        previous
        and previous.get("machineConfigurationInput") == inputs.get("machineConfigurationInput")
        and previous.get("configPatches") == inputs.get("configPatches")
    ):
        return str(previous.get("resolvedApplyMode") or "auto")
    ca, crt = client_of(inputs)
    config = config_summary(inputs, kubernetes_version)
    with world.edit() as state:
        cluster.settle(state)
        machine, _ = talos_client_op(
            state, str(inputs.get("endpoint") or inputs["node"]), str(inputs["node"]), ca, crt
        )
        if machine is None or machine["state"] != "installed":
            return "auto"
        current = machine.get("config") or {}
        needs_reboot = any(current.get(k) != config.get(k) for k in ("role", "ca"))
        return "staged" if needs_reboot else "auto"


def apply_configuration(world: World, inputs: Inputs, mode: str, kubernetes_version: str) -> None:
    """talos_machine_configuration_apply_resource.go `Create`/`Update`: ApplyConfiguration
    through `talosClientOp`, retried until the create timeout; a machine in maintenance
    installs, an installed one applies in `mode`."""
    ca, crt = client_of(inputs)
    config = config_summary(inputs, kubernetes_version)
    node, endpoint = str(inputs["node"]), str(inputs.get("endpoint") or inputs["node"])

    def attempt(state: State) -> tuple[None, str | None]:
        machine, problem = talos_client_op(state, endpoint, node, ca, crt)
        if machine is None:
            return None, problem
        section = talos_model.talos(state)["cluster"]
        section.setdefault("ca", config["ca"])
        for name in ("endpoint", "vip", "kubernetes_version"):
            if config.get(name):
                section[name] = config[name]
        if machine["state"] == "maintenance":
            talos_model.install(state, machine, config)
        else:
            talos_model.apply(state, machine, config, mode)
        return None, None

    _retrying(world, attempt, "Error applying configuration")


def reset_on_destroy(world: World, inputs: Inputs) -> None:
    """`Delete` with `on_destroy.reset`: Reset wiping STATE and EPHEMERAL (the resource's
    `SystemPartitionsToWipe`), graceful and reboot as configured."""
    on_destroy = inputs.get("onDestroy") or {}
    if not on_destroy.get("reset"):
        return
    ca, crt = client_of(inputs)
    with world.edit() as state:
        machine, _ = talos_client_op(
            state, str(inputs.get("endpoint") or inputs["node"]), str(inputs["node"]), ca, crt
        )
        if machine is not None and machine["state"] == "installed":
            talos_model.reset(
                state,
                machine,
                labels=["STATE", "EPHEMERAL"],
                reboot_after=bool(on_destroy.get("reboot")),
            )


def bootstrap(world: World, inputs: Inputs) -> None:
    """talos_machine_bootstrap_resource.go `Create`: Bootstrap through `talosClientOp`, every
    error but InvalidArgument retried (AlreadyExists included) until the timeout."""
    ca, crt = client_of(inputs)
    node, endpoint = str(inputs["node"]), str(inputs.get("endpoint") or inputs["node"])

    def attempt(state: State) -> tuple[None, str | None]:
        machine, problem = talos_client_op(state, endpoint, node, ca, crt)
        if machine is None:
            return None, problem
        if machine["state"] != "installed":
            return (
                None,
                "rpc error: code = FailedPrecondition desc = bootstrap is not available yet",
            )
        problem = etcd.bootstrap(state, machine)
        if problem is None:
            talos_model.talos(state)["cluster"]["api_from"] = (
                clock.now(state) + cluster.APISERVER_START_SECONDS
            )
        return None, problem

    _retrying(world, attempt, "Error bootstrapping node")


def kubeconfig(world: World, inputs: Inputs) -> dict[str, Any]:
    """talos_cluster_kubeconfig_resource.go: the admin kubeconfig from the node (Kubeconfig
    API, admin role, control planes only), retried until the timeout."""
    ca, crt = client_of(inputs)
    node, endpoint = str(inputs["node"]), str(inputs.get("endpoint") or inputs["node"])

    def attempt(state: State) -> tuple[dict[str, Any] | None, str | None]:
        machine, problem = talos_client_op(state, endpoint, node, ca, crt)
        if machine is None:
            return None, problem
        if machine["state"] != "installed" or machine.get("role") != "controlplane":
            return (
                None,
                "rpc error: code = Unimplemented desc = kubeconfig is only available on control plane nodes",
            )
        server = talos_model.talos(state)["cluster"].get("endpoint", f"https://{node}:6443")
        return cluster.issue_kubeconfig(state, str(server)), None

    document: dict[str, Any] = _retrying(world, attempt, "Error reading kubeconfig")
    user = document["users"][0]["user"]
    text = yaml.safe_dump(document, sort_keys=True)
    with world.edit() as state:
        configs.remember(state, text, document)
    return {
        "kubeconfigRaw": text,
        "kubernetesClientConfiguration": {
            "host": document["clusters"][0]["cluster"]["server"],
            "caCertificate": document["clusters"][0]["cluster"]["certificate-authority-data"],
            "clientCertificate": user["client-certificate-data"],
            "clientKey": user["client-key-data"],
        },
    }


def talosconfig(args: Inputs) -> str:
    """talos:client/getConfiguration as the provider builds it: the context's `ca`, `crt` and
    `key` are the base64 of the client configuration's PEMs; `nodes` only when given
    (terraform-provider-talos@v0.11.0 pkg/talos/talos_client_configuration_data_source.go)."""
    client = args.get("clientConfiguration") or {}
    name = str(args.get("clusterName", ""))
    context: dict[str, Any] = {
        "endpoints": list(args.get("endpoints") or []),
        "ca": b64(str(client.get("caCertificate", ""))),
        "crt": b64(str(client.get("clientCertificate", ""))),
        "key": b64(str(client.get("clientKey", ""))),
    }
    if args.get("nodes"):
        context["nodes"] = list(args["nodes"])
    return yaml.safe_dump({"context": name, "contexts": {name: context}}, sort_keys=True)


# terraform-provider-talos@v0.11.0: the Secrets resource regenerates its client certificate
# when it expires within a month (talos_machine_secrets_resource.go `ModifyPlan`:
# `NotAfter.Before(now.AddDate(0, 1, 0))`); the Kubeconfig resource its own within
# `certificate_renewal_duration`, 720h by default (talos_cluster_kubeconfig_resource.go
# `ModifyPlan`).
CLIENT_CERT_RENEWAL_SECONDS: Final = 30 * 86400.0
KUBECONFIG_RENEWAL_SECONDS: Final = 720 * 3600.0
SECRETS_TYPE: Final = "talos:machine/secrets:Secrets"
KUBECONFIG_TYPE: Final = "talos:cluster/kubeconfig:Kubeconfig"


def renewal_due(world: World, type_token: str, outputs: Mapping[str, Any]) -> bool:
    """Whether the provider's plan regenerates the resource's certificate now."""
    with world.edit() as state:
        now = clock.now(state)
        if type_token == SECRETS_TYPE:
            crt = b64(str((outputs.get("clientConfiguration") or {}).get("clientCertificate", "")))
            cert = talos_model.talos(state)["certs"].get(crt)
            return cert is not None and cert["not_after"] < now + CLIENT_CERT_RENEWAL_SECONDS
        if type_token == KUBECONFIG_TYPE and outputs.get("kubeconfigRaw"):
            _, _, identity = cluster.credential_of(configs.load(state, outputs["kubeconfigRaw"]))
            credential = cluster.kube(state)["credentials"].get(identity)
            return credential is not None and (
                credential["not_after"] < now + KUBECONFIG_RENEWAL_SECONDS
            )
    return False


def renewed_client_configuration(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The Secrets' outputs with a new client certificate (same CA and key)."""
    client = dict(outputs.get("clientConfiguration") or {})
    certificate = str(client.get("clientCertificate", ""))
    generation = certificate.count("renewal ") + 1
    client["clientCertificate"] = certificate.replace(
        "-----END CERTIFICATE-----", f"renewal {generation}\n-----END CERTIFICATE-----"
    )
    return {**outputs, "clientConfiguration": client}


def register_schematic(world: World, inputs: Inputs) -> None:
    """talos:imageFactory/schematic registers the schematic with the factory, whose images then
    carry its extensions (tests/world/talos_model.py `extensions`); the id is the SHA-256 of the
    document (homelab/fakes.py `resource_id`)."""
    text = str(inputs.get("schematic", ""))
    document = yaml.safe_load(text) or {}
    customization = document.get("customization") or {}
    names = [
        str(name)
        for name in customization.get("systemExtensions", {}).get("officialExtensions", [])
    ]
    schematic = hashlib.sha256(text.encode()).hexdigest()
    with world.edit() as state:
        talos_model.talos(state)["schematics"][schematic] = [
            {"name": name.rpartition("/")[2], "version": "world"} for name in names
        ]


def machine_secrets(world: World, outputs: Mapping[str, Any]) -> None:
    """talos_machine_secrets: the cluster's OS CA and an admin client certificate valid a year
    (pkg/machinery/constants `TalosAPIDefaultCertificateValidityDuration`)."""
    client = outputs.get("clientConfiguration") or {}
    with world.edit() as state:
        ca = b64(str(client.get("caCertificate", "")))
        talos_model.talos(state)["cluster"]["ca"] = ca
        talos_model.issue_client_cert(state, b64(str(client.get("clientCertificate", ""))), ca)


# --- Kubernetes --------------------------------------------------------------------------------------


def manifest(type_token: str, name: str, inputs: Inputs) -> dict[str, Any]:
    body = {k: copy.deepcopy(v) for k, v in inputs.items() if not k.startswith("__")}
    group_version, _, kind = type_token.removeprefix("kubernetes:").rpartition(":")
    group, _, version = group_version.partition("/")
    body.setdefault("apiVersion", version if group == "core" else f"{group}/{version}")
    body.setdefault("kind", kind)
    body.setdefault("metadata", {}).setdefault("name", name)
    return body


def kubernetes_apply(world: World, type_token: str, name: str, inputs: Inputs) -> None:
    """A Kubernetes object through pulumi-kubernetes: the API server must answer; the object is
    stored; a Deployment or StatefulSet becomes a workload whose pods the world runs; a Helm
    release does what its chart does that the world models."""
    if type_token == "kubernetes:helm.sh/v3:Release":
        _release(world, inputs)
        return
    document = manifest(type_token, name, inputs)
    with world.edit() as state:
        server = talos_model.talos(state)["cluster"].get("endpoint", "")
        problem = cluster.api_problem(state, str(server))
        if problem:
            raise StepError(f"error creating {document['kind']} {name}: {problem}")
        put(state, document, str((document.get("metadata") or {}).get("namespace", "")))
        if document["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
            _workload(state, document)
        cluster.settle(state)


def _workload(state: State, document: dict[str, Any]) -> None:
    meta = document.get("metadata") or {}
    spec = document.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    volumes = pod.get("volumes") or []
    workload = {
        "kind": document["kind"],
        "namespace": meta.get("namespace", "default"),
        "name": meta["name"],
        "replicas": int(spec.get("replicas", 1)),
        "labels": dict(((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}),
        "claims": [
            v["persistentVolumeClaim"]["claimName"]
            for v in volumes
            if v.get("persistentVolumeClaim")
        ],
        "emptydir": any("emptyDir" in v for v in volumes),
        "containers": [c["name"] for c in pod.get("containers") or []] or [meta["name"]],
        "env": {
            str(e["name"]): e["value"]
            for c in pod.get("containers") or []
            for e in c.get("env") or []
            if "value" in e
        },
    }
    cluster.kube(state)["workloads"][cluster.workload_key(workload)] = workload


def _release(world: World, inputs: Inputs) -> None:
    chart = str(inputs.get("chart", ""))
    with world.edit() as state:
        if chart.endswith("metallb"):
            # The chart's crds/ (metallb/metallb@v0.16.1 charts/metallb/charts/crds).
            for plural, kind in (
                ("ipaddresspools", "IPAddressPool"),
                ("l2advertisements", "L2Advertisement"),
            ):
                put(
                    state,
                    {
                        "apiVersion": "apiextensions.k8s.io/v1",
                        "kind": "CustomResourceDefinition",
                        "metadata": {"name": f"{plural}.metallb.io"},
                        "spec": {"group": "metallb.io", "names": {"kind": kind, "plural": plural}},
                    },
                )
            cluster.kube(state)["webhooks"]["ipaddresspoolvalidationwebhook.metallb.io"] = {
                "group": "metallb.io",
                "service": "metallb-webhook-service.metallb-system",
                "serving_at": clock.now(state) + METALLB_WEBHOOK_DELAY_SECONDS,
                "deny": {},
            }


def kubernetes_delete(world: World, type_token: str, name: str, inputs: Inputs) -> None:
    document = manifest(type_token, name, inputs)
    namespace = str((document.get("metadata") or {}).get("namespace", ""))
    with world.edit() as state:
        objects(state).pop(key(document["kind"], namespace, document["metadata"]["name"]), None)
        workloads = cluster.kube(state)["workloads"]
        workloads.pop(
            f"{namespace or 'default'}/{document['kind']}/{document['metadata']['name']}", None
        )


def kubernetes_exists(world: World, type_token: str, name: str, inputs: Inputs) -> bool:
    """Whether the cluster has the object (what pulumi-kubernetes' Read finds)."""
    document = manifest(type_token, name, inputs)
    namespace = str((document.get("metadata") or {}).get("namespace", ""))
    with world.edit() as state:
        return key(document["kind"], namespace, document["metadata"]["name"]) in objects(state)
