"""Authentication adapters: each implements the Authenticator port and registers as a plugin."""
