"""The client over https through nginx: it verifies the certificate against SANDRA_CA_FILE
(or the system store); a certificate it cannot verify fails the call at once, no retries."""

from __future__ import annotations

import time

from tests.deploy.headless import finish, headless, telemetry_counts

# A failing call exits within this: one token attempt and the teardown. The reconnect policy's
# first retry alone waits 1 s and five take 31 s, so a retry loop cannot pass under it; process
# start (imports) on a loaded machine takes the rest.
FAIL_FAST_S = 15.0


def test_call_over_https_with_the_ca_file(stack, tmp_path):
    proc = headless(tmp_path / "good", stack.nginx.url, "--duration", "4", ca=stack.ca)
    rc, events, err = finish(proc, 60)
    assert rc == 0, err[-3000:]
    states = [e["state"] for e in events if e["event"] == "state"]
    assert "connected" in states and states[-1] == "ended", states
    counts = telemetry_counts(err)
    assert counts["made"] >= 1 and counts["sent"] == counts["made"] and counts["rejected"] == 0, counts


def test_untrusted_certificate_is_a_clear_error_not_a_retry(stack, tmp_path):
    started = time.monotonic()
    proc = headless(tmp_path / "bad", stack.nginx.url, "--duration", "30")  # the system store only
    rc, events, err = finish(proc, 60)
    took = time.monotonic() - started
    assert rc == 1, err[-3000:]
    states = [e["state"] for e in events if e["event"] == "state"]
    assert "reconnecting" not in states and "connected" not in states, states
    errors = [e for e in events if e["event"] == "error"]
    assert errors and "certificate" in errors[-1]["message"] and "SANDRA_CA_FILE" in errors[-1]["message"], errors
    assert took < FAIL_FAST_S, took
    assert "Traceback" not in err
    print(f"untrusted certificate: exit 1 in {took:.1f} s: {errors[-1]['message']}")
