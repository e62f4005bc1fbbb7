"""Security tests: rate limits across workers, secrets, tenant isolation, fuzzing."""
