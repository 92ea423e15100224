"""The JSON Schema of a stack file (Pulumi.<stack>.yaml), generated from the config model.

    python -m homelab.schema --write    regenerate schema/stack.schema.json (a test keeps it current)

Editors that speak the yaml-language-server modeline (`# yaml-language-server: $schema=...`, which
`python -m homelab init` writes at the top of each stack file) complete and check the `homelab:*`
keys as they are typed. The schema is a convenience for editing: the program's validation
(config/loader.py, with the cross-field rules) stays the one that decides.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from config.loader import SECRET_KEYS
from config.model import HomelabConfig
from config.rules import NS
from homelab import engine

SCHEMA_FILE: Final = engine.PROJECT_ROOT / "schema" / "stack.schema.json"
WRITE_COMMAND: Final = "./scripts/run python -m homelab.schema --write"


def _secret(description: str) -> dict[str, Any]:
    """A secret as `pulumi config set --secret` stores it: an encrypted `secure:` value."""
    return {
        "description": (
            f"{description} Set it with `./scripts/pulumi config set --secret`; the file holds "
            "only the encrypted value."
        ),
        "type": "object",
        "properties": {"secure": {"type": "string"}},
        "required": ["secure"],
        "additionalProperties": False,
    }


def stack_schema() -> dict[str, Any]:
    """The schema of a whole stack file: Pulumi's own top-level keys and the `homelab:` config."""
    model = HomelabConfig.model_json_schema(by_alias=True)
    properties: dict[str, Any] = {}
    for key, schema in model["properties"].items():
        if key in SECRET_KEYS:
            properties[f"{NS}:{key}"] = _secret(str(schema.get("description", "")))
        else:
            properties[f"{NS}:{key}"] = schema
    required = [f"{NS}:{key}" for key in model.get("required", []) if key not in SECRET_KEYS]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "homelab stack file (Pulumi.<stack>.yaml)",
        "description": (
            f"Generated from config/model.py by `{WRITE_COMMAND}`; do not edit. Every key is "
            'described in README.md, "Config reference".'
        ),
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": properties,
                "required": required,
                # Other namespaces (a provider's own config) are Pulumi's business.
                "patternProperties": {f"^(?!{NS}:)[^:]+:.+$": {}},
                "additionalProperties": False,
            },
            "secretsprovider": {"type": "string"},
            "encryptedkey": {"type": "string"},
            "encryptionsalt": {"type": "string"},
        },
        "required": ["config"],
        "$defs": model.get("$defs", {}),
    }


def schema_text() -> str:
    return json.dumps(stack_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m homelab.schema", description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"write {SCHEMA_FILE.name}")
    parser.add_argument("--out", type=Path, default=SCHEMA_FILE)
    args = parser.parse_args(argv)
    if not args.write:
        print(schema_text(), end="")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(schema_text(), encoding="utf-8")
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
