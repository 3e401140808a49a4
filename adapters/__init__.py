"""Adapters: the outside world behind each port (storage, authentication)."""
