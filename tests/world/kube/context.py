"""What one kubectl call works with: the parsed command line, the state, and its output."""

from __future__ import annotations

import json
from typing import Any, Final

from tests.world.flags import Parsed

State = dict[str, Any]

# kubectl resource names (singular, plural, short) to (Kind, namespaced). The API's discovery
# answers these; the world knows the kinds the programs touch.
RESOURCES: Final[dict[str, tuple[str, bool]]] = {}
for _names, _kind, _namespaced in (
    (("node", "nodes", "no"), "Node", False),
    (("pod", "pods", "po"), "Pod", True),
    (("secret", "secrets"), "Secret", True),
    (("configmap", "configmaps", "cm"), "ConfigMap", True),
    (("namespace", "namespaces", "ns"), "Namespace", False),
    (
        ("crd", "crds", "customresourcedefinition", "customresourcedefinitions"),
        "CustomResourceDefinition",
        False,
    ),
    (("pv", "persistentvolume", "persistentvolumes"), "PersistentVolume", False),
    (("pvc", "persistentvolumeclaim", "persistentvolumeclaims"), "PersistentVolumeClaim", True),
    (
        ("deployment", "deployments", "deploy", "deployment.apps", "deployments.apps"),
        "Deployment",
        True,
    ),
    (("statefulset", "statefulsets", "sts"), "StatefulSet", True),
    (("daemonset", "daemonsets", "ds"), "DaemonSet", True),
    (("cronjob", "cronjobs", "cj"), "CronJob", True),
    (("job", "jobs"), "Job", True),
    (("pdb", "poddisruptionbudget", "poddisruptionbudgets"), "PodDisruptionBudget", True),
    (("certificate", "certificates", "cert", "certs"), "Certificate", True),
    (("serviceaccount", "serviceaccounts", "sa"), "ServiceAccount", True),
):
    for _name in _names:
        RESOURCES[_name] = (_kind, _namespaced)

# The plural.group names kubectl prints in NotFound errors (the API's resource names).
API_NAMES: Final = {
    "Node": "nodes",
    "Pod": "pods",
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "Namespace": "namespaces",
    "CustomResourceDefinition": "customresourcedefinitions.apiextensions.k8s.io",
    "PersistentVolume": "persistentvolumes",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Deployment": "deployments.apps",
    "StatefulSet": "statefulsets.apps",
    "DaemonSet": "daemonsets.apps",
    "CronJob": "cronjobs.batch",
    "Job": "jobs.batch",
    "PodDisruptionBudget": "poddisruptionbudgets.policy",
    "Certificate": "certificates.cert-manager.io",
    "ServiceAccount": "serviceaccounts",
}


class KubectlError(Exception):
    """kubectl exits 1 after printing this line to stderr."""


class Call:
    """One kubectl call: parsed flags, the namespace, stdin, and what it prints."""

    def __init__(self, *, state: State, parsed: Parsed, namespace: str, stdin: str = "") -> None:
        self.state, self.parsed, self.namespace, self.stdin = state, parsed, namespace, stdin
        self.out: list[str] = []
        self.err: list[str] = []

    def say(self, text: str) -> None:
        self.out.append(text if text.endswith("\n") else text + "\n")

    def warn(self, text: str) -> None:
        self.err.append(text if text.endswith("\n") else text + "\n")

    def flag(self, name: str, default: Any = None) -> Any:
        return self.parsed.get(name, default)

    def dump(self, document: Any) -> None:
        """`-o json`: kubectl's JSON printer indents by four spaces."""
        self.say(json.dumps(document, indent=4))


def resource(word: str) -> tuple[str, bool]:
    """(Kind, namespaced) of a kubectl resource word, or the server's answer for an unknown one."""
    found = RESOURCES.get(word.lower())
    if found is None:
        raise KubectlError(
            f'error: the server doesn\'t have a resource type "{word.split("/")[0]}"'
        )
    return found


def not_found(kind: str, name: str) -> str:
    return f'Error from server (NotFound): {API_NAMES.get(kind, kind.lower() + "s")} "{name}" not found'


def targets(args: list[str]) -> list[tuple[str, bool, str | None]]:
    """`kind name...` or `kind/name...` as (Kind, namespaced, name or None for all)."""
    if not args:
        raise KubectlError(
            'error: You must specify the type of resource to get. Use "kubectl api-resources" '
            "for a complete list of supported resources."
        )
    if "/" in args[0]:
        found: list[tuple[str, bool, str | None]] = []
        for arg in args:
            word, _, name = arg.partition("/")
            kind, namespaced = resource(word)
            found.append((kind, namespaced, name))
        return found
    kind, namespaced = resource(args[0])
    names = args[1:]
    return [(kind, namespaced, n) for n in names] or [(kind, namespaced, None)]
