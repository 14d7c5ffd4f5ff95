"""The default prefetch: about a tenth of a second of work, from `concurrency` until jobs have been timed."""

from __future__ import annotations

from supaworker.worker.prefetch import PREFETCH_MAX, Prefetch


def test_starts_at_concurrency_and_grows_to_the_cap_for_short_jobs() -> None:
    prefetch = Prefetch(10)
    assert prefetch.value == 10
    for _ in range(20):
        prefetch.observe(0.00001)
    assert prefetch.value == PREFETCH_MAX


def test_holds_about_a_tenth_of_a_second_of_work() -> None:
    prefetch = Prefetch(10)
    for _ in range(200):
        prefetch.observe(0.01)  # 10 slots of 10 ms jobs finish 100 jobs in 0.1 s
    assert prefetch.value == 100
    for _ in range(200):
        prefetch.observe(2.0)
    assert prefetch.value == 1  # never none: the next job is at hand when a slot frees


def test_a_fixed_prefetch_never_moves() -> None:
    prefetch = Prefetch(10, fixed=0)
    prefetch.observe(0.00001)
    assert prefetch.value == 0 and not prefetch.adaptive
