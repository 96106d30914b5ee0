"""Logs with one redaction layer, and Prometheus metrics."""
