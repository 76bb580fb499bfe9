"""The ICE probe against real servers on loopback: coturn, a silent socket, a closed port."""

import json
import subprocess
import sys
import time

from sandra_tui.config.probe import ProbeTarget, probe_servers
from sandra_tui.server.tokens import turn_rest_credentials
from tests.coturn import PASSWORD, USER, free_port


async def test_stun_turn_silent_and_closed_all_at_once(coturn, silent_udp):
    silent = silent_udp()
    closed = f"stun:127.0.0.1:{free_port()}"
    targets = [
        ProbeTarget(coturn.stun_url),
        ProbeTarget(coturn.turn_url, USER, PASSWORD),
        ProbeTarget(coturn.turn_tcp_url, USER, PASSWORD),
        ProbeTarget(coturn.turn_url, USER, "wrong-password"),
        ProbeTarget(silent.stun_url),
        ProbeTarget(closed),
    ]
    started = time.monotonic()
    results = await probe_servers(targets, 0.5)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0  # one deadline for all, not one each
    stun, turn, turn_tcp, bad, quiet, refused = results
    assert stun.reachable and stun.kind == "stun" and stun.address.startswith("127.0.0.1:")
    assert turn.reachable and turn.kind == "turn" and turn.address.startswith("127.0.0.1:")
    assert turn_tcp.reachable
    assert not bad.reachable and bad.error == "TURN credentials rejected"
    assert not quiet.reachable and "no answer within 500 ms" in quiet.error
    assert not refused.reachable and ("refused" in refused.error or "no answer" in refused.error)
    for r in results:
        assert PASSWORD not in json.dumps(r.to_dict()) and "wrong-password" not in json.dumps(r.to_dict())


async def test_turn_rest_credentials(coturn_rest):
    username, credential = turn_rest_credentials("rest-shared-secret", "sess_1", 600)
    ok, = await probe_servers([ProbeTarget(coturn_rest.turn_url, username, credential)], 0.5)
    assert ok.reachable, ok.error
    expired, _ = turn_rest_credentials("rest-shared-secret", "sess_1", -600)
    bad, = await probe_servers([ProbeTarget(coturn_rest.turn_url, expired, credential)], 0.5)
    assert not bad.reachable


def test_probe_ice_cli_json_done_when(tmp_path, coturn, silent_udp):
    silent = silent_udp()
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[ice]\nstun = ["{coturn.stun_url}", "{silent.stun_url}"]\n')
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "sandra_tui", "--config", str(cfg), "probe-ice", "--json"],
                       capture_output=True, text=True, timeout=20)
    wall = time.monotonic() - started
    data = json.loads(r.stdout)
    assert data["elapsed_ms"] < 1000, data
    reach = [x["reachable"] for x in data["results"]]
    assert reach == [True, False]
    assert r.returncode == 1  # one server did not answer
    assert wall < 5  # includes interpreter start-up


def test_probe_ice_cli_table(tmp_path, coturn):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[ice]\nstun = ["{coturn.stun_url}"]\n[[ice.turn]]\nurl = "{coturn.turn_url}"\n'
                   f'username = "{USER}"\ncredential = "{PASSWORD}"\n')
    r = subprocess.run([sys.executable, "-m", "sandra_tui", "--config", str(cfg), "probe-ice"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2/2 reachable" in r.stdout and PASSWORD not in r.stdout + r.stderr
