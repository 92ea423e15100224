"""Minting, renewing and expiring what Headscale cannot declare: API keys and pre-auth keys.

Each key is a `pulumi_command.local.Command` that runs on the workstation (prerequisites:
`kubectl` and `python3`, which the Pulumi Python program needs anyway) and `kubectl exec`s the
Headscale CLI in the running pod (components.md 2.5). Its program, programs/headscale_key.py:

- writes the kubeconfig (a secret, handed over in the environment) to a 0600 temp file under
  umask 077 and deletes it afterwards; it never prints it;
- waits for the Deployment (`kubectl rollout status --timeout`) and then for the CLI to answer,
  with a bounded number of attempts;
- creates the key's owner only when `headscale users list -o json` lacks it; on an update (a
  changed kubeconfig, say) re-emits the key it minted before (`PULUMI_COMMAND_STDOUT`) instead of
  minting another: Headscale keeps only a hash of each key, so it cannot be read back;
- prints the key and, on a second line, its expiry (read back from `... list -o json`); stdout
  is a secret output and never logged;
- on delete (a replacement or a destroy) expires the key it minted (`... expire --id N`), so a
  replaced key is dead at once; best effort: a Headscale that is already gone takes its keys
  with it.

Renewal (when a key is near expiry, no longer known to Headscale, or, for the router's single-use
key, used up while the router has lost its state Secret) needs a signal on a later `pulumi up`,
but a Command re-runs only when its inputs change. So each key has a *check*, an invoke that runs
on every preview and update (`local.run_output`), reads the Secret that holds the key in the
cluster and asks Headscale about it, and prints a *generation*: the generation the held key was
minted under (an annotation on that Secret) while the key is fine, `initial` when there is no
Secret yet, and `renew-<hash of the key's public prefix>` when it must be renewed. The generation
is the Command's only trigger. So an `up` with nothing to renew passes the same string as the last
one (no diff), a renewal replaces the Command exactly once (the new key's Secret then records the
new generation, which the next check repeats), and the outcome depends only on cluster state,
never on the clock of the machine running `up` beyond the expiry comparison itself.

To force a renewal: `pulumi up --replace '<URN of the key's Command>'` (README, remote access).

The program is programs/headscale_key.py (no shell quoting, real JSON parsing, the headscale image
has no shell), made into the Command's text by programs/build.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import pulumi
import pulumi_command as command

from components.shared.kubectl import KUBECONFIG_ENV as KUBECONFIG_ENV
from programs import headscale_key
from programs.build import INTERPRETER, environment, program_text

ROLLOUT_TIMEOUT_SECONDS: Final = 600
CLI_ATTEMPTS: Final = 30
CLI_RETRY_DELAY_SECONDS: Final = 5
# The router logs in once: containerboot runs `tailscale up` only while tailscaled reports
# NeedsLogin (TS_AUTH_ONCE, cmd/containerboot/main.go @ v1.102.3), and its state Secret keeps the
# node registered afterwards. So its key is single-use and short-lived.
ROUTER_KEY_EXPIRY: Final = "1h"
# Renew an API key this long before it expires (it is what an admin pastes into Headplane).
API_KEY_RENEW_BEFORE_SECONDS: Final = 30 * 86400
# A pre-auth key must outlive the router's next login attempt by this much.
PRE_AUTH_KEY_RENEW_BEFORE_SECONDS: Final = 600
# Key formats of Headscale 0.28: `<prefix><12 characters>-<secret>`, listed as
# `<prefix><12 characters>-***` (hscontrol/db/preauth_keys.go, api_key.go; types Proto()).
PREAUTH_KEY_PREFIX: Final = "hskey-auth-"
API_KEY_PREFIX: Final = "hskey-api-"
PUBLIC_PREFIX_LENGTH: Final = 12
# The annotation on a key's Secret that records the generation it was minted under.
GENERATION_ANNOTATION: Final = "homelab.sarma.love/key-generation"
INITIAL_GENERATION: Final = "initial"


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
            # Headscale 0.28 takes `--user <numeric ID>`; the program resolves the name.
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


@dataclass(frozen=True)
class HeldKey:
    """Where the cluster keeps a minted key: a Secret's item, annotated with its generation.

    `login_state` names the Secret whose `_current-profile` item says the key's user (the subnet
    router) is logged in and needs no key any more (tailscaled's kube store writes it there,
    ipn/store/kubestore/store_kube.go @ v1.102.3); None for keys that are always needed."""

    namespace: str
    secret: str
    item: str
    login_state: tuple[str, str] | None = None


def _params(
    mode: Literal["mint", "expire", "check"],
    request: KeyRequest,
    target: HeadscaleTarget,
    held: HeldKey | None,
    *,
    attempts: int,
    retry_delay_seconds: int,
    rollout_timeout_seconds: int,
) -> str:
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    renew_before = (
        PRE_AUTH_KEY_RENEW_BEFORE_SECONDS
        if request.kind == "preauthkey"
        else API_KEY_RENEW_BEFORE_SECONDS
    )
    params = headscale_key.Params(
        attempts=attempts,
        container=target.container,
        expiration=request.expiration,
        generation_annotation=GENERATION_ANNOTATION,
        held_item=held.item if held else None,
        held_namespace=held.namespace if held else None,
        held_secret=held.secret if held else None,
        initial=INITIAL_GENERATION,
        key_prefix=request.key_prefix,
        kind=request.kind,
        kubeconfig_env=KUBECONFIG_ENV,
        login_state=list(held.login_state) if held and held.login_state else None,
        mode=mode,
        namespace=target.namespace,
        program=f"headscale-key-{mode}",
        public_prefix_length=PUBLIC_PREFIX_LENGTH,
        renew_before_seconds=renew_before,
        retry_delay_seconds=retry_delay_seconds,
        reusable=request.reusable,
        rollout_timeout_seconds=rollout_timeout_seconds,
        tags=list(request.tags),
        user=request.user,
        workload=target.workload,
    )
    return program_text(headscale_key, params)


def mint_script(
    request: KeyRequest,
    target: HeadscaleTarget,
    *,
    attempts: int = CLI_ATTEMPTS,
    retry_delay_seconds: int = CLI_RETRY_DELAY_SECONDS,
    rollout_timeout_seconds: int = ROLLOUT_TIMEOUT_SECONDS,
) -> str:
    """The program the Command runs on create and update: mint (or re-emit) the key."""
    return _params(
        "mint",
        request,
        target,
        None,
        attempts=attempts,
        retry_delay_seconds=retry_delay_seconds,
        rollout_timeout_seconds=rollout_timeout_seconds,
    )


def expire_script(
    request: KeyRequest,
    target: HeadscaleTarget,
    *,
    attempts: int = CLI_ATTEMPTS,
    retry_delay_seconds: int = CLI_RETRY_DELAY_SECONDS,
    rollout_timeout_seconds: int = ROLLOUT_TIMEOUT_SECONDS,
) -> str:
    """The program the Command runs on delete: expire the key it minted."""
    return _params(
        "expire",
        request,
        target,
        None,
        attempts=attempts,
        retry_delay_seconds=retry_delay_seconds,
        rollout_timeout_seconds=rollout_timeout_seconds,
    )


def check_script(
    request: KeyRequest,
    target: HeadscaleTarget,
    held: HeldKey,
    *,
    attempts: int = CLI_ATTEMPTS,
    retry_delay_seconds: int = CLI_RETRY_DELAY_SECONDS,
    rollout_timeout_seconds: int = ROLLOUT_TIMEOUT_SECONDS,
) -> str:
    """The program the check runs on every preview/update: print the key's generation."""
    return _params(
        "check",
        request,
        target,
        held,
        attempts=attempts,
        retry_delay_seconds=retry_delay_seconds,
        rollout_timeout_seconds=rollout_timeout_seconds,
    )


@dataclass(frozen=True)
class MintedKey:
    """A minted key (secret), its expiry (RFC 3339, or `unknown`) and the generation it was
    minted under, which the Secret holding it records (GENERATION_ANNOTATION)."""

    key: pulumi.Output[str]
    expiration: pulumi.Output[str]
    generation: pulumi.Output[str]


def mint_key(
    name: str,
    request: KeyRequest,
    *,
    target: HeadscaleTarget,
    held: HeldKey,
    kubeconfig: pulumi.Output[str],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
    deleted_with: pulumi.Resource | None = None,
) -> MintedKey:
    """A Command that mints `request` in the Headscale pod, renewed when its check says so."""
    secret_kubeconfig: pulumi.Output[str] = pulumi.Output.secret(kubeconfig)
    program = environment(headscale_key)
    check_environment: pulumi.Output[Mapping[str, str] | None] = secret_kubeconfig.apply(
        lambda text: {**program, KUBECONFIG_ENV: text}
    )
    checked = command.local.run_output(
        command=check_script(request, target, held),
        interpreter=list(INTERPRETER),
        environment=check_environment,
        # Errors stay visible; stdout is only the generation.
        logging=command.local.Logging.STDERR,
    )
    # The generation names no secret; it only inherits the kubeconfig's secrecy.
    generation = pulumi.Output.unsecret(checked.stdout.apply(lambda text: text.strip()))
    script = mint_script(request, target)
    minted = command.local.Command(
        name,
        create=script,
        # Same program on update: it re-emits the previous key rather than minting another.
        update=script,
        delete=expire_script(request, target),
        interpreter=list(INTERPRETER),
        environment={**program, KUBECONFIG_ENV: secret_kubeconfig},
        triggers=[generation],
        # Errors stay visible; the key (stdout) never reaches the logs.
        logging=command.local.Logging.STDERR,
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=list(depends_on),
            additional_secret_outputs=["stdout"],
            deleted_with=deleted_with,
        ),
    )
    lines = minted.stdout.apply(lambda text: [*text.strip().splitlines(), "", "unknown"][:2])
    key: pulumi.Output[str] = pulumi.Output.secret(lines.apply(lambda pair: pair[0]))
    expiration = pulumi.Output.unsecret(lines.apply(lambda pair: pair[1] or "unknown"))
    return MintedKey(key=key, expiration=expiration, generation=generation)
