"""`python -m homelab`: the offline render and the lab commands.

    python -m homelab init [--stack NAME] [flags]  write a validated Pulumi.<stack>.yaml for your LAN
    python -m homelab fetch-reference [--dest .reference]  upstream schemas/CRDs for a fork's tests
    python -m homelab render [--stack homelab] [--out rendered/homelab]
    python -m homelab render --update-golden      regenerate tests/golden/homelab, docs/architecture.md and README's diagram
    python -m homelab render-diff BASE HEAD        the pull-request comment for two render directories
    python -m homelab lab up|preview NAME
    python -m homelab lab destroy NAME [--yes] [--force-homelab]
    python -m homelab lab list
    python -m homelab device register KEY --user USER [--stack homelab]   let a waiting device join
    python -m homelab status [--stack homelab] [--json]   nodes, releases, certificate, VPN, keys, backups

Errors a user can fix are one line on stderr with exit code 2, never a traceback: `main` catches
exactly the errors that mean "this input cannot be used" (`USER_ERRORS`) in one place. Anything
else is a bug in this program and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Final, TextIO

import pulumi

from config.loader import ConfigError
from config.stack_file import StackFileError
from homelab import device, engine, lab, reference, render, status
from homelab import init as init_stack

# Every error that means the input (a stack file, a config, a path, the network) cannot be
# used: one line, exit code 2. Each message already names what and where.
USER_ERRORS: Final = (
    ConfigError,
    StackFileError,
    render.RenderOutputError,
    reference.ReferenceFetchError,
    lab.LabError,
    init_stack.InitError,
)


@contextlib.contextmanager
def _writing(target: Path, flag: str = "--out") -> Iterator[None]:
    """Turn a failed write below `target` (no permission, a file in the way, a full disk)
    into one line that names the path."""
    try:
        yield
    except OSError as error:
        where = error.filename or target
        raise render.RenderOutputError(
            f"cannot write {where}: {error.strerror or error}; choose a writable {flag}"
        ) from None


@contextlib.contextmanager
def _reading(source: Path) -> Iterator[None]:
    try:
        yield
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        where = getattr(error, "filename", None) or source
        raise render.RenderOutputError(f"cannot read the render at {where}: {reason}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m homelab", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    init_cmd = commands.add_parser(
        "init", help="write a validated Pulumi.<stack>.yaml for your domain and LAN"
    )
    init_stack.add_arguments(init_cmd)

    fetch_cmd = commands.add_parser(
        "fetch-reference",
        help="fetch the pinned upstream schemas and CRDs the contract tests read (for forks)",
    )
    fetch_cmd.add_argument("--dest", type=Path, default=reference.CACHE_DIR)

    render_cmd = commands.add_parser(
        "render", help="write what a stack would create, offline (no cluster, no secrets)"
    )
    render_cmd.add_argument("--stack", default="homelab", help="stack (Pulumi.<stack>.yaml)")
    render_cmd.add_argument("--out", type=Path, help="output directory (default rendered/<stack>)")
    render_cmd.add_argument(
        "--charts",
        action="store_true",
        help="also `helm template` each pinned chart into charts/ (skipped without helm)",
    )
    render_cmd.add_argument(
        "--update-golden",
        action="store_true",
        help="render the homelab stack into tests/golden/homelab and docs/architecture.md",
    )

    diff_cmd = commands.add_parser(
        "render-diff", help="a Markdown comment with the diff between two render directories"
    )
    diff_cmd.add_argument("base", type=Path, help="render of the base (missing: empty)")
    diff_cmd.add_argument("head", type=Path, help="render of the pull request")
    diff_cmd.add_argument("--stack", default="homelab", help="stack name shown in the comment")
    diff_cmd.add_argument("--out", type=Path, help="write the comment here (default: stdout)")
    diff_cmd.add_argument("--diff-out", type=Path, help="also write the full unified diff here")

    lab_cmd = commands.add_parser("lab", help="create, preview, destroy and list lab stacks")
    lab_actions = lab_cmd.add_subparsers(dest="action", required=True)
    for action, help_text in (
        ("up", "create or update a lab"),
        ("preview", "preview a lab's changes"),
        ("destroy", "destroy a lab and remove its stack"),
    ):
        sub = lab_actions.add_parser(action, help=help_text)
        sub.add_argument("name", help="lab stack name; its config is Pulumi.<name>.yaml")
        if action == "destroy":
            sub.add_argument(
                "--force-homelab",
                action="store_true",
                help="allow destroying the real homelab (environment 'homelab')",
            )
            sub.add_argument(
                "--yes", action="store_true", help="do not ask for the stack name (scripts)"
            )
    lab_actions.add_parser("list", help="list stacks and stack files with their environment")

    device_cmd = commands.add_parser("device", help="let a device join the tailnet")
    device_actions = device_cmd.add_subparsers(dest="action", required=True)
    register_cmd = device_actions.add_parser(
        "register", help="register the key a device waiting in `tailscale up` shows"
    )
    register_cmd.add_argument("key", help="the key after /register/ in the URL (or the URL)")
    register_cmd.add_argument("--user", required=True, help="the Headscale user it belongs to")
    register_cmd.add_argument("--stack", default=lab.HOMELAB_STACK, help="stack (default homelab)")

    status_cmd = commands.add_parser(
        "status", help="OK/WARN/FAIL for nodes, releases, certificate, Headscale, keys, backups"
    )
    status_cmd.add_argument("--stack", default=lab.HOMELAB_STACK, help="stack (default homelab)")
    status_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _render(args: argparse.Namespace, out: TextIO) -> int:
    stack: str = args.stack
    target: Path = args.out or engine.PROJECT_ROOT / "rendered" / stack
    if args.update_golden:
        if stack != "homelab" or args.out is not None:
            raise render.RenderOutputError("--update-golden renders the homelab stack only")
        target = render.GOLDEN_DIR
    if not engine.stack_file(stack).exists():
        raise render.RenderOutputError(f"no stack file {engine.stack_file(stack).name}")
    if args.update_golden and args.charts:
        raise render.RenderOutputError("the golden render has no charts (they need the network)")
    result = engine.render(stack)
    files = render.render_files(result, new_stack=render.is_new_stack(engine.stack_file(stack)))
    if args.charts:
        charts = render.template_charts(result)
        if charts.skipped:
            print(f"Charts not templated: {charts.skipped} (the rest is complete)", file=out)
        files = dict(sorted({**files, **charts.files}.items()))
    with _writing(target):
        render.write_files(files, target)
    print(f"Wrote {len(files)} files to {target}", file=out)
    if args.update_golden:
        with _writing(render.ARCHITECTURE_DOC):
            render.ARCHITECTURE_DOC.parent.mkdir(parents=True, exist_ok=True)
            render.ARCHITECTURE_DOC.write_text(
                render.architecture_markdown(result), encoding="utf-8"
            )
        print(f"Wrote {render.ARCHITECTURE_DOC}", file=out)
        readme = render.README.read_text(encoding="utf-8")
        diagram = render.architecture_mermaid(result)
        with _writing(render.README):
            render.README.write_text(
                render.embed_between_markers(readme, diagram), encoding="utf-8"
            )
        print(f"Updated the architecture diagram in {render.README}", file=out)
    return 0


def _render_diff(args: argparse.Namespace, out: TextIO) -> int:
    if not args.head.is_dir():
        raise render.RenderOutputError(f"no render at {args.head}")
    if args.base.exists() and not args.base.is_dir():
        # Only a missing base is an empty render (a new stack); a file there is a wrong argument,
        # and reading it as "nothing before" would show every file of the head as added.
        raise render.RenderOutputError(
            f"the base {args.base} is a file, not a render directory; pass the directory "
            "`python -m homelab render --out` wrote (or a missing path for an empty base)"
        )
    with _reading(args.base):
        base = render.read_render(args.base)
    with _reading(args.head):
        head = render.read_render(args.head)
    comment = render.diff_comment(base, head, stack=args.stack)
    if args.diff_out is not None:
        with _writing(args.diff_out, "--diff-out"):
            args.diff_out.write_text(render.unified_diff(base, head)[0], encoding="utf-8")
    if args.out is None:
        out.write(comment)
    else:
        with _writing(args.out):
            args.out.write_text(comment, encoding="utf-8")
    return 0


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    lab_context: lab.Lab | None = None,
    stdin: TextIO | None = None,
    lan_probe: Callable[[], init_stack.Lan | None] = init_stack.detect_lan,
    root: Path = engine.PROJECT_ROOT,
    fetch: reference.Downloader = reference.download,
    read_kubeconfig: device.KubeconfigReader | None = None,
    now: Callable[[], datetime] = status.utc_now,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = _parser().parse_args(argv)
    try:
        return _run(
            args,
            out=out,
            lab_context=lab_context,
            stdin=stdin,
            lan_probe=lan_probe,
            root=root,
            fetch=fetch,
            read_kubeconfig=read_kubeconfig,
            now=now,
        )
    except engine.RenderError as error:
        if not isinstance(error.cause, pulumi.RunError):
            raise  # the program itself failed: a bug, shown with its traceback
        # A config error is already one line per problem (config/loader.py).
        print(f"error: {error}", file=err)
        return 2
    except USER_ERRORS as error:
        print(f"error: {error}", file=err)
        return 2
    except lab.LabOperationError as error:
        print(f"error: the Pulumi operation failed: {error}", file=err)
        return 1


def _run(
    args: argparse.Namespace,
    *,
    out: TextIO,
    lab_context: lab.Lab | None,
    stdin: TextIO | None,
    lan_probe: Callable[[], init_stack.Lan | None],
    root: Path,
    fetch: reference.Downloader,
    read_kubeconfig: device.KubeconfigReader | None,
    now: Callable[[], datetime],
) -> int:
    if args.command == "init":
        return init_stack.run(
            args, root=root, stdin=stdin or sys.stdin, out=out, lan_probe=lan_probe
        )
    if args.command == "fetch-reference":
        written = reference.fetch_all(args.dest, fetch=fetch)
        print(f"Fetched {len(written)} files into {args.dest / 'upstream'}", file=out)
        return 0
    if args.command == "render":
        return _render(args, out)
    if args.command == "render-diff":
        return _render_diff(args, out)
    context = lab_context or lab.Lab(out=out, stdin=stdin or sys.stdin)
    if args.command == "device":
        return device.register(
            context,
            args.key,
            args.user,
            stack=args.stack,
            read_kubeconfig=read_kubeconfig or device.stack_kubeconfig,
        )
    if args.command == "status":
        return status.run(context, stack=args.stack, as_json=args.json, now=now(), out=out)
    if args.action == "list":
        return lab.list_labs(context)
    if args.action == "destroy":
        return lab.destroy(context, args.name, force_homelab=args.force_homelab, yes=args.yes)
    return lab.up(context, args.name, preview_only=args.action == "preview")
