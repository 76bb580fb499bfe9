"""`sandra-tui config path|show|check`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from sandra_tui import secrets
from sandra_tui.config.env import EnvIssue
from sandra_tui.config.load import (
    ConfigError,
    ConfigIssue,
    LoadedConfig,
    config_path,
    load_config,
    mask_url_credentials,
    parse_config,
)
from sandra_tui.config.tls import CA_FILE_ENV, TlsConfigError, client_context


CREDENTIAL_SET = "****"


def load_for_cli(args: argparse.Namespace) -> LoadedConfig:
    """Load the config for a command, reporting problems on stderr (one place for every command)."""
    # quarantine=False: a read-only command never moves or copies the user's file.
    loaded = load_config(getattr(args, "config", None), quarantine=False)
    for warning in loaded.warnings:
        print(mask_url_credentials(secrets.redact(f"sandra-tui: {warning}")), file=sys.stderr)
    backend = getattr(args, "backend", None)
    if backend:
        loaded.config.backend.url = backend
        loaded.sources["backend.url"] = "--backend"
    return loaded


def cmd_path(args: argparse.Namespace) -> int:
    print(config_path(args.config))
    return 0


def check_findings(explicit: str | None, env) -> tuple[LoadedConfig, list]:
    """Everything wrong with the configuration in effect: the file (strictly: every bad
    setting) and the environment that overrides it. Each finding prints safely and has to_dict()."""
    loaded = load_config(explicit, env=env, quarantine=False)
    findings: list = []
    if loaded.exists:
        try:
            parse_config(loaded.path.read_text(encoding="utf-8"), loaded.path)
        except ConfigError as exc:
            findings += exc.issues
        except (OSError, UnicodeDecodeError) as exc:
            findings.append(ConfigIssue(loaded.path, None, "", f"cannot read: {exc}"))
    findings += loaded.env_issues
    ca_file = env.get(CA_FILE_ENV)
    if ca_file:
        try:
            client_context(env)
        except TlsConfigError as exc:
            findings.append(EnvIssue(CA_FILE_ENV, str(exc).removeprefix(f"{CA_FILE_ENV}=")))
    return loaded, findings


def _safe(text: str) -> str:
    return mask_url_credentials(secrets.redact(text))


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when the file (if any) and the environment are valid, 1 when anything is not."""
    loaded, findings = check_findings(args.config, os.environ)
    if args.json:
        print(json.dumps({
            "ok": not findings, "path": str(loaded.path), "file_exists": loaded.exists,
            "sources": loaded.sources,
            "findings": [{k: _safe(v) if isinstance(v, str) else v for k, v in f.to_dict().items()}
                         for f in findings],
        }, indent=2))
        return 1 if findings else 0
    for finding in findings:
        print(_safe(str(finding)), file=sys.stderr)
    if findings:
        print(f"{len(findings)} problem(s) in the configuration in effect", file=sys.stderr)
        return 1
    print(f"{loaded.path}: OK" if loaded.exists else f"{loaded.path}: no config file; defaults apply")
    for setting in ("ice.turn", "backend.realtime_url"):
        source = loaded.sources.get(setting, "")
        if source.startswith("environment"):
            print(f"{setting}: from the {source}: OK")
    return 0


def describe(loaded: LoadedConfig) -> dict:
    """The effective config as plain data, secrets masked, with the origin of each ICE server."""
    cfg = loaded.config
    data = cfg.model_dump(mode="json")
    data["ice"]["turn"] = [
        {
            "url": t.url,
            "username": t.username,
            # Nothing of the value, not even its length: "set" or "".
            "credential": CREDENTIAL_SET if t.credential.get_secret_value() else "",
            "source": t.origin,
        }
        for t in cfg.ice.turn
    ]
    data["ice"]["servers"] = [{"url": u, "kind": "stun"} for u in cfg.ice.stun] + [
        {"url": t.url, "kind": "turn"} for t in cfg.ice.turn
    ]
    return {
        "path": str(loaded.path),
        "file_exists": loaded.exists,
        "sources": loaded.sources,
        "warnings": loaded.warnings,
        "config": data,
    }


def cmd_show(args: argparse.Namespace) -> int:
    loaded = load_for_cli(args)
    info = describe(loaded)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    cfg = loaded.config
    state = "" if loaded.exists else " (no file: defaults)"
    print(f"config file: {loaded.path}{state}")
    print(f"backend: {cfg.backend.url}")
    print(f"ICE servers ({len(cfg.ice.stun)} STUN, {len(cfg.ice.turn)} TURN; aiortc uses the first of each):")
    for url in cfg.ice.stun:
        print(f"  stun  {url}")
    for turn in info["config"]["ice"]["turn"]:
        user = f"  username={turn['username']}" if turn["username"] else ""
        cred = f"  credential={turn['credential']}" if turn["credential"] else ""
        print(f"  turn  {turn['url']}{user}{cred}  (from {turn['source']})")
    print(f"TURN source: {loaded.sources.get('ice.turn', 'none')}")
    r = cfg.reconnect
    print(f"reconnect: max_attempts={r.max_attempts} base_delay_ms={r.base_delay_ms} "
          f"max_delay_ms={r.max_delay_ms} jitter={r.jitter} stable_after_s={r.stable_after_s} "
          f"watchdog_ms={r.watchdog_ms}")
    a = cfg.audio
    print(f"audio: input={a.input_device or 'default'} output={a.output_device or 'default'} "
          f"echo_cancellation={a.echo_cancellation} noise_suppression={a.noise_suppression} "
          f"push_to_talk={a.push_to_talk}")
    h = cfg.history
    print(f"history: max_messages={h.max_messages} max_memory_mb={h.max_memory_mb} trim_to={h.trim_to}")
    print(f"latency: good<{cfg.latency.good_ms:g}ms medium<{cfg.latency.medium_ms:g}ms")
    t = cfg.telemetry
    print(f"telemetry: enabled={t.enabled} url={t.url or '(backend)'} batch_size={t.batch_size} "
          f"flush_interval_s={t.flush_interval_s:g}")
    return 0
