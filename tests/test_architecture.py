"""The module structure: no import cycle among lossbench's modules, and a light CLI start-up.

The import graph is read from the source (every `import` / `from ... import` of a lossbench
module, at module level, inside a function or under `if TYPE_CHECKING:`), so a cycle hidden by
a function-level or a typing-only import is found too: a module that names another's types
depends on it as much as one that calls it.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lossbench"


def _modules(package: Path) -> dict[str, Path]:
    out = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imported(node: ast.AST, package: str, modules: dict[str, Path]) -> list[str]:
    """The lossbench modules one import statement loads (the most specific existing one)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parent = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(parent + ([node.module] if node.module else []))
        # `from pkg import name`: the submodule pkg.name if there is one, else pkg itself
        names = [f"{base}.{alias.name}" for alias in node.names]
    found = []
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            found.append(name)
    return found


def import_graph(package_dir: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package's modules it imports anywhere in its body (functions and
    `if TYPE_CHECKING:` blocks included)."""
    modules = _modules(package_dir)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges.update(_imported(node, package, modules))
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_find_cycle_finds_a_cycle_and_accepts_a_dag():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_function_level_type_checking_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "sub" / "b.py").write_text("import pkg.a\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.a"]
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
    )
    assert find_cycle(import_graph(pkg)) == ["pkg.a", "pkg.sub.b", "pkg.a"]
    (pkg / "sub" / "b.py").write_text("import typing\n")
    assert find_cycle(import_graph(pkg)) is None


def test_no_import_cycle_among_lossbench_modules():
    assert find_cycle(import_graph()) is None


def test_the_loss_library_depends_on_nothing_above_it():
    """`lossbench.losses` imports no lossbench module outside itself and `lossbench.errors`
    (AutoBalance declares what its upper step needs; `lossbench.training` provides the step)."""
    outside = {
        name: sorted(
            m for m in edges if not _within(m, "lossbench.losses") and m != "lossbench.errors"
        )
        for name, edges in import_graph().items()
        if _within(name, "lossbench.losses")
    }
    assert {name: found for name, found in outside.items() if found} == {}
    assert "lossbench.losses.margin" in outside  # the package was read


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_training_losses_and_models_raise_no_message_naming_a_flag():
    """Settings are validated at the edge; below it a message names no command-line flag (the
    library is called from Python too): here the training package, the losses and models."""
    flag = re.compile(r"(?<![\w-])--[a-z]")
    found = []
    for name, path in _modules(PACKAGE).items():
        if not any(_within(name, p) for p in BELOW_THE_EDGE):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                text = " ".join(
                    c.value
                    for c in ast.walk(node.exc)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)
                )
                if flag.search(text):
                    found.append(f"{name}:{node.lineno}: {text}")
    assert found == []


BELOW_THE_EDGE = ("lossbench.training", "lossbench.losses", "lossbench.models")


MODULES = ("tensorflow", "keras", "sklearn", "matplotlib", "ray")


def _loaded_after(program: str) -> dict[str, bool]:
    """Which heavy libraries a fresh interpreter has imported after running `program`."""
    report = f"import json, sys\nprint(json.dumps({{m: m in sys.modules for m in {MODULES}}}))"
    code = f"{program}\n{report}"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_cli_loads_no_tensorflow():
    loaded = _loaded_after("import lossbench.cli")
    assert loaded == dict.fromkeys(MODULES, False)


def test_help_loads_no_tensorflow():
    loaded = _loaded_after(
        "import contextlib, io\n"
        "from lossbench.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])"
    )
    assert not loaded["tensorflow"] and not loaded["keras"]


def test_inspect_loads_no_tensorflow():
    loaded = _loaded_after(
        "import contextlib, io\n"
        "from lossbench.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['inspect', '--data', 'digits-lt']) == 0"
    )
    assert not loaded["tensorflow"] and not loaded["keras"]


def test_only_the_training_package_imports_tensorflow():
    """TensorFlow in one place (issues 14, 31): every other module reaches it through
    `lossbench.training` (the losses and models use Keras' backend-neutral API; importing Keras
    elsewhere is allowed)."""
    importers = set()
    for name, path in _modules(PACKAGE).items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            if "tensorflow" in roots:
                importers.add(name)
    assert importers, "no module imports tensorflow: the scan is broken"
    assert sorted(m for m in importers if not _within(m, "lossbench.training")) == []


# Every file name of an experiment and a run folder (README "Results layout"), spelled here and
# not taken from lossbench.layout, so that a name the layout module stops owning is still caught.
RESULT_FILE_NAMES = (
    "experiment.json",
    "config.json",
    "metrics.json",
    "predictions.parquet",
    "predictions_val.parquet",
    "per_class.csv",
    "confusion.csv",
    "calibration.json",
    "history.csv",
    "log.txt",
    "model.keras",
    "DONE",
    "trials.csv",
    "loss_shape.csv",
    "significance.csv",
    "report.html",
    "history.png",
    "reliability.png",
    "confusion.png",
    "per_class_f1.png",
    "history_overlay.png",
    "reliability_overlay.png",
    "pr_curves.png",
    "loss_shape.png",
)
# Folders of the layout, caught where a path is joined with them (`exp_dir / "runs"`).
RESULT_FOLDER_NAMES = ("runs", "summary", "tuning", "plots", "tensorboard")
LAYOUT_OWNERS = {"lossbench/layout.py"}  # the one module that names them
# Not yet routed through lossbench.layout; the lead removes each entry after merging:
NOT_YET_ROUTED: set[str] = set()  # modules still to route through lossbench.layout (none)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes of a module, its classes and its functions."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _layout_names_in(tree: ast.AST) -> list[str]:
    """The result file names in the string literals of a module (f-string pieces included,
    docstrings left out), and the layout folders that a path is joined with (`x / "runs"`)."""
    import re

    patterns = {n: re.compile(rf"(?<![\w.]){re.escape(n)}(?!\w)") for n in RESULT_FILE_NAMES}
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            found += [name for name, p in patterns.items() if p.search(node.value)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            for side in (node.left, node.right):
                if isinstance(side, ast.Constant) and side.value in RESULT_FOLDER_NAMES:
                    found.append(f'/ "{side.value}"')
    return found


def test_only_the_layout_module_names_result_files():
    """One owner of the results layout (issue 31): no module but lossbench.layout spells a run or
    experiment file name, or joins a path with a layout folder; the others ask it for paths."""
    root = PACKAGE.parent
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in LAYOUT_OWNERS | NOT_YET_ROUTED:
            continue
        found = _layout_names_in(ast.parse(path.read_text()))
        if found:
            offenders[rel] = found
    assert offenders == {}


def test_the_result_file_check_finds_a_name_and_a_folder_join():
    """The check above can fail: a file name in an f-string and a join with runs/ are found, a
    docstring and a name that merely contains a file name (`my_metrics.json.bak`) are not."""
    source = (
        '"""metrics.json in a docstring."""\n'
        'a = f"{run}/metrics.json"\n'
        'b = exp / "runs" / name\n'
        'c = "my_metrics.json.bak"\n'
    )
    assert _layout_names_in(ast.parse(source)) == ["metrics.json", '/ "runs"']


MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def oversized(package_dir: Path = PACKAGE) -> list[str]:
    """'path: N lines' for each module over MAX_MODULE_LINES, and 'path:name: N lines' for each
    function over MAX_FUNCTION_LINES whose docstring does not say why (a line starting 'Long:')."""
    out = []
    for path in sorted(package_dir.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(package_dir.parent)
        if (n := text.count("\n")) > MAX_MODULE_LINES:
            out.append(f"{rel}: {n} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                reason = "Long:" in (ast.get_docstring(node) or "")
                if n > MAX_FUNCTION_LINES and not reason:
                    out.append(f"{rel}:{node.name}: {n} lines")
    return out


def test_the_size_check_finds_a_long_module_and_a_long_function(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(81))
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text(f"def f():\n{body}\n" + "y = 1\n" * 600)
    (tmp_path / "pkg" / "b.py").write_text(f'def g():\n    """Long: a table."""\n{body}')
    assert oversized(tmp_path / "pkg") == ["pkg/a.py: 683 lines", "pkg/a.py:f: 82 lines"]


def test_no_module_over_600_lines_and_no_function_over_80():
    """Issue 31: a module a reader can hold, a function a reader can follow."""
    assert oversized() == []
