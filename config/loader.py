"""Load and validate the stack config: raw Pulumi config in, `HomelabConfig` or a clear error out.

`validate_config` is pure (a mapping of key -> value in, model or `ConfigError` out) so the
invalid-config corpus can exercise it without the Pulumi runtime; `load_stack_config` reads the
running stack's config and turns a `ConfigError` into `pulumi.RunError`, which the Pulumi CLI
prints without a Python traceback.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import ipaddress
import json
import os
import re
import types
from collections.abc import Collection, Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pulumi
import pulumi.runtime.config as pulumi_runtime_config
from pydantic import BaseModel, ConfigDict, SecretStr, TypeAdapter, ValidationError, create_model
from pydantic.alias_generators import to_snake
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from config.credentials import (
    LOWERCASE,
    PlainRuns,
    hidden_kind,
    hide_credentials,
    is_hidden,
    shown_key,
    shown_value,
)
from config.lab_guard import check_lab_isolation, stack_identity_problems
from config.model import HomelabConfig
from config.problems import NS, InputUnavailableError, Problem, Unavailable, has_unavailable
from config.rules import check_rules

# Config keys that hold secrets: they must be set with `pulumi config set --secret`.
SECRET_KEYS: frozenset[str] = frozenset(
    {"backupSecretAccessKey", "dnsApiToken", "headplaneCookieSecret", "wildcardCertificate"}
)
# Keys given as plain strings on the command line; every other key is a YAML object or list.
SCALAR_KEYS: frozenset[str] = frozenset({"domain", *SECRET_KEYS})


class ConfigError(Exception):
    """One or more config problems, each one line, never with a credential-looking value in it
    (`_shown_safely`), whichever check found them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(_shown_safely(problems)))
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
    raw: Mapping[str, Any],
    *,
    plaintext_keys: frozenset[str] = frozenset(),
    stack: str | None = None,
    foreign_keys: Collection[str] = (),
) -> HomelabConfig:
    """Validate config values keyed by their name without namespace (e.g. 'cluster').

    `plaintext_keys` are the keys the stack stores unencrypted; a secret key among them is refused.
    `stack`, when given, is the stack the config belongs to: its identity must match
    `lifecycle.environment` (config/lab_guard.py `stack_identity_problems`). `foreign_keys` are
    the stack's `namespace:key` config keys outside `homelab:`; one whose namespace is almost
    ours (`homelabs:apps`) is a mistake the program would otherwise ignore silently.

    Every problem is reported in one run: field problems, and the cross-field rules over every
    part that validated, down to single fields, list items and map entries (a rule that reads a
    value that failed is skipped for that item; `partial_config`). No line shows a
    credential-looking value (`ConfigError`).
    """
    problems: list[Problem] = [*misplaced_namespace_problems(foreign_keys)]
    known = top_level_keys()
    data: dict[str, Any] = {}
    for key, value in sorted(raw.items()):
        if key not in known:
            problems.append(
                Problem(
                    f"{NS}:{shown_key(key)}",
                    "unknown key",
                    _did_you_mean(key, _candidates(HomelabConfig, raw, key, value), list(known)),
                )
            )
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
    model: HomelabConfig | None = None
    try:
        model = HomelabConfig.model_validate(data)
    except ValidationError as error:
        for details in error.errors():
            loc = tuple(details["loc"])
            # An unset secret is already reported above, with the command that sets it.
            if details["type"] == "missing" and loc in {(key,) for key in unset_secrets}:
                continue
            if (problem := _problem_from_pydantic(details, data)) is not None:
                problems.append(problem)
    config = (
        model
        if model is not None
        else partial_config(data, frozenset(known[key] for key in unset_secrets))
    )
    problems.extend(check_rules(config))
    if stack is not None:
        with contextlib.suppress(InputUnavailableError):
            problems.extend(stack_identity_problems(config, stack=stack))
    if problems or model is None:
        raise ConfigError(_without_missing_suggested(problems))
    return model


def _shown_safely(problems: list[Problem]) -> list[Problem]:
    """Every line without a credential-looking value in it (config/credentials.py): a token
    pasted into a plain key is reported as found, never echoed. A rule's quoted value is judged
    as a value of its key, as a field's is (`_problem_from_pydantic`)."""
    return [Problem(p.key, _value_shown_safely(p), hide_credentials(p.expected)) for p in problems]


def _value_shown_safely(problem: Problem) -> str:
    text = problem.value
    if is_hidden(text):
        return text
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        inner = text[1:-1]
        if not _plain_runs_at(_loc_of(problem.key)).plausible(inner):
            return hidden_kind(inner)
    return hide_credentials(text)


def _loc_of(key: str) -> tuple[int | str, ...]:
    """'homelab:apps[0].name' -> ('apps', 0, 'name'): a problem's key as a location."""
    path = key.removeprefix(f"{NS}:")
    return tuple(
        int(part) if part.isdigit() else part for part in re.split(r"\.|\[(\d+)\]", path) if part
    )


def partial_config(
    data: Mapping[str, Any], unavailable: frozenset[str] = frozenset()
) -> HomelabConfig:
    """The config as far as it validates, for the rules: every field, list item and nested object
    that validates on its own is there, and each value that does not (and each top-level field
    named in `unavailable`) is an `Unavailable` stand-in. A rule that reads a stand-in is skipped
    (config/rules.py `check_rules`); the rules that read only what parsed still run, so one
    mistake in a section hides none of that section's other problems."""
    values: dict[str, Any] = {name: Unavailable(name) for name in unavailable}
    rest = {k: v for k, v in data.items() if _field_name(HomelabConfig, k) not in unavailable}
    built = _partial_model(HomelabConfig, rest, "")
    return HomelabConfig.model_construct(**{**dict(built), **values})


def _field_name(model: type[BaseModel], key: str) -> str | None:
    return next((n for n, f in model.model_fields.items() if key in (n, f.alias)), None)


@functools.cache
def _one_field_model(model: type[BaseModel], name: str) -> type[BaseModel]:
    """A model of `model`'s field `name` alone, with all of its metadata (validators,
    constraints, discriminator), so the field validates exactly as it does in `model`."""
    field = model.model_fields[name]
    single: type[BaseModel] = create_model(
        f"{model.__name__}_{name}",
        __config__=ConfigDict(populate_by_name=True),
        **{name: (field.annotation, field)},  # type: ignore[call-overload]
    )
    return single


def _partial_model(model: type[BaseModel], data: Mapping[str, Any], path: str) -> Any:
    """`model` built from `data` with each failing field an `Unavailable`; `Unavailable` itself
    when every field validates and the object still fails (a rule of the object, such as
    `Backups` naming exactly one target, which no rule should then reason past)."""
    values: dict[str, Any] = {}
    failed = False
    for name, field in model.model_fields.items():
        alias = field.alias or name
        where = f"{path}.{alias}" if path else alias
        if alias in data:
            raw = data[alias]
        elif name in data:
            raw = data[name]
        else:
            if field.is_required():
                values[name] = Unavailable(where)
                failed = True
            continue  # model_construct fills in the default
        values[name] = value = _partial_value(model, name, raw, where)
        failed = failed or has_unavailable(value)
    if not failed and path:
        try:
            return model.model_validate(data)
        except ValidationError:
            return Unavailable(path)
    return model.model_construct(**values)


def _partial_value(model: type[BaseModel], name: str, raw: Any, where: str) -> Any:
    try:
        return getattr(_one_field_model(model, name).model_validate({name: raw}), name)
    except ValidationError:
        return _partial_of(model.model_fields[name].annotation, raw, where)


def _partial_of(annotation: Any, raw: Any, where: str) -> Any:
    """`raw` (which failed as a value of `annotation`) as far as it validates: an object with
    each failing field, a list with each failing item, a map with each failing value an
    `Unavailable`; `Unavailable` itself when nothing inside failed (the object's, list's or
    map's own constraint did: at least one node, one target) or it is no container."""
    inner = _unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel) and isinstance(raw, Mapping):
        return _partial_model(inner, raw, where)
    parts: Any = None
    if get_origin(inner) is list and isinstance(raw, list):
        item = get_args(inner)[0]
        parts = [_partial_item(item, entry, f"{where}[{i}]") for i, entry in enumerate(raw)]
    elif get_origin(inner) is dict and isinstance(raw, Mapping):
        key_type, value_type = get_args(inner)
        try:
            keys = [_adapter(key_type).validate_python(k) for k in raw]
        except ValidationError:
            return Unavailable(where)  # a refused key leaves no key to stand in for
        parts = {
            k: _partial_item(value_type, v, f"{where}.{k}")
            for k, v in zip(keys, raw.values(), strict=True)
        }
    return parts if parts is not None and has_unavailable(parts) else Unavailable(where)


def _partial_item(annotation: Any, raw: Any, where: str) -> Any:
    try:
        return _adapter(annotation).validate_python(raw)
    except ValidationError:
        return _partial_of(annotation, raw, where)


_ADAPTERS: dict[int, tuple[Any, TypeAdapter[Any]]] = {}


def _adapter(annotation: Any) -> TypeAdapter[Any]:
    """A validator for list items and map entries, built once per annotation."""
    cached = _ADAPTERS.get(id(annotation))
    if cached is None or cached[0] is not annotation:
        cached = (annotation, TypeAdapter(annotation))
        _ADAPTERS[id(annotation)] = cached
    return cached[1]


def _did_you_mean(key: str, candidates: list[str], known: list[str]) -> str:
    """'Did you mean' among `candidates`, the keys of the object that are not set yet and take a
    value of the kind given (`_candidates`), so it never suggests one that could not be meant;
    without a close one, every `known` key of the object is listed."""
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if close:
        return f"not a known key; did you mean {close[0]!r}?"
    return f"not a known key; known keys: {', '.join(sorted(known))}"


_SUGGESTED = re.compile(r"did you mean '([^']+)'\?$")


def _without_missing_suggested(problems: list[Problem]) -> list[Problem]:
    """A misspelt key and the required key it was meant to be are one mistake: keep the line
    that names both (the 'did you mean'), not a second '(not set)' line for the same key."""
    meant = set()
    for p in problems:
        if p.value in ("unknown key", MISPLACED) and (match := _SUGGESTED.search(p.expected)):
            if match[1].startswith(f"{NS}:"):
                meant.add(match[1])
                continue
            parent = p.key.rpartition(".")[0] if "." in p.key else f"{NS}:"
            meant.add(f"{parent}.{match[1]}" if parent != f"{NS}:" else f"{NS}:{match[1]}")
    return [p for p in problems if not (p.value == "(not set)" and p.key in meant)]


# --- keys in a namespace that is almost ours --------------------------------------------------

MISPLACED = "(ignored: another namespace)"


def _edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def resembles_our_namespace(namespace: str) -> bool:
    """`homelabs`, `Homelab`, `home-lab`, `homelab-lab`: a namespace meant to be `homelab`.
    Providers' namespaces (`kubernetes`, `talos`, `command`, `random`, `pulumi`) are not."""
    if namespace == NS:
        return False
    # Pulumi's namespaces are case-sensitive: `Homelab:backups` is another namespace's key,
    # so a case variant of ours is the closest miss of all, not ours.
    folded = namespace.lower()
    return NS in folded or _edit_distance(folded, NS) <= 2


def misplaced_namespace_problems(foreign_keys: Collection[str]) -> list[Problem]:
    """One line per key under a namespace that looks like ours: the program reads only
    `homelab:` keys, so Pulumi hands it over and nothing would ever read it."""
    known = top_level_keys()
    problems = []
    for full_key in sorted(foreign_keys):
        namespace, _, key = full_key.partition(":")
        if not resembles_our_namespace(namespace):
            continue
        meant = key if key in known else next(iter(difflib.get_close_matches(key, known, 1)), None)
        hint = (
            f"did you mean '{NS}:{meant}'?"
            if meant is not None
            else f"known keys: {', '.join(sorted(known))}"
        )
        case = " (namespaces are case-sensitive)" if namespace.lower() == NS else ""
        problems.append(
            Problem(
                full_key,
                MISPLACED,
                f"is under namespace {namespace!r}, which this program never reads, so the value "
                f"is ignored{case}; keys are `{NS}:<key>`: {hint}",
            )
        )
    return problems


Kind = Literal["object", "list", "scalar"]


def _kind_of_value(value: Any) -> Kind:
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "list"
    return "scalar"


def _kind_of_annotation(annotation: Any) -> Kind:
    inner = _unwrap(annotation)
    origin = get_origin(inner)
    if (isinstance(inner, type) and issubclass(inner, BaseModel)) or origin is dict:
        return "object"
    if origin in (list, tuple, set, frozenset):
        return "list"
    return "scalar"


def _candidates(model: type[BaseModel], parent: Any, key: str, value: Any) -> list[str]:
    """Keys of `model` the unknown `key` with `value` may have meant: not set in `parent` already
    (the unknown key itself aside), and of the same kind (object, list or scalar) as `value`."""
    present = set(parent) - {key} if isinstance(parent, Mapping) else set()
    kind = _kind_of_value(value)
    return [
        field.alias or name
        for name, field in model.model_fields.items()
        if not ({name, field.alias} & present) and _kind_of_annotation(field.annotation) == kind
    ]


@functools.cache
def _field_names() -> frozenset[str]:
    """Every key name (alias and field name) of every model of the config."""
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()
    models: list[type[BaseModel]] = [HomelabConfig]
    while models:
        model = models.pop()
        seen.add(model)
        for name, field in model.model_fields.items():
            names |= {name, field.alias or name}
            inner = _inner_model(field.annotation)
            if inner is not None and inner not in seen:
                models.append(inner)
    return frozenset(names)


def _format_loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            # A key the user wrote (a map's key, an unknown key) may be a pasted token.
            shown = part if part in _field_names() else shown_key(part)
            text += ("." if text else "") + shown
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


def _unwrap(annotation: Any) -> Any:
    """`annotation` without Annotated metadata and without `| None`."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if get_origin(annotation) in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _annotation_at(loc: tuple[int | str, ...]) -> Any:
    """The declared type of the value at `loc` (a user loc), or None when it is not known."""
    annotation: Any = HomelabConfig
    for part in loc:
        inner = _unwrap(annotation)
        origin = get_origin(inner)
        if isinstance(part, int) and origin in (list, tuple):
            annotation = get_args(inner)[0]
        elif origin is dict:
            annotation = get_args(inner)[1]
        elif isinstance(inner, type) and issubclass(inner, BaseModel):
            field = _field_of(inner, str(part))
            if field is None:
                return None
            annotation = field.annotation
        else:
            return None
    return annotation


def _words(name: str) -> str:
    """'AddressPool' -> 'address pool': a model named in the user's words, not as a class."""
    return " ".join(w.lower() for w in re.findall(r"[A-Z]+[a-z0-9]*", name)) or name.lower()


def _keys_of(model: type[BaseModel]) -> str:
    return ", ".join(f.alias or n for n, f in model.model_fields.items())


_SCALAR_SHAPES: dict[Any, tuple[str, str]] = {
    str: ("a string", "strings"),
    SecretStr: ("a string", "strings"),
    int: ("a whole number", "whole numbers"),
    float: ("a number", "numbers"),
    bool: ("true or false", "true/false values"),
    ipaddress.IPv4Address: (
        "an IPv4 address written as text, e.g. '192.168.0.10'",
        "IPv4 addresses written as text",
    ),
    ipaddress.IPv4Network: (
        "an IPv4 network in CIDR form, e.g. '192.168.0.0/24'",
        "IPv4 networks in CIDR form",
    ),
}


def shape_of(annotation: Any) -> str:
    """What a value of `annotation` looks like, in the user's words (never a class name)."""
    inner = _unwrap(annotation)
    origin = get_origin(inner)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return f"an object with keys {_keys_of(inner)}"
    if origin in (list, tuple):
        item = _unwrap(get_args(inner)[0])
        if isinstance(item, type) and issubclass(item, BaseModel):
            return f"a list of {_words(item.__name__)} objects (each with keys {_keys_of(item)})"
        return f"a list of {_plural(item)}"
    if origin is dict:
        return f"an object mapping names to {_plural(get_args(inner)[1])}"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(inner))
    return _SCALAR_SHAPES.get(inner, ("a value of another type", ""))[0]


def _plural(annotation: Any) -> str:
    inner = _unwrap(annotation)
    if get_origin(inner) in (list, tuple):
        return "lists of " + _plural(get_args(inner)[0])
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return f"{_words(inner.__name__)} objects"
    if get_origin(inner) is Literal:
        return "values " + shape_of(inner)
    return _SCALAR_SHAPES.get(inner, ("", "values"))[1] or "values"


# Pydantic's wording for these says what is wrong but not what would be right.
_CLEARER_MESSAGES: dict[str, str] = {
    "ip_v4_address": "must be an IPv4 address, e.g. '192.168.0.10'",
    "ip_v4_network": "must be an IPv4 network in CIDR form without host bits, e.g. '192.168.0.0/24'",
}
# Pydantic's type errors name Python types ("a valid dictionary or instance of Derp"); they are
# reworded from the field's declared type.
_TYPE_ERRORS: frozenset[str] = frozenset(
    {
        "model_type",
        "model_attributes_type",
        "dataclass_type",
        "is_instance_of",
        "list_type",
        "tuple_type",
        "set_type",
        "dict_type",
        "string_type",
        "int_type",
        "int_parsing",
        "int_from_float",
        "float_type",
        "float_parsing",
        "bool_type",
        "bool_parsing",
    }
)


def _problem_from_pydantic(error: ErrorDetails, data: Mapping[str, Any]) -> Problem | None:
    loc = _user_loc(tuple(error["loc"]))
    key = _format_loc(loc)
    kind = error["type"]
    value = error.get("input")
    top = str(loc[0]) if loc else ""
    hidden = top in SECRET_KEYS
    shown = "(secret)" if hidden else shown_value(value, _plain_runs_at(loc))
    if kind == "extra_forbidden":
        model = _model_at(loc)
        names = _candidates(model, _raw_at(data, loc[:-1]), str(loc[-1]), value) if model else []
        known = [f.alias or n for n, f in model.model_fields.items()] if model else []
        return Problem(key, "unknown key", _did_you_mean(str(loc[-1]), names, known))
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
            shown_value(ctx.get("tag")),
            f"must be one of: {ctx.get('expected_tags')}",
        )
    message = _CLEARER_MESSAGES.get(kind, error["msg"])
    if kind in _TYPE_ERRORS and (annotation := _annotation_at(loc)) is not None:
        message = f"must be {shape_of(annotation)}"
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
    if kind == "string_pattern_mismatch":
        # A bare regular expression says nothing to a person; the description says what is wanted.
        description = _description_at(loc)
        message = (
            f"is not of the form this key takes: {description}"
            if description
            else "is not of the form this key takes"
        )
    return Problem(key, shown, message)


def _raw_at(data: Any, loc: tuple[int | str, ...]) -> Any:
    """The user's value at `loc` (keys as they wrote them), or None when the path is not there."""
    target = data
    for part in loc:
        if isinstance(part, int) and isinstance(target, list) and part < len(target):
            target = target[part]
        elif isinstance(target, Mapping):
            # pydantic names a location by alias; the user may have written the snake_case name.
            target = target[part] if part in target else target.get(to_snake(str(part)))
        else:
            return None
    return target


def _plain_runs_at(loc: tuple[int | str, ...]) -> PlainRuns:
    """What the values of the key at `loc` are made of (config/credentials.py `PlainRuns`, on
    the key's type), to tell a mistyped value from a pasted credential."""
    model = _model_at(loc) if loc and isinstance(loc[-1], str) else None
    field = _field_of(model, str(loc[-1])) if model is not None else None
    if field is not None:
        # pydantic keeps a field's own `Annotated` metadata beside its annotation.
        found = [m for m in field.metadata if isinstance(m, PlainRuns)]
        return found[0] if found else _plain_runs_of(field.annotation)
    annotation = _annotation_at(loc)
    return _plain_runs_of(annotation) if annotation is not None else LOWERCASE


def _plain_runs_of(annotation: Any) -> PlainRuns:
    if get_origin(annotation) is Annotated:
        found = [m for m in annotation.__metadata__ if isinstance(m, PlainRuns)]
        return found[0] if found else _plain_runs_of(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        for member in get_args(annotation):
            if (runs := _plain_runs_of(member)) is not LOWERCASE:
                return runs
    return LOWERCASE


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


def read_raw_config() -> tuple[dict[str, Any], frozenset[str], frozenset[str]]:
    """The `homelab:*` config of the running stack, with objects parsed, its plaintext keys, and
    the stack's keys in other namespaces."""
    raw: dict[str, Any] = {}
    plaintext: set[str] = set()
    foreign: set[str] = set()
    for full_key in sorted(_all_config_keys()):
        namespace, _, key = full_key.partition(":")
        if namespace != NS:
            foreign.add(full_key)
            continue
        value = pulumi.runtime.get_config(full_key)
        if key not in SCALAR_KEYS and isinstance(value, str):
            # Not JSON: left as a string, and the model reports the type error with the key.
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        raw[key] = value
        if not pulumi.runtime.is_config_secret(full_key):
            plaintext.add(key)
    return raw, frozenset(plaintext), frozenset(foreign)


def load_stack_config() -> HomelabConfig:
    """The validated config of the running stack; a user mistake becomes a `pulumi.RunError`."""
    raw, plaintext, foreign = read_raw_config()
    try:
        config = validate_config(
            raw, plaintext_keys=plaintext, stack=pulumi.get_stack(), foreign_keys=foreign
        )
        # A lab must not collide with the real homelab (config/lab_guard.py).
        if collisions := check_lab_isolation(config, stack=pulumi.get_stack()):
            raise ConfigError(collisions)
        return config
    except ConfigError as error:
        raise pulumi.RunError(error.render()) from None
