"""Render the app's main states into screenshots/*.svg (and *.png with rsvg-convert).

The scenes are the snapshot tests' own (tests/ui/scenes.py: fake controller, frozen clock), so
the pictures in the README show exactly what the tests check. Run: make screenshots.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.ui.scenes import SCENES, make_app  # noqa: E402

SHOTS = [  # (file name, scene, size)
    ("connected", "connected", (100, 30)),
    ("reconnecting", "reconnecting", (100, 30)),
    ("failed", "failed", (100, 30)),
    ("idle-80x24", "idle", (80, 24)),
    ("ice-editor", "ice-editor-masked", (100, 30)),
    ("ice-editor-error", "ice-editor-error", (100, 30)),
    ("devices", "devices", (100, 30)),
    ("devices-80x24", "devices", (80, 24)),
    ("mic-test", "mic-test", (100, 30)),
    ("help", "help", (100, 30)),
    ("history", "history", (100, 30)),
    ("session-settings", "session-settings", (100, 30)),
    ("confirm-clear", "confirm-clear", (100, 30)),
]


async def render(scene: str, size: tuple[int, int]) -> str:
    app = make_app()
    async with app.run_test(size=size, notifications=True) as pilot:
        await SCENES[scene](pilot)
        await pilot.pause(0.1)
        return app.export_screenshot(title="sandra-tui")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--no-png", action="store_true", help="SVG only")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rsvg = None if args.no_png else shutil.which("rsvg-convert")
    if not args.no_png and rsvg is None:
        print("rsvg-convert not found (apt install librsvg2-bin): SVG only", file=sys.stderr)
    for name, scene, size in SHOTS:
        # Textual writes spaces as &#160; with textLength; librsvg drops leading ones unless
        # told to preserve white space, which shifts text in the PNG.
        svg = asyncio.run(render(scene, size)).replace("<svg ", '<svg xml:space="preserve" ', 1)
        if "s3cret" in svg and scene != "ice-editor-revealed":
            raise SystemExit(f"{name}: a credential would be in the picture")
        target = args.out / f"{name}.svg"
        target.write_text(svg, encoding="utf-8")
        if rsvg:
            subprocess.run([rsvg, "--zoom", "1", str(target), "-o", str(target.with_suffix(".png"))], check=True)
        print(f"{target.relative_to(ROOT)}" + (" + .png" if rsvg else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
