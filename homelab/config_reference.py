"""The README's config reference, generated from the pydantic model in config/model.py.

    python -m homelab.config_reference           # print the generated section
    python -m homelab.config_reference --write   # rewrite README.md between the markers
    python -m homelab.config_reference --check   # exit 1 when README.md is out of date

The model is the only source: every key, type, default and description below comes from it, so
the reference cannot drift (tests/config/test_config_reference.py compares README.md with it).
"""

from __future__ import annotations

import argparse
import html
import ipaddress
import json
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, SecretStr
from pydantic.fields import FieldInfo

from config import model, policy
from config.model import HomelabConfig
from config.rules import NS

README = Path(__file__).resolve().parent.parent / "README.md"
START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"

# Readable names of the constrained string types (the validator identifies the type).
_NAMED_TYPES: tuple[tuple[Any, str], ...] = (
    (model.DnsLabel, "DNS label"),
    (model.DnsName, "DNS name"),
    (model.Email, "e-mail address"),
    (model.TalosVersion, "Talos version `vX.Y.Z`"),
    (model.KubernetesVersion, "Kubernetes version `X.Y.Z`"),
    (model.NameserverWithPort, "`IPv4:port`"),
    (model.AddressRange, "IPv4 range `first-last` or CIDR"),
    (policy.GroupName, "group `group:name`"),
    (policy.TagName, "tag `tag:name`"),
    (policy.Owner, "user `name@`, group or tag"),
    (policy.Member, "user `name@`"),
    (policy.HostAlias, "host alias"),
    (policy.Destination, "`target:ports`"),
)
_VALIDATOR_NAMES: tuple[tuple[AfterValidator, str], ...] = tuple(
    (get_args(alias)[1], name) for alias, name in _NAMED_TYPES
)
_PLAIN_TYPES: dict[Any, str] = {
    str: "string",
    int: "integer",
    bool: "boolean",
    ipaddress.IPv4Address: "IPv4 address",
    ipaddress.IPv4Network: "IPv4 CIDR",
    SecretStr: "secret string",
}


@dataclass(frozen=True)
class FieldDoc:
    """One config key: its dotted path under `homelab:` ('[]' marks list items)."""

    path: str
    type: str
    default: str
    description: str
    secret: bool
    depth: int


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _is_list(annotation: Any) -> bool:
    if get_origin(annotation) is list:
        return True
    return any(_is_list(a) for a in get_args(annotation) if get_origin(annotation) is not Annotated)


def _constraints(metadata: Sequence[Any], base: str) -> str:
    notes: list[str] = []
    ge = next((m.ge for m in metadata if getattr(m, "ge", None) is not None), None)
    le = next((m.le for m in metadata if getattr(m, "le", None) is not None), None)
    if ge is not None and le is not None:
        notes.append(f"{ge}–{le}")
    min_length = next((m.min_length for m in metadata if getattr(m, "min_length", None)), None)
    if min_length:
        notes.append(f"at least {min_length}")
    pattern = next((m.pattern for m in metadata if getattr(m, "pattern", None)), None)
    if pattern:
        notes.append(f"matching `{pattern}`")
    return f"{base} ({', '.join(notes)})" if notes else base


def describe_type(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    """A short, readable name for a field's type, with its constraints."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extra = get_args(annotation)
        return describe_type(base, [*extra, *metadata])
    for validator, name in _VALIDATOR_NAMES:
        if validator in metadata:
            return name
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        return " or ".join(describe_type(a, metadata) for a in options)
    if origin is Literal:
        return " or ".join(f"`{value}`" for value in get_args(annotation))
    if origin is list:
        (item,) = get_args(annotation)
        item_name = describe_type(item)
        return _constraints(
            metadata, "list of objects" if item_name == "object" else f"list of {item_name}"
        )
    if origin is dict:
        key, value = get_args(annotation)
        return f"map of {describe_type(key)} to {describe_type(value)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    return _constraints(
        metadata, _PLAIN_TYPES.get(annotation, getattr(annotation, "__name__", "?"))
    )


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def describe_default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True, validated_data={})
    if isinstance(value, BaseModel):
        return "see its fields"
    if value is None:
        return "unset"
    return f"`{_yaml(value)}`"


def _is_secret(annotation: Any) -> bool:
    # Also inside `Annotated[SecretStr, ...]` and `... | None`.
    return annotation is SecretStr or any(_is_secret(arg) for arg in get_args(annotation))


def iter_fields(
    owner: type[BaseModel] = HomelabConfig, prefix: str = "", depth: int = 0
) -> Iterator[FieldDoc]:
    """Every field of `owner` and of the models inside it, depth first, in declaration order."""
    for name, field in owner.model_fields.items():
        path = f"{prefix}{field.alias or name}"
        yield FieldDoc(
            path=path,
            type=describe_type(field.annotation, field.metadata),
            default=describe_default(field),
            description=field.description or "",
            secret=_is_secret(field.annotation),
            depth=depth,
        )
        inner = _inner_model(field.annotation)
        if inner is not None:
            marker = "[]" if _is_list(field.annotation) else ""
            yield from iter_fields(inner, f"{path}{marker}.", depth + 1)


def _text(description: str) -> str:
    # Descriptions say things like '<host>.<domain>', which Markdown would take for HTML tags.
    return html.escape(description, quote=False)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def generate() -> str:
    """The Markdown that belongs between the README markers."""
    out = [
        "Generated from `config/model.py` by `./scripts/run python -m homelab.config_reference --write`; "
        "edit the model, not this section. Every key lives in the `homelab:` namespace of "
        "`Pulumi.<stack>.yaml`; objects and lists are YAML, and secrets are set with "
        "`./scripts/pulumi config set --secret homelab:<key>` (the Pulumi CLI on this project's "
        "backend).",
        "",
    ]
    fields = list(iter_fields())
    for top in (f for f in fields if f.depth == 0):
        out.append(f"### `{NS}:{top.path}`" + (" (secret)" if top.secret else ""))
        out.append("")
        default = "Required." if top.default == "required" else f"Default: {top.default}."
        summary = f"{_text(top.description)} Type: {top.type}. {default}"
        if top.secret:
            summary += (
                f" Set it with `./scripts/pulumi config set --secret {NS}:{top.path} <value>`."
            )
        out.append(summary)
        nested = [
            f
            for f in fields
            if f.depth > 0 and f.path.startswith((f"{top.path}.", f"{top.path}[]"))
        ]
        if nested:
            out += ["", "| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
            for doc in nested:
                key = doc.path.removeprefix(top.path).removeprefix(".")
                out.append(
                    f"| `{key}` | {_cell(doc.type)} | {_cell(doc.default)} | "
                    f"{_cell(_text(doc.description))} |"
                )
        out.append("")
    return "\n".join(out)


def replace_section(text: str, body: str) -> str:
    """`text` with everything between the markers replaced by `body`."""
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"README.md needs the markers {START} and {END}")
    return f"{head}{START}\n{body}{END}{tail}"


def current_section(text: str) -> str:
    _, _, rest = text.partition(START)
    section, _, _ = rest.partition(END)
    return section.removeprefix("\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite README.md's section")
    action.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    args = parser.parse_args(argv)
    body = generate()
    if args.write:
        README.write_text(replace_section(README.read_text(), body))
    elif args.check:
        if current_section(README.read_text()) != body:
            print(
                "README.md's config reference is stale; run: "
                "./scripts/run python -m homelab.config_reference --write"
            )
            return 1
    else:
        sys.stdout.write(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
