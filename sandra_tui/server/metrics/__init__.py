"""Latency metrics API of `sandra-tui serve`: validation, rate limit, CORS, storage, Prometheus."""
