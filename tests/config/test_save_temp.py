"""A config save killed mid-write leaves a temp file full of TURN credentials: the next start
removes it; a save that fails removes its own; the temp file is 0600 before a byte is written."""

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from sandra_tui.config import Config, load_config, save_config
from sandra_tui.config.tempfiles import temp_name_pattern
from tests.helpers import run_cli, stop_process

OLD_SECRET = "old-turn-credential-1"
NEW_SECRET = "new-turn-credential-2"

# The child saves once, then saves again with os.fsync held: it prints READY (the temp file is
# written, not yet renamed) and waits to be SIGKILLed.
CHILD = """
import os, sys, time
from sandra_tui.config import Config, save_config
path = sys.argv[1]
turn = lambda secret: Config(ice={"turn": [{"url": "turn:relay.example", "username": "op", "credential": secret}]})
save_config(turn(sys.argv[2]), path)
def held(fd):
    print("READY", flush=True)
    time.sleep(120)
os.fsync = held
save_config(turn(sys.argv[3]), path)
"""


def temps(folder, target):
    pattern = temp_name_pattern(target)
    return sorted(p.name for p in folder.iterdir() if pattern.fullmatch(p.name))


def test_sigkill_mid_save_then_next_start_removes_the_leftover(tmp_config):
    folder = tmp_config.parent
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_config), OLD_SECRET, NEW_SECRET],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "READY"  # blocks until the second save is mid-write
        (left,) = temps(folder, tmp_config)
        leftover = folder / left
        assert stat.S_IMODE(leftover.stat().st_mode) == 0o600
        assert NEW_SECRET in leftover.read_text()  # what the issue found: credentials in a stray file
        child.send_signal(signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
    finally:
        stop_process(child)
        child.stdout.close()
    assert leftover.exists()
    assert load_config(tmp_config, env={}).config.ice.turn[0].credential.get_secret_value() == OLD_SECRET
    # An old leftover, one of the mkstemp names earlier versions used, a save in progress right
    # now (young), and files that only look like ours.
    legacy = folder / f".{tmp_config.name}.ab_cd9xy.tmp"
    legacy.write_text(f'credential = "{NEW_SECRET}"\n')
    young = folder / f".{tmp_config.name}.{'0' * 16}.tmp"
    young.write_text("in progress")
    lookalikes = [folder / f".{tmp_config.name}.not-ours.tmp", folder / f"{tmp_config.name}.bak",
                  folder / f".other.toml.{'1' * 16}.tmp"]
    for path in lookalikes:
        path.write_text("keep me")
    link = folder / f".{tmp_config.name}.{'2' * 16}.tmp"
    link.symlink_to(lookalikes[1])
    stale = time.time() - 120
    for path in (leftover, legacy, *lookalikes):
        os.utime(path, (stale, stale))
    os.utime(link, (stale, stale), follow_symlinks=False)

    r = run_cli("config", "show")  # the next start
    assert r.returncode == 0, r.stderr
    assert not leftover.exists() and not legacy.exists()
    assert young.exists() and link.is_symlink() and all(p.exists() for p in lookalikes)
    assert f"removed 2 stale temp file(s) left in {folder} by interrupted config saves" in r.stderr
    assert leftover.name in r.stderr and legacy.name in r.stderr
    assert NEW_SECRET not in r.stderr + r.stdout


@pytest.mark.parametrize("step", ["write", "fsync", "close", "replace"])
@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failing_save_removes_its_temp_file(tmp_config, monkeypatch, step, error):
    save_config(Config(ice={"turn": [{"url": "turn:relay.example", "credential": OLD_SECRET}]}))
    before = tmp_config.read_bytes()
    fds = len(os.listdir("/proc/self/fd"))
    real = getattr(os, step)

    def fail(*args):
        if step == "close":
            real(*args)  # the descriptor is closed, then the error
        raise error

    monkeypatch.setattr(os, step, fail)
    with pytest.raises(type(error)):
        save_config(Config(ice={"turn": [{"url": "turn:relay.example", "credential": NEW_SECRET}]}))
    monkeypatch.undo()
    assert [p.name for p in tmp_config.parent.iterdir()] == [tmp_config.name]
    assert tmp_config.read_bytes() == before
    assert len(os.listdir("/proc/self/fd")) == fds


def test_temp_file_is_private_before_the_first_byte(tmp_config, monkeypatch):
    seen = []
    real_write = os.write

    def write(fd, data):
        info = os.fstat(fd)
        seen.append((stat.S_IMODE(info.st_mode), info.st_size))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    old_umask = os.umask(0)  # the most permissive umask: the mode must not depend on it
    try:
        save_config(Config(ice={"turn": [{"url": "turn:relay.example", "credential": NEW_SECRET}]}))
    finally:
        os.umask(old_umask)
    assert seen and seen[0] == (0o600, 0)
    assert stat.S_IMODE(tmp_config.stat().st_mode) == 0o600
