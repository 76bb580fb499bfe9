"""ICE URL parsing and validation: examples and properties."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandra_tui.config.urls import IceUrlError, normalize_stun, normalize_turn, parse_ice_url


@pytest.mark.parametrize("text,expected", [
    ("stun:stun.l.google.com:19302", "stun:stun.l.google.com:19302"),
    ("stun:example.org", "stun:example.org:3478"),
    ("turn:turn.example.com", "turn:turn.example.com:3478"),
    ("turns:turn.example.com", "turns:turn.example.com:5349"),
    ("turn:1.2.3.4:80?transport=tcp", "turn:1.2.3.4:80?transport=tcp"),
    ("TURN:Host.Example.COM?transport=UDP", "turn:host.example.com:3478?transport=udp"),
    ("stun:[::1]:3478", "stun:[::1]:3478"),
    ("turn:[2001:db8::1]", "turn:[2001:db8::1]:3478"),
])
def test_valid_urls(text, expected):
    assert str(parse_ice_url(text)) == expected


def test_bare_host_becomes_turn_url():
    assert normalize_turn("turn.example.com") == "turn:turn.example.com:3478"
    assert normalize_turn("turn.example.com:5349") == "turn:turn.example.com:5349"
    assert normalize_stun("127.0.0.1:3478") == "stun:127.0.0.1:3478"


@pytest.mark.parametrize("text,reason", [
    ("http://turn.example.com", "scheme 'http'"),
    ("turn://x.example", "without '//'"),
    ("stuns:x.example", "stuns: is not supported"),
    ("turn:x.example:0", "outside 1-65535"),
    ("turn:x.example:65536", "outside 1-65535"),
    ("turn:x.example:port", "not a number"),
    ("stun:x.example?transport=udp", "take no ?transport="),
    ("turn:x.example?transport=sctp", "not udp or tcp"),
    ("turn:x.example?foo=bar", "only query allowed"),
    ("turn:user:pw@x.example", "credentials belong"),
    ("turn:::1", "in brackets"),
    ("turn:[::zz]", "not an IPv6 address"),
    ("turn:999.1.1.1", "not an IPv4 address"),
    ("turn:-bad-.example", "not a valid host name"),
    ("turn:a b", "white space"),
    ("", "empty"),
    ("turn:x.example/path", "path is not allowed"),
])
def test_invalid_urls_name_field_and_value(text, reason):
    with pytest.raises(IceUrlError) as info:
        parse_ice_url(text, field="ice.turn[0].url")
    message = str(info.value)
    assert message.startswith("ice.turn[0].url: ")
    assert repr(text) in message and reason in message


def test_kind_mismatch():
    with pytest.raises(IceUrlError, match="TURN URL"):
        normalize_stun("turn:x.example")
    with pytest.raises(IceUrlError, match="STUN URL"):
        normalize_turn("stun:x.example")
    with pytest.raises(IceUrlError, match="expected a string"):
        parse_ice_url(3478)


labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hosts = st.one_of(
    st.lists(labels, min_size=1, max_size=4).map(".".join).filter(lambda h: not h.replace(".", "").isdigit()),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip.compressed}]"),
)


@settings(max_examples=300)
@given(scheme=st.sampled_from(["stun", "turn", "turns"]), host=hosts, port=st.one_of(st.none(), st.integers(1, 65535)),
       transport=st.sampled_from([None, "udp", "tcp"]))
def test_round_trip_and_idempotence(scheme, host, port, transport):
    text = f"{scheme}:{host}" + (f":{port}" if port else "")
    if transport and scheme != "stun":
        text += f"?transport={transport}"
    url = parse_ice_url(text)
    assert url.scheme == scheme
    assert parse_ice_url(str(url)) == url
    assert str(parse_ice_url(str(url))) == str(url)
    assert 1 <= url.port <= 65535


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_anything_either_parses_or_says_why(text):
    try:
        url = parse_ice_url(text, field="f")
    except IceUrlError as exc:
        assert str(exc).startswith("f: ") and exc.reason
    else:
        assert str(url).startswith(("stun:", "turn:", "turns:"))


@settings(max_examples=200)
@given(port=st.integers(-10, 70000))
def test_port_range(port):
    text = f"turn:x.example:{port}"
    if 1 <= port <= 65535:
        assert parse_ice_url(text).port == port
    else:
        with pytest.raises(IceUrlError):
            parse_ice_url(text)
