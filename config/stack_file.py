"""Reading a stack file (Pulumi.<stack>.yaml) into its `config:` mapping, or one line saying why not.

Every command that reads a stack file goes through here, so a YAML syntax error, a document that
is a list, or a `config:` that is not a mapping is one line naming the file, and where in it, and
what was expected: never a parser's traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class StackFileError(Exception):
    """The stack file cannot be used; the message is one line."""


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def _at(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _syntax_error(path: Path, error: yaml.YAMLError) -> StackFileError:
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return StackFileError(f"{path}: not valid YAML ({error})")
    noticed = error.problem_mark
    what = error.problem or "invalid YAML"
    started = error.context_mark
    if (
        error.context
        and started is not None
        and (started.line, started.column)
        != (
            noticed.line,
            noticed.column,
        )
    ):
        # An unclosed quote or bracket is noticed only where the stream ends, maybe far below:
        # where the quoted scalar (or the mapping) started is as much the place to look.
        return StackFileError(
            f"{path}: {what} at {_at(noticed)}, {error.context} that starts at {_at(started)}; "
            "fix the YAML between those two places (an unclosed quote or bracket, or an "
            "indentation, often)"
        )
    context = f" ({error.context})" if error.context else ""
    return StackFileError(
        f"{path}: {_at(noticed)}: {what}{context}; "
        "fix the YAML there (an indentation or a quote, often)"
    )


def read_stack_document(path: Path) -> dict[str, Any]:
    """The stack file's `config:` mapping ({namespace:key: value}); {} for a file without one."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise StackFileError(f"cannot read {path}: {reason}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise _syntax_error(path, error) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise StackFileError(
            f"{path}: the document is {_kind(document)}, not a mapping; a stack file is a "
            "mapping with `config:` holding `homelab:<key>: <value>` entries"
        )
    config = document.get("config")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise StackFileError(
            f"{path}: `config` is {_kind(config)}, not a mapping of `namespace:key: value` "
            "entries (e.g. `homelab:domain: example.org`)"
        )
    if bad := sorted(str(k) for k in config if not isinstance(k, str) or ":" not in k):
        raise StackFileError(
            f"{path}: config key {bad[0]!r} has no namespace; keys are `homelab:<key>`"
        )
    return dict(config)
