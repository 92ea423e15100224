"""Headscale v0.28.0 as the CLI in its pod sees it: users, nodes, pre-auth keys and API keys.

Keys are `hskey-auth-<12>-<64>` / `hskey-api-<12>-<64>`; Headscale keeps only the prefix and a
hash, so a key is listed as `<kind prefix><12>-***` (juanfont/headscale@v0.28.0:
hscontrol/db/preauth_keys.go `CreatePreAuthKey`, hscontrol/types/preauth_key.go `Proto`,
hscontrol/db/api_key.go, types/api_key.go `Proto`). `-o json` prints the proto messages with
Go's encoding/json, tab-indented (cmd/headscale/cli/utils.go `output`): the json tags of
gen/go/headscale/v1 (snake_case, every field `omitempty`), Timestamps as {"seconds": N}.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from typing import Any, Final, NoReturn

from tests.world import clock
from tests.world.flags import FlagError, parse

State = dict[str, Any]

AUTH_PREFIX: Final = "hskey-auth-"
API_PREFIX: Final = "hskey-api-"
# hscontrol/types/users.go `TaggedDevices`: tagged nodes are listed under this user.
TAGGED_DEVICES: Final = {
    "id": 2147455555,
    "name": "tagged-devices",
    "display_name": "Tagged Devices",
}
# cmd/headscale/cli: DefaultPreAuthKeyExpiry and the API key default.
DEFAULT_EXPIRY: Final = "1h"
DEFAULT_API_EXPIRY: Final = "90d"
# RegisterMethod enum (proto/headscale/v1/node.proto): encoding/json prints the number.
REGISTER_AUTH_KEY: Final = 1
REGISTER_CLI: Final = 2


def headscale(state: State) -> dict[str, Any]:
    section: dict[str, Any] = state.setdefault("headscale", empty_database())
    return section


def empty_database() -> dict[str, Any]:
    return {
        "users": [],
        "preauthkeys": [],
        "apikeys": [],
        "nodes": [],
        "pending": {},
        "next": {"user": 1, "preauthkey": 1, "apikey": 1, "node": 1},
        "serial": 0,
        "replica": [],
    }


def _next(state: State, what: str) -> int:
    counters = headscale(state)["next"]
    number = int(counters[what])
    counters[what] = number + 1
    return number


def _random(state: State, length: int) -> str:
    """Deterministic URL-safe text (the world has no randomness of its own)."""
    serial = int(headscale(state).get("serial", 0)) + 1
    headscale(state)["serial"] = serial
    digest = hashlib.sha512(f"headscale-{serial}".encode()).digest()
    text = base64.urlsafe_b64encode(digest * 2).decode().rstrip("=")
    return text[:length]


def timestamp(seconds: float | None) -> dict[str, int] | None:
    """google.protobuf.Timestamp through encoding/json: seconds, and nanos only when not 0."""
    if seconds is None:
        return None
    whole = int(seconds)
    nanos = round((seconds - whole) * 1e9)
    return {"seconds": whole, "nanos": nanos} if nanos else {"seconds": whole}


def _omit(message: dict[str, Any]) -> dict[str, Any]:
    """encoding/json `omitempty`: zero values (0, "", false, nil, empty list) are left out."""
    return {k: v for k, v in message.items() if v not in (None, 0, "", False, [], {})}


def user_proto(user: dict[str, Any]) -> dict[str, Any]:
    return _omit(
        {
            "id": user["id"],
            "name": user["name"],
            "created_at": timestamp(user.get("created_at", -62135596800)),
            "display_name": user.get("display_name", ""),
        }
    )


def _user(state: State, user_id: int | None) -> dict[str, Any] | None:
    return next((u for u in headscale(state)["users"] if u["id"] == user_id), None)


def preauthkey_proto(state: State, key: dict[str, Any]) -> dict[str, Any]:
    user = _user(state, key.get("user_id"))
    return _omit(
        {
            "user": user_proto(user) if user else None,
            "id": key["id"],
            "key": f"{AUTH_PREFIX}{key['prefix']}-***",
            "reusable": key["reusable"],
            "ephemeral": key.get("ephemeral", False),
            "used": key["used"],
            "expiration": timestamp(key.get("expiration")),
            "created_at": timestamp(key.get("created_at")),
            "acl_tags": key.get("tags") or [],
        }
    )


def apikey_proto(key: dict[str, Any]) -> dict[str, Any]:
    return _omit(
        {
            "id": key["id"],
            "prefix": f"{API_PREFIX}{key['prefix']}-***",
            "expiration": timestamp(key.get("expiration")),
            "created_at": timestamp(key.get("created_at")),
            "last_seen": timestamp(key.get("last_seen")),
        }
    )


def node_proto(state: State, node: dict[str, Any]) -> dict[str, Any]:
    """types/node.go `Proto`, and grpcv1.go `nodesToProto`: a tagged node is listed under the
    TaggedDevices user; `online` is omitted when false."""
    key = next(
        (k for k in headscale(state)["preauthkeys"] if k["id"] == node.get("auth_key_id")), None
    )
    user = TAGGED_DEVICES if node.get("tags") else _user(state, node.get("user_id"))
    return _omit(
        {
            "id": node["id"],
            "machine_key": node["machine_key"],
            "node_key": node["node_key"],
            "disco_key": node.get("disco_key", ""),
            "ip_addresses": node.get("ip_addresses") or [],
            "name": node["hostname"],
            "user": user_proto(user) if user else None,
            "last_seen": timestamp(node.get("last_seen")),
            "expiry": timestamp(node.get("expiry")),
            "pre_auth_key": preauthkey_proto(state, key) if key else None,
            "created_at": timestamp(node.get("created_at")),
            "register_method": node.get("register_method", 0),
            "given_name": node.get("given_name") or node["hostname"],
            "online": node.get("online", False),
            "approved_routes": node.get("approved_routes") or [],
            "available_routes": node.get("available_routes") or [],
            "subnet_routes": node.get("subnet_routes") or [],
            "tags": node.get("tags") or [],
        }
    )


def parse_expiration(text: str) -> float:
    """prometheus/common model.ParseDuration (the CLI's `--expiration`): units y w d h m s ms."""
    units = {"y": 31536000, "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
    found = re.fullmatch(r"((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?", text)
    if not text or found is None or not any(found.groups()):
        raise ValueError(f'not a valid duration string: "{text}"')
    total = 0.0
    for index, unit in enumerate(("y", "w", "d", "h", "m", "s", "ms")):
        value = found.group(2 * index + 2)
        if value:
            total += int(value) * units[unit]
    return total


# --- what clients do -------------------------------------------------------------------------


def find_preauthkey(state: State, text: str) -> tuple[dict[str, Any] | None, str | None]:
    """hscontrol/db/preauth_keys.go `findAuthKey`: parse the key, look it up by prefix, check
    the secret; "auth-key not found" when the prefix is unknown."""
    if not text.startswith(AUTH_PREFIX):
        return None, "auth-key not found"
    rest = text.removeprefix(AUTH_PREFIX)
    prefix, secret = rest[:12], rest[13:]
    key = next((k for k in headscale(state)["preauthkeys"] if k["prefix"] == prefix), None)
    if key is None:
        return None, "auth-key not found"
    if key["secret"] != secret:
        return (
            None,
            "invalid auth key: crypto/bcrypt: hashedPassword is not the hash of the given password",
        )
    return key, None


def validate(state: State, key: dict[str, Any]) -> str | None:
    """hscontrol/types/preauth_key.go `Validate`: expired, then used unless reusable."""
    if key.get("expiration") is not None and key["expiration"] < clock.now(state):
        return "authkey expired"
    if key["reusable"]:
        return None
    if key["used"]:
        return "authkey already used"
    return None


def login_with_authkey(
    state: State, authkey: str, *, machine_key: str, node_key: str, hostname: str, routes: list[str]
) -> tuple[dict[str, Any] | None, str | None]:
    """A client registering with a pre-auth key (hscontrol/state/state.go
    `HandleNodeFromPreAuthKey`): the key must exist; a node of the same machine key and user
    re-registering with its node key skips validation, anyone else is validated; a single-use
    key is marked used; tags of the key are copied to a NEW node only."""
    key, problem = find_preauthkey(state, authkey)
    if key is None:
        return None, problem
    nodes = headscale(state)["nodes"]
    existing = next(
        (
            n
            for n in nodes
            if n["machine_key"] == machine_key
            and key.get("user_id") is not None
            and n.get("user_id") == key["user_id"]
        ),
        None,
    )
    if existing is None or existing["node_key"] != node_key:
        problem = validate(state, key)
        if problem:
            return None, problem
    now = clock.now(state)
    if existing is not None:
        existing.update(node_key=node_key, hostname=hostname, auth_key_id=key["id"], last_seen=now)
        node = existing
    else:
        number = _next(state, "node")
        node = {
            "id": number,
            "machine_key": machine_key,
            "node_key": node_key,
            "hostname": hostname,
            "given_name": hostname,
            "user_id": key.get("user_id"),
            "tags": list(key.get("tags") or []),
            "ip_addresses": [f"100.64.0.{number}", f"fd7a:115c:a1e0::{number}"],
            "created_at": now,
            "last_seen": now,
            "expiry": None if key.get("tags") else now + 180 * 86400,
            "register_method": REGISTER_AUTH_KEY,
            "auth_key_id": key["id"],
            "online": False,
            "available_routes": list(routes),
            "approved_routes": [],
        }
        nodes.append(node)
    if not key["reusable"]:
        key["used"] = True
    return node, None


def node_by_machine_key(state: State, machine_key: str) -> dict[str, Any] | None:
    return next((n for n in headscale(state)["nodes"] if n["machine_key"] == machine_key), None)


def lose_database(state: State) -> None:
    """The SQLite database is gone (no backup, or a replica-less rebuild): every user, node and
    key with it."""
    replica = headscale(state).get("replica", [])
    state["headscale"] = empty_database()
    state["headscale"]["replica"] = replica


# --- the CLI -----------------------------------------------------------------------------------

_FLAGS = {
    "output": ("string", "o"),
    "user": ("string", "u"),
    "reusable": ("bool", None),
    "ephemeral": ("bool", None),
    "expiration": ("string", "e"),
    "tags": ("slice", None),
    "id": ("string", "i"),
    "prefix": ("string", "p"),
    "key": ("string", "k"),
    "config": ("string", "c"),
    "force": ("bool", None),
}


class _ExitError(Exception):
    def __init__(self, code: int, out: str = "", err: str = "") -> None:
        super().__init__(err)
        self.code, self.out, self.err = code, out, err


def _success(result: Any, override: str, output: str) -> NoReturn:
    """cmd/headscale/cli/utils.go `SuccessOutput`: JSON (MarshalIndent, tab) or the text."""
    if output == "json":
        raise _ExitError(0, json.dumps(result, indent="\t") + "\n")
    if output == "json-line":
        raise _ExitError(0, json.dumps(result, separators=(",", ":")) + "\n")
    raise _ExitError(0, override + "\n")


def _error(message: str, override: str, output: str) -> NoReturn:
    """`ErrorOutput`: {"error": ...} as JSON on stderr, or the override text."""
    if output in ("json", "json-line"):
        raise _ExitError(1, "", json.dumps({"error": message}, indent="\t") + "\n")
    raise _ExitError(1, "", override + "\n")


def run(state: State, argv: list[str]) -> tuple[int, str, str]:
    """`headscale <argv>` in the pod: exit code, stdout, stderr."""
    try:
        _dispatch(state, argv)
    except _ExitError as done:
        return done.code, done.out, done.err
    except FlagError as error:
        return 1, "", f"Error: {error}\n"
    return 0, "", ""


def _dispatch(state: State, argv: list[str]) -> None:
    parsed = parse(argv, _FLAGS)
    words = parsed.args
    output = parsed.get("output", "")
    db = headscale(state)
    now = clock.now(state)
    if words[:2] in (["users", "list"], ["users", "ls"]):
        _success([user_proto(u) for u in db["users"]] or None, "", output)
    if words[:2] == ["users", "create"] and len(words) == 3:
        if any(u["name"] == words[2] for u in db["users"]):
            _error(
                "rpc error: code = Internal desc = failed to create user: creating user: "
                "UNIQUE constraint failed: users.name",
                "Cannot create user: failed to create user: creating user: UNIQUE constraint "
                "failed: users.name",
                output,
            )
        user = {"id": _next(state, "user"), "name": words[2], "created_at": now}
        db["users"].append(user)
        _success(user_proto(user), "User created", output)
    if words[:2] == ["preauthkeys", "list"]:
        _success([preauthkey_proto(state, k) for k in db["preauthkeys"]] or None, "", output)
    if words[:2] == ["preauthkeys", "create"]:
        _create_preauthkey(state, parsed.flags, output)
    if words[:2] == ["preauthkeys", "expire"]:
        key = next((k for k in db["preauthkeys"] if str(k["id"]) == str(parsed.get("id"))), None)
        if not parsed.get("id"):
            _error("missing --id parameter", "Error: missing --id parameter", output)
        if key is not None:
            key["expiration"] = now
        _success({}, "Key expired", output)
    if words[:2] == ["apikeys", "list"]:
        _success([apikey_proto(k) for k in db["apikeys"]] or None, "", output)
    if words[:2] == ["apikeys", "create"]:
        try:
            seconds = parse_expiration(parsed.get("expiration") or DEFAULT_API_EXPIRY)
        except ValueError as error:
            _error(str(error), f"Could not parse duration: {error}\n", output)
        prefix, secret = _random(state, 12), _random(state, 64)
        db["apikeys"].append(
            {
                "id": _next(state, "apikey"),
                "prefix": prefix,
                "secret": secret,
                "created_at": now,
                "expiration": now + seconds,
                "last_seen": None,
            }
        )
        text = f"{API_PREFIX}{prefix}-{secret}"
        _success(text, text, output)
    if words[:2] == ["apikeys", "expire"]:
        key = next((k for k in db["apikeys"] if str(k["id"]) == str(parsed.get("id"))), None)
        if key is not None:
            key["expiration"] = now
        _success({}, "Key expired", output)
    if words[:2] in (["nodes", "list"], ["nodes", "ls"]):
        _success(
            [node_proto(state, n) for n in sorted(db["nodes"], key=lambda n: n["id"])] or None,
            "",
            output,
        )
    if words[:2] == ["nodes", "register"]:
        _register(state, parsed.flags, output)
    raise _ExitError(1, "", f'Error: unknown command "{" ".join(words)}" for "headscale"\n')


def _create_preauthkey(state: State, flags: dict[str, Any], output: str) -> None:
    """cmd/headscale/cli/preauthkeys.go `createPreAuthKeyCmd`; prints the key itself (the
    PreAuthKeyNew, shown once) unless `-o json`."""
    db = headscale(state)
    now = clock.now(state)
    try:
        seconds = parse_expiration(flags.get("expiration") or DEFAULT_EXPIRY)
    except ValueError as error:
        _error(str(error), f"Could not parse duration: {error}\n", output)
    user_id = int(flags.get("user") or 0) or None
    if user_id is not None and _user(state, user_id) is None:
        _error("user not found", "Cannot create Pre Auth Key: user not found\n", output)
    for tag in flags.get("tags") or []:
        if not tag.startswith("tag:"):
            message = "tag must start with the string 'tag:'"
            _error(
                f"rpc error: code = InvalidArgument desc = {message}",
                f"Cannot create Pre Auth Key: rpc error: code = InvalidArgument desc = {message}\n",
                output,
            )
    prefix, secret = _random(state, 12), _random(state, 64)
    key = {
        "id": _next(state, "preauthkey"),
        "prefix": prefix,
        "secret": secret,
        "user_id": user_id,
        "reusable": bool(flags.get("reusable")),
        "ephemeral": bool(flags.get("ephemeral")),
        "used": False,
        "tags": list(flags.get("tags") or []),
        "created_at": now,
        "expiration": now + seconds,
    }
    db["preauthkeys"].append(key)
    text = f"{AUTH_PREFIX}{prefix}-{secret}"
    _success(dict(preauthkey_proto(state, key), key=text), text, output)


def _register(state: State, flags: dict[str, Any], output: str) -> None:
    """`nodes register --key <registration ID> --user <name>` (grpcv1.go `RegisterNode`): the
    ID is 24 characters, the user must exist, the device must be waiting in the registration
    cache."""
    db = headscale(state)
    registration = str(flags.get("key") or "")
    if len(registration) != 24:
        message = "registration ID must be 24 characters long"
        _error(message, f"Cannot register node: {message}\n", output)
    user = next((u for u in db["users"] if u["name"] == flags.get("user")), None)
    if user is None:
        message = "looking up user: user not found"
        _error(message, f"Cannot register node: {message}\n", output)
    waiting: dict[str, Any] | None = db["pending"].pop(registration, None)
    if waiting is None:
        message = "node not found in registration cache"
        _error(message, f"Cannot register node: {message}\n", output)
    now = clock.now(state)
    number = _next(state, "node")
    node = {
        "id": number,
        "machine_key": waiting["machine_key"],
        "node_key": waiting.get("node_key", f"nodekey:{number:064x}"),
        "hostname": waiting["hostname"],
        "given_name": waiting["hostname"],
        "user_id": user["id"],
        "tags": [],
        "ip_addresses": [f"100.64.0.{number}"],
        "created_at": now,
        "last_seen": now,
        "expiry": now + 180 * 86400,
        "register_method": REGISTER_CLI,
        "online": True,
    }
    db["nodes"].append(node)
    _success(node_proto(state, node), f"Node {node['given_name']} registered", output)


def rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
