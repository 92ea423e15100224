"""Every component's Args name what it uses: none carries the whole `HomelabConfig`.

The components are found by walking `components/`, not listed by hand, so a new component is
held to the rule the day it is added. A field counts when `HomelabConfig` appears anywhere in its
type: inside a container, an optional, or a view dataclass or config section it holds.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.output as pulumi_output
import pydantic
import pytest

import components
from config.model import HomelabConfig

OWN_MODULES = ("components.", "config.", __name__)


def component_classes() -> list[type[pulumi.ComponentResource]]:
    found: dict[str, type[pulumi.ComponentResource]] = {}
    for module_info in pkgutil.walk_packages(components.__path__, prefix="components."):
        module = importlib.import_module(module_info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, pulumi.ComponentResource) and value.__module__ == module.__name__:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[key] for key in sorted(found)]


# `pulumi.Input[T]` is a Union naming "Output[T]" as a string, resolved where it is used.
PULUMI_NAMES = {"Output": pulumi_output.Output, "T": pulumi_output.T}


def type_hints(obj: Any) -> dict[str, Any]:
    return typing.get_type_hints(obj, localns=PULUMI_NAMES)


def args_type(component: type[pulumi.ComponentResource]) -> Any:
    return type_hints(component.__init__)["args"]


def whole_config_paths(tp: Any, path: str, seen: set[Any] | None = None) -> Iterator[str]:
    """Dotted paths under `tp` at which a `HomelabConfig` would be held."""
    seen = set() if seen is None else seen
    if tp is HomelabConfig:
        yield path
        return
    for arg in typing.get_args(tp):
        yield from whole_config_paths(arg, path, seen)
    # Only the project's own types can hold it (pulumi's and the SDK's are not searched).
    if not isinstance(tp, type) or tp in seen or not tp.__module__.startswith(OWN_MODULES):
        return
    seen.add(tp)
    if dataclasses.is_dataclass(tp):
        hints = type_hints(tp)
        for field in dataclasses.fields(tp):
            yield from whole_config_paths(hints[field.name], f"{path}.{field.name}", seen)
    elif issubclass(tp, pydantic.BaseModel):
        for name, info in tp.model_fields.items():
            yield from whole_config_paths(info.annotation, f"{path}.{name}", seen)


def test_every_component_is_found_with_dataclass_args() -> None:
    classes = component_classes()
    names = {c.__name__ for c in classes}
    # A few known ones, so an empty or broken walk cannot pass the test below vacuously.
    assert {"TalosCluster", "Traefik", "Headscale", "Apps"} <= names
    for component in classes:
        assert dataclasses.is_dataclass(args_type(component)), component


@pytest.mark.parametrize("component", component_classes(), ids=lambda c: c.__name__)
def test_no_component_args_hold_the_whole_config(
    component: type[pulumi.ComponentResource],
) -> None:
    args = args_type(component)
    assert list(whole_config_paths(args, args.__name__)) == [], (
        f"{args.__name__} carries HomelabConfig; pass its section or a view from config/views.py"
    )


@dataclass(frozen=True)
class _Nested:
    configs: list[HomelabConfig | None]


@dataclass(frozen=True)
class _RegressedArgs:
    name: str
    nested: _Nested


def test_the_walk_finds_a_config_held_deep_inside_args() -> None:
    assert list(whole_config_paths(_RegressedArgs, "args")) == ["args.nested.configs"]
