"""The adaptive playout buffer on its own: ordering, concealment, underruns, adaptation, flush."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sandra_tui.audio.playout import FRAME, FrameQueue, PlayoutBuffer


def frame(value: int) -> np.ndarray:
    return np.full(FRAME, value, dtype=np.int16)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def played_values(buf: PlayoutBuffer, frames: int) -> list[int]:
    return [int(buf.pull(FRAME)[0]) for _ in range(frames)]


def test_prebuffers_to_target_then_plays_in_timestamp_order():
    buf = PlayoutBuffer(target_ms=60)
    for i in (1, 0, 2):  # out of order
        buf.push(frame(100 + i), i * FRAME)
    assert played_values(buf, 3) == [100, 101, 102]
    assert buf.frames_played == 3 and buf.underruns == 0


def test_silence_while_prebuffering():
    buf = PlayoutBuffer(target_ms=60)
    buf.push(frame(7), 0)
    assert played_values(buf, 2) == [0, 0]
    assert not buf.playing and buf.underruns == 0


def test_a_lost_frame_is_concealed_not_stalled():
    buf = PlayoutBuffer(target_ms=40)
    for i in (0, 1, 3, 4):  # frame 2 lost
        buf.push(frame(1000), i * FRAME)
    out = played_values(buf, 5)
    assert out[:2] == [1000, 1000]
    assert out[2] == 500  # the last frame, faded
    assert out[3:] == [1000, 1000]
    assert buf.concealed == 1 and buf.underruns == 0


def test_late_frame_is_dropped():
    buf = PlayoutBuffer(target_ms=40)
    for i in (0, 1, 3):
        buf.push(frame(1), i * FRAME)
    played_values(buf, 3)  # 0, 1, concealed 2
    buf.push(frame(1), 2 * FRAME)  # arrives after its turn
    assert buf.late == 1


def test_underrun_raises_target_and_it_decays_after_a_quiet_period():
    clock = Clock()
    buf = PlayoutBuffer(target_ms=40, shrink_after_s=10, settle_s=0, clock=clock)
    buf.push(frame(1), 0)
    buf.push(frame(1), FRAME)
    played_values(buf, 3)  # 2 frames, then nothing: underrun
    assert buf.underruns == 1 and buf.target_ms == 60
    for i in range(2, 20):
        buf.push(frame(1), i * FRAME)
    clock.t = 11.0
    played_values(buf, 5)
    assert buf.target_ms == 40


def test_flush_drops_queued_audio_and_prebuffers_again():
    buf = PlayoutBuffer(target_ms=40)
    for i in range(10):
        buf.push(frame(5), i * FRAME)
    played_values(buf, 2)
    assert buf.flush() == 8 * 20
    assert buf.depth_ms == 0
    assert played_values(buf, 1) == [0]
    buf.push(frame(5000), 10 * FRAME)  # a plain flush (hang-up, mic test) takes the next frames at once
    buf.push(frame(5000), 11 * FRAME)
    assert played_values(buf, 1) == [5000] and buf.discarded == 0


def test_after_a_flush_the_cancelled_replys_frames_in_flight_are_dropped_until_it_goes_quiet():
    clock = Clock()
    buf = PlayoutBuffer(target_ms=40, clock=clock)
    for i in range(6):
        buf.push(frame(5000), i * FRAME)
    played_values(buf, 2)
    buf.flush(tail=True)
    clock.t = 0.02
    for i in range(6, 8):  # sent before the server heard the caller, arriving just after the flush
        buf.push(frame(5000), i * FRAME)
    assert buf.discarded == 2 and buf.depth_ms == 0
    for i in range(8, 11):  # the reply's end: quiet, then the next reply's voice
        buf.push(frame(0 if i == 8 else 7000), i * FRAME)
    assert played_values(buf, 3) == [0, 7000, 7000]  # nothing of the cancelled reply is heard
    assert buf.discarded == 2 and buf.concealed == 0


def test_a_new_reply_or_the_tail_limit_ends_the_drop_so_no_reply_is_clipped():
    from sandra_tui.audio.playout import TAIL_S

    clock = Clock()
    buf = PlayoutBuffer(target_ms=40, clock=clock)
    buf.push(frame(5000), 0)
    buf.flush(tail=True)
    buf.resume()  # response.created: the next voiced frame is the new reply's
    buf.push(frame(6000), FRAME)
    buf.push(frame(6000), 2 * FRAME)
    assert buf.discarded == 0 and played_values(buf, 2) == [6000, 6000]

    buf.flush(tail=True)
    buf.push(frame(5000), 3 * FRAME)
    clock.t = TAIL_S + 0.001  # no quiet frame, no new reply announced: the drop ends anyway
    buf.push(frame(8000), 4 * FRAME)
    buf.push(frame(8000), 5 * FRAME)
    assert buf.discarded == 1 and played_values(buf, 2) == [8000, 8000]


def test_a_new_stream_after_reconnect_is_reanchored():
    buf = PlayoutBuffer(target_ms=40)
    for i in range(5000, 5004):
        buf.push(frame(1), i * FRAME)
    played_values(buf, 4)
    for i in range(0, 3):  # the new peer connection's timestamps start at 0
        buf.push(frame(2), i * FRAME)
    assert played_values(buf, 3)[-1] == 2


def test_depth_stays_bounded_when_the_sender_runs_fast():
    clock = Clock()
    buf = PlayoutBuffer(target_ms=40, clock=clock)
    index = 0
    for step in range(600):  # 12 s; the sender's clock runs 5% fast
        clock.t = step * 0.02
        for _ in range(2 if step % 20 == 0 else 1):
            buf.push(frame(0), index * FRAME)
            index += 1
        buf.pull(FRAME)
    assert buf.depth_ms <= buf.target_ms + 3 * 20
    assert buf.dropped > 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.booleans()), min_size=1, max_size=80),
       st.integers(1, 2000))
def test_any_arrival_pattern_gives_full_blocks_and_consistent_counts(arrivals, block):
    buf = PlayoutBuffer(target_ms=60)
    for index, lost in arrivals:
        if not lost:
            buf.push(frame(3), index * FRAME)
        out = buf.pull(block)
        assert len(out) == block and out.dtype == np.int16
    assert buf.frames_played <= buf.frames_in
    assert buf.depth_ms <= buf.capacity * 20 + 20


def test_frame_queue_keeps_the_newest():
    q = FrameQueue(max_frames=2)
    for i in range(5):
        q.put(frame(i))
    assert q.dropped == 3
    assert int(q.get()[0]) == 3 and int(q.get()[0]) == 4 and q.get() is None


def test_underruns_while_the_stream_settles_do_not_raise_the_target():
    clock = Clock()
    buf = PlayoutBuffer(target_ms=40, settle_s=2.0, clock=clock)
    buf.push(frame(1), 0)
    buf.push(frame(1), FRAME)
    played_values(buf, 3)
    assert buf.underruns == 1 and buf.target_ms == 40


def test_a_raised_target_is_kept_for_a_while_before_it_decays():
    """What emptied the buffer once (a collector pause, a burst) tends to come back: the extra
    frame stays for 20 s of clean playout, not 2."""
    clock = Clock()
    buf = PlayoutBuffer(target_ms=40, settle_s=0, clock=clock)
    buf.push(frame(1), 0)
    buf.push(frame(1), FRAME)
    played_values(buf, 3)  # underrun
    assert buf.target_ms == 60
    index = 2
    for second in (5.0, 15.0, 21.0):
        clock.t = second
        for _ in range(5):
            buf.push(frame(1), index * FRAME)
            index += 1
        played_values(buf, 3)
        assert buf.target_ms == (40 if second > 20 else 60), second


def steady(buf: PlayoutBuffer, clock: Clock, start: int, frames: int, value: int = 0, late: dict | None = None) -> int:
    """Frames arriving on time (one per 20 ms, each pulled as the next arrives), `late[i]` seconds
    late for some; returns the next index."""
    late = late or {}
    for i in range(start, start + frames):
        clock.t = i * 0.02 + late.get(i, 0.0)
        buf.push(frame(value), i * FRAME)
        buf.pull(FRAME)
    return start + frames


def test_the_target_grows_on_jitter_with_silence_played_in_a_quiet_moment():
    clock = Clock()
    buf = PlayoutBuffer(target_ms=40, clock=clock)
    index = steady(buf, clock, 0, 150)  # 3 s on time: past the settling period
    assert buf.target_ms == 40 and buf.stretched == 0
    index = steady(buf, clock, index, 5, late={index: 0.045})  # one frame 45 ms late (a GC pause)
    assert buf.target_ms == 60  # 45 ms + margin needs three frames
    assert buf.stretched == 1  # the extra frame came from a frame of silence, not an underrun
    played = buf.frames_played
    index = steady(buf, clock, index, 10, late={index + 2: 0.045})  # the same pause again
    assert buf.underruns == 0 and buf.frames_played == played + 10


def test_speech_is_not_stretched_and_the_extra_delay_goes_once_unneeded():
    clock = Clock()
    buf = PlayoutBuffer(target_ms=40, shrink_after_s=5, clock=clock)
    index = steady(buf, clock, 0, 150, value=3000)
    index = steady(buf, clock, index, 5, value=3000, late={index: 0.045})
    assert buf.target_ms == 60 and buf.stretched == 0  # loud: no silence inserted mid-word
    index = steady(buf, clock, index, 5, value=0)
    assert buf.stretched == 1  # the first quiet moment
    depth = buf.depth_ms
    steady(buf, clock, index, 500, value=0)  # 10 s on time: the target decays, the frame goes
    assert buf.target_ms == 40 and buf.depth_ms < depth and buf.underruns == 0


def test_a_sender_pause_is_not_taken_for_jitter():
    clock = Clock()
    buf = PlayoutBuffer(target_ms=40, clock=clock)
    index = steady(buf, clock, 0, 150)
    clock.t += 5.0  # no packets for 5 s, then the stream goes on where it stopped
    for i in range(index, index + 5):
        buf.push(frame(0), i * FRAME)
    assert buf.target_ms == 40 and buf.jitter_ms < 20  # 5 s of "lateness" is a new timeline


async def test_the_end_of_a_connection_is_not_an_underrun():
    from sandra_tui.audio.engine import AudioEngine

    buf = PlayoutBuffer(target_ms=40)
    engine = AudioEngine(playout=buf)
    for i in range(4):
        engine._on_remote(frame(100), i * FRAME)
    assert played_values(buf, 3) == [100, 100, 100]
    await engine.detach()  # hang-up or reconnect: the stream stops here
    assert played_values(buf, 5) == [0] * 5
    assert buf.underruns == 0 and not buf.playing


def sine_frames(hz: float, count: int, amplitude: int = 9000) -> list[np.ndarray]:
    t = np.arange(count * FRAME) / 48000
    wave = (np.sin(2 * np.pi * hz * t) * amplitude).astype(np.int16)
    return [wave[i * FRAME : (i + 1) * FRAME] for i in range(count)]


def test_a_stalled_speaker_catches_up_during_speech_without_a_click():
    """The speaker stops pulling for 1 s (a starved CPU) while Sandra talks: 50 frames arrive.
    What goes past target + 60 ms is shed as it arrives, so the delay when it pulls again is
    within the bound, and each voiced cut is crossfaded: no step larger than the signal's own
    steepest one."""
    clock = Clock()
    buf = PlayoutBuffer(target_ms=60, clock=clock)
    frames = sine_frames(175, 600)  # 20 ms is 3.5 periods: a bare cut would jump half a period
    out = []
    for i in range(600):
        clock.t = i * 0.02
        buf.push(frames[i], i * FRAME)
        if not 200 <= i < 250:  # the stall
            out.append(buf.pull(FRAME))
        if i == 320:
            assert buf.depth_ms <= buf.target_ms + 60, buf.stats()
    assert buf.accelerated >= 40 and buf.underruns == 0
    assert buf.depth_ms <= buf.target_ms + 60
    played = np.concatenate(out).astype(np.int32)
    steepest = int(np.abs(np.diff(np.concatenate(frames).astype(np.int32))).max())
    assert int(np.abs(np.diff(played)).max()) <= steepest * 1.2


def test_quiet_frames_are_dropped_first_when_catching_up():
    clock = Clock()
    buf = PlayoutBuffer(target_ms=40, clock=clock)
    index = steady(buf, clock, 0, 150, value=3000)
    for i in range(index, index + 10):  # a burst of 10 frames, every other one near-silent
        buf.push(frame(3000 if i % 2 else 5), i * FRAME)
    loud = sum(1 for f in buf._frames.values() if f[0] == 3000)
    values = played_values(buf, 12)
    assert buf.accelerated >= 3
    assert values.count(3000) == loud  # only quiet frames went; every voiced one was played


def test_pulling_into_a_buffer_allocates_no_sample_arrays():
    import tracemalloc

    buf = PlayoutBuffer(target_ms=40)
    frames = [frame(1000) for _ in range(400)]
    out = np.zeros(480, dtype=np.int16)  # a 10 ms speaker block
    for i in range(100):
        if i != 60:  # a lost packet, concealed
            buf.push(frames[i], i * FRAME)
    for _ in range(20):
        buf.pull_into(out)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for n in range(200):  # 100 frames: played, concealed (a hole), prebuffering again
            buf.pull_into(out)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A frame is 1920 bytes: anything frame-sized made per pull would show in the peak.
    assert peak - before < 1000 and current - before < 500, (peak - before, current - before)
    assert buf.concealed > 0 and buf.frames_played >= 50
