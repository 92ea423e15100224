"""Minting what Headscale cannot declare: API keys and pre-auth keys (headscale #1855).

Each key is a `pulumi_command.local.Command` that runs on the workstation (prerequisites:
`kubectl` and `python3`, which the Pulumi Python program needs anyway) and `kubectl exec`s the
Headscale CLI in the running pod (components.md 2.5). The script:

- writes the kubeconfig (a secret, handed over in the environment) to a 0600 temp file under
  umask 077 and deletes it afterwards; it never prints it;
- waits for the Deployment (`kubectl rollout status --timeout`) and then for the CLI to answer,
  with a bounded number of attempts;
- is idempotent: it creates the key's owner only when `headscale users list -o json` lacks it,
  and on an update (a changed kubeconfig, say) re-emits the key it minted before, taken from
  `PULUMI_COMMAND_STDOUT`, instead of minting another. Headscale 0.28 keeps only a hash of each
  key (`preauthkeys list` shows `hskey-auth-<prefix>-***`), so an existing key cannot be read
  back; a deliberate rotation is `pulumi up --replace <the Command's URN>`;
- prints the key as its only stdout, which is a secret output and never logged.

The script is Python (no shell quoting, real JSON parsing, the headscale image has no shell) and
a deterministic string: parameters are a sorted literal at its top.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import pulumi
import pulumi_command as command

KUBECONFIG_ENV: Final = "HOMELAB_KUBECONFIG"
INTERPRETER: Final = ("python3", "-c")
ROLLOUT_TIMEOUT_SECONDS: Final = 600
CLI_ATTEMPTS: Final = 30
CLI_RETRY_DELAY_SECONDS: Final = 5
# The router logs in once: containerboot runs `tailscale up` only while tailscaled reports
# NeedsLogin (TS_AUTH_ONCE, cmd/containerboot/main.go @ v1.102.3), and its state Secret keeps the
# node registered afterwards. So its key is single-use and short-lived.
ROUTER_KEY_EXPIRY: Final = "1h"
# Key formats of Headscale 0.28 (hscontrol/db/preauth_keys.go, api_key.go).
PREAUTH_KEY_PREFIX: Final = "hskey-auth-"
API_KEY_PREFIX: Final = "hskey-api-"


@dataclass(frozen=True)
class KeyRequest:
    """One key to mint. `user`, `tags` and `reusable` apply to pre-auth keys only."""

    kind: Literal["preauthkey", "apikey"]
    expiration: str
    user: str | None = None
    tags: tuple[str, ...] = ()
    reusable: bool = False

    def __post_init__(self) -> None:
        if self.kind == "preauthkey" and not self.user:
            # Headscale 0.28 takes `--user <numeric ID>`; the script resolves the name.
            raise ValueError("a pre-auth key needs the user that owns it")
        if self.kind == "apikey" and (self.user or self.tags or self.reusable):
            raise ValueError("an API key has no user, tags or reusable flag")

    @property
    def key_prefix(self) -> str:
        return PREAUTH_KEY_PREFIX if self.kind == "preauthkey" else API_KEY_PREFIX


@dataclass(frozen=True)
class HeadscaleTarget:
    """Where the Headscale CLI runs: `kubectl -n <namespace> exec <workload> -c <container>`."""

    namespace: str
    workload: str
    container: str


_SCRIPT_BODY: Final = """
import json
import os
import subprocess
import sys
import tempfile
import time


def fail(message):
    sys.stderr.write("mint-headscale-key: " + message + "\\n")
    sys.exit(1)


def main():
    previous = os.environ.get("PULUMI_COMMAND_STDOUT", "").strip()
    if previous.startswith(PARAMS["key_prefix"]):
        # An update keeps the key minted at create; `pulumi up --replace` mints a new one.
        sys.stdout.write(previous)
        return
    kubeconfig = os.environ.get(PARAMS["kubeconfig_env"], "")
    if not kubeconfig.strip():
        fail(PARAMS["kubeconfig_env"] + " is empty")
    os.umask(0o077)
    handle, path = tempfile.mkstemp(prefix="homelab-kubeconfig-")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(kubeconfig)
        key = mint(path)
    finally:
        os.unlink(path)
    sys.stdout.write(key)


def kubectl(path, *args, timeout=120):
    hidden = (PARAMS["kubeconfig_env"], "PULUMI_COMMAND_STDOUT", "PULUMI_COMMAND_STDERR")
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env["KUBECONFIG"] = path
    argv = ["kubectl", "--namespace", PARAMS["namespace"], *args]
    try:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        fail("kubectl is not on PATH (a prerequisite of `pulumi up`)")
    except subprocess.TimeoutExpired:
        fail("`kubectl " + args[0] + "` timed out after " + str(timeout) + "s")


def headscale(path, *args):
    target = PARAMS["workload"]
    container = PARAMS["container"]
    return kubectl(path, "exec", target, "--container", container, "--", "headscale", *args)


def list_users(path):
    for _ in range(PARAMS["attempts"]):
        listed = headscale(path, "users", "list", "--output", "json")
        if listed.returncode == 0:
            try:
                return json.loads(listed.stdout or "null") or []
            except ValueError:
                fail("`headscale users list` did not print JSON")
        time.sleep(PARAMS["retry_delay_seconds"])
    fail("the Headscale CLI did not answer: " + listed.stderr.strip())


def user_id(users, name):
    for user in users:
        if user.get("name") == name:
            return int(user["id"])
    return None


def owner_id(path, users):
    name = PARAMS["user"]
    found = user_id(users, name)
    if found is None:
        created = headscale(path, "users", "create", name)
        if created.returncode != 0:
            fail("could not create user " + name + ": " + created.stderr.strip())
        found = user_id(list_users(path), name)
    if found is None:
        fail("user " + name + " is missing after creating it")
    return found


def mint(path):
    timeout = PARAMS["rollout_timeout_seconds"]
    rollout = kubectl(
        path, "rollout", "status", PARAMS["workload"], "--timeout=" + str(timeout) + "s",
        timeout=timeout + 30,
    )
    if rollout.returncode != 0:
        fail("Headscale is not ready: " + rollout.stderr.strip())
    users = list_users(path)
    if PARAMS["kind"] == "apikey":
        args = ["apikeys", "create", "--expiration", PARAMS["expiration"]]
    else:
        args = ["preauthkeys", "create", "--user", str(owner_id(path, users))]
        args += ["--expiration", PARAMS["expiration"]]
        if PARAMS["reusable"]:
            args.append("--reusable")
        if PARAMS["tags"]:
            args += ["--tags", ",".join(PARAMS["tags"])]
    created = headscale(path, *args)
    if created.returncode != 0:
        fail("Headscale refused to create the key: " + created.stderr.strip())
    key = created.stdout.strip()
    if not key.startswith(PARAMS["key_prefix"]) or len(key.split()) != 1:
        fail("unexpected output from `headscale " + args[0] + " create` (not shown)")
    return key


main()
"""


def mint_script(
    request: KeyRequest,
    target: HeadscaleTarget,
    *,
    attempts: int = CLI_ATTEMPTS,
    retry_delay_seconds: int = CLI_RETRY_DELAY_SECONDS,
    rollout_timeout_seconds: int = ROLLOUT_TIMEOUT_SECONDS,
) -> str:
    """The Python program the Command runs: a sorted parameter literal, then a fixed body."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    params: dict[str, object] = {
        "attempts": attempts,
        "container": target.container,
        "expiration": request.expiration,
        "key_prefix": request.key_prefix,
        "kind": request.kind,
        "kubeconfig_env": KUBECONFIG_ENV,
        "namespace": target.namespace,
        "retry_delay_seconds": retry_delay_seconds,
        "reusable": request.reusable,
        "rollout_timeout_seconds": rollout_timeout_seconds,
        "tags": list(request.tags),
        "user": request.user,
        "workload": target.workload,
    }
    return f"PARAMS = {dict(sorted(params.items()))!r}\n{_SCRIPT_BODY}"


def mint_key(
    name: str,
    request: KeyRequest,
    *,
    target: HeadscaleTarget,
    kubeconfig: pulumi.Output[str],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
) -> pulumi.Output[str]:
    """A Command that mints `request` in the Headscale pod; its stdout (the key) as a secret."""
    script = mint_script(request, target)
    secret_kubeconfig: pulumi.Output[str] = pulumi.Output.secret(kubeconfig)
    minted = command.local.Command(
        name,
        create=script,
        # Same program on update: it re-emits the previous key rather than minting another.
        update=script,
        interpreter=list(INTERPRETER),
        environment={KUBECONFIG_ENV: secret_kubeconfig},
        # Errors stay visible; the key (stdout) never reaches the logs.
        logging=command.local.Logging.STDERR,
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=list(depends_on),
            additional_secret_outputs=["stdout"],
        ),
    )
    key: pulumi.Output[str] = pulumi.Output.secret(minted.stdout)
    return key
