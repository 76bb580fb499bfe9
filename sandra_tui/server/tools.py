"""The local agent's demo function: check_booking, so that tool calls have a real producer.
The data is made up, and says so; the same number always gives the same booking."""

from __future__ import annotations

import datetime
import hashlib
import json

CHECK_BOOKING = {
    "type": "function",
    "name": "check_booking",
    "description": "Look up a booking by its number (demo data of the offline stand-in).",
    "parameters": {"type": "object", "properties": {"booking_number": {"type": "string"}},
                   "required": ["booking_number"]},
}


def check_booking(booking_number: str) -> dict:
    digits = "".join(c for c in str(booking_number) if c.isdigit())[:12]
    if len(digits) < 3:
        return {"booking_number": digits, "found": False, "demo": True}
    seed = int.from_bytes(hashlib.sha256(digits.encode()).digest()[:4], "big")
    check_in = datetime.date(2026, 1, 1) + datetime.timedelta(days=seed % 365)
    return {"booking_number": digits, "found": True, "status": "confirmed", "guests": 1 + seed % 4,
            "nights": 1 + (seed >> 8) % 6, "check_in": check_in.isoformat(), "demo": True}


def run(name: str, arguments: str) -> str:
    """The function's output as the JSON string a function_call_output item carries."""
    try:
        args = json.loads(arguments)
    except ValueError:
        return json.dumps({"error": "arguments are not JSON"})
    if name != "check_booking" or not isinstance(args, dict):
        return json.dumps({"error": f"unknown function {name!r}"})
    return json.dumps(check_booking(str(args.get("booking_number", ""))))
