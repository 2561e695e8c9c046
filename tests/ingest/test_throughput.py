"""Chunks/s and the time left, as the CLI's progress bar and the app's upload panel show them."""

from __future__ import annotations

import pytest

from ingest._throughput import Throughput, duration_zh


def test_rate_and_time_left_over_the_run_so_far() -> None:
    speed = Throughput.of(done=40, total=100, elapsed_s=10.0)
    assert speed.rate == pytest.approx(4.0)
    assert speed.eta_s == pytest.approx(15.0)  # 60 left at 4/s


def test_nothing_is_claimed_before_the_first_chunk_or_without_a_total() -> None:
    assert Throughput.of(0, 100, 5.0) == Throughput(None, None)
    assert Throughput.of(10, 100, 0.0) == Throughput(None, None)
    assert Throughput.of(10, None, 2.0) == Throughput(5.0, None)
    assert Throughput.of(120, 100, 2.0).eta_s == 0.0  # more done than planned: never negative


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.4, "0 秒"), (59.6, "1 分 0 秒"), (75, "1 分 15 秒"), (3725, "1 小时 2 分")],
)
def test_durations_read_as_people_say_them(seconds: float, shown: str) -> None:
    assert duration_zh(seconds) == shown
