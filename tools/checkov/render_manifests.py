"""Write the Kubernetes manifests this project creates, as YAML files for checkov to scan.

Usage: python -m tools.checkov.render_manifests OUT_DIR   (scripts/checkov runs it)

OUT_DIR/project/<stack>/ gets every Kubernetes object of every committed stack file (the recording
engine's records, plus objects passed inline to yaml/v2 ConfigGroups); OUT_DIR/reference/ gets the
hardened reference workload (tools/checkov/reference_workload.py). Helm charts' own templates are
upstream's and are not rendered here. Values at Pulumi secret paths are replaced by a placeholder,
so not even a sentinel secret is written to disk. Exits 2 when a checkov skip annotation has no
reason (components/shared/security.py `checkov_skips` makes well-formed ones).
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from homelab import engine
from homelab.engine import Render, ResourceRecord
from tests.harness import kubernetes_records, manifest, render_stack

REFERENCE_PROGRAM = Path(__file__).resolve().parent / "reference_workload.py"
REDACTED = "REDACTED-PULUMI-SECRET"
CONFIG_GROUP = "kubernetes:yaml/v2:ConfigGroup"
_SKIP_KEY = re.compile(r"(checkov|bridgecrew|cortex)\.io/skip")
_SKIP_VALUE = re.compile(r"^CKV2?_K8S_[0-9]+=[^=\n]*\S[^=\n]*$")


def stacks() -> list[str]:
    """Every committed stack: Pulumi.<stack>.yaml beside the program."""
    return sorted(
        p.name.removeprefix("Pulumi.").removesuffix(".yaml")
        for p in engine.PROJECT_ROOT.glob("Pulumi.*.yaml")
    )


def _redact(value: Any, parts: list[str]) -> Any:
    """`value` with every string at or below the dotted path `parts` replaced."""
    if not parts:
        if isinstance(value, dict):
            return {k: _redact(v, []) for k, v in value.items()}
        if isinstance(value, list):
            return [_redact(v, []) for v in value]
        return REDACTED if isinstance(value, str) else value
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict) and head in value:
        value[head] = _redact(value[head], rest)
    elif isinstance(value, list) and head.isdigit() and int(head) < len(value):
        value[int(head)] = _redact(value[int(head)], rest)
    return value


def redacted_manifest(record: ResourceRecord) -> dict[str, Any]:
    body = manifest(record)
    for path in record.secret_paths:
        body = _redact(body, path.split("."))
    return body


def _config_group_objects(record: ResourceRecord) -> Iterable[dict[str, Any]]:
    """Objects a yaml/v2 ConfigGroup would apply: `objs`, and documents of `yaml`."""
    inputs = copy.deepcopy(dict(record.inputs))
    for path in record.secret_paths:
        inputs = _redact(inputs, path.split("."))
    for obj in inputs.get("objs") or []:
        if isinstance(obj, dict):
            yield obj
    texts = inputs.get("yaml") or []
    for text in [texts] if isinstance(texts, str) else texts:
        yield from (d for d in yaml.safe_load_all(str(text)) if isinstance(d, dict))


def project_manifests(render: Render) -> list[dict[str, Any]]:
    manifests = [redacted_manifest(r) for r in kubernetes_records(render)]
    for record in render.by_type(CONFIG_GROUP):
        manifests.extend(_config_group_objects(record))
    return manifests


def skip_annotation_problems(document: dict[str, Any]) -> list[str]:
    """Checkov skips must name a check and give a one-line reason (checkov splits on '=')."""
    metadata = document.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    where = f"{document.get('kind')} {metadata.get('namespace', '')}/{metadata.get('name')}"
    return [
        f"{where}: annotation {key}: {value!r} is not '<check id>=<reason>'"
        for key, value in sorted(annotations.items())
        if _SKIP_KEY.search(key) and not _SKIP_VALUE.match(str(value))
    ]


def _file_name(index: int, document: dict[str, Any]) -> str:
    metadata = document.get("metadata") or {}
    parts = [document.get("kind"), metadata.get("namespace"), metadata.get("name")]
    slug = "-".join(str(p) for p in parts if p)
    return f"{index:03d}-{re.sub(r'[^A-Za-z0-9.-]+', '_', slug).lower()}.yaml"


def write_manifests(documents: list[dict[str, Any]], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for index, document in enumerate(documents):
        text = yaml.safe_dump(document, sort_keys=True)
        (directory / _file_name(index, document)).write_text(text)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 64
    out = Path(argv[0])
    rendered: dict[Path, list[dict[str, Any]]] = {
        out / "project" / stack: project_manifests(render_stack(stack)) for stack in stacks()
    }
    reference = engine.render("reference", config={}, secret_keys=[], program=REFERENCE_PROGRAM)
    rendered[out / "reference"] = project_manifests(reference)
    problems: list[str] = []
    for directory, documents in rendered.items():
        write_manifests(documents, directory)
        problems += [p for d in documents for p in skip_annotation_problems(d)]
        print(f"checkov: {len(documents)} manifests in {directory.relative_to(out)}")
    for problem in problems:
        print(f"checkov: {problem}", file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
