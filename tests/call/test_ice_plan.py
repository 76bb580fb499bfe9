"""Which ICE servers an attempt uses: loopback backends, healthy-first, rotation, relay fallback."""

from sandra_tui.call.ice import IcePlanner, gather_servers
from sandra_tui.config.model import IceConfig, TurnServer


def ice(stun, turn=()):
    return IceConfig(stun=list(stun), turn=[TurnServer(url=u, username="op", credential="pw123456") for u in turn])


def test_loopback_backend_drops_public_servers():
    cfg = ice(["stun:stun1.example.com:19302", "stun:127.0.0.1:3478"], ["turn:turn.example.com"])
    servers = gather_servers(cfg, [], loopback_backend=True)
    assert [s.url for s in servers] == ["stun:127.0.0.1:3478"]


def test_default_config_on_loopback_uses_no_ice_servers():
    assert gather_servers(IceConfig(), [], loopback_backend=True) == []


def test_remote_backend_keeps_all_and_appends_token_servers():
    cfg = ice(["stun:a.example:3478"], ["turn:t.example:3478"])
    servers = gather_servers(cfg, [{"urls": ["turn:rest.example:3478"], "username": "1:s", "credential": "x"}], False)
    assert [(s.kind, s.url) for s in servers] == [
        ("stun", "stun:a.example:3478"), ("turn", "turn:t.example:3478"), ("turn", "turn:rest.example:3478")]


class FakeProbe:
    def __init__(self, rtts):
        self.rtts = rtts
        self.calls = 0

    async def __call__(self, servers, timeout_s):
        self.calls += 1
        return {s.url: self.rtts.get(s.url) for s in servers}


async def test_healthy_first_and_dead_dropped():
    cfg = ice(["stun:dead1:1", "stun:slow:2", "stun:fast:3"], ["turn:deadturn:4", "turn:goodturn:5"])
    probe = FakeProbe({"stun:slow:2": 80.0, "stun:fast:3": 5.0, "turn:goodturn:5": 10.0})
    planner = IcePlanner(cfg, probe)
    plan = await planner.plan(gather_servers(cfg, [], False), 0, None, False)
    assert [s.url for s in plan.servers] == ["stun:fast:3", "stun:slow:2", "turn:goodturn:5"]
    assert not plan.relay_only
    await planner.plan(gather_servers(cfg, [], False), 0, None, False)
    assert probe.calls == 1  # cached
    planner.invalidate()
    await planner.plan(gather_servers(cfg, [], False), 0, None, False)
    assert probe.calls == 2


async def test_rotation_and_relay_fallback_after_ice_failure():
    cfg = ice(["stun:a:1", "stun:b:2"], ["turn:t1:3", "turn:t2:4"])
    probe = FakeProbe({"stun:a:1": 1.0, "stun:b:2": 2.0, "turn:t1:3": 1.0, "turn:t2:4": 2.0})
    planner = IcePlanner(cfg, probe)
    servers = gather_servers(cfg, [], False)
    first = await planner.plan(servers, 0, None, False)
    assert first.servers[0].url == "stun:a:1"
    retry = await planner.plan(servers, 1, "ice_failed", False)
    assert retry.relay_only and [s.kind for s in retry.servers] == ["turn", "turn"]
    assert retry.servers[0].url == "turn:t2:4"  # rotated
    after_relay = await planner.plan(servers, 2, "ice_failed", True)
    assert not after_relay.relay_only and after_relay.servers[0].url == "stun:a:1"
    not_ice = await planner.plan(servers, 1, "datachannel_closed", False)
    assert not not_ice.relay_only and not_ice.servers[0].url == "stun:b:2"


async def test_no_relay_without_turn():
    cfg = ice(["stun:a:1"])
    planner = IcePlanner(cfg, FakeProbe({"stun:a:1": 1.0}))
    plan = await planner.plan(gather_servers(cfg, [], False), 1, "ice_failed", False)
    assert not plan.relay_only and [s.url for s in plan.servers] == ["stun:a:1"]
