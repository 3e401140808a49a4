"""The rate limit port: one contract for every store (memory, Redis), and the Redis store's own."""
