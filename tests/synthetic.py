"""Hand-made records and renders, for checks that must be seen to fail on objects the program does
not create (yet): a bad Deployment, a leaking ConfigMap, a dependency chain of known length."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from homelab.engine import Render, ResourceRecord

STACK = "test"
STACK_URN = f"urn:pulumi:{STACK}::homelab::pulumi:pulumi:Stack::homelab-{STACK}"


def urn(type_token: str, name: str, parent_types: Sequence[str] = ()) -> str:
    chain = "$".join(["pulumi:pulumi:Stack", *parent_types, type_token])
    return f"urn:pulumi:{STACK}::homelab::{chain}::{name}"


def record(
    type_token: str,
    name: str,
    *,
    inputs: Mapping[str, Any] | None = None,
    custom: bool = True,
    parent: ResourceRecord | None = None,
    provider: ResourceRecord | str | None = None,
    dependencies: Sequence[ResourceRecord] = (),
    property_dependencies: Mapping[str, Sequence[ResourceRecord]] | None = None,
    secret_paths: Sequence[str] = (),
    outputs: Mapping[str, Any] | None = None,
    deleted_with: ResourceRecord | None = None,
    protect: bool = False,
) -> ResourceRecord:
    parent_types = _parent_types(parent)
    provider_ref = (
        f"{provider.urn}::{provider.name}-id" if isinstance(provider, ResourceRecord) else provider
    )
    return ResourceRecord(
        type=type_token,
        name=name,
        urn=urn(type_token, name, parent_types),
        custom=custom,
        parent=parent.urn if parent is not None else STACK_URN,
        provider=provider_ref,
        dependencies=tuple(sorted(d.urn for d in dependencies)),
        property_dependencies={
            key: tuple(sorted(d.urn for d in deps))
            for key, deps in (property_dependencies or {}).items()
        },
        protect=protect,
        retain_on_delete=False,
        delete_before_replace=False,
        ignore_changes=(),
        additional_secret_outputs=(),
        replace_on_changes=(),
        deleted_with=deleted_with.urn if deleted_with is not None else None,
        version=None,
        custom_timeouts={},
        inputs=dict(inputs or {}),
        secret_paths=tuple(secret_paths),
        outputs=dict(outputs if outputs is not None else inputs or {}),
    )


def _parent_types(parent: ResourceRecord | None) -> list[str]:
    if parent is None:
        return []
    chain = parent.urn.split("::")[2].split("$")
    return chain[1:]  # without the Stack


def render_of(records: Sequence[ResourceRecord], **fields: Any) -> Render:
    return Render(
        stack=STACK,
        resources=sorted(records, key=lambda r: r.urn),
        invokes=list(fields.pop("invokes", [])),
        outputs=dict(fields.pop("outputs", {})),
        output_secret_paths=tuple(fields.pop("output_secret_paths", ())),
        component_outputs=dict(fields.pop("component_outputs", {})),
        component_output_secret_paths=dict(fields.pop("component_output_secret_paths", {})),
    )


def deployment(
    name: str = "web",
    *,
    namespace: str = "apps",
    containers: Sequence[Mapping[str, Any]] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment manifest (Kubernetes field names) whose one container passes every rule."""
    labels = {"app.kubernetes.io/name": name}
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": list(containers or [container()])},
            },
        },
    }


def container(name: str = "web", **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "image": "ghcr.io/example/web:1.2.3",
        "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}},
    }
    base.update(overrides)
    return base
