"""The terminal imports nothing of ``servers/``: a terminal is installed and started without the
servers' code (FastAPI, pydantic, numpy, the key manager's secrets), and what both sides need
lives in shared codecs (:mod:`apdu`, :mod:`keyfile`). Only the modules below may reach the
servers, each for a reason, and only inside a function, so that importing them loads no server."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
HOST = ROOT / "host"

ALLOWED = {
    "host.bench": "the benchmarks measure the servers themselves: they start them in-process and time the matcher",
    "host.bench_suite": "evb bench all and vault: the vault in-process beside its database's raw insert rate",
    "host.cli.demo": "the scripted story runs both servers in-process",
    "host.cli.serve": "the server commands: run, describe and administer the servers, make their certificates",
}


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(HOST.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


def server_imports(tree: ast.AST) -> list[tuple[ast.stmt, bool]]:
    """Each import of ``servers`` in ``tree``, and whether it runs when the module loads (at
    module level, not under ``if TYPE_CHECKING``)."""
    found: list[tuple[ast.stmt, bool]] = []

    def visit(node: ast.AST, at_load: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                names = [child.module or ""] if isinstance(child, ast.ImportFrom) else [a.name for a in child.names]
                if any(n == "servers" or n.startswith("servers.") for n in names) and not (
                        isinstance(child, ast.ImportFrom) and child.level):
                    found.append((child, at_load))
            lazy = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) or (
                isinstance(child, ast.If) and ast.unparse(child.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"))
            visit(child, at_load and not lazy)

    visit(tree, True)
    return found


@pytest.mark.parametrize(("name", "path"), modules(), ids=[name for name, _ in modules()])
def test_the_terminal_imports_no_server(name: str, path: Path) -> None:
    found = server_imports(ast.parse(path.read_text(), str(path)))
    if name not in ALLOWED:
        assert not found, f"{name} imports servers/ at line {found[0][0].lineno}: share a codec instead"
    else:
        eager = [node.lineno for node, at_load in found if at_load]
        assert not eager, f"{name} imports servers/ when it loads (line {eager[0]}): import inside the command"


def test_the_rule_sees_an_import() -> None:
    """The checker itself: each form of import is seen, and a lazy one told from an eager one."""
    source = ("import servers.wire\nfrom servers import auth\nfrom .servers import x\n"
              "def f():\n    from servers.tls import ServerTls\n"
              "if TYPE_CHECKING:\n    from servers.tls import ServerTls\n")
    assert [(node.lineno, at_load) for node, at_load in server_imports(ast.parse(source))] == [
        (1, True), (2, True), (5, False), (7, False)]


def test_loading_the_whole_terminal_loads_no_server() -> None:
    """Every module of host/ (the CLI too, server commands included) imported: no module of
    servers/ is loaded, nor FastAPI."""
    names = [name for name, _ in modules() if not name.endswith("__main__")]
    script = ("import importlib, sys\n"
              f"for name in {names!r}:\n    importlib.import_module(name)\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('servers', 'fastapi')))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout
