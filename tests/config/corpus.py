"""The config fixture corpus: invalid mutations of the homelab stack and valid example stacks.

An invalid fixture (tests/fixtures/configs/invalid/*.yaml) describes a mutation of the committed
homelab config (`tests.harness.stack_raw_config()`) and the problem lines it must produce:

    description: Traefik's IP outside every MetalLB pool
    rule: traefik_ip_in_pool            # optional: the config/rules.py rule(s) it exercises
    set: {network.traefikIp: 192.168.0.250}   # dotted paths, list items by index
    delete: [tls.acmeEmail]             # dotted paths removed after `set`
    plaintext: [dnsApiToken]            # top-level keys stored unencrypted
    stack: homelab                      # optional: the stack the config belongs to
    other: {homelabs:apps: [...]}       # optional: stack keys in other namespaces
    expect:                             # exactly one entry per problem line
      - key: homelab:network.traefikIp
        contains: inside a MetalLB pool
        value: 192.168.0.250            # optional: text the shown value must contain

A valid fixture (tests/fixtures/configs/valid/*.yaml) is a stack file: a `config:` block with
`homelab:` keys, without secrets (the tests add the sentinel token, as the engine does).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from config.credentials import HIDDEN
from config.loader import MISPLACED, SECRET_KEYS
from config.rules import NS, Problem
from homelab import engine
from tests.harness import PROJECT_ROOT, stack_raw_config

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "configs"
INVALID_DIR = FIXTURES / "invalid"
VALID_DIR = FIXTURES / "valid"

# Values a problem line shows instead of the user's value (so there is nothing to compare).
PLACEHOLDER_VALUES = ("(not set)", "unknown key", "(stored in plaintext)", MISPLACED, HIDDEN)


@dataclass(frozen=True)
class Expected:
    key: str
    contains: str
    value: str | None


@dataclass(frozen=True)
class InvalidCase:
    name: str
    description: str
    rules: tuple[str, ...]
    set: Mapping[str, Any]
    delete: tuple[str, ...]
    plaintext: frozenset[str]
    expect: tuple[Expected, ...]
    stack: str | None = None
    other: Mapping[str, Any] = field(default_factory=dict)

    def raw(self) -> dict[str, Any]:
        """The homelab stack's raw config with this case's mutation applied."""
        return mutate(stack_raw_config(), self.set, self.delete)


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def load_invalid_case(path: Path) -> InvalidCase:
    document = yaml.safe_load(path.read_text())
    known = {"description", "rule", "set", "delete", "plaintext", "expect", "stack", "other"}
    unknown = set(document) - known
    if unknown:
        raise ValueError(f"{path.name}: unknown fixture fields {sorted(unknown)}")
    return InvalidCase(
        name=path.stem,
        description=document["description"],
        rules=_as_tuple(document.get("rule")),
        set=document.get("set") or {},
        delete=_as_tuple(document.get("delete")),
        plaintext=frozenset(_as_tuple(document.get("plaintext"))),
        stack=document.get("stack"),
        other=document.get("other") or {},
        expect=tuple(
            Expected(
                key=e["key"],
                contains=e["contains"],
                value=None if e.get("value") is None else str(e["value"]),
            )
            for e in document["expect"]
        ),
    )


def invalid_cases() -> list[InvalidCase]:
    return [load_invalid_case(p) for p in sorted(INVALID_DIR.glob("*.yaml"))]


def valid_fixture_paths() -> list[Path]:
    return sorted(VALID_DIR.glob("*.yaml"))


def valid_raw_config(path: Path) -> dict[str, Any]:
    """A valid fixture's config keyed without namespace, plus the sentinel DNS token."""
    config, _ = engine.read_stack_file(path)
    raw = {key.partition(":")[2]: value for key, value in config.items()}
    raw.setdefault("dnsApiToken", engine.SENTINEL_SECRETS["dnsApiToken"])
    return raw


# --- mutations -------------------------------------------------------------------------------


def _step(container: Any, part: str) -> Any:
    return container[int(part)] if isinstance(container, list) else container[part]


def mutate(
    raw: Mapping[str, Any], changes: Mapping[str, Any], deletions: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A deep copy of `raw` with dotted-path `changes` set, then `deletions` removed.

    Setting creates missing objects on the way; index len(list) appends to a list.
    """
    result: dict[str, Any] = copy.deepcopy(dict(raw))
    for path, value in changes.items():
        *parents, last = path.split(".")
        target: Any = result
        for part in parents:
            if isinstance(target, dict) and part not in target:
                target[part] = {}
            target = _step(target, part)
        if isinstance(target, list):
            index = int(last)
            if index == len(target):
                target.append(copy.deepcopy(value))
            else:
                target[index] = copy.deepcopy(value)
        else:
            target[last] = copy.deepcopy(value)
    for path in deletions:
        *parents, last = path.split(".")
        target = result
        for part in parents:
            target = _step(target, part)
        if isinstance(target, list):
            del target[int(last)]
        else:
            del target[last]
    return result


def key_of(path: str) -> str:
    """The problem key for a dotted mutation path: 'cluster.nodes.0.ip' -> 'homelab:cluster.nodes[0].ip'."""
    text = ""
    for part in path.split("."):
        text += f"[{part}]" if part.isdigit() else ("." if text else "") + part
    return f"{NS}:{text}"


def shown_forms(value: Any) -> set[str]:
    """How a scalar value may appear in a problem line (JSON or Python spelling)."""
    return {str(value), json.dumps(value)}


# --- matching problems to expectations -------------------------------------------------------


def match_expectations(
    problems: list[Problem], expected: tuple[Expected, ...]
) -> dict[Expected, Problem]:
    """Pair every expectation with its own problem line; raise AssertionError naming the misfit."""
    lines = "\n".join(p.line() for p in problems)
    assert len(problems) == len(expected), (
        f"expected {len(expected)} problem line(s), got {len(problems)}:\n{lines}"
    )
    unused = list(problems)
    pairs: dict[Expected, Problem] = {}
    for expectation in expected:
        found = next(
            (
                p
                for p in unused
                if p.key == expectation.key
                and expectation.contains in p.line()
                and (expectation.value is None or expectation.value in p.value)
            ),
            None,
        )
        assert found is not None, f"no line matches {expectation} in:\n{lines}"
        unused.remove(found)
        pairs[expectation] = found
    return pairs


def problem_lines(message: str) -> list[str]:
    """The problem lines of a rendered ConfigError (without its heading)."""
    return [line.strip() for line in message.splitlines() if line.startswith("  ")]


def is_secret_key(key: str) -> bool:
    return key.removeprefix(f"{NS}:").split(".")[0].split("[")[0] in SECRET_KEYS


# --- rendering through the engine ------------------------------------------------------------


def render_raw(
    raw: Mapping[str, Any],
    plaintext: frozenset[str] = frozenset(),
    *,
    stack: str = "test",
    other: Mapping[str, Any] | None = None,
) -> engine.Render:
    """Render a raw config as the CLI would pass it: secrets encrypted unless listed in
    `plaintext`; `other` holds keys of other namespaces (`namespace:key`), as a stack file may."""
    config = {f"{NS}:{key}": value for key, value in raw.items()} | dict(other or {})
    secret_keys = sorted(
        f"{NS}:{key}" for key in SECRET_KEYS if key in raw and key not in plaintext
    )
    return engine.render(stack, config=config, secret_keys=secret_keys)
