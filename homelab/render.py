"""The offline render: everything a stack would create, as plain files a pull request can diff.

`python -m homelab render --stack homelab --out rendered/homelab` runs the real `__main__.py` under
the recording engine (homelab/engine.py): no cluster, no Pulumi CLI or account, and no secrets
(`secure:` config values are replaced by the engine's sentinels, which the render then redacts).
It writes, sorted and byte-identical for the same code and config:

    SUMMARY.md                  counts per component and type, Helm releases, port forwards, outputs
    RESOURCES.txt               every resource as a tree, with the options that matter on destroy
    architecture.md             the component graph (Mermaid), also kept in docs/architecture.md
    kubernetes/<namespace>.yaml every Kubernetes object as a manifest (_cluster.yaml: cluster-scoped)
    helm/<release>.yaml         each Helm release: chart, repository, version, namespace, values
    talos/<name>.yaml           Talos machine-config patches (configuration applies and data sources)
    commands/<name>.yaml        each pulumi-command resource's scripts (create, update, delete, ...)
    resources/<component>.yaml  the inputs of every other resource (providers, Talos secrets, ...)
    invokes.yaml                the data sources the program calls (other than Talos configuration)
    access.md                   who reaches what over the tailnet and from the internet
    charts/<release>.yaml       with `--charts` only: `helm template` of each pinned chart with its
                                values, so a chart bump shows the objects it changes (needs helm
                                on PATH and the chart repositories; without helm it is skipped)

Every value at a secret path of a record (`record.secret_paths`) becomes "[secret]", and so do the
inputs the real providers mark secret but the mock engine cannot (PROVIDER_SECRET_INPUTS).
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import shutil
import subprocess
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from pulumi.runtime import rpc

from components.cluster.image_factory import SCHEMATIC_CHANGE_NOTE
from components.cluster.upgrade import KUBERNETES_STEP_SUFFIX, TALOS_STEP_INFIX
from components.platform.traefik import PUBLIC_ENTRYPOINT
from config import access, pins
from homelab import engine
from homelab.engine import InvokeRecord, Json, Render, ResourceRecord
from homelab.fakes import FAKE_KEY_EXPIRY

SECRET: Final = "[secret]"
# What only a real `up` knows (a key's expiry is set when the key is minted): shown as that, never
# as the value the recording engine's fakes stand in with (homelab/fakes.py).
KNOWN_AFTER_UP: Final = "[known after up]"
RUNTIME_FAKES: Final = frozenset({FAKE_KEY_EXPIRY})
COMPUTED: Final = "[computed]"
SUMMARY_FILE: Final = "SUMMARY.md"
SUMMARY_TITLE: Final = "# Offline render of stack"
GOLDEN_DIR: Final = engine.PROJECT_ROOT / "tests" / "golden" / "homelab"
ARCHITECTURE_DOC: Final = engine.PROJECT_ROOT / "docs" / "architecture.md"
README: Final = engine.PROJECT_ROOT / "README.md"
REGENERATE_COMMAND: Final = "./scripts/homelab render --update-golden"
ARCHITECTURE_START: Final = "<!-- architecture:start -->"
ARCHITECTURE_END: Final = "<!-- architecture:end -->"

# Inputs the real providers mark secret (provider schemas and SDKs; components.md 1.2 "Secrecy")
# while the mock engine does not honour provider-side secrecy: redacted too, so the render never
# shows what the real engine would hide. A Talos client configuration is redacted whole: its key is
# secret and its certificates are only noise in a review.
PROVIDER_SECRET_INPUTS: Final[Mapping[str, tuple[str, ...]]] = {
    "pulumi:providers:kubernetes": ("kubeconfig",),
    "talos:machine/configurationApply:ConfigurationApply": (
        "machineConfigurationInput",
        "clientConfiguration",
    ),
    "talos:machine/bootstrap:Bootstrap": ("clientConfiguration",),
    "talos:cluster/kubeconfig:Kubeconfig": ("clientConfiguration",),
    "talos:machine/getConfiguration:getConfiguration": ("machineSecrets",),
    "talos:client/getConfiguration:getConfiguration": ("clientConfiguration",),
    "talos:cluster/getHealth:getHealth": ("clientConfiguration",),
    "talos:cluster/getKubeconfig:getKubeconfig": ("clientConfiguration",),
    "talos:machine/getDisks:getDisks": ("clientConfiguration",),
    # The key checks' environment is the kubeconfig (components/remote_access/keys.py); the SDK unwraps its
    # secret marker before the invoke goes out.
    "command:local:run": ("environment",),
}

CONFIGURATION_APPLY: Final = "talos:machine/configurationApply:ConfigurationApply"
MACHINE_CONFIGURATION: Final = "talos:machine/getConfiguration:getConfiguration"
HELM_PREFIX: Final = "kubernetes:helm.sh/"
COMMAND_PREFIX: Final = "command:"

# Kinds without a namespace (Kubernetes API discovery; cert-manager and MetalLB CRDs as installed).
CLUSTER_SCOPED_KINDS: Final = frozenset(
    {
        "APIService",
        "CSIDriver",
        "ClusterIssuer",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "Namespace",
        "PersistentVolume",
        "PriorityClass",
        "RuntimeClass",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
    }
)


class RenderOutputError(Exception):
    """The output directory cannot be used (it holds something other than a previous render)."""


# --- values ----------------------------------------------------------------------------------


def redact(value: Json, secret_paths: Iterable[str], path: str = "") -> Json:
    """`value` with every value at a secret path replaced by "[secret]".

    Paths are built exactly as the engine builds them (`parent.key`, list indexes as digits), so
    keys that contain dots (annotations such as `metallb.io/address-pool`) match too.
    """
    secrets = secret_paths if isinstance(secret_paths, frozenset) else frozenset(secret_paths)
    if path in secrets:
        return SECRET
    if isinstance(value, Mapping):
        return {
            str(k): redact(v, secrets, f"{path}.{k}" if path else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v, secrets, f"{path}.{i}" if path else str(i)) for i, v in enumerate(value)]
    if value == rpc.UNKNOWN:
        return COMPUTED
    return value


def _secret_paths(type_token: str, recorded: Sequence[str]) -> frozenset[str]:
    return frozenset(recorded) | frozenset(PROVIDER_SECRET_INPUTS.get(type_token, ()))


def redacted_inputs(record: ResourceRecord) -> dict[str, Json]:
    """The record's inputs with secrets redacted and Pulumi-internal (`__`) keys dropped."""
    value = redact(dict(record.inputs), _secret_paths(record.type, record.secret_paths))
    return {k: v for k, v in value.items() if not k.startswith("__")}


def redacted_args(invoke: InvokeRecord) -> dict[str, Json]:
    value = redact(dict(invoke.args), _secret_paths(invoke.token, invoke.secret_paths))
    return {k: v for k, v in value.items() if not k.startswith("__")}


class _Dumper(yaml.SafeDumper):
    """Sorted keys, no anchors, multi-line strings (scripts, patches) as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _represent_other(dumper: yaml.SafeDumper, data: object) -> yaml.ScalarNode:
    """Assets, archives and anything else the SDK hands over: named, with what locates them."""
    detail = next(
        (str(getattr(data, a)) for a in ("path", "uri", "text") if getattr(data, a, None)),
        "",
    )
    return _represent_str(dumper, f"<{type(data).__name__} {detail}>".replace(" >", ">"))


_Dumper.add_representer(str, _represent_str)
_Dumper.add_multi_representer(object, _represent_other)


def dump_yaml(value: Json) -> str:
    text: str = yaml.dump(
        value,
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,  # never fold long lines: a one-word change stays a one-line diff
    )
    return text


def _documents(parts: Iterable[tuple[str, Json]]) -> str:
    """A multi-document YAML file; each document introduced by a comment naming its source."""
    chunks = [f"---\n# {comment}\n{dump_yaml(body)}" for comment, body in parts]
    return "".join(chunks)


def _parse_patch(patch: Json) -> Json:
    """A Talos config patch (a YAML/JSON string, possibly multi-document) as data, for reading."""
    if not isinstance(patch, str) or patch in (SECRET, COMPUTED):
        return patch
    try:
        documents = [d for d in yaml.safe_load_all(patch) if d is not None]
    except yaml.YAMLError:
        return patch
    return documents[0] if len(documents) == 1 else documents


# --- the resource tree -----------------------------------------------------------------------


@dataclass(frozen=True)
class Tree:
    """Parent/child lookups over one render (the engine's `ancestors` walks a list each step)."""

    render: Render

    def by_urn(self) -> dict[str, ResourceRecord]:
        return {r.urn: r for r in self.render.resources}

    def top(self, record: ResourceRecord) -> ResourceRecord:
        """The record's top-level ancestor: the component `__main__.py` created it under."""
        found = record
        for ancestor in self.render.ancestors(record):
            found = ancestor
        return found

    def name_path(self, record: ResourceRecord) -> str:
        names = [a.name for a in reversed(list(self.render.ancestors(record)))]
        return "/".join([*names, record.name])


def _provider_urn(reference: str | None) -> str | None:
    """A provider reference is `<urn>::<id>`; the URN itself contains `::` separators."""
    if not reference:
        return None
    return reference.rpartition("::")[0] or reference


def _safe_name(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-") or "unnamed"


class _FileNames:
    """Unique, stable file names: the first (in URN order) gets the plain name."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def allocate(self, folder: str, stem: str, qualifier: str) -> str:
        candidate = f"{folder}/{_safe_name(stem)}.yaml"
        if candidate in self._used:
            candidate = f"{folder}/{_safe_name(stem)}-{_safe_name(qualifier)}.yaml"
        counter = 2
        base = candidate.removesuffix(".yaml")
        while candidate in self._used:
            candidate = f"{base}-{counter}.yaml"
            counter += 1
        self._used.add(candidate)
        return candidate


# --- Kubernetes ------------------------------------------------------------------------------


def is_kubernetes_object(record: ResourceRecord) -> bool:
    """A plain Kubernetes object (not a provider, Helm release or chart)."""
    return (
        record.custom
        and record.type.startswith("kubernetes:")
        and not record.type.startswith(HELM_PREFIX)
        and record.type != "pulumi:providers:kubernetes"
    )


def kubernetes_manifest(record: ResourceRecord) -> tuple[dict[str, Json], bool]:
    """The manifest a record applies, and whether Pulumi would generate `metadata.name`."""
    body = redacted_inputs(record)
    group_version, _, kind = record.type.removeprefix("kubernetes:").rpartition(":")
    group, _, version = group_version.partition("/")
    body.setdefault("apiVersion", version if group == "core" else f"{group}/{version}")
    body.setdefault("kind", kind)
    metadata = body.get("metadata")
    metadata = dict(metadata) if isinstance(metadata, Mapping) else {}
    autonamed = "name" not in metadata
    metadata.setdefault("name", record.name)
    body["metadata"] = metadata
    return body, autonamed


def _kubernetes_file(manifest: Mapping[str, Json]) -> str:
    kind = str(manifest.get("kind", ""))
    metadata = manifest.get("metadata") or {}
    if kind == "Namespace":
        # A Namespace sits at the top of the file of what it contains.
        return f"kubernetes/{_safe_name(str(metadata.get('name')))}.yaml"
    if kind in CLUSTER_SCOPED_KINDS:
        return "kubernetes/_cluster.yaml"
    return f"kubernetes/{_safe_name(str(metadata.get('namespace') or 'default'))}.yaml"


def _kubernetes_files(tree: Tree) -> dict[str, str]:
    grouped: dict[str, list[tuple[tuple[Any, ...], str, Json]]] = defaultdict(list)
    for record in tree.render.resources:
        if not is_kubernetes_object(record):
            continue
        manifest, autonamed = kubernetes_manifest(record)
        comment = f"{tree.name_path(record)} ({record.type})"
        if autonamed:
            comment += "; Pulumi adds a random suffix to metadata.name"
        kind = str(manifest.get("kind"))
        name = str((manifest.get("metadata") or {}).get("name"))
        key = (kind != "Namespace", kind, name, record.urn)
        grouped[_kubernetes_file(manifest)].append((key, comment, manifest))
    return {
        path: _documents((comment, body) for _, comment, body in sorted(items))
        for path, items in grouped.items()
    }


# --- Helm, Talos, commands, everything else --------------------------------------------------

_HELM_MAIN_KEYS: Final = frozenset({"chart", "version", "repositoryOpts", "namespace", "values"})


def helm_release(record: ResourceRecord) -> dict[str, Json]:
    """A Helm release (v3 Release or v4 Chart) as chart, repository, version, namespace, values."""
    inputs = redacted_inputs(record)
    repository = inputs.get("repositoryOpts") or {}
    return {
        "release": inputs.get("name") or record.name,
        "chart": inputs.get("chart"),
        "repository": repository.get("repo") if isinstance(repository, Mapping) else repository,
        "version": inputs.get("version"),
        "namespace": inputs.get("namespace"),
        "values": inputs.get("values") or {},
        "options": {k: v for k, v in inputs.items() if k not in _HELM_MAIN_KEYS},
    }


def talos_apply(record: ResourceRecord) -> dict[str, Json]:
    inputs = redacted_inputs(record)
    patches = inputs.get("configPatches")
    if isinstance(patches, list):
        inputs["configPatches"] = [_parse_patch(p) for p in patches]
    return inputs


def talos_machine_configuration(invoke: InvokeRecord) -> dict[str, Json]:
    args = redacted_args(invoke)
    patches = args.get("configPatches")
    if isinstance(patches, list):
        args["configPatches"] = [_parse_patch(p) for p in patches]
    return args


def _is_component_without_inputs(record: ResourceRecord) -> bool:
    return not record.custom and not record.inputs


def _resource_files(tree: Tree, names: _FileNames) -> dict[str, str]:
    files: dict[str, str] = {}
    others: dict[str, list[tuple[str, str, Json]]] = defaultdict(list)
    for record in tree.render.resources:  # sorted by URN by the engine
        comment = f"{tree.name_path(record)} ({record.type})"
        if is_kubernetes_object(record) or _is_component_without_inputs(record):
            continue
        if record.type.startswith(HELM_PREFIX):
            path = names.allocate("helm", record.name, tree.top(record).name)
            files[path] = _documents([(comment, helm_release(record))])
        elif record.type == CONFIGURATION_APPLY:
            path = names.allocate("talos", record.name, tree.top(record).name)
            files[path] = _documents([(comment, talos_apply(record))])
        elif record.type.startswith(COMMAND_PREFIX):
            path = names.allocate("commands", record.name, tree.top(record).name)
            files[path] = _documents([(comment, redacted_inputs(record))])
        else:
            top = tree.top(record)
            body = {"type": record.type, "name": record.name, "inputs": redacted_inputs(record)}
            others[f"resources/{_safe_name(top.name)}.yaml"].append((record.urn, comment, body))
    for path, items in others.items():
        files[path] = _documents((comment, body) for _, comment, body in sorted(items))
    return files


def _invoke_files(render: Render, names: _FileNames) -> dict[str, str]:
    files: dict[str, str] = {}
    other: list[Json] = []
    for invoke in render.invokes:  # sorted by (token, args) by the engine
        if invoke.token == MACHINE_CONFIGURATION:
            stem = "machine-configuration-{}-{}".format(
                invoke.args.get("clusterName", ""), invoke.args.get("machineType", "")
            )
            path = names.allocate("talos", stem, "invoke")
            files[path] = _documents(
                [(f"data source {invoke.token}", talos_machine_configuration(invoke))]
            )
        else:
            other.append({"token": invoke.token, "args": redacted_args(invoke)})
    if other:
        files["invokes.yaml"] = dump_yaml(other)
    return files


# --- RESOURCES.txt ---------------------------------------------------------------------------


def _flags(
    tree: Tree, record: ResourceRecord, by_urn: Mapping[str, ResourceRecord], *, new_stack: bool
) -> list[str]:
    flags: list[str] = []
    if record.protect:
        flags.append("protect")
    if record.retain_on_delete:
        flags.append("retain-on-delete")
    if record.delete_before_replace:
        flags.append("delete-before-replace")
    if record.deleted_with:
        target = by_urn.get(record.deleted_with)
        flags.append(f"deleted-with={tree.name_path(target) if target else record.deleted_with}")
    if record.import_id:
        flags.append(f"import={record.import_id}")
    if record.ignore_changes:
        flags.append("ignore-changes=" + ",".join(sorted(record.ignore_changes)))
    if record.replace_on_changes:
        flags.append("replace-on-changes=" + ",".join(sorted(record.replace_on_changes)))
    flags.extend(f"timeout-{k}={v}" for k, v in sorted(record.custom_timeouts.items()))
    # Earlier names the engine adopts from the state instead of creating anew (type-only aliases,
    # such as pulumi-kubernetes' for older API versions, keep the name and are not shown). A new
    # stack has no state, so nothing to adopt.
    renamed_from = sorted({u.rpartition("::")[2] for u in record.aliases} - {record.name})
    if renamed_from and not new_stack:
        flags.append("aliases=" + ",".join(renamed_from))
    return flags


def resources_text(render: Render, *, new_stack: bool = False) -> str:
    """Every resource as an indented tree (sorted by name), flagged with destroy-relevant options."""
    tree = Tree(render)
    by_urn = tree.by_urn()
    children: dict[str | None, list[ResourceRecord]] = defaultdict(list)
    for record in render.resources:
        parent = record.parent if record.parent in by_urn else None
        children[parent].append(record)
    lines = [
        f"# Every resource of stack {render.stack!r}: name (type) [options]; generated, do not edit.",
    ]

    def walk(parent: str | None, depth: int) -> None:
        for record in sorted(children[parent], key=lambda r: (r.name, r.type)):
            flags = _flags(tree, record, by_urn, new_stack=new_stack)
            suffix = f" [{', '.join(flags)}]" if flags else ""
            lines.append(f"{'  ' * depth}{record.name} ({record.type}){suffix}")
            walk(record.urn, depth + 1)

    walk(None, 0)
    if render.reads:
        lines.append("")
        lines.append("# Read, not created (these depend on something that already exists):")
        lines.extend(f"{r.name} ({r.type}) id={r.id}" for r in render.reads)
    return "\n".join(lines) + "\n"


# --- SUMMARY.md ------------------------------------------------------------------------------


def _cell(value: Json) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Json]]) -> list[str]:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines.extend("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)
    return lines


def _port_forward_rows(outputs: Mapping[str, Json]) -> tuple[list[str], list[list[Json]]]:
    """Rows of any stack output named like `portForwards` (a list or a map of objects)."""
    rows: list[Mapping[str, Json]] = []
    for key, value in sorted(outputs.items()):
        if "portforward" not in key.lower().replace("_", "").replace("-", ""):
            continue
        if isinstance(value, list):
            rows.extend(v if isinstance(v, Mapping) else {"value": v} for v in value)
        elif isinstance(value, Mapping):
            rows.extend(
                {"name": k, **v} if isinstance(v, Mapping) else {"name": k, "value": v}
                for k, v in sorted(value.items())
            )
    headers = sorted({k for row in rows for k in row})
    # Rows keep the program's (deterministic) order: it decides what comes first.
    return headers, [[row.get(h, "") for h in headers] for row in rows]


BOOT_MEDIA_OUTPUTS = (
    ("ISO", "talosBootIsoUrl"),
    ("iPXE script", "talosBootPxeUrl"),
    ("Installer image", "talosInstallerImage"),
    ("Schematic id", "talosSchematicId"),
)


def upgrade_plan_lines(render: Render) -> list[str]:
    """The upgrade steps (components/cluster/upgrade.py) in the order they run, from their
    triggers: what a pin bump does, which the render diff of that pull request then shows."""
    steps = [
        r
        for r in render.resources
        if r.type == "command:local:Command"
        and (TALOS_STEP_INFIX in r.name or r.name.endswith(KUBERNETES_STEP_SUFFIX))
    ]
    if not steps:
        return []
    # In dependency order (the chain's `depends_on`), not registration order: a step whose
    # script waits for an output registers later than one that does not.
    urns = {r.urn for r in steps}
    ordered: list[ResourceRecord] = []
    while len(ordered) < len(steps):
        placed = {r.urn for r in ordered}
        ready = [
            r for r in steps if r.urn not in placed and urns.intersection(r.dependencies) <= placed
        ]
        if not ready:
            raise ValueError("the upgrade steps depend on each other in a cycle")
        ordered.append(ready[0])
    rows = []
    for number, record in enumerate(ordered, start=1):
        triggers = record.inputs.get("triggers") or []
        assert isinstance(triggers, list)
        rows.append([str(number), *(str(t) for t in triggers[:2]), *[""] * (2 - len(triggers))])
    return [
        "",
        "## Upgrade plan",
        "",
        "What `pulumi up` runs when these targets move, one step after the other before the "
        "nodes' configs are applied; a node that already runs its target version and installer "
        "schematic is skipped, and the cluster must be healthy before and after each node. "
        "After the applies, a node on which a staged config change still waits for a reboot "
        "reboots, one at a time in the same order (docs/operations.md, Upgrades).",
        "",
        *markdown_table(["Step", "Runs", "Installer"], rows),
    ]


NEW_STACK_NOTE: Final = (
    "Pulumi has not created this stack yet: its stack file has no `encryptionsalt` (nor another "
    "secrets provider's key), which Pulumi writes when it creates a stack. The first `up` creates "
    "everything below; there is nothing to upgrade and no earlier resource name to adopt, so this "
    "render shows neither an upgrade plan nor aliases."
)


def is_new_stack(stack_file: Path) -> bool:
    """Whether Pulumi has never created the stack of this file: no encryption settings in it
    (pulumi/pulumi@v3.272.0:pkg/secrets/passphrase/manager.go `NewPromptingPassphraseSecretsManager`
    stores a new salt in the stack file when it creates the stack; a cloud secrets provider stores
    `secretsprovider` and `encryptedkey`) and no `secure:` value."""
    document = yaml.safe_load(stack_file.read_text()) or {}
    if not isinstance(document, dict):
        return True
    if any(key in document for key in ("encryptionsalt", "secretsprovider", "encryptedkey")):
        return False
    config = document.get("config") or {}
    return not any(isinstance(v, dict) and set(v) == {"secure"} for v in config.values())


def _runtime_values_shown_as_such(value: Json) -> Json:
    if isinstance(value, str):
        return KNOWN_AFTER_UP if value in RUNTIME_FAKES else value
    if isinstance(value, list):
        return [_runtime_values_shown_as_such(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _runtime_values_shown_as_such(v) for k, v in value.items()}
    return value


def summary_markdown(render: Render, *, new_stack: bool = False) -> str:
    tree = Tree(render)
    lines = [
        f"{SUMMARY_TITLE} `{render.stack}`",
        "",
        f"Generated by `python -m homelab render --stack {render.stack}` from the real program under "
        "the recording engine (no cluster, no secrets); do not edit. Secret values show as "
        f"`{SECRET}`, and values only a real `up` knows (a key's expiry) as `{KNOWN_AFTER_UP}`.",
        "",
    ]
    if new_stack:
        lines += ["## New stack", "", NEW_STACK_NOTE, ""]
    lines += ["## Resources by component", ""]
    per_component: Counter[tuple[str, str]] = Counter()
    for record in render.resources:
        top = tree.top(record)
        if record is not top:
            per_component[(top.name, top.type)] += 1
    tops = sorted({(tree.top(r).name, tree.top(r).type) for r in render.resources})
    lines += markdown_table(
        ["Component", "Type", "Resources inside"],
        [[name, type_, str(per_component[(name, type_)])] for name, type_ in tops],
    )
    lines += ["", "## Resources by type", ""]
    by_type = Counter(r.type for r in render.resources)
    lines += markdown_table(["Type", "Count"], [[t, str(n)] for t, n in sorted(by_type.items())])
    releases = [r for r in render.resources if r.type.startswith(HELM_PREFIX)]
    if releases:
        lines += ["", "## Helm releases", ""]
        rows = []
        for record in releases:
            release = helm_release(record)
            rows.append(
                [
                    release["release"],
                    release["namespace"] or "",
                    release["chart"],
                    release["repository"] or "",
                    release["version"] or "",
                ]
            )
        lines += markdown_table(
            ["Release", "Namespace", "Chart", "Repository", "Version"], sorted(rows, key=json.dumps)
        )
    redacted = _runtime_values_shown_as_such(redact(render.outputs, render.output_secret_paths))
    assert isinstance(redacted, Mapping)
    outputs: Mapping[str, Json] = redacted
    # Said in so many words: a stack without a target deploys, but nothing survives a lost disk.
    backup_target = outputs.get("backupTarget")
    if backup_target is not None:
        lines += ["", "## Backups", ""]
        lines.append(
            "No backup is configured: Headscale's database and etcd are not backed up "
            "(set `homelab:backups`, docs/operations.md)."
            if backup_target == "none"
            else f"Headscale's database (Litestream) and etcd snapshots go to `{backup_target}`."
        )
    boot = [(what, outputs[key]) for what, key in BOOT_MEDIA_OUTPUTS if key in outputs]
    if boot:
        # What a person boots, and what a schematic change does (components/cluster/image_factory.py).
        lines += ["", "## Boot media", ""]
        lines += markdown_table(["What", "Value"], boot)
        lines += ["", f"Note: {SCHEMATIC_CHANGE_NOTE}."]
    headers, forwards = _port_forward_rows(outputs)
    if forwards:
        lines += ["", "## Router port forwards", ""]
        lines += markdown_table(headers, forwards)
    if not new_stack:
        lines += upgrade_plan_lines(render)
    lines += ["", "## Stack outputs", ""]
    lines += markdown_table(
        ["Output", "Value"], [[key, value] for key, value in sorted(outputs.items())]
    )
    return "\n".join(lines) + "\n"


# --- the architecture diagram ----------------------------------------------------------------


def component_graph(render: Render) -> tuple[list[ResourceRecord], set[tuple[str, str]]]:
    """Top-level resources (the components of `__main__.py`) and the edges between them.

    An edge `A -> B` means a resource inside B depends on a resource inside A: through its
    dependencies (depends_on and inputs that are outputs of A), or A's provider.
    """
    tree = Tree(render)
    by_urn = tree.by_urn()
    tops = sorted({tree.top(r).urn for r in render.resources})
    edges: set[tuple[str, str]] = set()
    for record in render.resources:
        target = tree.top(record).urn
        sources = set(record.dependencies)
        for urns in record.property_dependencies.values():
            sources.update(urns)
        provider = _provider_urn(record.provider)
        if provider:
            sources.add(provider)
        for urn in sources:
            dependency = by_urn.get(urn)
            if dependency is None:
                continue
            source = tree.top(dependency).urn
            if source != target:
                edges.add((source, target))
    return [by_urn[u] for u in tops], edges


def _identifier(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def _node_ids(nodes: Sequence[ResourceRecord]) -> dict[str, str]:
    """Mermaid ids from names; a name two top-level resources share also carries the type."""
    names = Counter(n.name for n in nodes)
    return {
        n.urn: "c_" + _identifier(n.name if names[n.name] == 1 else f"{n.name}_{n.type}")
        for n in nodes
    }


def _group(type_token: str) -> str:
    """`homelab:platform:MetalLB` -> `platform`; a provider's own types group by package."""
    parts = type_token.split(":")
    return parts[1].split("/")[0] if parts[0] == "homelab" and len(parts) == 3 else parts[0]


def architecture_mermaid(render: Render) -> str:
    """The component graph as a fenced Mermaid flowchart (sorted, so it only changes with code)."""
    nodes, edges = component_graph(render)
    ids = _node_ids(nodes)
    groups: dict[str, list[ResourceRecord]] = defaultdict(list)
    for node in nodes:
        groups[_group(node.type)].append(node)
    lines = ["```mermaid", "flowchart LR"]
    for group in sorted(groups):
        lines.append(f'  subgraph g_{_safe_name(group).replace("-", "_")}["{group}"]')
        for node in sorted(groups[group], key=lambda n: (n.name, n.type)):
            label = f"{node.name}<br/><small>{node.type}</small>"
            shape = ('["', '"]') if not node.custom else ('(["', '"])')
            lines.append(f"    {ids[node.urn]}{shape[0]}{label}{shape[1]}")
        lines.append("  end")
    for source, target in sorted((ids[s], ids[t]) for s, t in edges):
        lines.append(f"  {source} --> {target}")
    lines.append("```")
    return "\n".join(lines) + "\n"


def architecture_markdown(render: Render) -> str:
    return "\n".join(
        [
            "# Architecture",
            "",
            f"<!-- Generated from the real component graph by `{REGENERATE_COMMAND}`; do not edit. -->",
            "",
            f"The components `__main__.py` creates for stack `{render.stack}`. An arrow `A --> B` means "
            "resources inside B depend on resources inside A (typed outputs passed as inputs, "
            "`depends_on`, or A's provider), so Pulumi creates A first and destroys it last.",
            "",
            architecture_mermaid(render),
        ]
    )


def embed_between_markers(
    document: str, block: str, start: str = ARCHITECTURE_START, end: str = ARCHITECTURE_END
) -> str:
    """`document` with the text between the `start` and `end` marker lines replaced by `block`."""
    head, found_start, rest = document.partition(start)
    _, found_end, tail = rest.partition(end)
    if not found_start or not found_end:
        raise ValueError(f"markers {start!r} and {end!r} not found in order")
    return f"{head}{start}\n{block.rstrip()}\n{end}{tail}"


# --- access.md: who reaches what over the tailnet ----------------------------------------------

ACCESS_FILE: Final = "access.md"
CONFIG_MAP: Final = "kubernetes:core/v1:ConfigMap"
INGRESS_ROUTE: Final = "kubernetes:traefik.io/v1alpha1:IngressRoute"


def _env_values(value: Json, name: str) -> Iterable[str]:
    """Every `{"name": name, "value": …}` env entry anywhere inside a record's inputs."""
    if isinstance(value, Mapping):
        if value.get("name") == name and isinstance(value.get("value"), str):
            yield str(value["value"])
        for item in value.values():
            yield from _env_values(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from _env_values(item, name)


def access_file(render: Render) -> dict[str, str]:
    """`access.md` from what the stack ships: the policy file and MagicDNS records Headscale
    mounts, the routes the subnet router advertises (TS_ROUTES, read by containerboot:
    tailscale/tailscale@v1.102.3 cmd/containerboot/settings.go) and the Traefik routes on the
    internet-facing entrypoint. Nothing when the render holds no Headscale policy."""
    policy: dict[str, Any] | None = None
    web_hosts: dict[str, Any] = {}
    for record in render.by_type(CONFIG_MAP):
        data = record.inputs.get("data")
        if not isinstance(data, Mapping) or not isinstance(data.get("policy.json"), str):
            continue
        policy = json.loads(str(data["policy.json"]))
        settings = yaml.safe_load(str(data.get("config.yaml") or "{}")) or {}
        for entry in (settings.get("dns") or {}).get("extra_records") or []:
            if entry.get("type") == "A":
                web_hosts[entry["name"]] = ipaddress.IPv4Address(entry["value"])
    if policy is None:
        return {}
    routes = sorted(
        {
            ipaddress.IPv4Network(route.strip())
            for record in render.resources
            for text in _env_values(dict(record.inputs), "TS_ROUTES")
            for route in text.split(",")
            if route.strip()
        }
    )
    # The router carries the tag that approves its routes: its key is minted with the router tag
    # and render_policy makes that tag the routes' auto-approver.
    approver_tags = {
        tag
        for names in ((policy.get("autoApprovers") or {}).get("routes") or {}).values()
        for tag in names
        if tag.startswith("tag:")
    }
    tailnet = access.Tailnet(policy, {tag: tuple(routes) for tag in sorted(approver_tags)})
    public_routes: list[str] = []
    for record in render.by_type(INGRESS_ROUTE):
        spec = record.inputs.get("spec")
        if not isinstance(spec, Mapping) or PUBLIC_ENTRYPOINT not in (
            spec.get("entryPoints") or []
        ):
            continue
        public_routes.extend(
            str(route.get("match"))
            for route in spec.get("routes") or []
            if isinstance(route, Mapping)
        )
    text = access.access_markdown(tailnet, web_hosts, sorted(public_routes), stack=render.stack)
    return {ACCESS_FILE: text}


def link_access(summary: str) -> str:
    """The summary with a link to access.md after its opening paragraph."""
    head, sep, rest = summary.partition("\n\n## ")
    link = (
        f"Who reaches what over the tailnet and from the internet: [{ACCESS_FILE}]({ACCESS_FILE})."
    )
    return f"{head}\n\n{link}{sep}{rest}" if sep else f"{summary}\n{link}\n"


# --- the whole render ------------------------------------------------------------------------


def render_files(render: Render, *, new_stack: bool = False) -> dict[str, str]:
    """Relative path -> file text of the whole render, in sorted path order. `new_stack`: a stack
    Pulumi has not created yet (`is_new_stack`), with no upgrade plan and no aliases to show."""
    tree = Tree(render)
    names = _FileNames()
    files: dict[str, str] = {
        SUMMARY_FILE: summary_markdown(render, new_stack=new_stack),
        "RESOURCES.txt": resources_text(render, new_stack=new_stack),
        "architecture.md": architecture_markdown(render),
    }
    files.update(_kubernetes_files(tree))
    files.update(_resource_files(tree, names))
    files.update(_invoke_files(render, names))
    if access := access_file(render):
        files.update(access)
        files[SUMMARY_FILE] = link_access(files[SUMMARY_FILE])
    return dict(sorted(files.items()))


# --- chart manifests (helm template) ----------------------------------------------------------


@dataclass(frozen=True)
class ChartTemplates:
    """`charts/<release>.yaml` files, or why there are none."""

    files: Mapping[str, str]
    skipped: str | None = None


Runner = Any  # subprocess.run's signature; a test passes a recording fake


def helm_template_command(helm: str, release: Mapping[str, Json], values_file: Path) -> list[str]:
    """`helm template NAME CHART` with the release's repository, version, namespace and values.

    Flags as helm v3.19.0 defines them (helm/helm@v3.19.0: cmd/helm/template.go, `--include-crds`
    and `--kube-version`; cmd/helm/flags.go, `--repo`, `--version` and `--values`;
    pkg/cli/environment.go, `--namespace`). The pinned Kubernetes is the Capabilities version
    the templates see, as on the cluster.
    """
    command = [
        helm,
        "template",
        str(release["release"]),
        str(release["chart"]),
        "--namespace",
        str(release["namespace"] or "default"),
        "--values",
        str(values_file),
        "--include-crds",
        "--kube-version",
        f"v{pins.KUBERNETES_VERSION}",
    ]
    if release.get("repository"):
        command += ["--repo", str(release["repository"])]
    if release.get("version"):
        command += ["--version", str(release["version"])]
    return command


def template_charts(
    render: Render, *, helm: str | None = None, run: Runner = subprocess.run
) -> ChartTemplates:
    """Each Helm release of `render` templated by helm, with its (redacted) values.

    Without helm on PATH this is skipped, not failed: the rest of the render needs no tools. A
    chart helm cannot template is an error (its last stderr line), since the diff would hide it.
    """
    found = helm or shutil.which("helm")
    if found is None:
        return ChartTemplates({}, "helm is not on PATH")
    files: dict[str, str] = {}
    names = _FileNames()
    releases = [r for r in render.resources if r.type.startswith(HELM_PREFIX)]
    with tempfile.TemporaryDirectory(prefix="homelab-charts-") as scratch:
        for record in releases:
            release = helm_release(record)
            values_file = Path(scratch) / f"{_safe_name(record.urn)}.json"
            # JSON is YAML: helm reads it as a values file.
            values_file.write_text(json.dumps(release["values"], sort_keys=True))
            command = helm_template_command(found, release, values_file)
            result = run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                lines = [line for line in result.stderr.splitlines() if line.strip()]
                raise RenderOutputError(
                    f"helm template of {release['chart']} {release['version'] or ''} failed: "
                    f"{lines[-1] if lines else 'no output'}"
                )
            path = names.allocate("charts", str(release["release"]), record.name)
            head = (
                f"# helm template of chart {release['chart']} {release['version'] or ''} "
                f"({release['repository'] or 'local'}) with the values of "
                f"{Tree(render).name_path(record)}; generated, do not edit.\n"
            )
            files[path] = head + result.stdout
    return ChartTemplates(dict(sorted(files.items())))


def render_stack_files(stack: str) -> dict[str, str]:
    """Run the program for `stack` (its Pulumi.<stack>.yaml) and return the render's files."""
    return render_files(engine.render(stack), new_stack=is_new_stack(engine.stack_file(stack)))


def is_previous_render(directory: Path) -> bool:
    summary = directory / SUMMARY_FILE
    return summary.is_file() and summary.read_text().startswith(SUMMARY_TITLE)


def write_files(files: Mapping[str, str], out: Path) -> None:
    """Replace the contents of `out` with `files`; refuses a directory that is not a render."""
    if out.exists():
        if not out.is_dir():
            raise RenderOutputError(f"{out} exists and is not a directory")
        if any(out.iterdir()) and not is_previous_render(out):
            raise RenderOutputError(
                f"refusing to overwrite {out}: it is not empty and holds no previous render "
                f"({SUMMARY_FILE}); choose another --out"
            )
        shutil.rmtree(out)
    for relative, text in files.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def read_files(directory: Path) -> dict[str, str]:
    """A render directory back as relative path -> text (for comparing with a fresh render)."""
    return {
        path.relative_to(directory).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


# --- the pull-request comment ----------------------------------------------------------------

DIFF_MARKER: Final = "<!-- homelab-render-diff -->"
# GitHub rejects comments over 65536 characters; leave room for the text around the diff.
COMMENT_DIFF_LIMIT: Final = 60_000


def unified_diff(base: Mapping[str, str], head: Mapping[str, str]) -> tuple[str, list[str]]:
    """A `diff -ru`-style unified diff of two renders, and one summary line per changed file."""
    chunks: list[str] = []
    changed: list[str] = []
    for path in sorted(set(base) | set(head)):
        before, after = base.get(path), head.get(path)
        if before == after:
            continue
        lines = list(
            difflib.unified_diff(
                (before or "").splitlines(keepends=True),
                (after or "").splitlines(keepends=True),
                fromfile=f"base/{path}" if before is not None else "/dev/null",
                tofile=f"head/{path}" if after is not None else "/dev/null",
            )
        )
        added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
        removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
        state = "added" if before is None else "removed" if after is None else "changed"
        changed.append(f"- `{path}` {state} (+{added} −{removed})")
        chunks.extend(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            for line in lines
        )
    return "".join(chunks), changed


def diff_comment(
    base: Mapping[str, str], head: Mapping[str, str], *, stack: str, limit: int = COMMENT_DIFF_LIMIT
) -> str:
    """The pull-request comment for a render diff (its first line marks it, for editing in place)."""
    diff, changed = unified_diff(base, head)
    lines = [DIFF_MARKER, f"### Offline render of stack `{stack}`", ""]
    if not changed:
        lines.append(f"This pull request changes nothing that stack `{stack}` would create.")
    else:
        lines.append(f"What stack `{stack}` would create changes in {len(changed)} file(s):")
        lines.append("")
        lines.extend(changed)
        if len(diff) > limit:
            cut = diff.rfind("\n", 0, limit) + 1
            diff = diff[:cut] + "... (truncated: the full diff is in the `render-diff` artifact)\n"
        fence = "````" if "```" in diff else "```"
        lines += [
            "",
            "<details><summary>Diff</summary>",
            "",
            f"{fence}diff",
            diff.rstrip("\n"),
            fence,
            "",
            "</details>",
        ]
    lines += [
        "",
        "Rendered without a cluster or secrets by `python -m homelab render` (homelab/render.py); "
        "the `pulumi preview` comment shows what the engine would do against the live stack.",
    ]
    return "\n".join(lines) + "\n"


def read_render(directory: Path) -> dict[str, str]:
    """A render directory as files; a missing directory is an empty render (e.g. a new base)."""
    return read_files(directory) if directory.is_dir() else {}
