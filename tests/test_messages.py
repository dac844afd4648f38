"""Below the settings edge no message names a command-line flag: the library's errors and
warnings name the setting (its TOML key, e.g. `split_by`) or the value, so that they read true
from the Python API and a TOML file too. Only the CLI (`lossbench/cli/`) and the settings edge
(`lossbench/settings.py`) word messages with flags."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lossbench"
#: The edge, where flags are named.
EDGE = ("cli", "settings.py")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
#: Calls whose arguments are messages: exceptions, warnings and the data layer's warning lists.
MESSAGE_CALLS = re.compile(r"(Error|Exception|Warning|warn|warning|note)$")


def _strings(node: ast.AST) -> list[str]:
    return [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def _message_nodes(tree: ast.AST) -> list[ast.AST]:
    """The raise statements, and the calls that build a message (an exception, a warning,
    `warn.append(...)`)."""
    out: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise):
            out.append(node)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
            if MESSAGE_CALLS.search(name) or (name == "append" and "warn" in owner.lower()):
                out.append(node)
    return out


#: Strings below the edge that begin with a flag and are no message: a stored key of
#: experiment.json (`user_code["--model"]`, renaming it would change the outputs) and the
#: command lines `lossbench bench` runs.
NOT_MESSAGES = {("provenance.py", "--model"), ("bench", "*")}


def _leading_flags(tree: ast.AST, rel: Path) -> list[tuple[int, str]]:
    """Strings (not docstrings) that begin with a flag, wherever they stand: a message built
    from a name (`where = f"--split-by {text!r}"`, `("--seeds", seeds)`) starts with one."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = FLAG.match(node.value)
            where = {str(rel), rel.parts[0]}
            if m and not NOT_MESSAGES & {(w, f) for w in where for f in (m.group(0), "*")}:
                out.append((node.lineno, m.group(0)))
    return out


def flags_in_messages(root: Path = PACKAGE) -> list[str]:
    """'path:line: --flag' for each flag named in a message below the edge."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in EDGE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _message_nodes(tree):
            for text in _strings(node):
                found += [f"{rel}:{node.lineno}: {m}" for m in FLAG.findall(text)]
        found += [f"{rel}:{line}: {flag}" for line, flag in _leading_flags(tree, rel)]
    return sorted(set(found))


def test_the_scan_finds_a_flag_in_a_raise_and_a_warning(tmp_path):
    (tmp_path / "lib.py").write_text(
        "def f(x, warn):\n"
        "    warn.append(f'{x} rows dropped (--dedupe)')\n"
        "    raise InputError(f'--split-by {x!r}: bad')\n"
        "def g():\n"
        "    return 'pass --fresh'  # not a message\n"
        "for option in ('--seeds',):\n"
        "    pass\n"
    )
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "x.py").write_text("raise InputError('--out: bad')\n")
    assert flags_in_messages(tmp_path) == [
        "lib.py:2: --dedupe",
        "lib.py:3: --split-by",
        "lib.py:6: --seeds",
    ]


def test_no_message_below_the_edge_names_a_flag():
    assert flags_in_messages() == []
