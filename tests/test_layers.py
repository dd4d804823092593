"""The arrows between perfprobe's rooms point one way, and commands stay thin and apart."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "perfprobe"
COMMANDS = ("compare", "describe", "diff", "gate", "history", "infer", "report", "serve", "sweep")
# what each room may import from perfprobe (besides itself and the shared leaves)
LEAVES = {"errors", "exitcodes", "units", "__init__", "interrupts", "greenlets"}
ALLOWED = {
    "client": set(),
    "data": {"client"},
    "shm": {"client"},
    "transport": {"client"},
    "load": {"client", "data", "shm", "measure", "transport"},
    "measure": set(),
    "report": {"load", "measure", "client"},
    "history": {"report", "measure"},
    "gates": {"report", "measure", "history"},
    "server": set(),
    "spread": {"client", "shm", "transport", "load", "measure"},
    "runs": {"client", "data", "shm", "transport", "load", "measure", "spread", "report", "server", "history"},
}
TOP = {"commands"}  # commands sit on top of every room; they may import any of them


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("perfprobe"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("perfprobe"))
    return names


def test_rooms_import_only_downstream() -> None:
    wrong = []
    for room, allowed in ALLOWED.items():
        for path in (PACKAGE / room).rglob("*.py"):
            for name in _imports(path):
                parts = name.split(".")
                if len(parts) < 2 or parts[1] in (room, *LEAVES) or parts[1] in allowed:
                    continue
                if parts[1] in ALLOWED or parts[1] in ("commands", "cli"):
                    wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not wrong, "\n".join(sorted(wrong))


def test_every_room_has_rules() -> None:
    rooms = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()}
    assert rooms - set(ALLOWED) - TOP == set(), "a room without import rules: add it to ALLOWED"


def test_commands_do_not_import_each_other() -> None:
    wrong = []
    for command in COMMANDS:
        path = PACKAGE / "commands" / f"{command}.py"
        for name in _imports(path):
            for other in COMMANDS:
                if other != command and name in (f"perfprobe.commands.{other}",):
                    wrong.append(f"{command} imports {name}")
    assert not wrong, wrong


def test_the_embedded_server_is_started_in_one_place() -> None:
    starters = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "EmbeddedServer(" in path.read_text() and path.name != "launcher.py"
    ]
    # runs/target.py for every run that asks for --serve; the serve command is the server itself
    assert sorted(starters) == ["commands/serve.py", "runs/target.py"]
