"""Private names of aiortc, aioice and livekit appear only in sandra_tui/shims/ (each shim has a
contract test in tests/shims/ that names the version when an internal moves).

What counts, found with ast in every module of sandra_tui/ outside shims/:
- importing a `_`-module of those libraries, or a `_`-name from one of their modules;
- `x._name` where `x` is a name bound to one of their modules or objects (`rtp._x`,
  `FfiClient.instance._ffi_lib`);
- `obj._name` on anything but `self`/`cls` when `_name` is a private attribute those libraries
  set or define (read from their installed source) and the module does not set it itself;
- `self._name` in a class with a base from those libraries when the class never sets it;
- a name-mangled string of one of their classes (`"_RTCRtpReceiver__codecs"`), and
  getattr/setattr/hasattr/delattr with a private string on one of their objects.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from functools import cache
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "sandra_tui"
FOREIGN = ("aiortc", "aioice", "livekit")
SHIMS = "shims"
ATTR_FUNCS = {"getattr", "setattr", "hasattr", "delattr"}
# (module, name) -> why it is not one of those libraries' privates (the check cannot see types)
ALLOWED = {
    ("sandra_tui/ui/run.py", "_loop"): "Textual's App._loop (a Textual private: the UI's to replace)",
    ("sandra_tui/audio/engine.py", "_task"): "audio/sinks.RemoteDrain's own task",
    ("sandra_tui/audio/engine.py", "_lock"): "audio/device_audio.DeviceAudio's own lock (the rescan holds it)",
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _foreign(module: str | None) -> bool:
    return bool(module) and module.split(".")[0] in FOREIGN


@cache
def foreign_privates() -> tuple[frozenset[str], frozenset[str]]:
    """(private attribute and method names, class names) defined in the installed libraries."""
    attrs, classes = set(), set()
    for lib in FOREIGN:
        spec = importlib.util.find_spec(lib)
        for root in spec.submodule_search_locations or []:
            for path in Path(root).rglob("*.py"):
                text = path.read_text(errors="replace")
                attrs.update(re.findall(r"\bself\.(_[A-Za-z]\w*)\s*(?::[^=\n]*)?=", text))
                attrs.update(re.findall(r"^\s*(?:async\s+)?def\s+(_[A-Za-z]\w*)", text, re.M))
                classes.update(re.findall(r"^\s*class\s+([A-Za-z]\w*)", text, re.M))
    return frozenset(a for a in attrs if _private(a)), frozenset(classes)


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def _set_here(tree: ast.AST) -> set[str]:
    """Private attributes this module assigns itself (on any object) or defines in a class."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                targets = item.targets if isinstance(item, ast.Assign) else \
                    [item.target] if isinstance(item, ast.AnnAssign) else []
                names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def private_uses(path: Path) -> list[str]:
    attrs, classes = foreign_privates()
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(PKG.parent)
    found: list[str] = []
    bound: set[str] = set()  # local names of foreign modules and objects
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _foreign(alias.name):
                    if any(_private(part) for part in alias.name.split(".")):
                        found.append(f"{where}:{node.lineno} imports {alias.name}")
                    bound.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _foreign(node.module):
            if any(_private(part) for part in node.module.split(".")):
                found.append(f"{where}:{node.lineno} imports from {node.module}")
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{where}:{node.lineno} imports {node.module}.{alias.name}")
                bound.add(alias.asname or alias.name)
    own = _set_here(tree)
    foreign_classes: list[ast.ClassDef] = [
        n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
        and any(isinstance(_root(b), ast.Name) and _root(b).id in bound for b in n.bases)]
    in_foreign_subclass = {id(n) for c in foreign_classes for n in ast.walk(c)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root = _root(node.value)
            name = root.id if isinstance(root, ast.Name) else None
            if name in bound:
                found.append(f"{where}:{node.lineno} {name}...{node.attr}")
            elif name in ("self", "cls"):
                if id(node) in in_foreign_subclass and node.attr in attrs and node.attr not in own:
                    found.append(f"{where}:{node.lineno} inherited {node.attr}")
            elif node.attr in attrs and node.attr not in own:
                found.append(f"{where}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            mangled = re.fullmatch(r"_([A-Za-z]\w*?)__\w+", node.value)
            if mangled and mangled.group(1) in classes:
                found.append(f"{where}:{node.lineno} mangled {node.value!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ATTR_FUNCS \
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                and isinstance(node.args[1].value, str) and _private(node.args[1].value):
            target, attr = _root(node.args[0]), node.args[1].value
            if isinstance(target, ast.Name) and target.id in bound or attr in attrs and attr not in own:
                found.append(f"{where}:{node.lineno} {node.func.id}(..., {attr!r})")
    return sorted(set(found))


def violations(pkg: Path) -> list[str]:
    out = []
    for path in sorted(pkg.rglob("*.py")):
        if path.relative_to(pkg).parts[0] == SHIMS:
            continue
        out += [f for f in private_uses(path)
                if not any(f.startswith(m + ":") and f.rstrip("')").endswith(n) for m, n in ALLOWED)]
    return out


def test_no_private_names_of_aiortc_aioice_or_livekit_outside_the_shims():
    assert violations(PKG) == []


def test_the_check_catches_each_kind(tmp_path, monkeypatch):
    import sys

    pkg = tmp_path / "sandra_tui"
    (pkg / "media").mkdir(parents=True)
    (pkg / SHIMS).mkdir()
    (pkg / SHIMS / "ok.py").write_text("from livekit.rtc._ffi_client import FfiClient\n")
    (pkg / "media" / "bad.py").write_text(
        "from aiortc import rtp\n"
        "from aiortc.mediastreams import MediaStreamTrack\n"
        "from livekit.rtc._proto import ffi_pb2\n"
        "x = rtp._private_thing\n"
        "y = packet._data\n"
        "z = getattr(receiver, '_RTCRtpReceiver__codecs')\n"
        "class T(MediaStreamTrack):\n"
        "    def f(self):\n"
        "        return self._queue, self._mine\n"
        "    def g(self):\n"
        "        self._mine = 1\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", pkg)
    found = violations(pkg)
    assert any("imports from livekit.rtc._proto" in f for f in found), found
    assert any("rtp..._private_thing" in f for f in found), found
    assert any(f.endswith(" ._data") for f in found), found
    assert any("mangled '_RTCRtpReceiver__codecs'" in f for f in found), found
    assert any("inherited _queue" in f for f in found), found
    assert not any("_mine" in f or SHIMS in f for f in found), found
