"""Storage adapters: each implements the CommerceStore port and registers as a plugin."""
