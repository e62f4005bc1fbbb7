"""Failure counters of the rate limiter when the shared cache is not Redis."""

from django.db import models


class RateLimitCounter(models.Model):
    """Failed attempts counted under one key (user or client address) in one window.

    Written only by linking.services.ratelimit with single-statement
    ``UPDATE ... SET count = count + 1``, so concurrent workers never lose a
    failure. ``window_ends_at`` is in seconds since the epoch (the limiter's
    clock is ``time.time()``).
    """

    key = models.CharField(max_length=200, unique=True)
    count = models.PositiveIntegerField(default=0)
    window_ends_at = models.FloatField(db_index=True)

    class Meta:
        verbose_name = "rate-limit counter"

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"
