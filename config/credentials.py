"""Recognising a credential pasted where it does not belong, so no error line ever echoes one.

A problem line shows the bad value. Two layers keep a token out of it:

- A value that failed a plain key (a host name, an e-mail, a tag, a path, ...) is shown only when
  it is a plausible value of that key: every long run of token characters in it (20 or more of
  letters, digits and `+/=_-`) must be made of the characters such values are made of
  (`PlainRuns`, lowercase for most keys) and must not be a hex string or a UUID. Otherwise the
  line says what kind of value was found (`hidden_kind`), never the value. A random token of the
  usual alphabets passes that test with a probability below 1e-7 (it would have to draw no
  uppercase letter and no '_', '+' or '/' in 32 to 40 characters), while a typo'd host name,
  a path or a schedule stays readable.
- Every line is then searched for credential-looking parts (`hide_credentials`): known prefixes
  (AWS, GitHub, GitLab, Slack, Tailscale/Headscale keys, JWTs, PEM), passwords in URLs, and long
  random-looking runs, which are replaced. Objects and lists are hidden string by string, the
  same way, before they are cut to the line's length, so a cut cannot leave half a token.

The test is deliberately generous: hiding a value that was harmless costs a little clarity,
echoing a token into a terminal, a CI log or an issue costs a rotation.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

HIDDEN_PREFIX: Final = "(a credential-looking value"
HIDDEN: Final = f"{HIDDEN_PREFIX}, not shown)"
SHOWN_LENGTH: Final = 80

# Shapes with a known prefix: AWS access keys, GitHub, GitLab, Slack, OpenAI-style and Tailscale
# or Headscale auth keys, JWTs, PEM blocks; and UUIDs (API keys of many services), unless part
# of a path (a /dev/disk/by-uuid link).
_KNOWN = re.compile(
    r"(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|glpat-[A-Za-z0-9_-]{20,}|xox[abpors]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}"
    r"|(?:tskey|hskey)-[A-Za-z0-9_-]{10,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*)?"
    r"|-----BEGIN [A-Z ]+-----"
    r"|(?<![/A-Za-z0-9-])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
)
# A URL with a password in it: scheme://user:password@host.
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@\"']+:[^/\s@\"']+@")
# A run of token characters (base64, base64url, hex): what a pasted token is made of.
RUN_LENGTH: Final = 20
_TOKEN = re.compile(rf"[A-Za-z0-9+/=_-]{{{RUN_LENGTH},}}")
# Words as identifiers split them: 'Samsung', 'SSD', '980', 'nvme', 'k', '8', 's'.
_CHUNK = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
# Device links name disks by model and serial number, which look random and are no secret.
_DEVICE_LINK: Final = "/dev/"


@dataclass(frozen=True)
class PlainRuns:
    """What a plain key's values are made of, as metadata on its type (`Annotated[str, ...]`):
    the characters of every run of 20 or more token characters in a plausible value. A run
    that starts with one of `free_after` may hold any of them: a /dev/ link's serial number, a
    time zone's name. (No random token starts with those: base64 has '=' only at its end.)"""

    characters: str = "a-z0-9-"
    free_after: tuple[str, ...] = ()

    def plausible(self, value: str) -> bool:
        allowed = re.compile(f"[{self.characters}]+")
        for match in _TOKEN.finditer(value):
            run = match.group()
            if run.startswith(self.free_after):
                continue
            if not allowed.fullmatch(run) or _hex_digits(run):
                return False
        return True


# Most plain keys (names, addresses, versions, schedules, tags) hold lowercase runs at most.
LOWERCASE: Final = PlainRuns()
# What a string inside an object or a list may hold and still be shown: lowercase names, paths,
# `key=value` words, device links.
_NESTED: Final = PlainRuns("a-z0-9_/=-", free_after=(_DEVICE_LINK,))


def _hex_digits(run: str) -> bool:
    """32 or more hex digits (with '-' between groups or not), a digit among them: a hex
    secret or a UUID ('ddd…d' is a name; a random hex string without a digit, 2e-14)."""
    digits = run.replace("-", "")
    return (
        len(digits) >= 32
        and re.fullmatch(r"[0-9A-Fa-f]+", digits) is not None
        and any(ch.isdigit() for ch in digits)
    )


def _letter_digit_switches(segment: str) -> int:
    return sum(a.isdigit() != b.isdigit() for a, b in itertools.pairwise(segment))


def _random_looking(token: str) -> bool:
    """A long run that is no name: a hex secret, or letters and digits mixed the way random
    draws mix them (many short chunks), not the way names join words."""
    if token.startswith(_DEVICE_LINK):
        return False
    if _hex_digits(token):
        return True
    letters = re.sub(r"[^A-Za-z]", "", token)
    has_digit = any(ch.isdigit() for ch in token)
    mixed_case = letters != letters.lower() and letters != letters.upper()
    chunks = _CHUNK.findall(token)
    mean_chunk = sum(len(c) for c in chunks) / max(1, len(chunks))
    if mixed_case:
        # camelCase words ('allowSchedulingOnControlPlanes') are long chunks; random draws of
        # both cases switch case every other character.
        return mean_chunk < (4.5 if has_digit else 3.5)
    if not has_digit:
        return False
    # One case with digits: names put digits at the end of a word ('node01', 'nvme0n1'),
    # random draws between most characters.
    return any(
        len(segment) >= 12 and _letter_digit_switches(segment) >= 6
        for segment in re.split(r"[-_/+=]", token)
    )


def looks_like_credential(text: str) -> bool:
    if _KNOWN.search(text) or _URL_PASSWORD.search(text):
        return True
    return any(_random_looking(m.group()) for m in _TOKEN.finditer(text))


def hide_credentials(text: str) -> str:
    """`text` with every credential-looking part replaced; the whole of it when it is one."""
    if not looks_like_credential(text):
        return text
    hidden = _KNOWN.sub(HIDDEN, text)
    hidden = _URL_PASSWORD.sub(HIDDEN, hidden)
    hidden = _TOKEN.sub(lambda m: HIDDEN if _random_looking(m.group()) else m.group(), hidden)
    # A value that was nothing but the credential (with quotes) becomes the marker alone.
    if hidden.strip("'\"") == HIDDEN:
        return HIDDEN
    return hidden


def hidden_kind(value: str) -> str:
    """What kind of value was found, in place of it: its length and character classes."""
    classes = [
        name
        for name, present in (
            ("letters", any(ch.isalpha() for ch in value)),
            ("digits", any(ch.isdigit() for ch in value)),
        )
        if present
    ]
    symbols = sorted({ch for ch in value if not ch.isalnum()})
    classes += [repr(ch) if not ch.isspace() else "whitespace" for ch in symbols]
    listed = ", ".join(classes[:-1]) + f" and {classes[-1]}" if len(classes) > 1 else classes[0]
    return f"{HIDDEN_PREFIX} of {len(value)} characters: {listed}; not shown)"


def is_hidden(text: str) -> bool:
    """Whether a problem line's value is a marker in place of the user's value."""
    return text.startswith(HIDDEN_PREFIX)


# A key as the model spells its keys: camelCase words ('allowSchedulingOnControlPlanes'). A
# random token of 20+ characters is one with a probability below 1e-8 (no digit or symbol, and
# every capital followed by a small letter).
_CAMEL_CASE = re.compile(r"[a-z]+(?:[A-Z][a-z]+)*")


def shown_key(part: str) -> str:
    """A key the user wrote (a map's key, an unknown key), as a problem line may show it: a
    misspelt key stays readable, a pasted token does not."""
    plausible = LOWERCASE.plausible(part) or _CAMEL_CASE.fullmatch(part) is not None
    return part if plausible and not looks_like_credential(part) else HIDDEN


def shown_value(value: Any, runs: PlainRuns = LOWERCASE) -> str:
    """`value` as a problem line shows it: JSON, credential-looking parts hidden, then cut to
    the line's length. A string is judged as a value of its key (`runs`); strings inside an
    object or a list (keys too) each as a nested string."""
    if isinstance(value, str):
        if not value or not runs.plausible(value):
            return json.dumps(value) if not value else hidden_kind(value)
        text = json.dumps(value)
    else:
        text = json.dumps(_nested_shown(value), sort_keys=True, default=str)
    text = hide_credentials(text)
    return text if len(text) <= SHOWN_LENGTH else text[: SHOWN_LENGTH - 3] + "..."


def _nested_shown(value: Any) -> Any:
    if isinstance(value, str):
        return value if _NESTED.plausible(value) else hidden_kind(value)
    if isinstance(value, Mapping):
        return {str(_nested_shown(str(k))): _nested_shown(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nested_shown(v) for v in value]
    return value
