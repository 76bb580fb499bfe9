"""Feeds the controller's latency samples to the telemetry uploader (issue: never block the call)."""

from __future__ import annotations

from pathlib import Path

import platformdirs

from sandra_tui.call.events import LatencySample
from sandra_tui.telemetry.uploader import TelemetryUploader

METRICS_PATH = "/api/sandra/metrics"
SPOOL_NAME = "telemetry-spool.sqlite3"  # the JSONL spool of earlier versions beside it is imported once


def attach_telemetry(controller, spool_dir: Path | None = None) -> TelemetryUploader | None:
    cfg = controller.config.telemetry
    if not cfg.enabled:
        return None
    spool_dir = spool_dir or Path(platformdirs.user_state_dir("sandra-tui"))

    def url() -> str | None:
        if cfg.url:
            return cfg.url
        base = controller.backend_base
        return base + METRICS_PATH if base else None

    # The key and session are read when each payload is made and kept with it: a payload is
    # delivered with the key of the call it belongs to, even from the spool in a later call.
    uploader = TelemetryUploader(
        url,
        token=lambda: controller.token_value,
        session_id=lambda: controller.session_id,
        batch_size=cfg.batch_size,
        flush_interval_s=cfg.flush_interval_s,
        window=cfg.window,
        spool_path=spool_dir / SPOOL_NAME,
        spool_max_bytes=int(cfg.spool_max_mb * 1024 * 1024),
        on_notice=controller.notice,
    )

    def on_event(event) -> None:
        if isinstance(event, LatencySample):
            uploader.record(event.name, event.ms)

    controller.subscribe(on_event)
    uploader.start()
    return uploader
