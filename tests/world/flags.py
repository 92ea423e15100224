"""Command lines parsed the way cobra and pflag parse them (talosctl and kubectl both use them).

`--name=value` and `--name value`, `-n value`, `-nvalue` and `-n=value`; a boolean flag takes no
separate value (`--wait=false` only); a slice flag splits on commas and accumulates; `--` ends
the flags. An unknown flag is an error, worded as pflag words it (spf13/pflag flag.go
`parseLongArg`/`parseShortArg`: "unknown flag: --x", "unknown shorthand flag: 'x' in -x").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# kind: "bool", "string", "slice" (comma separated, repeatable), "array" (repeatable, no split),
# "int", "duration".
Spec = Mapping[str, tuple[str, str | None]]


class FlagError(Exception):
    """A command line pflag refuses; the message is pflag's."""


class Parsed:
    """Flags by name, the other words, and what follows `--` (kubectl exec's command)."""

    def __init__(self, flags: dict[str, Any] | None = None) -> None:
        self.flags: dict[str, Any] = flags or {}
        self.args: list[str] = []
        self.rest: list[str] = []

    def get(self, name: str, default: Any = None) -> Any:
        return self.flags.get(name, default)


_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


def _set(parsed: Parsed, name: str, kind: str, value: str) -> None:
    if kind == "bool":
        if value not in _TRUE | _FALSE:
            raise FlagError(
                f'invalid argument "{value}" for "--{name}" flag: strconv.ParseBool: '
                f'parsing "{value}": invalid syntax'
            )
        parsed.flags[name] = value in _TRUE
    elif kind == "slice":
        parsed.flags.setdefault(name, []).extend(v for v in value.split(",") if v != "")
    elif kind == "array":
        parsed.flags.setdefault(name, []).append(value)
    elif kind == "int":
        parsed.flags[name] = int(value)
    elif kind == "duration":
        parsed.flags[name] = parse_duration(value)
    else:
        parsed.flags[name] = value


def parse_duration(text: str) -> float:
    """A Go duration (`600s`, `10m`, `1h30m`, `1m0s`) in seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    total, number = 0.0, ""
    index = 0
    if text in ("0", ""):
        return 0.0
    while index < len(text):
        char = text[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = text[index : index + 2] if text[index : index + 2] in units else char
        if unit not in units or not number:
            raise FlagError(f'time: invalid duration "{text}"')
        total += float(number) * units[unit]
        number = ""
        index += len(unit)
    if number:
        raise FlagError(f'time: missing unit in duration "{text}"')
    return total


def parse(argv: Sequence[str], spec: Spec) -> Parsed:
    shorthands = {short: name for name, (_, short) in spec.items() if short}
    parsed = Parsed()
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            parsed.rest = list(argv[index:])
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name not in spec:
                raise FlagError(f"unknown flag: --{name}")
            kind = spec[name][0]
        elif arg.startswith("-") and len(arg) > 1:
            short, value = arg[1], arg[2:]
            eq = ""
            if value.startswith("="):
                eq, value = "=", value[1:]
            elif value:
                eq = "="
            if short not in shorthands:
                raise FlagError(f"unknown shorthand flag: '{short}' in {arg}")
            name = shorthands[short]
            kind = spec[name][0]
        else:
            parsed.args.append(arg)
            continue
        if not eq:
            if kind == "bool":
                value = "true"
            elif index < len(argv):
                value = argv[index]
                index += 1
            else:
                raise FlagError(f"flag needs an argument: --{name}")
        _set(parsed, name, kind, value)
    return parsed


def command_words(argv: Sequence[str], spec: Spec, depth: int) -> list[str]:
    """The first `depth` words that are not flags or flag values: cobra's command path."""
    words: list[str] = []
    shorthands = {short: name for name, (_, short) in spec.items() if short}
    index = 0
    while index < len(argv) and len(words) < depth:
        arg = argv[index]
        index += 1
        if arg == "--":
            break
        if arg.startswith("-") and len(arg) > 1:
            name = arg[2:].partition("=")[0] if arg.startswith("--") else shorthands.get(arg[1], "")
            takes_value = name in spec and spec[name][0] != "bool"
            inline = "=" in arg or (not arg.startswith("--") and len(arg) > 2)
            if takes_value and not inline:
                index += 1
            continue
        words.append(arg)
    return words
