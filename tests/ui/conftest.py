"""UI tests: the rendering must not depend on the terminal or the environment it runs in."""

import os

import pytest

# Textual reads some of these at import time, others when an App is made.
ENV = ("NO_COLOR", "FORCE_COLOR", "TEXTUAL_THEME", "TEXTUAL_COLOR_SYSTEM", "TEXTUAL_FILTERS", "TEXTUAL_ANIMATIONS",
       "TEXTUAL_FPS", "COLUMNS", "LINES")
for _name in ENV:
    os.environ.pop(_name, None)


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
