"""The contract every rate limit store keeps, run on each (memory, Redis): a token bucket per
key, full at first, refilled at the policy's rate, with the same decisions whoever counts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commerce.adapters.ratelimit.memory import TokenBuckets
from commerce.core.ratelimit import RateLimiter, RatePolicy
from tests.ratelimit.conftest import FakeClock, Store


def test_a_fresh_bucket_lets_the_burst_through_then_refuses_with_retry_after(
    store: Store,
) -> None:
    limiter = store.make(RatePolicy(limit=3, period=1, burst=3))
    decisions = [limiter.take("acme") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert {d.limit for d in decisions} == {3}
    refused = decisions[-1]
    assert refused.retry_after >= 1
    assert all(d.retry_after == 0 for d in decisions[:3])


def test_tokens_come_back_at_the_policy_rate(store: Store) -> None:
    limiter = store.make(RatePolicy(limit=2, period=1, burst=2))
    assert [limiter.take("acme").allowed for _ in range(3)] == [True, True, False]
    store.clock.now += 0.5  # one token at two a second
    assert limiter.take("acme").allowed
    assert not limiter.take("acme").allowed
    store.clock.now += 10  # long idle: full again, never more than the burst
    assert [limiter.take("acme").allowed for _ in range(3)] == [True, True, False]


def test_each_key_has_a_bucket_of_its_own(store: Store) -> None:
    limiter = store.make(RatePolicy(limit=1, period=60, burst=1))
    assert limiter.take("acme").allowed
    assert not limiter.take("acme").allowed
    assert limiter.take("globex").allowed


def test_reset_counts_the_seconds_until_the_bucket_is_full_again(store: Store) -> None:
    limiter = store.make(RatePolicy(limit=60, period=60, burst=10))
    first = limiter.take("acme")
    assert first.reset == 1  # one token short, at one a second
    for _ in range(9):
        last = limiter.take("acme")
    assert last.remaining == 0
    assert last.reset == 10
    refused = limiter.take("acme")
    assert not refused.allowed
    assert refused.retry_after == 1


@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["acme", "globex"]),
            # Times a binary float holds exactly, so that both count the same tokens.
            st.sampled_from([0.0, 0.0, 0.125, 0.25, 0.5, 1.0, 2.0]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_the_store_decides_exactly_as_the_in_process_buckets_do(
    store: Store, steps: list[tuple[str, float]]
) -> None:
    """Whatever the sequence of requests and pauses, the store's answers (allowed, remaining,
    reset, retry after) are the reference buckets' answers."""
    policy = RatePolicy(limit=4, period=1, burst=3)
    # Keys of this example's own: the store's buckets outlive one example.
    tag = f"{store.clock.now:.0f}-"
    store.clock.now += 1000  # every earlier example's bucket is full again
    reference_clock = FakeClock()
    reference = TokenBuckets(policy, clock=reference_clock)
    limiter = store.make(policy)
    for key, pause in steps:
        store.clock.now += pause
        reference_clock.now += pause
        assert limiter.take(tag + key) == reference.take(tag + key)


def test_limiters_on_the_same_store_share_the_bucket_only_if_the_store_is_shared(
    store: Store,
) -> None:
    """Two limiters stand for two processes: a shared store counts them together."""
    policy = RatePolicy(limit=2, period=3600, burst=2)
    one, other = store.make(policy), store.make(policy)
    assert one.take("acme").allowed
    assert one.take("acme").allowed
    assert other.take("acme").allowed is not one.shared
    assert isinstance(one, RateLimiter)


@pytest.mark.parametrize("burst", [1, 5])
def test_over_any_stretch_no_more_than_the_burst_and_the_refill_are_let_through(
    store: Store, burst: int
) -> None:
    limiter = store.make(RatePolicy(limit=10, period=1, burst=burst))
    allowed = 0
    for _ in range(200):
        store.clock.now += 0.01
        allowed += limiter.take("acme").allowed
    # 2 seconds at 10 a second, plus the burst it started with.
    assert allowed <= burst + 20
    assert allowed >= 19  # and not much less (floating point may lose the last one)
