"""How fast a run goes and how long the rest will take: one computation for the command
line's progress bar and the web app's upload panel, so both show the same figures.

The rate is taken over the whole run so far (not a recent window): embedding speed on a laptop
is steady, and a whole-run figure does not jump when one batch is slow.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Throughput:
    rate: float | None  # items per second so far; None before the first item
    eta_s: float | None  # seconds left at that rate; None while unknown

    @classmethod
    def of(cls, done: float, total: float | None, elapsed_s: float) -> Throughput:
        if done <= 0 or elapsed_s <= 0:
            return cls(None, None)
        rate = done / elapsed_s
        if total is None or total <= 0:
            return cls(rate, None)
        return cls(rate, max(0.0, total - done) / rate)


def duration_zh(seconds: float) -> str:
    """`75` → "1 分 15 秒": an ETA as people read it (whole seconds, hours past 60 minutes)."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} 小时 {minutes} 分"
    if minutes:
        return f"{minutes} 分 {secs} 秒"
    return f"{secs} 秒"
