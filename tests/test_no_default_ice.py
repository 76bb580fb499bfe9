"""aiortc falls back to Google's public STUN server when a peer connection gets no
configuration: every test, benchmark and module passes its ICE servers (or an empty list)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BARE = re.compile(r"RTCPeerConnection\(\s*\)")


def bare_peer_connections(paths, root: Path = ROOT) -> list[str]:
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if BARE.search(line):
                found.append(f"{path.relative_to(root)}:{number}")
    return found


def test_no_peer_connection_without_ice_servers():
    files = [p for d in ("sandra_tui", "tests", "bench") for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 50
    assert bare_peer_connections(files) == []


def test_the_check_catches_one(tmp_path):
    bad = tmp_path / "bad.py"
    call = "RTCPeerConnection"  # spelled apart so this file does not match itself
    bad.write_text(f"pc = {call}()\nok = {call}(RTCConfiguration(iceServers=[]))\n")
    assert bare_peer_connections([bad], tmp_path) == ["bad.py:1"]
