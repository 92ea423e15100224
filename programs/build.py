"""The text a Command runs: one program of this package, made whole.

A Command runs `python3 -c <text>` with the workstation's python3, where this project is not
importable. So the text is `from __future__ import annotations`; the source of each library
module the program imports names from (LIBRARIES: the runtime first); the program's own source;
its parameters as a sorted literal, `PARAMS = {...}`, one per line; and the call that runs it,
`run_program(main, PARAMS)`. The imports of the package are left out of each source (they name
what the text now defines itself), nothing else: the text is the files as they are plus the sorted
parameters, so the same program and parameters give the same text byte for byte, a changed
program or library changes it, and a preview diff shows real source lines.

A program is a module of this package with a `Params` TypedDict and `main(params: Params) -> str`
(what it prints); it imports the standard library and names of the library modules only. The
Command names its program in its environment (PROGRAM_ENV), so whoever inspects a Command (the
offline render's fakes, the tests) knows what it runs without reading its text.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

PACKAGE: Final = "programs"
LIBRARIES: Final = ("runtime", "talosctl")
# The workstation's python3, by name: a render must not depend on the machine it runs on.
INTERPRETER: Final = ("python3", "-c")
PROGRAM_ENV: Final = "HOMELAB_PROGRAM"
PARAMS: Final = "PARAMS"
ENTRY: Final = f"run_program(main, {PARAMS})"
FUTURE: Final = "from __future__ import annotations"
_FOLDER: Final = Path(__file__).parent


class ProgramError(ValueError):
    """A program (or its parameters) that cannot become a Command's text."""


@dataclass(frozen=True)
class _Module:
    name: str
    # The source without the imports of `__future__` and of this package.
    text: str
    # The library modules it imports names from, and those names.
    imports: tuple[tuple[str, tuple[str, ...]], ...]
    # What binds each top-level name: its own definition, or the import it comes from.
    bindings: Mapping[str, str]


def name_of(program: ModuleType) -> str:
    """The program's name: its module's, as the Command's environment carries it."""
    package, _, name = program.__name__.rpartition(".")
    if package != PACKAGE or name in (*LIBRARIES, "build") or not hasattr(program, "Params"):
        raise ProgramError(f"{program.__name__} is not a program of {PACKAGE}")
    return name


def environment(program: ModuleType) -> dict[str, str]:
    """The entry of a Command's environment that names its program."""
    return {PROGRAM_ENV: name_of(program)}


def program_text(program: ModuleType, params: Mapping[str, object]) -> str:
    """The text a Command runs for `program` with `params` (checked against its `Params`)."""
    name = name_of(program)
    _check_params(name, program.Params, params)
    return text_of(_FOLDER, name, params)


def text_of(folder: Path, name: str, params: Mapping[str, object]) -> str:
    """The text of the program module `name` of the package in `folder` (this one, or one a test
    makes), its parameters unchecked."""
    modules = _with_libraries(folder, name)
    _check_bindings(folder, modules)
    parts = [FUTURE, ""]
    for module in modules:
        parts += ["", f"# --- {PACKAGE}/{module.name}.py ---", "", module.text.strip("\n"), ""]
    parts += ["", params_literal(params), ENTRY]
    text = "\n".join(parts) + "\n"
    compile(text, f"<{PACKAGE}/{name}.py>", "exec")
    return text


def params_literal(params: Mapping[str, object]) -> str:
    """`PARAMS = {...}`: one parameter a line, sorted, each value a Python literal."""
    lines = [f"{PARAMS} = {{", *(f"    {k!r}: {v!r}," for k, v in sorted(params.items())), "}"]
    return "\n".join(lines)


def parameters(text: str) -> dict[str, Any]:
    """The parameters a Command's text carries."""
    found: dict[str, Any] = ast.literal_eval(_params_node(text).value)
    return found


def with_parameters(text: str, changes: Mapping[str, object]) -> str:
    """The same text with some parameters changed (a test speeds up a rendered program)."""
    node = _params_node(text)
    lines = text.splitlines(keepends=True)
    merged = {**parameters(text), **changes}
    before, after = lines[: node.lineno - 1], lines[node.end_lineno or node.lineno :]
    return "".join(before) + params_literal(merged) + "\n" + "".join(after)


# --- reading the modules ------------------------------------------------------------------------


def _params_node(text: str) -> ast.Assign:
    found = [
        node
        for node in ast.parse(text).body
        if isinstance(node, ast.Assign)
        and [t.id for t in node.targets if isinstance(t, ast.Name)] == [PARAMS]
    ]
    if len(found) != 1:
        raise ProgramError(f"a program's text assigns {PARAMS} once, not {len(found)} times")
    return found[0]


def _check_params(name: str, params_type: Any, params: Mapping[str, object]) -> None:
    required = set(params_type.__required_keys__)
    known = required | set(params_type.__optional_keys__)
    missing, unknown = sorted(required - set(params)), sorted(set(params) - known)
    if missing or unknown:
        raise ProgramError(f"{name}: parameters missing {missing}, unknown {unknown}")
    for key, value in params.items():
        try:
            same = ast.literal_eval(repr(value)) == value
        except (ValueError, SyntaxError):
            same = False
        if not same:
            raise ProgramError(f"{name}: parameter {key!r} is not a literal: {value!r}")


def _with_libraries(folder: Path, name: str) -> list[_Module]:
    """The program and the library modules it needs, each after those it imports from."""
    ordered: list[_Module] = []

    def visit(module_name: str, path: tuple[str, ...]) -> None:
        if module_name in path:
            raise ProgramError(f"{PACKAGE} modules import each other: {' -> '.join(path)}")
        if any(m.name == module_name for m in ordered):
            return
        module = _module(folder, module_name)
        for library, _ in module.imports:
            visit(library, (*path, module_name))
        ordered.append(module)

    # The runtime runs every program (`run_program`), imported from or not.
    visit("runtime", ())
    visit(name, ())
    return ordered


def _check_bindings(folder: Path, modules: list[_Module]) -> None:
    """One meaning per top-level name across the modules, and every imported name defined by the
    library it is imported from (else one module's name would silently replace another's)."""
    seen: dict[str, str] = {}
    for module in modules:
        for library, names in module.imports:
            defined = _module(folder, library).bindings
            for imported in names:
                if defined.get(imported) != f"{library}.{imported}":
                    raise ProgramError(f"{module.name}: {library} does not define {imported}")
        for bound, meaning in module.bindings.items():
            if seen.setdefault(bound, meaning) != meaning:
                raise ProgramError(f"{module.name} binds {bound}, which {seen[bound]} binds too")
    for reserved in (PARAMS,):
        if reserved in seen:
            raise ProgramError(f"{reserved} is the parameters' name; no module may bind it")


@functools.cache
def _module(folder: Path, name: str) -> _Module:
    path = folder / f"{name}.py"
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    _check_imports(name, tree)
    lines = source.splitlines(keepends=True)
    removed: set[int] = set()
    imports: list[tuple[str, tuple[str, ...]]] = []
    bindings: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (
            node.module == "__future__" or _library_of(node) is not None
        ):
            removed |= set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
            library = _library_of(node)
            if library is not None:
                imports.append((library, tuple(alias.name for alias in node.names)))
            continue
        bindings.update(_bound(name, node))
    removed = _without_blank_runs(removed, lines)
    text = "".join(line for number, line in enumerate(lines, 1) if number not in removed)
    return _Module(name, text, tuple(imports), bindings)


def _library_of(node: ast.ImportFrom) -> str | None:
    module = node.module or ""
    return module.removeprefix(f"{PACKAGE}.") if module.startswith(f"{PACKAGE}.") else None


def _check_imports(name: str, tree: ast.Module) -> None:
    """The standard library anywhere; names of the library modules, at the top only."""
    top_level = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise ProgramError(f"{name}: a relative import; name the module")
            library = _library_of(node)
            if library is not None:
                if library not in LIBRARIES or library == name or id(node) not in top_level:
                    raise ProgramError(
                        f"{name} imports {PACKAGE}.{library}: a program imports names of "
                        f"{', '.join(LIBRARIES)} only, at the top of the module"
                    )
                continue
            modules = [node.module or ""]
        else:
            continue
        for module in modules:
            root = module.partition(".")[0]
            if root != "__future__" and root not in sys.stdlib_module_names:
                raise ProgramError(
                    f"{name} imports {module}: a program runs on a bare python3, with the "
                    "standard library and this package's libraries only"
                )


def _without_blank_runs(removed: set[int], lines: list[str]) -> set[int]:
    """`removed` and the blank lines just before a run of removed lines when a blank line (or the
    end) follows the run, so that leaving the run out keeps the spacing around it as it was."""
    extended = set(removed)
    for first in sorted(n for n in removed if n - 1 not in removed):
        last = first
        while last + 1 in removed:
            last += 1
        if last == len(lines) or not lines[last].strip():
            before = first - 1
            while before >= 1 and not lines[before - 1].strip():
                extended.add(before)
                before -= 1
    return extended


def _bound(module: str, node: ast.stmt) -> dict[str, str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name: f"{module}.{node.name}"}
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {t.id: f"{module}.{t.id}" for t in targets if isinstance(t, ast.Name)}
    if isinstance(node, ast.Import):
        return {
            (alias.asname or alias.name.partition(".")[0]): f"import {alias.name}"
            for alias in node.names
        }
    if isinstance(node, ast.ImportFrom):
        return {
            (alias.asname or alias.name): f"from {node.module} import {alias.name}"
            for alias in node.names
        }
    return {}
