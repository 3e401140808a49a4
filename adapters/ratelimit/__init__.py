"""Rate limit stores as plugins: token buckets in this process (``memory://``) or in Redis.

``COMMERCE_RATE_LIMIT_STORE`` names the store by URL; docs/security.md says which to use.
"""
