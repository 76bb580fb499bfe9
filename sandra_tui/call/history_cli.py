"""`sandra-tui history [--json] [--delete ID] [--prune]` and `sandra-tui export CALL [--format md|json]`."""

from __future__ import annotations

import argparse
import json
import sys
import time

from sandra_tui.call.call_log import CallStore, clock_text, db_path, export


def _store(args: argparse.Namespace) -> CallStore:
    from sandra_tui.config.cli import load_for_cli

    loaded = load_for_cli(args)
    return CallStore(db_path(loaded.config.history)), loaded.config.history


def run_history(args: argparse.Namespace) -> int:
    store, cfg = _store(args)
    if args.delete is not None:
        if not store.delete(args.delete):
            print(f"sandra-tui history: no call {args.delete}", file=sys.stderr)
            return 1
        print(f"deleted call {args.delete}")
        return 0
    if args.prune:
        print(f"pruned {store.prune(cfg.keep_days, cfg.keep_calls)} call(s)"
              f" (keep_days={cfg.keep_days}, keep_calls={cfg.keep_calls})")
        return 0
    calls = store.calls(args.limit)
    if args.json:
        print(json.dumps([c.to_dict() for c in calls], indent=2, ensure_ascii=False))
        return 0
    if not calls:
        print(f"no calls yet ({store.path})")
        return 0
    for c in calls:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.started_at))
        mos = f"MOS {c.mos_avg:.1f}" if c.mos_avg is not None else "MOS -"
        p50 = f"p50 {c.latency_p50_ms:.0f} ms" if c.latency_p50_ms is not None else "p50 -"
        rec = "  REC" if c.recording else ""
        print(f"{c.id:>5}  {started}  {clock_text(c.duration_s):>8}  {c.end_state:<6}  {c.turns:>3} turns  "
              f"{c.reconnects} reconn  {mos}  {p50}{rec}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    store, _ = _store(args)
    record = store.get(args.call)
    if record is None:
        print(f"sandra-tui export: no call {args.call} (see `sandra-tui history`)", file=sys.stderr)
        return 1
    text = export(record, args.format)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    else:
        print(text)
    return 0
