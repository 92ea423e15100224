"""Load and validate the stack config: raw Pulumi config in, `HomelabConfig` or a clear error out.

`validate_config` is pure (a mapping of key -> value in, model or `ConfigError` out) so the
invalid-config corpus can exercise it without the Pulumi runtime; `load_stack_config` reads the
running stack's config and turns a `ConfigError` into `pulumi.RunError`, which the Pulumi CLI
prints without a Python traceback.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
from collections.abc import Mapping
from typing import Any, get_args, get_origin

import pulumi
import pulumi.runtime.config as pulumi_runtime_config
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from config.lab_guard import check_lab_isolation
from config.model import HomelabConfig
from config.rules import NS, Problem, check_rules

# Config keys that hold secrets: they must be set with `pulumi config set --secret`.
SECRET_KEYS: frozenset[str] = frozenset({"dnsApiToken", "headplaneCookieSecret"})
# Keys given as plain strings on the command line; every other key is a YAML object or list.
SCALAR_KEYS: frozenset[str] = frozenset({"domain", *SECRET_KEYS})


class ConfigError(Exception):
    """One or more config problems, each one line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        head = f"The stack config has {count} problem{'s' if count != 1 else ''}:"
        return "\n".join([head, *(f"  {p.line()}" for p in self.problems)])


def top_level_keys() -> dict[str, str]:
    """Alias -> field name of every top-level config key the model accepts."""
    return {field.alias or name: name for name, field in HomelabConfig.model_fields.items()}


def _secret_set_command(key: str) -> str:
    return f"`./scripts/pulumi config set --secret {NS}:{key} <value>`"


def validate_config(
    raw: Mapping[str, Any], *, plaintext_keys: frozenset[str] = frozenset()
) -> HomelabConfig:
    """Validate config values keyed by their name without namespace (e.g. 'cluster').

    `plaintext_keys` are the keys the stack stores unencrypted; a secret key among them is refused.
    """
    problems: list[Problem] = []
    known = top_level_keys()
    data: dict[str, Any] = {}
    for key, value in sorted(raw.items()):
        if key not in known:
            problems.append(Problem(f"{NS}:{key}", "unknown key", _did_you_mean(key, list(known))))
            continue
        if key in SECRET_KEYS and key in plaintext_keys:
            problems.append(
                Problem(
                    f"{NS}:{key}",
                    "(stored in plaintext)",
                    f"is a secret; set it encrypted with {_secret_set_command(key)}",
                )
            )
        data[key] = value
    unset_secrets: set[str] = set()
    for key in sorted(SECRET_KEYS):
        field = HomelabConfig.model_fields[known[key]]
        if field.is_required() and data.get(key) in (None, ""):
            problems.append(
                Problem(
                    f"{NS}:{key}",
                    "(not set)",
                    f"is a required secret; run {_secret_set_command(key)}",
                )
            )
            data.pop(key, None)
            unset_secrets.add(key)
    try:
        model = HomelabConfig.model_validate(data)
    except ValidationError as error:
        for details in error.errors():
            # An unset secret is already reported above, with the command that sets it.
            if details["type"] == "missing" and tuple(details["loc"]) in {
                (key,) for key in unset_secrets
            }:
                continue
            if (problem := _problem_from_pydantic(details)) is not None:
                problems.append(problem)
        raise ConfigError(problems) from None
    problems.extend(check_rules(model))
    if problems:
        raise ConfigError(problems)
    return model


def _did_you_mean(key: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if close:
        return f"not a known key; did you mean {close[0]!r}?"
    return f"not a known key; known keys: {', '.join(sorted(candidates))}"


def _format_loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return f"{NS}:{text}"


def _field_of(model: type[BaseModel], part: str) -> FieldInfo | None:
    return next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that owns the last element of `loc`, for 'did you mean' on unknown keys."""
    model: type[BaseModel] | None = HomelabConfig
    for part in loc[:-1]:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = _field_of(model, part)
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model


def _user_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """`loc` as the user wrote the keys: without the tag pydantic adds after a discriminated
    union field (e.g. 'cloudflare' in tls.dns01.cloudflare.zone) and without the '[key]' marker
    it appends when a mapping's key (rather than its value) is invalid."""
    cleaned: list[int | str] = []
    model: type[BaseModel] | None = HomelabConfig
    skip_tag = False
    for part in loc:
        if skip_tag:
            skip_tag = False
            continue
        if part == "[key]":
            continue
        cleaned.append(part)
        if model is None or isinstance(part, int):
            continue
        field = _field_of(model, part)
        if field is None:
            model = None
            continue
        skip_tag = field.discriminator is not None
        model = _inner_model(field.annotation)
    return tuple(cleaned)


def _description_at(loc: tuple[int | str, ...]) -> str | None:
    model = _model_at(loc)
    field = _field_of(model, str(loc[-1])) if model is not None and loc else None
    return field.description if field is not None else None


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None or get_args(annotation):
        for arg in get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


# Pydantic's wording for these says what is wrong but not what would be right.
_CLEARER_MESSAGES: dict[str, str] = {
    "ip_v4_address": "must be an IPv4 address, e.g. '192.168.0.10'",
    "ip_v4_network": "must be an IPv4 network in CIDR form without host bits, e.g. '192.168.0.0/24'",
}


def _problem_from_pydantic(error: ErrorDetails) -> Problem | None:
    loc = _user_loc(tuple(error["loc"]))
    key = _format_loc(loc)
    kind = error["type"]
    value = error.get("input")
    top = str(loc[0]) if loc else ""
    hidden = top in SECRET_KEYS
    shown = "(secret)" if hidden else _short_repr(value)
    if kind == "extra_forbidden":
        model = _model_at(loc)
        names = [f.alias or n for n, f in model.model_fields.items()] if model else []
        return Problem(key, "unknown key", _did_you_mean(str(loc[-1]), names))
    if kind == "missing":
        description = _description_at(loc)
        return Problem(
            key, "(not set)", f"is required: {description}" if description else "is required"
        )
    if kind == "union_tag_invalid":
        # The key the user got wrong is the discriminator inside the object, e.g. dns01.provider.
        ctx = error.get("ctx") or {}
        field = str(ctx.get("discriminator", "")).strip("'")
        return Problem(
            _format_loc((*loc, field)),
            _short_repr(ctx.get("tag")),
            f"must be one of: {ctx.get('expected_tags')}",
        )
    message = _CLEARER_MESSAGES.get(kind, error["msg"])
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and (description := _description_at(loc)):
        # A bare regular expression is hard to read; the description carries examples.
        message = f"{message} ({description})"
    return Problem(key, shown, message)


def _short_repr(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


# --- reading the running stack's config ------------------------------------------------------


def _all_config_keys() -> set[str]:
    """Every `namespace:key` the running program was given.

    The SDK has no public listing; the CLI passes config through PULUMI_CONFIG, and tests and the
    render command set it with `pulumi.runtime.set_all_config` (the CONFIG context variable).
    """
    keys = set(pulumi_runtime_config.CONFIG.get())
    env = os.environ.get("PULUMI_CONFIG")
    if env:
        keys |= set(json.loads(env))
    return keys


def read_raw_config() -> tuple[dict[str, Any], frozenset[str]]:
    """The `homelab:*` config of the running stack, with objects parsed, and its plaintext keys."""
    raw: dict[str, Any] = {}
    plaintext: set[str] = set()
    for full_key in sorted(_all_config_keys()):
        namespace, _, key = full_key.partition(":")
        if namespace != NS:
            continue
        value = pulumi.runtime.get_config(full_key)
        if key not in SCALAR_KEYS and isinstance(value, str):
            # Not JSON: left as a string, and the model reports the type error with the key.
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        raw[key] = value
        if not pulumi.runtime.is_config_secret(full_key):
            plaintext.add(key)
    return raw, frozenset(plaintext)


def load_stack_config() -> HomelabConfig:
    """The validated config of the running stack; a user mistake becomes a `pulumi.RunError`."""
    raw, plaintext = read_raw_config()
    try:
        config = validate_config(raw, plaintext_keys=plaintext)
        # A lab must not collide with the real homelab (config/lab_guard.py).
        if collisions := check_lab_isolation(config, stack=pulumi.get_stack()):
            raise ConfigError(collisions)
        return config
    except ConfigError as error:
        raise pulumi.RunError(error.render()) from None
