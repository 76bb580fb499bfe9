"""The call at a glance: state and timer, microphone, levels, quality, playout, media path, rate
limits, devices.

It only shows what it is given; the screen decides when (state at once, meters on its timer).
"""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from sandra_tui.ui.widgets.call_status import CallStatus
from sandra_tui.ui.widgets.devices_line import DevicesLine
from sandra_tui.ui.widgets.level_meter import LevelMeter
from sandra_tui.ui.widgets.limits_line import LimitsLine
from sandra_tui.ui.widgets.media_line import MediaLine
from sandra_tui.ui.widgets.mic_status import MicStatus
from sandra_tui.ui.widgets.playout_line import PlayoutLine
from sandra_tui.ui.widgets.quality_line import QualityLine


class CallPane(Vertical):
    def __init__(self, clock=time.monotonic, **kwargs) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.border_title = "Call"

    def compose(self) -> ComposeResult:
        with Horizontal(classes="pane-row"):
            yield CallStatus(self.clock)
            yield MicStatus()
        with Horizontal(classes="pane-row"):
            yield LevelMeter("mic", id="level-in")
            yield LevelMeter("Sandra", id="level-out")
        with Horizontal(classes="pane-row"):
            yield QualityLine()
            yield PlayoutLine()
        yield MediaLine()
        yield LimitsLine(self.clock)
        yield DevicesLine()

    @property
    def status(self) -> CallStatus:
        return self.query_one(CallStatus)

    def text(self) -> str:
        """Everything the pane shows, as plain text (for tests and logs)."""
        return "\n".join(str(w.render()) for w in self.query("CallStatus, MicStatus, LevelMeter, QualityLine, "
                                                              "PlayoutLine, MediaLine, LimitsLine, DevicesLine"))
