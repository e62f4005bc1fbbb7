"""Counters the services bump as things happen; ``linking.metrics`` exposes them to Prometheus."""

import prometheus_client

RATE_LIMIT_REFUSALS = prometheus_client.Counter(
    "observers_rate_limit_refusals",
    "Guesses (sign-ins, credential checks, pairing codes, sign-up probes) refused by the limit.",
)
