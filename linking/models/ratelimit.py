"""Failure counters of the rate limiter when the shared cache is not Redis."""

from django.db import models


class RateLimitCounter(models.Model):
    """Tries counted under one budget (an account, a login id or a client address) in one window.

    Written only by linking.services.ratelimit, which locks the rows of a
    try (in key order) while it checks and counts, so concurrent workers
    never let more than the limit through. ``window_ends_at`` is in seconds
    since the epoch (the limiter's clock is ``time.time()``).
    """

    key = models.CharField(max_length=200, unique=True)
    count = models.PositiveIntegerField(default=0)
    window_ends_at = models.FloatField(db_index=True)
    # Length of the current window: doubles after a window whose budget was used up.
    window_seconds = models.FloatField(default=0)

    class Meta:
        verbose_name = "rate-limit counter"

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"
