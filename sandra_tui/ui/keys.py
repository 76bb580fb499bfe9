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
    Key("f2", "toggle_call", "Call", "Call / hang up (retry after a failure)", "F2"),
    Key("f3", "toggle_mute", "Mute", "Mute / unmute the microphone", "F3"),
    Key("f4", "toggle_ptt", "PTT", "Push-to-talk mode on / off", "F4"),
    Key("f5", "talk", "Talk", "Talk on / off (in push-to-talk mode)", "F5"),
    Key("f6", "ice_editor", "ICE", "Edit the STUN / TURN servers", "F6"),
    Key("f7", "clear", "Clear", "Clear the transcript", "F7"),
    Key("f8", "devices", "Audio", "Choose the microphone and speaker", "F8"),
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
    ("Ctrl+S", "Use the highlighted devices and save them"),
    ("Esc", "Cancel"),
)
