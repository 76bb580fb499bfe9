from hypothesis import given, settings
from hypothesis import strategies as st

from sandra_tui.call.history import MB, ConversationHistory, Message


def test_fifo_keeps_the_newest_fifty():
    h = ConversationHistory()
    for i in range(120):
        h.add("user" if i % 2 else "assistant", f"message {i}")
    assert len(h) == 50
    assert [m.content for m in h][0] == "message 70"
    assert [m.content for m in h][-1] == "message 119"


def test_memory_usage_is_measured_from_content():
    h = ConversationHistory()
    before = h.memory_usage_mb()
    h.add("user", "x" * 1_000_000)
    grown = h.memory_usage_mb() - before
    assert 0.95 < grown < 1.1  # a 1 MB string costs about 1 MB, not a guess
    h.clear()
    assert len(h) == 0
    assert h.memory_usage_mb() < 0.01


def test_memory_pressure_trims_to_last_thirty():
    h = ConversationHistory(max_messages=50, max_memory_mb=1, trim_to=30)
    for i in range(40):
        h.add("user", f"{i}:" + "y" * 10_000)  # 40 x 10 kB = 0.4 MB, under the cap
    assert len(h) == 40
    h.add("assistant", "z" * 700_000)  # pushes above 1 MB
    assert len(h) == 30
    assert h.messages()[-1].content.startswith("zzz")
    assert h.memory_usage_mb() <= 1


def test_streaming_deltas_grow_one_message():
    h = ConversationHistory()
    h.append_delta("assistant", "item1", "Hel")
    h.append_delta("assistant", "item1", "lo")
    assert len(h) == 1 and h.messages()[0].content == "Hello" and not h.messages()[0].final
    h.finish("assistant", "item1", "Hello there")
    assert h.messages()[0].content == "Hello there" and h.messages()[0].final


ops = st.lists(
    st.tuples(st.sampled_from(["add", "delta", "finish", "clear"]), st.integers(0, 5), st.integers(0, 200_000)),
    max_size=300,
)


def _reference(ops, max_messages, cap_bytes, trim_to):
    """The guide's rules written the plain way: the implementation must agree with it."""
    msgs: list[Message] = []

    def size():
        return sum(m.nbytes() for m in msgs)

    def enforce():
        nonlocal msgs
        while len(msgs) > max_messages:
            msgs.pop(0)
        if size() > cap_bytes:
            msgs = msgs[-trim_to:]
            while size() > cap_bytes and len(msgs) > 1:
                msgs.pop(0)

    for op, item, n in ops:
        if op == "clear":
            msgs = []
            continue
        found = next((m for m in reversed(msgs) if m.item_id == f"i{item}"), None) if op != "add" else None
        if op == "add":
            msgs.append(Message("user", "a" * n))
        elif op == "delta":
            if found is None:
                msgs.append(Message("assistant", "b" * (n // 10), f"i{item}", final=False))
            else:
                found.content += "b" * (n // 10)
        else:
            if found is None:
                msgs.append(Message("assistant", "c" * n, f"i{item}"))
            else:
                found.content = "c" * n
        enforce()
    return [(m.role, m.content, m.item_id) for m in msgs]


@settings(max_examples=80, deadline=None)
@given(ops=ops, max_messages=st.integers(30, 60), cap_mb=st.sampled_from([0.3, 1.0, 100.0]))
def test_caps_hold_under_any_sequence(ops, max_messages, cap_mb):
    h = ConversationHistory(max_messages=max_messages, max_memory_mb=cap_mb, trim_to=30)
    for op, item, size in ops:
        if op == "add":
            h.add("user", "a" * size)
        elif op == "delta":
            h.append_delta("assistant", f"i{item}", "b" * (size // 10))
        elif op == "finish":
            h.finish("assistant", f"i{item}", "c" * size)
        else:
            h.clear()
        assert len(h) <= max_messages
        assert h._bytes <= h.max_bytes or len(h) == 1
        assert h._bytes == sum(m.nbytes() for m in h)
    expected = _reference(ops, max_messages, int(cap_mb * MB), 30)
    assert [(m.role, m.content, m.item_id) for m in h] == expected


def test_trim_rule_is_exactly_last_thirty():
    h = ConversationHistory(max_messages=50, max_memory_mb=0.6, trim_to=30)
    for i in range(45):
        h.add("user", f"{i:03d}" + "q" * 5_000)
    contents_before = [m.content for m in h]
    h.add("user", "big" + "w" * 420_000)
    kept = [m.content for m in h]
    assert len(kept) == 30
    assert kept[:-1] == contents_before[-29:]
