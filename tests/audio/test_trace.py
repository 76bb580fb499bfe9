"""Putting round trips together from stage edges: each click matched only within its own window."""

from __future__ import annotations

from sandra_tui.audio.trace import breakdown, round_trips

STAGES = ("adc", "captured", "sent", "received", "played", "dac")
OFFSETS = {"adc": 0.0, "captured": 0.01, "sent": 0.03, "received": 0.12, "played": 0.3, "dac": 0.32}


def clicks(starts: list[float], missing: dict[int, set[str]] | None = None):
    """Edges and a mirror trace for clicks at `starts`; `missing[n]` are the stages (client
    stages, or "agent") click n never reached or was not seen at."""
    missing = missing or {}
    edges = {s: [] for s in STAGES}
    mirror = []
    for n, t in enumerate(starts):
        gone = missing.get(n, set())
        for stage in STAGES:
            if stage not in gone:
                edges[stage].append(t + OFFSETS[stage])
        if "agent" not in gone:
            mirror.append({"in": t + 0.05, "out": t + 0.06})
    return edges, mirror


def test_clicks_that_made_it_all_the_way_are_put_together_stage_by_stage():
    trips = round_trips(*clicks([0.0, 0.62, 1.24]))
    assert [round(t["adc"], 2) for t in trips] == [0.0, 0.62, 1.24]
    assert breakdown(trips)["total"] == 320.0 and breakdown(trips)["playout_buffer"] == 180.0


def test_a_click_dropped_on_the_way_is_not_paired_with_the_next_clicks_stages():
    # Click 1 is lost in the agent (its mirror drops it): it never comes back. The old
    # matching took click 2's agent entry and downlink stages for it: a 940 ms "round trip".
    edges, mirror = clicks([0.0, 0.62, 1.24], missing={1: {"agent", "received", "played", "dac"}})
    trips = round_trips(edges, mirror)
    assert [round(t["adc"], 2) for t in trips] == [0.0, 1.24]
    assert all(abs((t["dac"] - t["adc"]) - 0.32) < 1e-9 for t in trips)


def test_a_click_not_seen_at_one_stage_takes_nothing_of_the_next_one():
    # Click 0's playout edge was missed (it came out too quiet): it has no trip, and click 1
    # keeps its own stages.
    edges, mirror = clicks([0.0, 0.62], missing={0: {"played", "dac"}})
    trips = round_trips(edges, mirror)
    assert len(trips) == 1 and round(trips[0]["adc"], 2) == 0.62
    assert round(trips[0]["played"] - trips[0]["adc"], 2) == 0.3


def test_a_late_click_has_no_trip_and_leaves_the_next_one_its_own_stage():
    # Click 0 spends 500 ms in the playout buffer, past the next click's arrival: its playout
    # edge falls in click 1's window. Click 0 gets no trip; click 1 keeps its own edge.
    edges, mirror = clicks([0.0, 0.62])
    edges["played"][0] += 0.5
    edges["dac"][0] += 0.5
    trips = round_trips(edges, mirror, limit_s=1.5)
    assert len(trips) == 1 and round(trips[0]["adc"], 2) == 0.62
    assert round(trips[0]["played"], 2) == 0.92 and round(trips[0]["dac"], 2) == 0.94
    order = [trips[0][k] for k in ("adc", "captured", "sent", "agent_in", "agent_out", "received", "played", "dac")]
    assert order == sorted(order)
