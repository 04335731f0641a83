"""When to try a failed delivery again: exponential backoff with jitter and a cap. Pure.

    delay = base * factor ** (attempt - 1), capped at `cap`, then "equal jitter": the second
    half of the delay (jitter=0.5) is random, so a receiver that comes back is not hit by every
    broker replica's retries at the same instant, and no retry comes sooner than half its delay.

The randomness is passed in (`rand` in [0, 1)), so tests and replays are deterministic.
A notification is given up after `give_up_after` seconds of failures (a day by default: long
enough to ride out a weekend outage of a city system's receiver at a 5-minute cap, bounded so a
dead endpoint's backlog does not grow forever) or `max_attempts`, whichever comes first.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BASE = 1.0  # seconds before the first retry
DEFAULT_FACTOR = 2.0
DEFAULT_CAP = 300.0  # five minutes between attempts at most (as SMTP retry queues and webhooks)
DEFAULT_JITTER = 0.5
DEFAULT_GIVE_UP_AFTER = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float = DEFAULT_BASE
    factor: float = DEFAULT_FACTOR
    cap: float = DEFAULT_CAP
    jitter: float = DEFAULT_JITTER  # the random fraction of each delay, 0 (none) to 1 (full)
    give_up_after: float | None = DEFAULT_GIVE_UP_AFTER  # seconds since the first attempt
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.base <= 0 or self.factor < 1 or self.cap < self.base \
                or not 0 <= self.jitter <= 1:
            raise ValueError("Backoff needs base > 0, factor >= 1, cap >= base, jitter in [0, 1]")

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds to wait after failed attempt number `attempt` (1 for the first)."""
        exponent = max(attempt - 1, 0)
        # factor ** exponent overflows a float past ~1000 attempts; the cap is reached long before.
        raw = self.cap if exponent > 64 else min(self.cap, self.base * self.factor ** exponent)
        return raw * (1 - self.jitter) + raw * self.jitter * rand

    def gives_up(self, attempt: int, first_attempt_at: float, now: float) -> bool:
        """Whether a notification that failed `attempt` times since `first_attempt_at` (epoch
        seconds) is given up as failed for good."""
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return True
        return self.give_up_after is not None and now - first_attempt_at >= self.give_up_after
