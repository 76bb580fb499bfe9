"""Command line: `sandra-tui` and its sub-commands.

Each sub-command imports its implementation lazily so `--help` and `config` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from sandra_tui import __version__

NOT_IMPLEMENTED = 2


def _lazy(target: str) -> Callable[[argparse.Namespace], int]:
    """Handler that imports `module:function` only when the sub-command runs.

    A failed import (there, or one the command makes later) is reported as what it is: a missing
    library with how to install it (exit 3), or a bug in our own module (exit 4); only a missing
    sub-command module is "not implemented" (exit 2)."""

    def handler(args: argparse.Namespace) -> int:
        module_name, func_name = target.split(":")
        try:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name is None or not (module_name + ".").startswith(exc.name + "."):
                    raise
                module = None  # the sub-command's own module (or its package) is not there
            func = getattr(module, func_name, None)
            if func is None:
                print(f"sandra-tui {args.command}: not implemented yet", file=sys.stderr)
                return NOT_IMPLEMENTED
            return int(func(args) or 0)
        except (ImportError, OSError) as exc:
            from sandra_tui import import_errors

            if not import_errors.raised_by_import(exc):
                raise  # an OSError of the command itself: main() reports it
            import logging

            logging.getLogger("sandra_tui").debug("sandra-tui %s: import failed", args.command, exc_info=True)
            failure = import_errors.describe(exc, args.command)
            print(failure.message, file=sys.stderr)
            return failure.code

    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandra-tui",
        description="Terminal softphone for Sandra, a voice assistant on the OpenAI Realtime API (WebRTC).",
    )
    parser.add_argument("--version", action="version", version=f"sandra-tui {__version__}")
    parser.add_argument("--config", metavar="PATH", help="config file (default: $SANDRA_CONFIG or the user config dir)")
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default) or ERROR")
    parser.add_argument("--backend", metavar="URL", help="backend URL, or 'embedded' for the local agent (overrides config)")
    parser.add_argument("--text-only", action="store_true", help="the TUI without audio devices (text chat only)")
    parser.add_argument("--no-autostart", action="store_true",
                        help="do not place the call at launch (F2 calls); default from [call] autostart")
    parser.set_defaults(handler=_lazy("sandra_tui.ui.run:run_tui"), command="tui")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("serve", help="run the backend: token endpoint, local realtime agent, metrics API")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; anything else is explicit)")
    p.add_argument("--port", type=int, default=8750, help="port (default 8750; 0 picks a free one)")
    p.add_argument("--upstream", choices=["local", "openai"], default="local",
                   help="who answers calls: the local Sandra stand-in or OpenAI (needs OPENAI_API_KEY)")
    p.add_argument("--faults", action="store_true", help="enable the fault-injection admin endpoint (loopback only)")
    p.add_argument("--ready-file", metavar="PATH", help="write the listening URL to PATH once serving")
    p.add_argument("--agent-mode", choices=["reply", "echo", "mirror"], default=None,
                   help="local agent: speak a reply (default), echo the caller's utterance back, or mirror every frame (round-trip probe)")
    p.add_argument("--turn-url", action="append", metavar="URL",
                   help="TURN/STUN URL handed to clients (repeatable; default $SANDRA_TURN_URLS); "
                        "turn: URLs get REST credentials from $SANDRA_TURN_SECRET")
    p.add_argument("--turn-ttl", type=int, metavar="S", help="TURN credential lifetime (default $SANDRA_TURN_TTL or 3600)")
    p.add_argument("--token-ttl", type=int, metavar="S", help="client key lifetime, 10-7200 (default 600)")
    p.add_argument("--max-calls-per-client", type=int, metavar="N", help="concurrent calls per client address (default 4)")
    p.add_argument("--session-max-s", type=float, metavar="S", help="local agent: end each session after S seconds with session_expired, as OpenAI does at 3600")
    p.add_argument("--dialect", choices=["realtime", "live"], default=None, help="what the local agent speaks on its data channel: the Realtime API's events or GPT-Live's (default: $SANDRA_API or realtime)")  # GPT-Live (#22)
    p.set_defaults(handler=_lazy("sandra_tui.server.main:run"))

    p = sub.add_parser("call", help="place a call without the TUI")
    p.add_argument("--headless", action="store_true", help="no UI: print one JSON event per line")
    p.add_argument("--duration", type=float, metavar="S", help="hang up after S seconds")
    p.add_argument("--say", metavar="TEXT", action="append", help="type TEXT to Sandra once connected (repeatable)")
    p.add_argument("--json", action="store_true", help="JSON lines output (default with --headless)")
    p.add_argument("--mic-file", metavar="WAV", help="use a WAV file as the microphone, paced in real time")
    p.add_argument("--speaker-file", metavar="WAV", help="write what Sandra says to a WAV file")
    p.add_argument("--no-audio", action="store_true", help="text only: no audio devices")
    p.add_argument("--devices", action="store_true",
                   help="use the configured microphone and speaker (default: files or silence)")
    p.add_argument("--device-rate", type=int, default=0, metavar="HZ",
                   help="open the devices at this rate (default: 48000 when they take it)")
    p.add_argument("--trace-audio", action="store_true",
                   help="print a `trace` line when a loud edge passes each audio stage (benchmarks)")
    p.set_defaults(handler=_lazy("sandra_tui.call.headless:run"))

    p = sub.add_parser("devices", help="list audio input and output devices")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_lazy("sandra_tui.audio.devices:run_cli"))

    p = sub.add_parser("config", help="show or check the configuration")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    c = csub.add_parser("path", help="print the config file path")
    c.set_defaults(handler=_lazy("sandra_tui.config.cli:cmd_path"))
    c = csub.add_parser("show", help="print the effective configuration (secrets masked) and where values came from")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=_lazy("sandra_tui.config.cli:cmd_show"))
    c = csub.add_parser("check", help="validate the config in effect (file and SANDRA_*/REACT_APP_* environment); "
                                      "exit 1 naming file:line:field or the variable on error")
    c.add_argument("--json", action="store_true", help="machine-readable findings")
    c.set_defaults(handler=_lazy("sandra_tui.config.cli:cmd_check"))

    p = sub.add_parser("history", help="past calls: start, duration, reconnects, MOS, latency (newest first)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=int, default=100, metavar="N", help="at most N calls (default 100)")
    p.add_argument("--delete", type=int, metavar="CALL", help="delete one call and its transcript")
    p.add_argument("--prune", action="store_true", help="apply the retention ([history] keep_days, keep_calls) now")
    p.set_defaults(handler=_lazy("sandra_tui.call.history_cli:run_history"))

    p = sub.add_parser("export", help="one call's figures and transcript, as Markdown or JSON")
    p.add_argument("call", type=int, metavar="CALL", help="the call's number from `sandra-tui history`")
    p.add_argument("--format", choices=["md", "json"], default="md", help="md (default) or json")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(handler=_lazy("sandra_tui.call.history_cli:run_export"))

    p = sub.add_parser("probe-ice", help="check every configured STUN and TURN server concurrently")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--timeout-ms", type=int, metavar="MS", help="one deadline for all servers (default from config, 500)")
    p.set_defaults(handler=_lazy("sandra_tui.config.probe:run_cli"))
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    parent = os.environ.get("SANDRA_AGENT_PARENT")  # an embedded agent (sandra_tui/parent.py)
    if parent:
        from sandra_tui.parent import die_with_parent

        die_with_parent(parent)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in (None, "tui"):  # the TUI: its agent starts up while the TUI imports (issue #23)
        from sandra_tui.call.early_agent import spawn_early

        args.early_agent = spawn_early(args.backend, args.config)
    from sandra_tui.logs import setup_logging

    setup_logging(args.log_level)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`| head`): nothing more to say, and the
        # interpreter's last flush must not fail again (the Python docs' recipe).
        _silence_stdout()
        return 1
    except Exception as exc:  # noqa: BLE001 - one line for the operator, the traceback for the log
        import logging

        from sandra_tui.secrets import redact

        logging.getLogger("sandra_tui").error("sandra-tui %s failed", args.command, exc_info=True)
        print(f"sandra-tui {args.command}: internal error: {type(exc).__name__}: {redact(str(exc))}", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
