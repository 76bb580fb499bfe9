"""An embedded agent dies with its client from its first moment (call/embedded.py sets
SANDRA_AGENT_PARENT in its environment).

Asked for in `main()` before anything heavy is imported: `serve` imports aiohttp, aiortc and
the agent first (seconds on a loaded machine), and a client SIGKILLed meanwhile left its agent
alive that long (tests/call/test_exits.py: 4 of 5 TUI SIGKILLs at load average 8). Until serve
installs its own handlers, the SIGTERM the kernel sends ends the process at once.
"""

from __future__ import annotations

import contextlib
import os
import sys

AGENT_PARENT_ENV = "SANDRA_AGENT_PARENT"
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: str) -> None:
    """PR_SET_PDEATHSIG (SIGTERM) now; exit 0 if the parent `parent` (a pid) is already gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
                print(f"PR_SET_PDEATHSIG failed: errno {ctypes.get_errno()}", file=sys.stderr)
    # The parent may have died before the prctl: then nobody will tell us.
    if str(os.getppid()) != parent:
        print(f"the parent {parent} is gone before start-up; exiting", file=sys.stderr)
        raise SystemExit(0)
