"""Characters no id, name, URL or file path of Skyline ever holds."""

from __future__ import annotations

import re

# C0 controls (NUL included), DEL and C1 controls. Free text (reasons) may hold newlines;
# identifiers and paths never do, and a NUL in a file path fails deep in the OS.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def no_control(value: str) -> str:
    """A pydantic validator: `value` unchanged, or ValueError naming the first control byte."""
    found = CONTROL.search(value)
    if found is not None:
        raise ValueError(f"must not contain control characters (found 0x{ord(found.group()):02x})")
    return value
