"""Every key of the app in one table: the bindings, the help screen and the command palette read it,
so the three can never disagree."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    key: str  # Textual key name
    action: str  # an action of SandraApp (without the "app." prefix)
    label: str  # short, for the footer
    help: str  # one line, for the help screen and the command palette
    display: str = ""  # how the help screen writes the key


# Bound on the main screen with priority, so they work while the message input has focus.
# Esc lives here (not on the app) so that on a dialog it closes the dialog instead.
MAIN_KEYS = (
    # F2 is one key with two bindings: the footer names what it does now (check_action hides the other).
    Key("f2", "call", "Call", "Call (retry after a failure)", "F2"),
    Key("f2", "hang_up", "Hang up", "Hang up", "F2"),
    Key("f3", "toggle_mute", "Mute", "Mute / unmute the microphone", "F3"),
    Key("f4", "toggle_ptt", "PTT", "Push-to-talk mode on / off", "F4"),
    Key("f5", "talk", "Talk", "Talk on / off (in push-to-talk mode)", "F5"),
    Key("f6", "ice_editor", "ICE", "Edit the STUN / TURN servers", "F6"),
    Key("f7", "clear", "Clear", "Clear the transcript (asks first)", "F7"),
    Key("f8", "devices", "Audio", "Audio devices: microphone, speaker, rescan, test, volume", "F8"),
    Key("f9", "history", "History", "Call history: past calls, their transcripts, export, delete", "F9"),
    Key("f10", "session_settings", "Session", "Session settings: voice, turn detection, noise, language", "F10"),
    Key("ctrl+r", "record", "Rec", "Recording on / off (stereo WAV: you left, Sandra right)", "^R"),
    Key("escape", "cancel_reply", "Stop", "Stop Sandra mid-reply", "Esc"),
)

# Bound on the app: they work on every screen.
APP_KEYS = (
    Key("f1", "help", "Help", "Show every key", "F1"),
    Key("ctrl+p", "command_palette", "Palette", "Open the command palette", "^P"),
    Key("ctrl+q", "quit", "Quit", "Hang up and quit", "^Q"),
)

ALL_KEYS = APP_KEYS[:1] + MAIN_KEYS + APP_KEYS[1:]

# Keys of the dialogs, for the help screen (their bindings live on the screens themselves).
ICE_EDITOR_KEYS = (
    ("Enter", "Apply the form (on the last row: add a server)"),
    ("Delete", "Remove the highlighted server"),
    ("Shift+↑ ↓", "Move the highlighted server up / down"),
    ("Ctrl+T", "Test every server (STUN binding, TURN allocation)"),
    ("Ctrl+S", "Save; used from the next connect"),
    ("Esc", "Cancel: discard every change"),
)
DEVICE_KEYS = (
    ("Tab", "Switch between the microphone and speaker lists"),
    ("Ctrl+R", "Rescan the machine's devices (a headset plugged in since start)"),
    ("Ctrl+T", "Microphone test: record 3 s, then hear them played back"),
    ("Volume % / Mic gain %", "Output volume 0-200, microphone gain 0-400: applied as typed"),
    ("Ctrl+S", "Use the highlighted devices and levels, and save them"),
    ("Esc", "Cancel"),
)
HISTORY_KEYS = (
    ("Enter", "Open the highlighted call's transcript"),
    ("Ctrl+E", "Export the highlighted call (Markdown) to the data dir"),
    ("Delete", "Delete the highlighted call (asks first)"),
    ("Esc", "Close"),
)
SETTINGS_KEYS = (
    ("Ctrl+S", "Save and apply now (session.update)"),
    ("Esc", "Cancel"),
)
