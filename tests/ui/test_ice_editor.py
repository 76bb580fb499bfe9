"""The ICE server editor: list editing, the config's validation, secrets, probe, save and cancel."""

import logging
import os
import stat
import tomllib

from textual.widgets import DataTable, Input, Select

from sandra_tui.config.model import Config
from sandra_tui.ui.app import SandraApp
from sandra_tui.ui.screens.ice_editor import IceEditor
from sandra_tui.ui.screens.main import MainScreen
from tests.coturn import PASSWORD, USER
from tests.ui.fake_controller import FakeController
from tests.ui.helpers import notes, wait_until
from tests.ui.scenes import DEMO_CREDENTIAL, demo_config, make_app

# demo_config(): stun1.example.com, stun.example.org, env TURN (relay.example.net), config TURN (turn.example.org)
NEW_ROW = 4


def demo_app(config_path=None) -> tuple[FakeController, SandraApp]:
    """The demo servers in an app whose controller the test keeps a hand on."""
    c = FakeController(config=demo_config())
    return c, make_app(c, config_path=config_path)


async def open_editor(pilot) -> IceEditor:
    await pilot.press("f6")
    await pilot.pause()
    assert isinstance(pilot.app.screen, IceEditor)
    return pilot.app.screen


async def go_to(pilot, editor: IceEditor, row: int) -> None:
    table = editor.query_one(DataTable)
    table.focus()
    while table.cursor_row != row:
        await pilot.press("down" if table.cursor_row < row else "up")


async def type_into(pilot, editor: IceEditor, selector: str, text: str, keys: bool = False) -> None:
    """Fill a field; `keys` types it key by key (slow under the pilot: ~90 ms a key)."""
    field = editor.query_one(selector, Input)
    field.focus()
    field.value = "" if keys else text
    if keys:
        await pilot.press(*text)
    await pilot.pause()


def saved(path) -> dict:
    return tomllib.loads(path.read_text())


def rows(editor: IceEditor) -> list[str]:
    return [r.url for r in editor.servers.rows]


async def test_add_stun_and_save_writes_the_file_0600_and_swaps_the_servers(tmp_path):
    path = tmp_path / "config.toml"
    c = FakeController(config=demo_config())
    old_planner = c.planner
    app = make_app(c, config_path=path)
    async with app.run_test(notifications=True) as pilot:
        editor = await open_editor(pilot)
        await go_to(pilot, editor, NEW_ROW)
        await type_into(pilot, editor, "#ice-url", "stun.new.example", keys=True)
        await pilot.press("enter")
        assert rows(editor)[:3] == ["stun:stun1.example.com:19302", "stun:stun.example.org:3478",
                                    "stun:stun.new.example:3478"]
        await pilot.press("ctrl+s")
        await wait_until(lambda: isinstance(app.screen, MainScreen), pilot)
        data = saved(path)
        assert data["ice"]["stun"][-1] == "stun:stun.new.example:3478"
        assert data["ice"]["turn"] == [{"url": "turn:turn.example.org:3478?transport=udp", "username": "operator",
                                        "credential": DEMO_CREDENTIAL}]  # the env server is not written
        assert "relay.example.net" not in path.read_text() and "env-secret-value" not in path.read_text()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert c.config.ice.stun[-1] == "stun:stun.new.example:3478"
        assert [t.origin for t in c.config.ice.turn] == ["SANDRA_TURN_SERVER", "config"]
        assert c.planner is not old_planner and c.planner.ice is c.config.ice
        assert c.planner.probe is old_planner.probe
        assert any("Used from the next connect" in n for n in notes(app))
        assert not any(DEMO_CREDENTIAL in n for n in notes(app))


async def test_add_turn_through_the_kind_list(tmp_path):
    path = tmp_path / "config.toml"
    c, app = demo_app(path)
    async with app.run_test() as pilot:
        editor = await open_editor(pilot)
        await go_to(pilot, editor, NEW_ROW)
        editor.query_one("#ice-kind", Select).focus()
        await pilot.press("enter", "down", "enter")
        assert editor.query_one("#ice-kind", Select).value == "turn"
        assert not editor.query_one("#ice-username", Input).disabled
        await type_into(pilot, editor, "#ice-url", "turn:10.0.0.5:3478?transport=tcp")
        await type_into(pilot, editor, "#ice-username", "alice")
        await type_into(pilot, editor, "#ice-credential", "pa55word-x")
        await pilot.press("enter")
        assert rows(editor)[-1] == "turn:10.0.0.5:3478?transport=tcp"
        assert editor.servers.rows[-1].credential == "pa55word-x"
        await pilot.press("ctrl+s")
        await wait_until(lambda: path.exists(), pilot)
        assert saved(path)["ice"]["turn"][-1] == {"url": "turn:10.0.0.5:3478?transport=tcp", "username": "alice",
                                                  "credential": "pa55word-x"}


async def test_edit_remove_and_reorder(tmp_path):
    path = tmp_path / "config.toml"
    c, app = demo_app(path)
    async with app.run_test() as pilot:
        editor = await open_editor(pilot)
        await go_to(pilot, editor, 1)
        assert editor.query_one("#ice-url", Input).value == "stun:stun.example.org:3478"
        await type_into(pilot, editor, "#ice-url", "stun:edited.example:3479")
        await pilot.press("enter")
        assert rows(editor)[1] == "stun:edited.example:3479"
        await go_to(pilot, editor, 1)
        await pilot.press("shift+up")  # move up
        assert rows(editor)[:2] == ["stun:edited.example:3479", "stun:stun1.example.com:19302"]
        assert editor.query_one(DataTable).cursor_row == 0
        await pilot.press("shift+up")  # already first: nothing moves
        await pilot.press("down", "shift+down")  # a STUN server never moves among the TURN ones
        assert rows(editor)[1] == "stun:stun1.example.com:19302"
        await pilot.press("delete")
        assert "stun:stun1.example.com:19302" not in rows(editor)
        await pilot.click("#ice-save")
        await wait_until(lambda: path.exists(), pilot)
        assert saved(path)["ice"]["stun"] == ["stun:edited.example:3479"]


async def test_servers_from_the_environment_are_read_only():
    c, app = demo_app()
    async with app.run_test() as pilot:
        editor = await open_editor(pilot)
        await go_to(pilot, editor, 2)
        assert editor.current.origin == "SANDRA_TURN_SERVER"
        assert editor.query_one("#ice-url", Input).disabled
        assert editor.query_one("#ice-credential", Input).value == ""  # the env secret never enters the form
        assert editor.query_one("#ice-reveal").disabled
        assert "read-only" in str(editor.query_one("#ice-note").render())
        await pilot.press("delete")
        assert "turn:relay.example.net:3478" in rows(editor)
        assert "environment" in str(editor.query_one("#ice-note").render())
        await pilot.press("shift+down")
        assert rows(editor)[2] == "turn:relay.example.net:3478"


async def test_validation_errors_show_next_to_the_field_and_lose_nothing(tmp_path):
    path = tmp_path / "config.toml"
    c, app = demo_app(path)
    async with app.run_test() as pilot:
        editor = await open_editor(pilot)
        await go_to(pilot, editor, NEW_ROW)
        await type_into(pilot, editor, "#ice-url", "http://stun.example.org", keys=True)
        error = str(editor.query_one("#ice-url-error").render())
        assert "scheme 'http' is not stun:, turn: or turns:" in error  # inline, while typing
        await pilot.press("enter")
        assert len(editor.servers.rows) == 4
        assert editor.query_one("#ice-url", Input).value == "http://stun.example.org"
        await type_into(pilot, editor, "#ice-url", "turn.example.org:3478")
        await pilot.pause()
        assert str(editor.query_one("#ice-url-error").render()) == ""  # a bare host: the kind list decides
        editor.query_one("#ice-kind", Select).value = "turn"
        await type_into(pilot, editor, "#ice-url", "stun:turn.example.org:3478")
        await pilot.pause()
        assert editor.query_one("#ice-kind", Select).value == "stun"  # the scheme picks the kind
        editor.query_one("#ice-kind", Select).value = "turn"
        await type_into(pilot, editor, "#ice-url", "turn.example.org:3478")
        editor.query_one("#ice-url", Input).value = "stun:turn.example.org:3478"
        editor.query_one("#ice-kind", Select).disabled = True  # e.g. read-only: no switching
        await pilot.pause()
        assert "this is a STUN URL" in str(editor.query_one("#ice-url-error").render())
        editor.query_one("#ice-kind", Select).disabled = False
        await type_into(pilot, editor, "#ice-url", "turn:[::1:3478")
        assert "unclosed '['" in str(editor.query_one("#ice-url-error").render())
        await type_into(pilot, editor, "#ice-url", "stun:stun.example.org:3478")
        editor.query_one("#ice-kind", Select).value = "stun"
        await pilot.press("enter")
        assert "already in the list" in str(editor.query_one("#ice-url-error").render())
        await type_into(pilot, editor, "#ice-url", "stun:x.example:0")
        await pilot.press("ctrl+s")  # save applies the form first; a bad form stops it
        await pilot.pause()
        assert isinstance(app.screen, IceEditor) and not path.exists()
        assert "port 0 is outside 1-65535" in str(editor.query_one("#ice-url-error").render())


async def test_credential_is_masked_until_revealed():
    c, app = demo_app()
    async with app.run_test() as pilot:
        editor = await open_editor(pilot)
        await go_to(pilot, editor, 3)
        field = editor.query_one("#ice-credential", Input)
        # Masked, the field holds nothing: not one bullet per character (the length is a hint).
        assert field.value == "" and field.password and "set" in field.placeholder
        assert DEMO_CREDENTIAL not in app.export_screenshot()
        assert "•" * len(DEMO_CREDENTIAL) not in app.export_screenshot().replace("&#160;", " ")
        assert "••••" in str(editor.query_one(DataTable).get_row_at(3)[3])
        await pilot.click("#ice-reveal")
        assert not field.password and field.value == DEMO_CREDENTIAL
        assert DEMO_CREDENTIAL in app.export_screenshot()
        await pilot.press("tab")  # from the button, by key this time
        await pilot.press("shift+tab", "enter")
        # Enter presses the button, whose Pressed message is handled after the key: let it run
        # (under stress-ng in CI the assertion once came first).
        await pilot.pause()
        assert field.password and field.value == ""
        assert editor._form_row().credential == DEMO_CREDENTIAL  # kept, not lost by masking
        await go_to(pilot, editor, 0)
        await go_to(pilot, editor, 3)
        assert field.password  # each row starts masked again


async def test_cancel_discards_everything(tmp_path):
    path = tmp_path / "config.toml"
    config = demo_config()
    before = config.ice
    c = FakeController(config=config)
    planner = c.planner
    app = make_app(c, config_path=path)
    async with app.run_test() as pilot:
        editor = await open_editor(pilot)
        await go_to(pilot, editor, 0)
        await pilot.press("delete", "delete")
        assert len(editor.servers.rows) == 2
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        assert c.config.ice is before and c.planner is planner and not path.exists()
        assert len(before.stun) == 2
        editor = await open_editor(pilot)  # opens on the unchanged list
        assert len(editor.servers.rows) == 4
        await pilot.click("#ice-cancel")
        assert isinstance(app.screen, MainScreen)


async def test_a_failed_save_keeps_the_editor_and_the_edits(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the config folder should be")
    c, app = demo_app(blocker / "config.toml")
    async with app.run_test(notifications=True) as pilot:
        editor = await open_editor(pilot)
        await go_to(pilot, editor, 0)
        await pilot.press("delete")
        await pilot.press("ctrl+s")
        await wait_until(lambda: any("Not saved" in n for n in notes(app)), pilot)
        assert isinstance(app.screen, IceEditor) and len(editor.servers.rows) == 3
        assert len(c.config.ice.stun) == 2


async def test_the_credential_never_reaches_notifications_or_logs(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "config.toml"
    c, app = demo_app(path)
    async with app.run_test(notifications=True) as pilot:
        editor = await open_editor(pilot)
        await go_to(pilot, editor, 3)
        await pilot.click("#ice-reveal")
        await type_into(pilot, editor, "#ice-credential", "brand-new-s3cret")
        await pilot.press("enter", "ctrl+s")
        await wait_until(lambda: isinstance(app.screen, MainScreen), pilot)
    assert "brand-new-s3cret" in path.read_text()
    shown = "\n".join(notes(app)) + caplog.text
    for secret in ("brand-new-s3cret", DEMO_CREDENTIAL, "env-secret-value"):
        assert secret not in shown


async def test_probe_against_loopback_coturn_and_a_silent_server(coturn, silent_udp):
    silent = silent_udp()
    config = Config(ice={"stun": [coturn.stun_url, silent.stun_url], "probe_timeout_ms": 800,
                         "turn": [{"url": coturn.turn_url, "username": USER, "credential": PASSWORD},
                                  {"url": coturn.turn_tcp_url, "username": USER, "credential": "wrong-password"}]},
                    telemetry={"enabled": False})
    c = FakeController(config=config)
    app = make_app(c)
    async with app.run_test() as pilot:
        editor = await open_editor(pilot)
        await pilot.press("ctrl+t")
        assert all(r.status == "testing…" for r in editor.servers.rows)
        assert editor.query_one("#ice-test").disabled
        await pilot.press("down")  # the screen stays live while the probe waits on the silent server
        assert editor.query_one(DataTable).cursor_row == 1
        assert editor.servers.rows[1].status == "testing…"
        await wait_until(lambda: not editor.query_one("#ice-test").disabled, pilot, timeout=5)
        status = {r.url + r.credential[:1]: r.status for r in editor.servers.rows}
        assert status[coturn.stun_url].startswith("ok ")
        assert status[silent.stun_url] == "no answer within 800 ms"
        assert status[coturn.turn_url + PASSWORD[0]].startswith("ok ")
        assert status[coturn.turn_tcp_url + "w"] == "TURN credentials rejected"
        assert "2/4 reachable" in str(editor.query_one("#ice-note").render())
        cells = [str(editor.query_one(DataTable).get_row_at(i)[4]) for i in range(4)]
        assert cells[0].startswith("ok ") and cells[1] == "no answer within 800 ms"
