"""The circuit breaker every Redis user of the app shares: the API limiter (core/ratelimit.py), the Django
cache (core/cache.py) and the API-key usage recorder (accounts/usage.py).

Each of them serves from a per-process fallback while Redis is unreachable. The breaker decides when to
try Redis again and keeps the log readable:

- after a failure Redis is left alone for `retry_after` seconds, so requests during an outage are not
  each slowed by a connection timeout;
- the outage is logged as an error at most once per `log_interval` per process (a long outage is
  logged again every interval, never on every request);
- the first success after an outage is logged once as a warning, so the log says when it ended.
"""

from __future__ import annotations

import logging
import math
import time

FAILURE_LOG_INTERVAL = 60.0
RETRY_AFTER_FAILURE = 5.0


class RedisBreaker:
    """Open for `retry_after` seconds after a Redis failure; `available()` says whether to try Redis.

    `fallback` completes the log line "<what>: Redis unavailable (<error>); <fallback>" and names what
    the caller does meanwhile. Not locked: a race between threads can at worst log twice or retry once
    early, which is harmless, and the hot path stays two attribute reads.
    """

    def __init__(
        self,
        *,
        logger: logging.Logger,
        what: str,
        fallback: str,
        retry_after: float = RETRY_AFTER_FAILURE,
        log_interval: float = FAILURE_LOG_INTERVAL,
    ):
        self.logger = logger
        self.what = what
        self.fallback = fallback
        self.retry_after = retry_after
        self.log_interval = log_interval
        self._down_until = 0.0
        # Not 0.0: time.monotonic() counts from boot, so a process started in the host's first minute
        # would otherwise not log its first Redis failure.
        self._last_log = -math.inf
        self._in_outage = False

    def available(self) -> bool:
        """True when Redis may be tried: no failure, or the retry interval since the last one has passed."""
        return time.monotonic() >= self._down_until

    def failed(self, exc: BaseException) -> None:
        """Record a Redis failure: stop trying for `retry_after` seconds; log it unless logged recently."""
        now = time.monotonic()
        self._down_until = now + self.retry_after
        self._in_outage = True
        if now - self._last_log >= self.log_interval:
            self._last_log = now
            self.logger.error("%s: Redis unavailable (%s); %s", self.what, type(exc).__name__, self.fallback)

    def succeeded(self) -> None:
        """Record a Redis success; the first one after an outage logs that Redis is back."""
        if self._in_outage:
            self._in_outage = False
            self.logger.warning("%s: Redis available again", self.what)
