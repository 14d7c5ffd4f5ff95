"""The worker command's start-up thread (connecting and checking the schema while modules import)."""

from __future__ import annotations

import sys

import pytest

from supaworker.cli.running import _in_background


def test_start_thread_returns_its_value_and_gives_back_the_switch_interval() -> None:
    interval = sys.getswitchinterval()
    result = _in_background(lambda: 42)
    assert result() == 42
    assert sys.getswitchinterval() == interval


def test_start_thread_raises_its_error_when_waited_for() -> None:
    def fail() -> None:
        raise LookupError("no database")

    result = _in_background(fail)
    with pytest.raises(LookupError, match="no database"):
        result()
