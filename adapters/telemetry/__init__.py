"""Telemetry plugins: tracing and metrics, each switched on by its settings."""
