"""What a caller may ask for: the init body, the rules ops set, limits and idempotency."""
