"""Fixtures of the device tests (PulseAudio null sinks, tests/conftest.py's `pulse`)."""

from __future__ import annotations

import pytest

from sandra_tui.audio.device_audio import DeviceAudio


@pytest.fixture
def devices(pulse):
    opened = []

    def make(**kwargs) -> DeviceAudio:
        kwargs.setdefault("echo_cancellation", False)
        d = DeviceAudio(**kwargs)
        opened.append(d)
        return d

    yield make
    for d in opened:
        d.close()
