"""The data-quality gate (circuit breaker) that every training window must pass."""
