"""Conversation history: FIFO capped by count, trimmed under memory pressure.

Memory is measured from what is held (the objects' real sizes), kept as a running total so the
check costs nothing per delta.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass, field

MB = 1024 * 1024


@dataclass(slots=True)
class Message:
    role: str
    content: str
    item_id: str = ""
    ts: float = field(default_factory=time.time)
    final: bool = True
    status: str = ""  # "queued" (a typed message not sent yet), "interrupted" (a reply cut short)

    def nbytes(self) -> int:
        return (
            sys.getsizeof(self)
            + sys.getsizeof(self.content)
            + sys.getsizeof(self.item_id)
            + sys.getsizeof(self.ts)
        )


class ConversationHistory:
    def __init__(self, max_messages: int = 50, max_memory_mb: float = 100.0, trim_to: int = 30) -> None:
        if trim_to > max_messages:
            raise ValueError("trim_to must be <= max_messages")
        self.max_messages = max_messages
        self.max_bytes = int(max_memory_mb * MB)
        self.trim_to = trim_to
        self._messages: deque[Message] = deque()
        self._bytes = 0
        self.revision = 0  # bumps on every change, so views can tell they are stale

    # -- the guide's API ---------------------------------------------------------------------
    def add(self, role: str, content: str, *, item_id: str = "", final: bool = True, status: str = "") -> Message:
        message = Message(role, content, item_id, final=final, status=status)
        self._messages.append(message)
        self._bytes += message.nbytes()
        self._enforce()
        return message

    def memory_usage_mb(self) -> float:
        return (self._bytes + sys.getsizeof(self._messages)) / MB

    def clear(self) -> None:
        self._messages.clear()
        self._bytes = 0
        self.revision += 1

    # -- streaming -----------------------------------------------------------------------------
    def find(self, item_id: str) -> Message | None:
        if not item_id:
            return None
        for message in reversed(self._messages):
            if message.item_id == item_id:
                return message
        return None

    def append_delta(self, role: str, item_id: str, delta: str) -> Message:
        """Grow the message `item_id` (created on the first delta) by `delta`."""
        message = self.find(item_id)
        if message is None:
            return self.add(role, delta, item_id=item_id, final=False)
        return self._replace(message, message.content + delta, final=False)

    def finish(self, role: str, item_id: str, content: str) -> Message:
        """Set the final text of `item_id` (adding it if its deltas were never seen)."""
        message = self.find(item_id)
        if message is None:
            return self.add(role, content, item_id=item_id, final=True)
        return self._replace(message, content, final=True)

    def mark(self, item_id: str, status: str) -> Message | None:
        """Set the status of `item_id` ("" when it is simply done); an interrupted reply is final."""
        message = self.find(item_id)
        if message is not None:
            message.status = status
            if status == "interrupted":
                message.final = True
            self.revision += 1
        return message

    def _replace(self, message: Message, content: str, *, final: bool) -> Message:
        self._bytes -= message.nbytes()
        message.content = content
        message.final = final
        self._bytes += message.nbytes()
        self._enforce()
        return message

    # -- limits --------------------------------------------------------------------------------
    def _enforce(self) -> None:
        while len(self._messages) > self.max_messages:
            self._bytes -= self._messages.popleft().nbytes()
        if self._bytes > self.max_bytes:
            while len(self._messages) > self.trim_to:
                self._bytes -= self._messages.popleft().nbytes()
            # One message alone above the cap: keep only the newest rather than all.
            while self._bytes > self.max_bytes and len(self._messages) > 1:
                self._bytes -= self._messages.popleft().nbytes()
        self.revision += 1

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self):
        return iter(list(self._messages))

    def messages(self) -> list[Message]:
        return list(self._messages)

    def recent(self, n: int) -> list[Message]:
        return list(self._messages)[-n:] if n > 0 else []
