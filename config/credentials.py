"""Recognising a credential pasted where it does not belong, so no error line ever echoes one.

A problem line shows the bad value; when that value (or a part of it) looks like a token, a key
or a password-bearing URL, the line says a credential-looking value was found instead. The test is
deliberately generous: hiding a value that was harmless costs a little clarity, echoing a token
into a terminal, a CI log or an issue costs a rotation.
"""

from __future__ import annotations

import re
from typing import Final

HIDDEN: Final = "(a credential-looking value, not shown)"

# Shapes with a known prefix: AWS access keys, GitHub, GitLab, Slack, OpenAI-style and Tailscale
# or Headscale auth keys, JWTs, PEM blocks.
_KNOWN = re.compile(
    r"(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|glpat-[A-Za-z0-9_-]{20,}|xox[abpors]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}"
    r"|(?:tskey|hskey)-[A-Za-z0-9_-]{10,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*)?"
    r"|-----BEGIN [A-Z ]+-----"
)
# A URL with a password in it: scheme://user:password@host.
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@\"']+:[^/\s@\"']+@")
# A run of token characters (base64, base64url, hex): candidates for the generic test below.
_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{20,}")


def _random_looking(token: str) -> bool:
    """A long run of letters and digits, mixing cases or 32+ long: an API token, a secret key,
    a hex or base64 secret. Paths ('/dev/disk/by-id/...') and words joined by '-' are not."""
    if token.startswith("/") or not re.search(r"[0-9]", token):
        return False
    letters = re.sub(r"[^A-Za-z]", "", token)
    if not letters:
        return False
    # Hyphenated words ('talos-cp-1', 'my-very-long-cluster-name-2') are names, not tokens.
    pieces = re.split(r"[-_/]", token)
    if len(pieces) > 1 and max(len(p) for p in pieces) < 16:
        return False
    mixed_case = letters != letters.lower() and letters != letters.upper()
    return mixed_case or len(token) >= 32


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
