"""Finding secret values where they must not be: in a render's plaintext paths and in log text.

A value counts as found when it, or its base64 form (Kubernetes Secret `data`, kubeconfig fields),
occurs in a string. "Plaintext" means not at or below a Pulumi secret path: inputs use the record's
secret paths; outputs additionally the resource's `additional_secret_outputs`; invokes, stack and
component outputs their own secret paths. Names and URNs are never secret.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from homelab.engine import Render, ResourceRecord

SecretPath = Callable[[str], bool]


@dataclass(frozen=True)
class Leak:
    secret: str  # the secret's label, never its value
    where: str

    def __str__(self) -> str:
        return f"{self.secret} in {self.where}"


def forms(value: str) -> set[str]:
    """The value and the encodings it takes in Kubernetes objects and kubeconfigs."""
    raw = value.encode()
    return {value, base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in `value` (map keys included) with its dotted path."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            yield child, str(key)
            yield from strings(item, child)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}.{index}" if path else str(index))
    elif isinstance(value, str):
        yield path, value


def under(paths: tuple[str, ...] | list[str]) -> SecretPath:
    return lambda path: any(path == p or path.startswith(p + ".") for p in paths)


def secrets_in_text(text: str, secrets: Mapping[str, str]) -> list[str]:
    """Labels of the secrets that occur in `text` (in any of their forms)."""
    return sorted(label for label, value in secrets.items() if any(f in text for f in forms(value)))


def _scan(
    value: Any, is_secret: SecretPath, where: str, secrets: Mapping[str, str]
) -> Iterator[Leak]:
    for path, text in strings(value):
        if is_secret(path):
            continue
        for label in secrets_in_text(text, secrets):
            yield Leak(label, f"{where} at {path or '(root)'}")


# Data-source arguments that carry credentials by design. The SDK strips secret markers from
# every invoke's arguments before sending them (pulumi/runtime/invoke.py: plain_inputs) and marks
# the *result* secret instead; arguments are never written to state. So these paths cannot be
# marked secret by any program, and only credentials the call needs may travel there.
# The key checks (components/remote_access/keys.py) run kubectl with the kubeconfig in their environment.
INVOKE_CREDENTIAL_ARGS: tuple[str, ...] = (
    "clientConfiguration",
    "machineSecrets",
    "environment.HOMELAB_KUBECONFIG",
)


def _output_is_secret(record: ResourceRecord) -> SecretPath:
    paths = [*record.secret_paths, *record.additional_secret_outputs]
    return under(paths)


def find_leaks(
    render: Render, secrets: Mapping[str, str], *, include_outputs: bool = True
) -> list[Leak]:
    """Every plaintext place of `render` where one of `secrets` (label -> value) occurs.

    `include_outputs=False` skips the resources' own outputs: right for values a provider
    generates (a mock's FAKE key is naturally in its producer's outputs; what matters is where
    it flows next).
    """
    found: list[Leak] = []
    for record in render.resources:
        label = f"{record.type} {record.name}"
        for label_text in (record.name, record.urn):
            found += [Leak(s, f"name/URN of {label}") for s in secrets_in_text(label_text, secrets)]
        found += _scan(record.inputs, record.is_secret, f"input of {label}", secrets)
        if include_outputs:
            found += _scan(record.outputs, _output_is_secret(record), f"output of {label}", secrets)
    for invoke in render.invokes:
        allowed = under([*invoke.secret_paths, *INVOKE_CREDENTIAL_ARGS])
        found += _scan(invoke.args, allowed, f"invoke {invoke.token}", secrets)
    found += _scan(render.outputs, render.output_is_secret, "stack outputs", secrets)
    for urn, outputs in render.component_outputs.items():
        secret_paths = render.component_output_secret_paths.get(urn, ())
        found += _scan(outputs, under(secret_paths), f"registered outputs of {urn}", secrets)
    return found


# A mock's secret-shaped value: `FAKE-...` keys and tokens, `FAKE...` random results.
_FAKE_TOKEN = re.compile(r"FAKE[-A-Za-z0-9]*")
_CERTIFICATE = "-----BEGIN CERTIFICATE-----"


def fake_secrets(render: Render) -> dict[str, str]:
    """The secret values the mocks synthesised for this render (homelab/fakes.py): keys, tokens,
    kubeconfig/talosconfig keys, command stdout, random results. Certificates are public and
    left out."""
    found: dict[str, str] = {}
    for record in render.resources:
        for path, text in strings(record.outputs):
            if _CERTIFICATE in text:
                continue
            for token in _FAKE_TOKEN.findall(text):
                if token not in found.values() and len(token) > len("FAKE-"):
                    found[f"fake {token[:12]}... from {record.type} {record.name} {path}"] = token
    return found
