"""The Kubernetes step after the Talos roll: `talosctl upgrade-k8s --to <version>` through one
control plane, unless every component already runs the target; skipped while the cluster is not
installed (it starts at the target)."""

from __future__ import annotations

import json
from typing import Any

from programs.runtime import fail, run_cli, say
from programs.talosctl import (
    MAINTENANCE,
    EndpointParams,
    StepParams,
    Talos,
    VersionParams,
    endpoints_for,
    fetched_kubeconfig,
    node_version,
    passes,
    step_talosconfig,
)


class Params(StepParams, VersionParams, EndpointParams):
    # The kube-system pods (k8s-app=<name>, container <name>) whose image tags upgrade-k8s reads.
    components: list[str]
    kubeconfig_argv: list[str]
    kubernetes_timeout_seconds: int
    kubernetes_version: str
    upgrade_k8s_argv: list[str]


def component_versions(pods: Any, nodes: Any, components: list[str]) -> dict[str, str]:
    """What each component runs, by `<component> <pod or node>`, from `kubectl get pods -n
    kube-system -o json` (image tags) and `kubectl get nodes -o json` (kubelets)."""
    versions: dict[str, str] = {}
    for pod in pods.get("items", []):
        app = ((pod.get("metadata") or {}).get("labels") or {}).get("k8s-app")
        if app not in components:
            continue
        for container in (pod.get("spec") or {}).get("containers", []):
            if container.get("name") != app:
                continue
            image = container.get("image", "").split("@")[0]
            _, colon, tag = image.rpartition(":")
            if colon:
                versions[f"{app} {pod['metadata'].get('name', '')}"] = tag.lstrip("v")
    for node in nodes.get("items", []):
        kubelet = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
        versions[f"kubelet {node['metadata'].get('name', '')}"] = kubelet.lstrip("v")
    return versions


def running_versions(kubeconfig: str, components: list[str]) -> dict[str, str]:
    env = {"KUBECONFIG": kubeconfig}
    pods = run_cli(
        ["kubectl", "get", "pods", "--namespace", "kube-system", "--output", "json"],
        timeout=120,
        env=env,
    )
    nodes = run_cli(["kubectl", "get", "nodes", "--output", "json"], timeout=120, env=env)
    if pods is None or nodes is None or pods.returncode != 0 or nodes.returncode != 0:
        error = (pods and pods.stderr) or (nodes and nodes.stderr) or "timed out"
        fail(
            f"cannot read the running Kubernetes versions with the cluster's kubeconfig: {error.strip()}"
        )
    return component_versions(json.loads(pods.stdout), json.loads(nodes.stdout), components)


def upgrade_kubernetes(params: Params, talos: Talos) -> str:
    target, name = params["kubernetes_version"], params["node_name"]
    _, problem = node_version(params, talos, name)
    if problem == MAINTENANCE:
        say(f"the cluster is not installed yet: it starts at Kubernetes {target}; skipped")
        return "kubernetes: not installed yet, skipped"
    if problem is not None:
        fail(f"cannot reach the control plane {name}: {problem}; fix it and run `pulumi up` again")
    with fetched_kubeconfig(talos, params["kubeconfig_argv"], [params["node"]]) as kubeconfig:
        versions = running_versions(kubeconfig, params["components"])
    behind = sorted(k for k, v in versions.items() if v != target)
    if versions and not behind:
        say(f"every component already runs Kubernetes {target}; skipped")
        return f"kubernetes: {target} (already)"
    say(f"upgrading Kubernetes to {target}; behind: {', '.join(behind)}")
    if not passes(params["upgrade_k8s_argv"], talos, params["kubernetes_timeout_seconds"]):
        fail(
            f"talosctl upgrade-k8s --to {target} failed (see above). Components already at "
            f"{target} are left alone on a re-run: fix the cause and run `pulumi up` again"
        )
    return f"kubernetes: -> {target}"


def main(params: Params) -> str:
    with step_talosconfig(params) as path:
        return upgrade_kubernetes(params, endpoints_for(params, path)) + "\n"
