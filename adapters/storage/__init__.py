"""Storage adapters: each provides the storage ports (``core.ports``) as one bundle, by plugin."""
