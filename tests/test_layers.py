"""Layers point one way: ui -> call -> audio/config/telemetry; server shares only wire/media/config."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "sandra_tui"

# package -> packages it must not import
FORBIDDEN = {
    "call": {"sandra_tui.ui", "sandra_tui.server", "textual"},
    "audio": {"sandra_tui.ui", "sandra_tui.call", "sandra_tui.server", "textual"},
    "config": {"sandra_tui.ui", "sandra_tui.call", "sandra_tui.audio", "sandra_tui.server", "textual"},
    "telemetry": {"sandra_tui.ui", "sandra_tui.call", "sandra_tui.audio", "sandra_tui.server", "textual"},
    "wire": {"sandra_tui.ui", "sandra_tui.call", "sandra_tui.audio", "sandra_tui.server",
             "sandra_tui.telemetry", "sandra_tui.media", "textual"},
    "media": {"sandra_tui.ui", "sandra_tui.call", "sandra_tui.audio", "sandra_tui.server",
              "sandra_tui.telemetry", "textual"},
    "server": {"sandra_tui.ui", "sandra_tui.call", "sandra_tui.audio", "sandra_tui.telemetry", "textual"},
    # one module per foreign library's internals, leaning on nothing of ours (tests/test_privates.py)
    "shims": {"sandra_tui.ui", "sandra_tui.call", "sandra_tui.audio", "sandra_tui.server", "sandra_tui.telemetry",
              "sandra_tui.wire", "sandra_tui.media", "sandra_tui.config", "textual"},
}

# The Textual shim is Textual's own module by nature; only sandra_tui/ui may import it (below).
ALLOWED = {"sandra_tui/shims/textual.py": {"textual"}}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(package: str) -> list[str]:
    bad = []
    for path in sorted((PKG / package).rglob("*.py")):
        allowed = ALLOWED.get(str(path.relative_to(PKG.parent)), set())
        for name in imported_modules(path):
            for banned in FORBIDDEN[package] - allowed:
                if name == banned or name.startswith(banned + "."):
                    bad.append(f"{path.relative_to(PKG.parent)} imports {name}")
    return bad


def imports_textual_shim(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import) and any(a.name == "sandra_tui.shims.textual" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module == "sandra_tui.shims.textual" or (
                node.module == "sandra_tui.shims" and any(a.name == "textual" for a in node.names))):
            return True
    return False


def test_only_the_ui_imports_the_textual_shim():
    users = [str(p.relative_to(PKG.parent)) for p in PKG.rglob("*.py") if imports_textual_shim(p)]
    assert users and all(u.startswith("sandra_tui/ui/") for u in users), users


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layering(package):
    assert (PKG / package).is_dir()
    assert violations(package) == []


def test_top_level_modules_below_ui_do_not_import_textual():
    for path in PKG.glob("*.py"):
        if path.name == "cli.py":
            continue
        assert not any(n == "textual" or n.startswith("textual.") for n in imported_modules(path)), path


def test_the_check_catches_a_violation(tmp_path, monkeypatch):
    fake = tmp_path / "sandra_tui" / "call"
    fake.mkdir(parents=True)
    (fake / "x.py").write_text("from textual.app import App\n")
    import sys

    monkeypatch.setattr(sys.modules[__name__], "PKG", tmp_path / "sandra_tui")
    assert violations("call") == ["sandra_tui/call/x.py imports textual.app"]
