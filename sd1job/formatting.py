"""Text for people: durations and one-line messages (one spelling of each, used everywhere)."""

from __future__ import annotations


def format_duration(seconds: float | None) -> str:
    """A duration as ``3s``, ``4m05s`` or ``2h03m`` (rounded to the second); ``-`` when unknown."""
    if seconds is None:
        return "-"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def one_line(message: str) -> str:
    """The message with every run of white space (newlines included) folded into one space."""
    return " ".join(str(message).split())
