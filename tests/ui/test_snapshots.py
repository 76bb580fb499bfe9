"""Snapshots of every state worth seeing, from the deterministic scenes (fixed clock, fake controller).

Update after an intended change: pytest tests/ui/test_snapshots.py --snapshot-update, then look at
the report and the SVGs before committing them.
"""

import pytest

from tests.ui.scenes import SCENES, make_app


@pytest.mark.parametrize("scene", sorted(SCENES))
def test_scene_80x24(snap_compare, scene):
    assert snap_compare(make_app(), run_before=SCENES[scene], terminal_size=(80, 24))


@pytest.mark.parametrize("scene", ["connected", "ice-editor-masked", "devices", "mic-test", "session-settings", "history"])
def test_scene_120x40(snap_compare, scene):
    assert snap_compare(make_app(), run_before=SCENES[scene], terminal_size=(120, 40))


def test_no_picture_holds_a_credential_except_the_revealed_one():
    from pathlib import Path

    from tests.ui.scenes import DEMO_CREDENTIAL

    root = Path(__file__).resolve().parents[2]
    pictures = sorted((Path(__file__).parent / "__snapshots__").rglob("*.svg")) + sorted(
        (root / "screenshots").glob("*.svg"))
    assert len(pictures) >= 12
    for picture in pictures:
        svg = picture.read_text(encoding="utf-8").replace("&#160;", " ")
        assert "env-secret-value" not in svg, picture
        assert (DEMO_CREDENTIAL in svg) == ("revealed" in picture.name), picture
