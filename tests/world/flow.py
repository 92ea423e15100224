"""`pulumi up` against the world: the real program, its real Commands, the world as the providers.

    stack = flow.Stack()
    up = flow.up(world, stack, lambda: harness.render_stack("homelab"))
    assert up.ok, up.failure; up.ran("create"); up.render  # the engine's Render of this run

`up` runs the program once under the recording engine (homelab/engine.py), as Pulumi runs it:
each resource's step happens when it registers, which is after its dependencies' steps (the SDK
waits for their URNs), and its outputs are what the world returned, so a minted key reaches the
Secret that holds it; invokes (`local.run_output`) run when the program calls them. Removed
resources are deleted after the program, in reverse dependency order, and so are the old
instances of replaced ones. After the first failed step nothing else starts, as Pulumi does;
a failed create leaves nothing in the stack, a failed update keeps the old state
(pulumi/pulumi-command@v1.2.1 returns plain errors, never partial state:
pulumi/pulumi-go-provider@v1.3.0 infer/resource.go `Create`/`Update`).

`up(..., replace=["cluster-192.168.0.12"])` is `pulumi up --replace <urn>` of the resources of
those names; `refresh(world, stack)` is `pulumi refresh`: a Kubernetes object the cluster no
longer has leaves the state (the other providers' Reads are no-ops: terraform-provider-talos@
v0.11.0 Read of the apply, bootstrap and kubeconfig resources; a Command has no Read). A
resource `deleted_with` a replaced one is replaced with it (pulumi 3.272.0
sdk/python pulumi/resource.py `ResourceOptions.deleted_with`: "If the named resource is being
replaced, this resource will be replaced as well").

The providers' own plan-time renewals (tests/world/flow_effects.py): the Secrets resource
regenerates its client certificate in its last month, the Kubeconfig resource its certificate in
its last 720 h; either is an update.

Diffs (pulumi-command v1.2.1): a change of `triggers` (replaceOnChanges in
provider/pkg/provider/common/inputs.go) or of a `replace_on_changes` path, or the replacement of
a `replace_with` resource, replaces a Command (create the new one, delete the old one at the
end); any other input change updates it (the `update` program, else `create`, with the previous
outputs in PULUMI_COMMAND_STDOUT/STDERR: provider/pkg/provider/local/commandController.go
`Update`); equal inputs do nothing. Other types update in place.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from homelab import engine, fakes
from tests.world import configs
from tests.world import flow_effects as effects
from tests.world.world import World

COMMAND = "command:local:Command"
RUN = "command:local:run"
APPLY = "talos:machine/configurationApply:ConfigurationApply"
BOOTSTRAP = "talos:machine/bootstrap:Bootstrap"
KUBECONFIG = "talos:cluster/kubeconfig:Kubeconfig"
SECRETS = "talos:machine/secrets:Secrets"
SCHEMATIC = "talos:imageFactory/schematic:Schematic"


@dataclass
class Entry:
    """One resource in the stack's state."""

    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    dependencies: list[str]
    deleted_with: str | None = None
    # The `replacement_trigger` option (homelab/engine.py `_replacement_trigger`).
    trigger: Any = None


@dataclass
class Stack:
    """The stack's state between `up`s."""

    resources: dict[str, Entry] = field(default_factory=dict)
    pending_deletes: list[Entry] = field(default_factory=list)


@dataclass
class Step:
    op: str  # create, update, replace, delete, same, invoke, skipped
    type: str
    name: str
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str = ""


@dataclass
class Up:
    steps: list[Step]
    stack: Stack
    render: engine.Render | None
    failure: Step | None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def ran(self, *ops: str) -> list[str]:
        """Names of the steps that did something (all ops but same and skipped, or `ops`)."""
        wanted = set(ops) or {"create", "update", "replace", "delete", "invoke"}
        return [s.name for s in self.steps if s.op in wanted]

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name and s.op != "same")


class _Driver:
    def __init__(self, world: World, previous: Stack, replace: Sequence[str] = ()) -> None:
        self.world = world
        self.previous = previous
        self.forced = set(replace)
        self.renewing: set[str] = set()
        self.stack = Stack(pending_deletes=list(previous.pending_deletes))
        self.steps: list[Step] = []
        self.failure: Step | None = None
        self.lock = threading.RLock()
        self.replaced: set[str] = set()
        self.registered: set[str] = set()
        self.kubernetes_version = ""
        self.outputs = threading.local()

    # --- registration ---------------------------------------------------------------------

    def register(self, monitor: engine.RecordingMonitor, request: Any) -> dict[str, Any] | None:
        urn = monitor.make_urn(request.parent, request.type, request.name)
        inputs, _ = engine._decode(request.object)
        self.registered.add(urn)
        previous = self.previous.resources.get(urn)
        entry = Entry(
            urn=urn,
            type=request.type,
            name=request.name,
            inputs=inputs,
            outputs={},
            dependencies=sorted(set(request.dependencies)),
            deleted_with=request.deletedWith or None,
            trigger=engine._replacement_trigger(request),
        )
        if not request.custom or request.type.startswith(("pulumi:providers:", "random:")):
            entry.outputs = (
                previous.outputs
                if previous
                else fakes.resource_outputs(request.type, request.name, inputs)
            )
            self.stack.resources[urn] = entry
            return entry.outputs
        if self.failure is not None:
            if previous is not None:
                self.stack.resources[urn] = previous
                return previous.outputs
            self.steps.append(Step("skipped", request.type, request.name))
            return None
        op = self._diff(previous, entry, request)
        if op == "same" and previous is not None:
            self.steps.append(Step("same", request.type, request.name))
            self.stack.resources[urn] = previous
            return previous.outputs
        step = Step(op, request.type, request.name)
        self.steps.append(step)
        try:
            entry.outputs = self._perform(op, entry, previous, step)
        except effects.StepError as failed:
            step.error = str(failed)
            self.failure = step
            if previous is not None:
                self.stack.resources[urn] = previous
            return None
        if op == "replace":
            self.replaced.add(urn)
        if op == "replace" and previous is not None:
            self.stack.pending_deletes.append(previous)
        self.stack.resources[urn] = entry
        return entry.outputs

    def _diff(self, previous: Entry | None, entry: Entry, request: Any) -> str:
        if previous is None:
            return "create"
        if entry.name in self.forced or (entry.deleted_with or "") in self.replaced:
            return "replace"
        # A changed `replacement_trigger` replaces; null on either side is no trigger
        # (pulumi/pulumi#20936, step_generator `triggerReplace`).
        if None not in (previous.trigger, entry.trigger) and previous.trigger != entry.trigger:
            return "replace"
        if effects.renewal_due(self.world, entry.type, previous.outputs):
            self.renewing.add(entry.urn)
            return "update"
        if entry.type == COMMAND:
            paths = {"triggers", *(p.split("[")[0].split(".")[0] for p in request.replaceOnChanges)}
            if any(previous.inputs.get(p) != entry.inputs.get(p) for p in paths):
                return "replace"
            if set(request.replace_with) & self.replaced:
                return "replace"
        return "same" if previous.inputs == entry.inputs else "update"

    def _perform(self, op: str, entry: Entry, previous: Entry | None, step: Step) -> dict[str, Any]:
        inputs = entry.inputs
        outputs = dict(inputs)
        if entry.type == COMMAND:
            program = "update" if op == "update" and inputs.get("update") else "create"
            if inputs.get(program) is None:
                return {**outputs, "stdout": "", "stderr": ""}
            result = effects.run_command(
                self.world,
                inputs,
                program,
                previous.outputs if op == "update" and previous else None,
            )
            step.returncode, step.stdout, step.stderr = (
                result.returncode,
                result.stdout,
                result.stderr,
            )
            if result.returncode != 0:
                raise effects.StepError(
                    f"exit status {result.returncode}: running {program}:\n{result.stderr}"
                )
            return {**outputs, "stdout": result.stdout, "stderr": result.stderr}
        if entry.type == SECRETS:
            outputs = (
                previous.outputs
                if previous
                else fakes.resource_outputs(entry.type, entry.name, inputs)
            )
            if op == "update":
                outputs = effects.renewed_client_configuration(outputs)
            effects.machine_secrets(self.world, outputs)
            return outputs
        if entry.type == SCHEMATIC:
            effects.register_schematic(self.world, inputs)
            return fakes.resource_outputs(entry.type, entry.name, inputs)
        if entry.type == APPLY:
            prior = previous.outputs if previous else None
            mode = effects.resolved_apply_mode(self.world, inputs, prior, self.kubernetes_version)
            effects.apply_configuration(self.world, inputs, mode, self.kubernetes_version)
            return {
                **outputs,
                "machineConfiguration": inputs.get("machineConfigurationInput", ""),
                "resolvedApplyMode": mode,
            }
        if entry.type == BOOTSTRAP:
            if op == "create":
                effects.bootstrap(self.world, inputs)
            return outputs
        if entry.type == KUBECONFIG:
            if op == "update" and previous is not None and entry.urn not in self.renewing:
                # Its Update fetches a kubeconfig only when the certificate is due
                # (talos_cluster_kubeconfig_resource.go `Update`); else it keeps the old one.
                keep = ("kubeconfigRaw", "kubernetesClientConfiguration")
                return {
                    **outputs,
                    **{k: previous.outputs[k] for k in keep if k in previous.outputs},
                }
            return {**outputs, **effects.kubeconfig(self.world, inputs)}
        if entry.type.startswith("kubernetes:"):
            effects.kubernetes_apply(self.world, entry.type, entry.name, inputs)
            return fakes.resource_outputs(entry.type, entry.name, inputs)
        return fakes.resource_outputs(entry.type, entry.name, inputs)

    # --- invokes ---------------------------------------------------------------------------

    def invoke(self, token: str, args: dict[str, Any]) -> dict[str, Any] | None:
        if token == "talos:client/getConfiguration:getConfiguration":
            text = effects.talosconfig(args)
            with self.world.edit() as state:
                configs.load(state, text)
            return {**args, "talosConfig": text}
        if token == "talos:machine/getConfiguration:getConfiguration":
            self.kubernetes_version = str(args.get("kubernetesVersion", ""))
            return None
        if token != RUN:
            return None
        step = Step("invoke", RUN, f"{RUN}#{len([s for s in self.steps if s.op == 'invoke'])}")
        self.steps.append(step)
        result = effects.run_command(
            self.world, {**args, "create": args["command"]}, "create", None
        )
        step.returncode, step.stdout, step.stderr = result.returncode, result.stdout, result.stderr
        if result.returncode != 0:
            step.error = f"exit status {result.returncode}: {result.stderr}"
            if self.failure is None:
                self.failure = step
            raise RuntimeError(f"invoke {RUN} failed: {step.error}")
        return {**args, "stdout": result.stdout, "stderr": result.stderr}

    # --- after the program ------------------------------------------------------------------

    def finish(self) -> None:
        if self.failure is not None:
            for urn, entry in self.previous.resources.items():
                if urn not in self.registered:
                    self.stack.resources.setdefault(urn, entry)
            return
        removed = [e for urn, e in self.previous.resources.items() if urn not in self.registered]
        gone = {e.urn for e in removed}
        for entry in _reverse_dependency_order(removed):
            if not self._delete(entry, skip_program=entry.deleted_with in gone):
                self.stack.resources[entry.urn] = entry
                return
        pending, self.stack.pending_deletes = self.stack.pending_deletes, []
        replaced = {e.urn for e in pending}
        for index, entry in enumerate(pending):
            if not self._delete(entry, skip_program=entry.deleted_with in replaced):
                self.stack.pending_deletes = pending[index:]
                return

    def _delete(self, entry: Entry, *, skip_program: bool) -> bool:
        step = Step("delete", entry.type, entry.name)
        self.steps.append(step)
        try:
            if entry.type == COMMAND and entry.inputs.get("delete") and not skip_program:
                result = effects.run_command(self.world, entry.inputs, "delete", entry.outputs)
                step.returncode, step.stdout, step.stderr = (
                    result.returncode,
                    result.stdout,
                    result.stderr,
                )
                if result.returncode != 0:
                    raise effects.StepError(
                        f"exit status {result.returncode}: running delete:\n{result.stderr}"
                    )
            elif entry.type == APPLY and not skip_program:
                effects.reset_on_destroy(self.world, entry.inputs)
            elif entry.type.startswith("kubernetes:") and not skip_program:
                effects.kubernetes_delete(self.world, entry.type, entry.name, entry.inputs)
        except effects.StepError as failed:
            step.error = str(failed)
            self.failure = step
            return False
        return True


def _reverse_dependency_order(entries: list[Entry]) -> list[Entry]:
    """Dependents before their dependencies (Pulumi deletes in reverse creation order)."""
    by_urn = {e.urn: e for e in entries}
    done: list[Entry] = []
    seen: set[str] = set()

    def visit(entry: Entry) -> None:
        if entry.urn in seen:
            return
        seen.add(entry.urn)
        for dependency in entry.dependencies:
            if dependency in by_urn:
                visit(by_urn[dependency])
        done.append(entry)

    for entry in sorted(entries, key=lambda e: e.urn):
        visit(entry)
    return list(reversed(done))


@contextlib.contextmanager
def _engine_backed_by(driver: _Driver) -> Iterator[None]:
    """Point homelab/engine.py's monitor and mocks at the driver for one render."""

    class WorldMocks(engine.HomelabMocks):
        def new_resource(self, args: Any) -> tuple[str | None, dict[str, Any]]:
            outputs = getattr(driver.outputs, "value", None)
            if outputs is not None:
                return fakes.resource_id(args.typ, args.name, dict(args.inputs)), copy.deepcopy(
                    outputs
                )
            return super().new_resource(args)

        def call(self, args: Any) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
            with driver.lock:
                answer = driver.invoke(args.token, dict(args.args))
            if answer is not None:
                return answer, []
            return super().call(args)

    class WorldMonitor(engine.RecordingMonitor):
        def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
            if request.type == "pulumi:pulumi:Stack":
                return super().RegisterResource(request)
            with driver.lock:
                driver.outputs.value = driver.register(self, request)
                try:
                    return super().RegisterResource(request)
                finally:
                    driver.outputs.value = None

    with (
        mock.patch.object(engine, "HomelabMocks", WorldMocks),
        mock.patch.object(engine, "RecordingMonitor", WorldMonitor),
    ):
        yield


def up(
    world: World,
    stack: Stack,
    render: Callable[[], engine.Render],
    *,
    replace: Sequence[str] = (),
) -> Up:
    """One `pulumi up` of the program `render` runs (e.g. `lambda: harness.render_stack()`),
    from the stack state `stack`; the returned Up holds the next state. `replace` names the
    resources `--replace` forces."""
    driver = _Driver(world, stack, replace)
    result: engine.Render | None = None
    with _engine_backed_by(driver):
        try:
            result = render()
        except engine.RenderError as error:
            result = error.partial
            if driver.failure is None:
                driver.failure = Step("program", "pulumi:pulumi:Stack", "program", error=str(error))
    driver.finish()
    return Up(steps=driver.steps, stack=driver.stack, render=result, failure=driver.failure)


def refresh(world: World, stack: Stack) -> Stack:
    """`pulumi refresh`: the Kubernetes objects the cluster no longer has leave the state (a
    Helm release is kept: the world does not model its Secret)."""
    kept = Stack(pending_deletes=list(stack.pending_deletes))
    for urn, entry in stack.resources.items():
        gone = (
            entry.type.startswith("kubernetes:")
            and entry.type != "kubernetes:helm.sh/v3:Release"
            and not effects.kubernetes_exists(world, entry.type, entry.name, entry.inputs)
        )
        if not gone:
            kept.resources[urn] = entry
    return kept
