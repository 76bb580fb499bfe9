"""A rolling restart of all three replicas (SIGTERM, start again on the same port, as
`systemctl restart sandra-serve@N` does; deploy/rolling-restart.sh) during a 60 s headless call
through nginx: the call stays up (it reconnects to a replica that is up), every telemetry
payload is stored exactly once, and no key is refused."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from tests.deploy.headless import headless, telemetry_counts

CALL_S = 60


def speech_bursts(path, seconds: float, every_s: float = 4.0) -> None:
    """A mic file: 1 s of speech-like tone every `every_s`, so the agent answers a turn every few
    seconds and each answer is a response_latency sample (a payload) through the restarts."""
    import wave

    import numpy as np

    from tests.rtc_client import RATE, tone

    gap = np.zeros(int(RATE * (every_s - 1.0)), dtype=np.int16)
    data = np.concatenate([np.concatenate([tone(1.0), gap]) for _ in range(int(seconds / every_s))])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(data.tobytes())


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_rolling_restart_during_a_call(stack, tmp_path):
    import asyncpg

    since = time.time()
    mic = tmp_path / "mic.wav"
    speech_bursts(mic, CALL_S)
    proc = headless(tmp_path / "client", stack.nginx.url, "--duration", str(CALL_S), "--mic-file", str(mic),
                    ca=stack.ca)
    events: list[dict] = []
    connected = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            if line.startswith("{"):
                events.append(json.loads(line))
                if events[-1].get("event") == "state" and events[-1].get("state") == "connected":
                    connected.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    logs: list[str] = []
    downtime = []
    try:
        assert await asyncio.to_thread(connected.wait, 30), "the call did not connect"
        for i in range(3):  # one at a time, each back (ready) before the next goes down
            await asyncio.sleep(10)
            proc_i = stack.replicas.procs[i]
            began = time.monotonic()
            await asyncio.to_thread(proc_i.stop)
            logs.append(proc_i.output())
            await asyncio.to_thread(proc_i.start, 30)
            downtime.append(round(time.monotonic() - began, 2))
        err = await asyncio.to_thread(proc.stderr.read)
        rc = await asyncio.to_thread(proc.wait, CALL_S + 60)
        await asyncio.to_thread(reader.join, 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    logs += [p.output() for p in stack.replicas.procs]

    assert rc == 0, err[-3000:]
    states = [e["state"] for e in events if e["event"] == "state"]
    assert "failed" not in states, states
    assert states[-2:] == ["connected", "ended"], states  # up at the end, ended by the duration
    reconnects = states.count("reconnecting")

    counts = telemetry_counts(err)
    conn = await asyncpg.connect(stack.dsn)
    try:
        rows = await conn.fetch("SELECT session_id, payload_id FROM latency_payloads WHERE received_at >= $1", since)
    finally:
        await conn.close()
    ids = [r["payload_id"] for r in rows]
    lost = counts["made"] - len(set(ids))
    refused = [line for text in logs for line in text.splitlines() if " -> 401 " in line or " -> 403 " in line]
    print(f"rolling restart: downtime per replica {downtime} s, {reconnects} reconnects, payloads made "
          f"{counts['made']}, stored {len(ids)} ({len(set(ids))} distinct), lost {lost}, keys refused {len(refused)}, "
          f"client counts {counts}")
    assert counts["made"] >= 10, counts  # the call made payloads through the restarts
    assert lost == 0 and len(ids) == len(set(ids)), (counts, len(ids))
    assert counts["rejected"] == 0 and counts["lost"] == 0 and counts["sent"] == counts["made"], counts
    assert not refused, refused[:5]
    assert any("ended by hangup" in text for text in logs), "the hang-up did not reach the call's replica"
