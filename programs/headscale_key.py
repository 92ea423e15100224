"""A Headscale key's life, through the Headscale CLI in the running pod (`kubectl exec`; the image
has no shell): `mint` it, `expire` it once replaced, and `check` whether the key a Secret holds
must be renewed, printing the generation the next key is minted under.

Headscale 0.28 lists a key as `<prefix><12 characters>-***` and keeps only a hash of the secret
(juanfont/headscale@v0.28.0: hscontrol/types/preauth_key.go, api_key.go `Proto`), so a minted
key cannot be read back: an update re-emits the key minted before (`PULUMI_COMMAND_STDOUT`)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

from programs.runtime import attempts, credential_file, fail, run_cli, say


class Params(TypedDict):
    attempts: int
    container: str
    expiration: str
    generation_annotation: str
    # Where the cluster holds the key (check only): the Secret, its item.
    held_item: str | None
    held_namespace: str | None
    held_secret: str | None
    initial: str
    key_prefix: str
    kind: Literal["preauthkey", "apikey"]
    kubeconfig_env: str
    # [namespace, name] of the Secret whose `_current-profile` says the key's user is logged in.
    login_state: list[str] | None
    mode: Literal["mint", "expire", "check"]
    namespace: str
    program: str
    public_prefix_length: int
    renew_before_seconds: int
    retry_delay_seconds: int
    reusable: bool
    rollout_timeout_seconds: int
    tags: list[str]
    user: str | None
    workload: str


# --- what Headscale prints ----------------------------------------------------------------------


def listed_form(params: Params, key: str) -> str:
    """What `list -o json` shows of a key: its public prefix, the secret masked."""
    cut = len(params["key_prefix"]) + params["public_prefix_length"]
    return key[:cut] + "-***"


def expiry_text(entry: Mapping[str, Any]) -> str:
    """A listed key's `expiration` (a Timestamp, {"seconds": N}) as RFC 3339, or `never`."""
    seconds = (entry.get("expiration") or {}).get("seconds")
    if seconds is None:
        return "never"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


def user_id(users: list[dict[str, Any]], name: str) -> int | None:
    for user in users:
        if user.get("name") == name:
            return int(user["id"])
    return None


def needs_renewal(
    entry: Mapping[str, Any] | None, kind: str, now: float, renew_before_seconds: int
) -> bool:
    """A held key is renewed when Headscale does not know it, a single-use key is used, or it
    expires within `renew_before_seconds`."""
    renew = entry is None or (kind == "preauthkey" and bool(entry.get("used")))
    seconds = ((entry or {}).get("expiration") or {}).get("seconds")
    if seconds is not None and int(seconds) - now < renew_before_seconds:
        renew = True
    return renew


def renewal_generation(listed: str) -> str:
    """The generation a renewal mints under: the same for the same held key, whenever asked."""
    return "renew-" + hashlib.sha256(listed.encode()).hexdigest()[:16]


# --- the cluster --------------------------------------------------------------------------------


def kubectl(
    params: Params, path: str, *args: str, namespace: str | None = None, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    argv = ["kubectl", "--namespace", namespace or params["namespace"], *args]
    result = run_cli(argv, timeout=timeout, env={"KUBECONFIG": path})
    if result is None:
        fail(f"`kubectl {args[0]}` timed out after {timeout}s")
    return result


def headscale(params: Params, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    target = ("exec", params["workload"], "--container", params["container"], "--")
    return kubectl(params, path, *target, "headscale", *args)


def cli_json(params: Params, path: str, *args: str) -> Any:
    listed = None
    for _ in attempts(params["attempts"], params["retry_delay_seconds"]):
        listed = headscale(params, path, *args, "--output", "json")
        if listed.returncode == 0:
            try:
                return json.loads(listed.stdout or "null") or []
            except ValueError:
                fail(f"`headscale {' '.join(args)}` did not print JSON")
    fail(f"the Headscale CLI did not answer: {listed.stderr.strip() if listed else ''}")


def wait_for_rollout(params: Params, path: str) -> tuple[bool, str]:
    timeout = params["rollout_timeout_seconds"]
    rollout = kubectl(
        params,
        path,
        "rollout",
        "status",
        params["workload"],
        f"--timeout={timeout}s",
        timeout=timeout + 30,
    )
    return rollout.returncode == 0, rollout.stderr.strip()


def listed_keys(params: Params, path: str) -> dict[str, dict[str, Any]]:
    """[]*v1.PreAuthKey / []*v1.ApiKey through encoding/json, by listed form: `key` / `prefix`
    is the listed form, `expiration` a Timestamp, `used` omitted when false (omitempty)."""
    noun = "preauthkeys" if params["kind"] == "preauthkey" else "apikeys"
    field = "key" if params["kind"] == "preauthkey" else "prefix"
    return {str(k.get(field, "")): k for k in cli_json(params, path, noun, "list")}


def owner_id(params: Params, path: str, users: list[dict[str, Any]]) -> int:
    name = str(params["user"])
    found = user_id(users, name)
    if found is None:
        created = headscale(params, path, "users", "create", name)
        if created.returncode != 0:
            fail(f"could not create user {name}: {created.stderr.strip()}")
        found = user_id(cli_json(params, path, "users", "list"), name)
    if found is None:
        fail(f"user {name} is missing after creating it")
    return found


def get_secret(params: Params, path: str, namespace: str, name: str) -> dict[str, Any] | None:
    got = None
    for _ in attempts(params["attempts"], params["retry_delay_seconds"]):
        got = kubectl(params, path, "get", "secret", name, "--output", "json", namespace=namespace)
        if got.returncode == 0:
            secret: dict[str, Any] = json.loads(got.stdout)
            return secret
        if "NotFound" in got.stderr or "not found" in got.stderr:
            return None
    fail(f"cannot read Secret {namespace}/{name}: {got.stderr.strip() if got else ''}")


def decoded(secret: Mapping[str, Any], item: str) -> str:
    value = (secret.get("data") or {}).get(item)
    return base64.b64decode(value).decode() if value else ""


# --- the modes ----------------------------------------------------------------------------------


def mint(params: Params, path: str) -> str:
    ready, why = wait_for_rollout(params, path)
    if not ready:
        fail(f"Headscale is not ready: {why}")
    users = cli_json(params, path, "users", "list")
    if params["kind"] == "apikey":
        args = ["apikeys", "create", "--expiration", params["expiration"]]
    else:
        args = ["preauthkeys", "create", "--user", str(owner_id(params, path, users))]
        args += ["--expiration", params["expiration"]]
        if params["reusable"]:
            args.append("--reusable")
        if params["tags"]:
            args += ["--tags", ",".join(params["tags"])]
    created = headscale(params, path, *args)
    if created.returncode != 0:
        fail(f"Headscale refused to create the key: {created.stderr.strip()}")
    key = created.stdout.strip()
    if not key.startswith(params["key_prefix"]) or len(key.split()) != 1:
        fail(f"unexpected output from `headscale {args[0]} create` (not shown)")
    entry = listed_keys(params, path).get(listed_form(params, key))
    return key + "\n" + (expiry_text(entry) if entry else "unknown")


def expire(params: Params, path: str, key: str) -> str:
    ready, why = wait_for_rollout(params, path)
    if not ready:
        say(f"Headscale is gone or not ready, so the old key dies with it: {why}")
        return ""
    entry = listed_keys(params, path).get(listed_form(params, key))
    if entry is None:
        return ""
    noun = "preauthkeys" if params["kind"] == "preauthkey" else "apikeys"
    expired = headscale(params, path, noun, "expire", "--id", str(entry["id"]))
    if expired.returncode != 0:
        fail(f"could not expire the replaced key: {expired.stderr.strip()}")
    return ""


def check(params: Params, path: str) -> str:
    held = get_secret(params, path, str(params["held_namespace"]), str(params["held_secret"]))
    if held is None:
        return params["initial"]
    annotations = (held.get("metadata") or {}).get("annotations") or {}
    generation = str(annotations.get(params["generation_annotation"], params["initial"]))
    key = decoded(held, str(params["held_item"])).strip()
    if params["login_state"]:
        namespace, name = params["login_state"]
        state = get_secret(params, path, namespace, name)
        if state is not None and decoded(state, "_current-profile"):
            return generation  # logged in: the key is not needed again
    ready, why = wait_for_rollout(params, path)
    if not ready:
        say(f"Headscale is not ready, the key is kept as it is: {why}")
        return generation
    entry = listed_keys(params, path).get(listed_form(params, key)) if key else None
    if not needs_renewal(entry, params["kind"], time.time(), params["renew_before_seconds"]):
        return generation
    return renewal_generation(listed_form(params, key))


def main(params: Params) -> str:
    previous = os.environ.get("PULUMI_COMMAND_STDOUT", "").strip()
    if params["mode"] == "mint" and previous.startswith(params["key_prefix"]):
        # An update keeps the key minted at create; a new generation replaces the Command.
        return previous
    if params["mode"] == "expire" and not previous.startswith(params["key_prefix"]):
        return ""
    with credential_file(params["kubeconfig_env"], "kubeconfig") as path:
        if params["mode"] == "mint":
            return mint(params, path)
        if params["mode"] == "expire":
            return expire(params, path, previous.splitlines()[0])
        return check(params, path)
