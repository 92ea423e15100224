"""The recording mock engine: run the real `__main__.py` offline and capture what it would create.

The Pulumi CLI and provider plugins are not needed: `pulumi.runtime.set_mocks` replaces the engine,
and `RecordingMonitor` captures every resource registration (type, name, parent, dependencies,
options and inputs with their secret paths), every invoke and every component's outputs. `Mocks`
synthesises realistic, deterministic outputs (Talos secrets and kubeconfig, Kubernetes metadata,
command stdout) so downstream components see real-shaped values.

Used by the tests (tests/harness.py), the offline render command and the benchmark.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import runpy
import sys
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
import pulumi.runtime.settings as pulumi_settings
from google.protobuf import json_format  # type: ignore[import-untyped]
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

from config.stack_file import read_stack_document
from homelab import fakes

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROGRAM = PROJECT_ROOT / "__main__.py"
PROJECT = "homelab"


# Values the engine stands in for `secure:` config entries (or missing required secrets) so a
# committed stack file renders offline. Deliberately recognisable, so a test can prove that none
# of them ever reaches a plaintext input or output.
def _pem_base64(kind: str, body: str) -> str:
    return base64.b64encode(
        f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n".encode()
    ).decode()


SENTINEL_SECRETS: dict[str, str] = {
    "dnsApiToken": "SENTINEL-dns-api-token-0123456789",
    "headplaneCookieSecret": "SENTINEL-cookie-0123456789abcdef",
    # The shape `lab destroy` saves (config/model.py SavedCertificate), so a lab stack file that
    # holds a saved certificate still renders.
    "wildcardCertificate": json.dumps(
        {
            "annotations": {},
            "tls.crt": _pem_base64("CERTIFICATE", "SENTINEL-certificate"),
            "tls.key": _pem_base64("EC PRIVATE KEY", "SENTINEL-private-key"),
        },
        sort_keys=True,
    ),
}

Json = Any

# How an input the engine does not know yet (a preview's computed value) is recorded.
UNKNOWN: str = "<unknown>"


@dataclass(frozen=True)
class ResourceRecord:
    """One registered resource, as the engine would see it."""

    type: str
    name: str
    urn: str
    custom: bool
    parent: str | None
    provider: str | None
    dependencies: tuple[str, ...]
    property_dependencies: Mapping[str, tuple[str, ...]]
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    ignore_changes: tuple[str, ...]
    additional_secret_outputs: tuple[str, ...]
    replace_on_changes: tuple[str, ...]
    deleted_with: str | None
    version: str | None
    custom_timeouts: Mapping[str, str]
    inputs: Mapping[str, Json]
    secret_paths: tuple[str, ...]
    outputs: Mapping[str, Json] = field(default_factory=dict)
    # `import_` adopts a resource that already exists: a stack that imports depends on leftovers.
    import_id: str | None = None
    # The `replacement_trigger` resource option, decoded: a change to it replaces the resource.
    replacement_trigger: Json = None
    # The `replace_with` resource option: URNs whose replacement replaces this resource too.
    replace_with: tuple[str, ...] = ()
    # The `aliases` option as URNs: earlier identities the engine adopts from the state.
    aliases: tuple[str, ...] = ()

    def input(self, path: str) -> Json:
        """The input at a dotted path, e.g. `metadata.name` or `spec.ports.0.port`."""
        value: Json = self.inputs
        for part in path.split("."):
            value = value[int(part)] if isinstance(value, list) else value[part]
        return value

    def is_secret(self, path: str) -> bool:
        """Whether the input at `path` (or a value that contains it) is a Pulumi secret."""
        return any(path == p or path.startswith(p + ".") for p in self.secret_paths)


@dataclass(frozen=True)
class InvokeRecord:
    token: str
    args: Mapping[str, Json]
    secret_paths: tuple[str, ...]
    provider: str | None
    depends_on: tuple[str, ...]


@dataclass(frozen=True)
class ReadRecord:
    """A resource the program reads instead of creating (`Resource.get`, `StackReference`)."""

    type: str
    name: str
    urn: str
    id: str
    parent: str | None


@dataclass
class Render:
    """Everything one run of the program registered."""

    stack: str
    resources: list[ResourceRecord]
    invokes: list[InvokeRecord]
    outputs: dict[str, Json]
    output_secret_paths: tuple[str, ...]
    component_outputs: dict[str, dict[str, Json]]
    reads: list[ReadRecord] = field(default_factory=list)
    # Per component URN, the paths of its registered outputs that are Pulumi secrets.
    component_output_secret_paths: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def by_type(self, type_token: str) -> list[ResourceRecord]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str | None = None) -> ResourceRecord:
        found = [r for r in self.by_type(type_token) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.by_type(type_token)]
            raise LookupError(f"expected one {type_token} named {name!r}, found {names}")
        return found[0]

    def by_urn(self, urn: str) -> ResourceRecord:
        for record in self.resources:
            if record.urn == urn:
                return record
        raise LookupError(urn)

    def children_of(self, urn: str) -> list[ResourceRecord]:
        return [r for r in self.resources if r.parent == urn]

    def ancestors(self, record: ResourceRecord) -> Iterator[ResourceRecord]:
        parent = record.parent
        while parent is not None:
            found = next((r for r in self.resources if r.urn == parent), None)
            if found is None:
                return
            yield found
            parent = found.parent

    def output_is_secret(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.output_secret_paths)

    def fingerprint(self) -> str:
        """A digest of every record: equal for byte-identical renders."""
        return hashlib.sha256(canonical_json(self.as_data()).encode()).hexdigest()

    def as_data(self) -> Json:
        return {
            "resources": [_record_data(r) for r in self.resources],
            "invokes": [
                {"token": i.token, "args": i.args, "secretPaths": list(i.secret_paths)}
                for i in self.invokes
            ],
            "outputs": self.outputs,
            "outputSecretPaths": list(self.output_secret_paths),
        }


def _record_data(r: ResourceRecord) -> Json:
    return {
        "type": r.type,
        "name": r.name,
        "urn": r.urn,
        "parent": r.parent,
        "provider": r.provider,
        "dependencies": list(r.dependencies),
        "propertyDependencies": {k: list(v) for k, v in r.property_dependencies.items()},
        "protect": r.protect,
        "retainOnDelete": r.retain_on_delete,
        "deleteBeforeReplace": r.delete_before_replace,
        "ignoreChanges": list(r.ignore_changes),
        "additionalSecretOutputs": list(r.additional_secret_outputs),
        "deletedWith": r.deleted_with,
        "version": r.version,
        "inputs": r.inputs,
        "secretPaths": list(r.secret_paths),
    }


def canonical_json(value: Json) -> str:
    return json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False, default=str)


# --- value decoding --------------------------------------------------------------------------


def plain(value: Json, path: str = "", secrets: list[str] | None = None) -> Json:
    """Strip Pulumi's RPC secret wrappers, noting their paths; whole floats become ints.

    The wire format (protobuf Struct) carries every number as a double, so `3478` arrives as
    `3478.0`; turning whole floats back keeps rendered manifests faithful to the program.
    """
    if rpc.is_rpc_secret(value):
        if secrets is not None:
            secrets.append(path)
        return plain(rpc.unwrap_rpc_secret(value), path, secrets)
    if isinstance(value, dict):
        return {
            str(k): plain(v, f"{path}.{k}" if path else str(k), secrets)
            for k, v in sorted(value.items())
        }
    if isinstance(value, list):
        return [plain(v, f"{path}.{i}" if path else str(i), secrets) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, pulumi.Resource):
        return f"<resource {type(value).__name__}>"
    if isinstance(value, Unknown):
        return UNKNOWN
    return value


def _decode(struct: Any) -> tuple[Json, tuple[str, ...]]:
    secrets: list[str] = []
    value = plain(rpc.deserialize_properties(struct, keep_unknowns=True), "", secrets)
    return value, tuple(secrets)


# --- the recording monitor -------------------------------------------------------------------


class RecordingMonitor(MockMonitor):
    """A MockMonitor that keeps every registration with its options and decoded inputs."""

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.records: list[ResourceRecord] = []
        self.invoke_records: list[InvokeRecord] = []
        self.resource_outputs: dict[str, tuple[Json, tuple[str, ...]]] = {}
        self.read_records: list[ReadRecord] = []
        self._registered_outputs: dict[str, Json] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs, secret_paths = _decode(request.object)
        urn = self.make_urn(request.parent, request.type, request.name)
        timeouts = request.customTimeouts
        self.records.append(
            ResourceRecord(
                type=request.type,
                name=request.name,
                urn=urn,
                custom=bool(request.custom),
                parent=request.parent or None,
                provider=request.provider or None,
                dependencies=tuple(sorted(set(request.dependencies))),
                property_dependencies={
                    key: tuple(sorted(set(deps.urns)))
                    for key, deps in sorted(request.propertyDependencies.items())
                },
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                delete_before_replace=bool(request.deleteBeforeReplace),
                ignore_changes=tuple(request.ignoreChanges),
                additional_secret_outputs=tuple(request.additionalSecretOutputs),
                replace_on_changes=tuple(request.replaceOnChanges),
                deleted_with=request.deletedWith or None,
                version=request.version or None,
                custom_timeouts={
                    k: v
                    for k, v in (
                        ("create", timeouts.create),
                        ("update", timeouts.update),
                        ("delete", timeouts.delete),
                    )
                    if v
                },
                inputs=inputs,
                secret_paths=secret_paths,
                outputs=plain(self.resources[urn].state) if urn in self.resources else {},
                import_id=request.importId or None,
                replacement_trigger=_replacement_trigger(request),
                replace_with=tuple(sorted(request.replace_with)),
                aliases=tuple(sorted(self._alias_urn(request, a) for a in request.aliases)),
            )
        )
        return response

    def _alias_urn(self, request: Any, alias: Any) -> str:
        """An alias as the URN it names; unset spec fields are the resource's own."""
        if alias.urn:
            return str(alias.urn)
        spec = alias.spec
        parent = "" if spec.noParent else (spec.parentUrn or request.parent)
        return self.make_urn(parent, spec.type or request.type, spec.name or request.name)

    def ReadResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().ReadResource(request)  # type: ignore[no-untyped-call]
        self.read_records.append(
            ReadRecord(
                type=request.type,
                name=request.name,
                urn=self.make_urn(request.parent, request.type, request.name),
                id=request.id,
                parent=request.parent or None,
            )
        )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        self.resource_outputs[request.urn] = _decode(request.outputs)
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]

    def Invoke(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        args, secret_paths = _decode(request.args)
        self.invoke_records.append(
            InvokeRecord(
                token=request.tok,
                args=args,
                secret_paths=secret_paths,
                provider=request.provider or None,
                depends_on=tuple(sorted(request.dependsOn)),
            )
        )
        return super().Invoke(request)  # type: ignore[no-untyped-call]


def _replacement_trigger(request: Any) -> Json:
    if not request.HasField("replacement_trigger"):
        return None
    wire = json_format.MessageToDict(request.replacement_trigger)
    return plain(rpc.deserialize_property(wire, keep_unknowns=True))


class HomelabMocks(Mocks):
    """Echo inputs and add the outputs a real provider would, deterministically.

    `unknown_outputs` ({type token: output names}) leaves those outputs out of what a resource
    returns; in a preview the SDK then treats them as unknown (pulumi/runtime/rpc.py
    `resolve_properties`: a missing output resolves as not known during a dry run), which is
    how a preview of an existing stack sees a value that the update is about to recompute.
    """

    def __init__(self, unknown_outputs: Mapping[str, Collection[str]] | None = None) -> None:
        super().__init__()
        self.unknown_outputs = {k: frozenset(v) for k, v in (unknown_outputs or {}).items()}

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        outputs = fakes.resource_outputs(args.typ, args.name, dict(args.inputs))
        unknown = self.unknown_outputs.get(args.typ, frozenset())
        outputs = {k: v for k, v in outputs.items() if k not in unknown}
        return fakes.resource_id(args.typ, args.name, dict(args.inputs)), outputs

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        # An empty failure list, not None: MockMonitor.Invoke iterates it (pulumi 3.272 mocks.py).
        return fakes.invoke_result(args.token, dict(args.args)), []


# --- running the program ---------------------------------------------------------------------


def stack_file(stack: str) -> Path:
    return PROJECT_ROOT / f"Pulumi.{stack}.yaml"


def read_stack_file(path: Path) -> tuple[dict[str, Any], list[str]]:
    """A stack file's config as {namespace:key: value}, and the keys that are `secure:` there.

    `secure:` values cannot be decrypted here; the engine substitutes SENTINEL_SECRETS for them.
    A file that is not a stack file raises `StackFileError` (one line, config/stack_file.py).
    """
    config = read_stack_document(path)
    secure = sorted(k for k, v in config.items() if isinstance(v, dict) and set(v) == {"secure"})
    return config, secure


def stack_config(
    stack: str = "homelab",
    *,
    overrides: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Config for a render: the stack file, then overrides, then secrets (all as namespace:key).

    Missing required secrets get their sentinel value, so a committed stack file always renders.
    `path` reads another file than the project's Pulumi.<stack>.yaml (the tests' fixture stacks).
    """
    path = path or stack_file(stack)
    config, secure = read_stack_file(path) if path.exists() else ({}, [])
    config.update(overrides or {})
    secret_keys = set(secure)
    for key in ("dnsApiToken",):
        full = f"{PROJECT}:{key}"
        if full not in config or full in secure:
            config[full] = SENTINEL_SECRETS[key]
            secret_keys.add(full)
    for key in secure:
        short = key.partition(":")[2]
        config[key] = SENTINEL_SECRETS.get(short, f"SENTINEL-{short}")
    for key, value in (secrets or {}).items():
        config[key] = value
        secret_keys.add(key)
    return config, sorted(secret_keys)


def _as_config_strings(config: Mapping[str, Any]) -> dict[str, str]:
    """The CLI hands every config value to the program as a string (objects as JSON)."""
    return {
        key: value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        for key, value in config.items()
    }


def render(
    stack: str = "homelab",
    *,
    config: Mapping[str, Any] | None = None,
    secret_keys: list[str] | None = None,
    preview: bool = False,
    program: Path | None = None,
    unknown_outputs: Mapping[str, Collection[str]] | None = None,
) -> Render:
    """Run `__main__.py` for `stack` under the recording engine and return what it registered.

    `config` defaults to the stack file (`stack_config(stack)`). `program` runs another Pulumi
    program file instead of `__main__.py` (the benchmark's floor, a test's deliberately bad
    program). With `preview`, `unknown_outputs` ({type token: output names}) are unknown, as in a
    preview where those resources are about to change (see `HomelabMocks`). Safe to call repeatedly in one process: SDK state (pending RPCs, outputs, the root
    stack, config) is reset each time.
    A program error (a `pulumi.RunError` for bad config, say) is raised as `RenderError`, which
    carries the error and what was registered before it.
    """
    if config is None:
        config, secret_keys = stack_config(stack)
    mocks = HomelabMocks(unknown_outputs)
    monitor = RecordingMonitor(mocks)
    _reset_sdk_state()
    pulumi.runtime.set_all_config(_as_config_strings(config), list(secret_keys or []))
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    pulumi_settings.ROOT.set(None)
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    failure: BaseException | None = None
    try:
        _sync_await(run_in_stack(lambda: _run_program(program or PROGRAM)))
    except Exception as error:  # re-raised below with what was registered before it
        failure = error
    finally:
        _reset_sdk_state()
    result = _collect(stack, monitor)
    if failure is not None:
        raise RenderError(result, failure) from failure
    return result


class RenderError(Exception):
    """The program failed; `partial` holds what it registered before failing."""

    def __init__(self, partial: Render, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.partial = partial
        self.cause = cause


def _collect(stack: str, monitor: RecordingMonitor) -> Render:
    stack_urn = f"urn:pulumi:{stack}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{stack}"
    outputs, output_secrets = monitor.resource_outputs.get(stack_urn, ({}, ()))
    return Render(
        stack=stack,
        # Registration order depends on asyncio scheduling; sorting makes renders byte-identical.
        resources=sorted(monitor.records, key=lambda r: r.urn),
        invokes=sorted(monitor.invoke_records, key=lambda i: (i.token, canonical_json(i.args))),
        outputs=outputs,
        output_secret_paths=output_secrets,
        component_outputs={
            urn: value for urn, (value, _) in sorted(monitor.resource_outputs.items())
        },
        reads=sorted(monitor.read_records, key=lambda r: r.urn),
        component_output_secret_paths={
            urn: secrets for urn, (_, secrets) in sorted(monitor.resource_outputs.items())
        },
    )


def _run_program(program: Path) -> None:
    runpy.run_path(str(program), run_name="__main__")


def _reset_sdk_state() -> None:
    settings = pulumi_settings.SETTINGS
    settings.rpc_manager.clear()
    settings.outputs.clear()
    # A fresh loop each run: the SDK caches futures on the loop of the previous render.
    asyncio.set_event_loop(asyncio.new_event_loop())
