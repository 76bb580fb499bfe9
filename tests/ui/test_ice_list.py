"""The ICE editor's list rules, without Textual: the config's validators decide."""

import pytest

from sandra_tui.config.model import IceConfig, TurnServer
from sandra_tui.ui.screens.ice_list import EntryError, IceList, make_row


def demo() -> IceList:
    env = TurnServer(url="turn:env.example", username="e", credential="env-secret")
    env._origin = "SANDRA_TURN_SERVER"
    ice = IceConfig(stun=["stun:a.example", "stun:b.example"], turn=[{"url": "turn:t.example", "username": "u",
                                                                       "credential": "pw-123456"}],
                    probe_timeout_ms=900, relay_fallback=False)
    ice.turn = [env] + ice.turn
    return IceList.from_config(ice)


@pytest.mark.parametrize("kind, url, field, words", [
    ("stun", "", "url", "it is empty"),
    ("stun", "turn:x.example", "url", "this is a TURN URL"),
    ("turn", "stun:x.example", "url", "this is a STUN URL"),
    ("turn", "turn:x.example:70000", "url", "outside 1-65535"),
    ("turn", "turn://x.example", "url", "without '//'"),
    ("turn", "turn:user:pw@x.example", "url", "credentials belong in username/credential"),
    ("quic", "x.example", "kind", "not stun or turn"),
])
def test_make_row_errors_name_the_field(kind, url, field, words):
    with pytest.raises(EntryError) as caught:
        make_row(kind, url)
    assert caught.value.field == field and words in caught.value.message


def test_make_row_normalises_like_the_config():
    assert make_row("stun", " stun.example.org ").url == "stun:stun.example.org:3478"
    row = make_row("turn", "TURN:Relay.Example:5349?transport=TCP", " op ", "pw")
    assert (row.url, row.username, row.credential) == ("turn:relay.example:5349?transport=tcp", "op", "pw")
    assert "pw" not in repr(row)


def test_stun_stays_before_turn_and_moves_within_its_kind():
    servers = demo()
    assert servers.add(make_row("stun", "c.example")) == 2
    assert servers.add(make_row("turn", "turn:z.example")) == 5
    assert [r.kind for r in servers.rows] == ["stun"] * 3 + ["turn"] * 3
    assert servers.move(2, 1) == 2  # the last STUN does not cross into TURN
    assert servers.move(2, -1) == 1
    assert servers.rows[1].url == "stun:c.example:3478"
    assert servers.move(0, -1) == 0
    with pytest.raises(EntryError, match="environment"):
        servers.move(4, -1)  # past the env server


def test_env_servers_are_read_only_and_kept_as_they_are():
    servers = demo()
    env = servers.rows[2]
    assert env.read_only
    with pytest.raises(EntryError):
        servers.remove(2)
    with pytest.raises(EntryError):
        servers.replace(2, make_row("turn", "turn:other.example"))
    ice = servers.to_config()
    assert ice.turn[0] is env.source and ice.turn[0].origin == "SANDRA_TURN_SERVER"
    assert (ice.probe_timeout_ms, ice.relay_fallback) == (900, False)


def test_replace_moves_a_row_that_changed_kind_and_refuses_duplicates():
    servers = demo()
    index = servers.replace(0, make_row("turn", "turn:new.example", "x"))
    assert index == len(servers.rows) - 1 and servers.rows[0].url == "stun:b.example:3478"
    with pytest.raises(EntryError, match="already in the list"):
        servers.add(make_row("stun", "stun:b.example"))
    servers.replace(0, make_row("stun", "stun:b.example"))  # the same row may keep its URL
    servers.add(make_row("turn", "turn:t.example", "someone-else"))  # same URL, other user: fine
