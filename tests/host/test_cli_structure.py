"""The CLI's structure (issue 16): the shared options defined once, in host/cli/options.py; the
``key`` group in one module; no import circle between the command modules."""

from __future__ import annotations

import ast
from pathlib import Path

import click

from host.cli import cli

CLI = Path(__file__).resolve().parents[2] / "host" / "cli"
SHARED = {"--card-image", "--reader", "--json", "--pin", "--vault", "--keymgr", "--today", "--id-card-image",
          "--id-reader", "--id-pin"}

# the same flag with another meaning, on purpose
OTHER_MEANING = {
    ("card.py", "--pin"): "card init: the PIN to set on a new card",
    ("card.py", "--today"): "card list: the day --expiring-within counts from (no EVB_TODAY)",
    ("idcard.py", "--pin"): "card issue-id: the PIN to set on a new ID card",
    ("idcard.py", "--id-card-image"): "card issue-id: where to make the ID card",
    ("serve.py", "--vault"): "keymgr serve: the vault the server calls, none by default",
}


def cli_imports(tree: ast.Module) -> set[str]:
    """The host.cli modules a module imports, at its top or inside a function (a circle through a
    function is a circle all the same, only later); TYPE_CHECKING blocks left out."""
    found: set[str] = set()
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and id(node) not in skip:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(a.name for a in node.names)
    return found & {p.stem for p in CLI.glob("*.py")}


def test_no_import_circle() -> None:
    graph = {p.stem: cli_imports(ast.parse(p.read_text())) for p in CLI.glob("*.py")}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name in done:
            return
        for dep in graph.get(name, set()):
            visit(dep, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())


def option_flags(tree: ast.Module) -> set[str]:
    """The flags of every ``click.option``, ``url_option`` and ``secret_option`` call in a module."""
    flags: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            literal = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if name in ("option", "url_option"):
                flags.update(v for v in literal if v.startswith("--"))
            elif name == "secret_option" and literal:
                flags.add("--" + literal[0])
    return flags


def test_shared_options_are_defined_once() -> None:
    for path in CLI.glob("*.py"):
        again = {f for f in option_flags(ast.parse(path.read_text())) & SHARED
                 if (path.name, f) not in OTHER_MEANING}
        if path.name == "options.py":
            assert again == SHARED
        else:
            assert not again, f"{path.name} defines {sorted(again)}: use host/cli/options.py"


def test_the_key_group_lives_in_one_module() -> None:
    group = cli.get_command(click.Context(cli), "key")
    assert isinstance(group, click.Group)
    modules = {c.callback.__module__ for c in group.commands.values() if c.callback}
    assert set(group.commands) == {"init", "info", "backup", "rotate", "restore"}
    assert modules == {"host.cli.keys"}
