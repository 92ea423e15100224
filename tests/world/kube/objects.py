"""Objects the API server stores as given (Secrets, CRDs, volumes, CronJobs...): `get`, `apply`
(server-side, dry runs, admission webhooks), `delete`, `wait`, `rollout status`."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from tests.world import clock, configs
from tests.world.kube import cluster
from tests.world.kube.context import API_NAMES, RESOURCES, Call, KubectlError, not_found, targets

State = dict[str, Any]
Object = dict[str, Any]

BUILTIN_GROUPS = {
    "",
    "v1",
    "apps",
    "batch",
    "policy",
    "apiextensions.k8s.io",
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "storage.k8s.io",
}


def key(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}"


def objects(state: State) -> dict[str, Object]:
    found: dict[str, Object] = cluster.kube(state)["objects"]
    return found


def stored(state: State, kind: str, namespace: str, name: str) -> Object | None:
    return objects(state).get(key(kind, namespace, name))


def put(state: State, document: Object, namespace: str = "") -> Object:
    """Store `document` as the API server would: `stringData` folded into base64 `data`
    (Secrets), a CRD Established at once (the apiextensions establishing controller marks
    it within moments of creation), a uid and creation time."""
    document = copy.deepcopy(document)
    metadata = document.setdefault("metadata", {})
    kind = str(document.get("kind"))
    scoped = RESOURCES.get(kind.lower(), (kind, True))[1]
    if scoped:
        metadata.setdefault("namespace", namespace or "default")
    else:
        metadata.pop("namespace", None)
    if kind == "Secret" and document.get("stringData"):
        data = document.setdefault("data", {})
        for item, value in document.pop("stringData").items():
            data[item] = base64.b64encode(str(value).encode()).decode()
    existing = stored(state, kind, metadata.get("namespace", ""), metadata["name"])
    metadata["uid"] = (existing or {}).get("metadata", {}).get("uid") or cluster.uid(state)
    metadata.setdefault("creationTimestamp", _rfc3339(clock.now(state)))
    if kind == "CustomResourceDefinition":
        document["status"] = {
            "conditions": [
                {"type": "NamesAccepted", "status": "True"},
                {"type": "Established", "status": "True"},
            ]
        }
    objects(state)[key(kind, metadata.get("namespace", ""), metadata["name"])] = document
    return document


def _rfc3339(seconds: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def matches(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        name, _, value = term.partition("=")
        if labels.get(name) != value:
            return False
    return True


# --- get -------------------------------------------------------------------------------------


def get(call: Call, args: list[str]) -> None:
    output = call.flag("output")
    found: list[Object] = []
    for kind, namespaced, name in targets(args):
        namespace = call.namespace if namespaced else ""
        if name is None:
            for document in objects(call.state).values():
                if document.get("kind") != kind:
                    continue
                meta = document.get("metadata") or {}
                if (
                    namespaced
                    and not call.flag("all-namespaces")
                    and meta.get("namespace") != namespace
                ):
                    continue
                if matches(meta.get("labels") or {}, call.flag("selector")):
                    found.append(document)
            if output == "json":
                call.dump({"apiVersion": "v1", "kind": "List", "items": found, "metadata": {}})
                return
            continue
        found_one = stored(call.state, kind, namespace, name)
        if found_one is None:
            if call.flag("ignore-not-found"):
                continue
            raise KubectlError(not_found(kind, name))
        found.append(found_one)
    if not found:
        return
    if output == "json":
        call.dump(found[0] if len(found) == 1 else {"kind": "List", "items": found})
    elif output == "name":
        for document in found:
            call.say(f"{document['kind'].lower()}/{document['metadata']['name']}")
    else:
        call.say("NAME")
        for document in found:
            call.say(document["metadata"]["name"])


def delete(call: Call, args: list[str]) -> None:
    for kind, namespaced, name in targets(args):
        namespace = call.namespace if namespaced else ""
        if name is None or stored(call.state, kind, namespace, name) is None:
            if call.flag("ignore-not-found"):
                continue
            raise KubectlError(not_found(kind, name or ""))
        del objects(call.state)[key(kind, namespace, name)]
        call.say(f'{kind.lower()} "{name}" deleted')


# --- apply -----------------------------------------------------------------------------------


def documents(call: Call) -> list[Object]:
    found: list[Object] = []
    for source in call.flag("filename") or []:
        if source == "-":
            text = call.stdin
        else:
            served = call.state.get("urls", {}).get(source)
            if served is None:
                raise KubectlError(
                    f'error: unable to read URL "{source}", server reported 404 Not Found, '
                    "status code=404"
                )
            text = served
        try:
            found += [d for d in configs.load_all(text) if d]
        except Exception as error:  # yaml.YAMLError, imported only when needed
            raise KubectlError(f"error: error parsing STDIN: {error}") from None
    return found


def crd_for(state: State, api_version: str, kind: str) -> Object | None:
    group = api_version.rpartition("/")[0]
    for document in objects(state).values():
        if document.get("kind") != "CustomResourceDefinition":
            continue
        spec = document.get("spec") or {}
        if spec.get("group") == group and (spec.get("names") or {}).get("kind") == kind:
            return document
    return None


def _admit(state: State, document: Object) -> None:
    """Validating webhooks of the object's group, as kube-apiserver calls them: one that is not
    serving yet fails the request when its failurePolicy is Fail (MetalLB's: metallb/metallb@v0.16.1
    config/ webhooks, `failurePolicy: Fail`); one that answers may deny."""
    group = str(document.get("apiVersion", "")).rpartition("/")[0]
    for name, webhook in sorted(cluster.kube(state)["webhooks"].items()):
        if webhook["group"] != group:
            continue
        serving_at = webhook.get("serving_at")
        if serving_at is None or clock.now(state) < serving_at:
            raise KubectlError(
                'Error from server (InternalError): error when creating "STDIN": Internal error '
                f'occurred: failed calling webhook "{name}": failed to call webhook: Post '
                f'"https://{webhook["service"]}.svc:443/validate?timeout=10s": dial tcp '
                "10.96.0.100:443: connect: connection refused"
            )
        reason = (webhook.get("deny") or {}).get(document["metadata"]["name"])
        if reason:
            raise KubectlError(
                f'Error from server (Forbidden): error when creating "STDIN": admission webhook '
                f'"{name}" denied the request: {reason}'
            )


def apply(call: Call) -> None:
    dry_run = call.flag("dry-run", "none")
    server_side = bool(call.flag("server-side"))
    for document in documents(call):
        api_version, kind = str(document.get("apiVersion", "")), str(document.get("kind", ""))
        group = api_version.rpartition("/")[0]
        if group not in BUILTIN_GROUPS and crd_for(call.state, api_version, kind) is None:
            meta = document.get("metadata") or {}
            raise KubectlError(
                f'error: resource mapping not found for name: "{meta.get("name", "")}" namespace: '
                f'"{meta.get("namespace", call.namespace)}" from "STDIN": no matches for kind '
                f'"{kind}" in version "{api_version}"\nensure CRDs are installed first'
            )
        document.setdefault("metadata", {})
        _admit(call.state, document)
        resource = f"{kind.lower()}.{group}" if group else kind.lower()
        verb = "serverside-applied" if server_side else "configured"
        if dry_run == "server":
            call.say(f"{resource}/{document['metadata']['name']} {verb} (server dry run)")
            continue
        put(call.state, document, call.namespace)
        call.say(f"{resource}/{document['metadata']['name']} {verb}")


# --- wait and rollout ------------------------------------------------------------------------


def condition_met(document: Object, condition: str) -> bool:
    name, _, value = condition.partition("=")
    conditions = (document.get("status") or {}).get("conditions") or []
    return any(
        c.get("type", "").lower() == name.lower()
        and str(c.get("status", "")).lower() == (value or "true").lower()
        for c in conditions
    )


def rollout_status(call: Call, args: list[str]) -> None:
    """`kubectl rollout status deployment/x --timeout=...` (kubernetes/kubectl@kubernetes-1.36.3:
    pkg/polymorphichelpers/rollout_status.go `DeploymentStatusViewer`): done when every
    replica is updated and available; a Deployment that made no progress for its
    progressDeadlineSeconds (600 s by default) fails at once, "exceeded its progress deadline"."""
    ((kind, _, name),) = targets(args)
    workload = cluster.kube(call.state)["workloads"].get(f"{call.namespace}/{kind}/{name}")
    if workload is None or name is None:
        raise KubectlError(not_found(kind, name or ""))
    timeout = float(call.flag("timeout") or 0.0)
    deadline = clock.now(call.state) + (timeout or 1e12)
    while True:
        cluster.settle(call.state)
        pods = [p for p in cluster.workload_pods(call.state, workload) if p.get("deletion") is None]
        ready = sum(1 for p in pods if p["ready"])
        if ready >= int(workload.get("replicas", 1)):
            workload["unready_since"] = None
            call.say(f'{kind.lower()} "{name}" successfully rolled out')
            return
        since = workload.setdefault("unready_since", clock.now(call.state))
        if since is None:
            workload["unready_since"] = since = clock.now(call.state)
        if clock.now(call.state) - since >= 600:
            raise KubectlError(f'error: deployment "{name}" exceeded its progress deadline')
        call.say(
            f'Waiting for deployment "{name}" rollout to finish: {ready} of '
            f"{workload.get('replicas', 1)} updated replicas are available..."
        )
        step = cluster.next_change(call.state)
        target = min(deadline, since + 600, step if step is not None else deadline)
        if target <= clock.now(call.state):
            raise KubectlError("error: timed out waiting for the condition")
        clock.advance(call.state, target - clock.now(call.state))


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=4)


def api_name(kind: str) -> str:
    return API_NAMES.get(kind, kind.lower() + "s")
