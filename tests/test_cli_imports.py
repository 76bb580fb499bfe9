"""A failed import at start-up is reported as what it is (a missing library, with the install
hint; a bug in our own module, with the module and the error), each with its own exit code; only
a sub-command whose module does not exist is "not implemented"."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import sandra_tui
from sandra_tui.cli import NOT_IMPLEMENTED, _lazy
from sandra_tui.import_errors import BROKEN_MODULE, MISSING_DEPENDENCY, describe

CHECKOUT = str(Path(sandra_tui.__file__).resolve().parents[1])  # this copy of sandra_tui, in the child too


def run(script: str, *argv: str, tmp_path) -> subprocess.CompletedProcess:
    """A child that runs `script` (which sets up the failure) and then the real CLI on `argv`."""
    code = f"import sys\n{script}\nfrom sandra_tui.cli import main\nsys.exit(main({list(argv)!r}))\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "SANDRA_CONFIG": str(tmp_path / "c.toml"),
                                             "HOME": str(tmp_path), "PYTHONPATH": CHECKOUT})


def test_portaudio_missing_names_it_and_how_to_install(tmp_path):
    # The real sounddevice, on a machine where the loader finds no PortAudio.
    r = run("import ctypes.util\nctypes.util.find_library = lambda name: None\n"
            "from sandra_tui.cli import _lazy\nimport argparse\n"
            "sys.exit(_lazy('sounddevice:query_devices')(argparse.Namespace(command='devices')))",
            tmp_path=tmp_path)
    assert r.returncode == MISSING_DEPENDENCY, r.stderr
    assert "the PortAudio library (audio devices) is missing or cannot be loaded" in r.stderr
    assert "for the Python package 'sounddevice'" in r.stderr and "PortAudio library not found" in r.stderr
    assert "install it: sudo apt-get install libportaudio2" in r.stderr
    assert "not implemented" not in r.stderr and "Traceback" not in r.stderr


def test_missing_python_package_is_named_not_not_implemented(tmp_path):
    r = run("sys.modules['numpy'] = None", "history", tmp_path=tmp_path)
    assert r.returncode == MISSING_DEPENDENCY, r.stderr
    assert "sandra-tui history: cannot start: the Python package 'numpy' is not installed" in r.stderr
    assert "imported by sandra_tui." in r.stderr and "install it: pip install numpy" in r.stderr
    assert "not implemented" not in r.stderr


@pytest.mark.parametrize("body, error", [
    ("from sandra_tui.config.load import no_such_name\n",
     "ImportError: cannot import name 'no_such_name' from 'sandra_tui.config.load'"),
    ("import sandra_tui.call.no_such_module\n", "No module named 'sandra_tui.call.no_such_module'"),
])
def test_a_bug_in_our_module_shows_the_module_and_the_error(tmp_path, body, error):
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "headless.py").write_text(f'"""A broken sandra_tui.call.headless."""\n{body}')
    r = run(f"import sandra_tui.call\nsandra_tui.call.__path__.insert(0, {str(overlay)!r})",
            "call", "--headless", tmp_path=tmp_path)
    assert r.returncode == BROKEN_MODULE, r.stderr
    assert f"sandra-tui call: cannot start: importing sandra_tui.call.headless ({overlay / 'headless.py'}:2)" \
        in r.stderr
    assert error in r.stderr and "a bug in sandra-tui" in r.stderr
    assert "not implemented" not in r.stderr and "Traceback" not in r.stderr


def test_exit_codes_are_distinct():
    assert len({NOT_IMPLEMENTED, MISSING_DEPENDENCY, BROKEN_MODULE, 0, 1}) == 5


def test_a_missing_subcommand_module_is_still_not_implemented(capsys):
    assert _lazy("sandra_tui.no_such_command:run")(argparse.Namespace(command="x")) == NOT_IMPLEMENTED
    assert _lazy("sandra_tui.config.cli:no_such_function")(argparse.Namespace(command="y")) == NOT_IMPLEMENTED
    assert capsys.readouterr().err == "sandra-tui x: not implemented yet\nsandra-tui y: not implemented yet\n"


def test_an_oserror_of_the_command_itself_is_not_an_import_failure(tmp_path, monkeypatch):
    (tmp_path / "failing_cmd.py").write_text("def run(args):\n    raise OSError('disk full')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(OSError, match="disk full"):
        _lazy("failing_cmd:run")(argparse.Namespace(command="z"))


def test_shared_library_messages_get_their_hint():
    def raised(exc):
        try:
            raise exc
        except ImportError as caught:
            return caught

    opus = describe(raised(ImportError("libopus.so.0: cannot open shared object file", name="av._core")), "call")
    assert opus.code == MISSING_DEPENDENCY and "sudo apt-get install libopus0" in opus.message
    assert "for the Python package 'av'" in opus.message
    other = describe(raised(ImportError("libfoo.so.3: cannot open shared object file", name="foo._c")), "call")
    assert "the system library libfoo.so.3 is missing" in other.message
    version = describe(raised(ImportError("cannot import name 'X' from 'aiortc'", name="aiortc")), "call")
    assert version.code == MISSING_DEPENDENCY and "pip install --force-reinstall aiortc" in version.message
