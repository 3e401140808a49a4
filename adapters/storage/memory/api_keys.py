"""The in-memory API-keys port: keys by id and by prefix, with only their secret's digest."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from commerce.adapters.storage.memory.state import MemoryState
from commerce.core.apikeys import ApiKey
from commerce.core.auth import Role
from commerce.core.errors import ApiKeyPrefixTaken, NotFound


class MemoryApiKeys:
    """Implements ``core.ports.ApiKeys`` over a ``MemoryState``."""

    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def create_api_key(self, tenant: str, role: Role, prefix: str, secret_hash: str) -> ApiKey:
        s = self.state
        with s.lock:
            if tenant not in s.tenants:
                raise NotFound("tenant", tenant)
            if prefix in s.api_key_prefixes:
                raise ApiKeyPrefixTaken()
            key = ApiKey(
                id=s.next_id("api_key"),
                tenant=tenant,
                prefix=prefix,
                role=role,
                created_at=s.clock(),
            )
            s.api_keys[key.id] = (key, secret_hash)
            s.api_key_prefixes[prefix] = key.id
            return key

    def list_api_keys(self, tenant: str) -> Sequence[ApiKey]:
        with self.state.lock:
            return [
                key
                for key, _ in sorted(self.state.api_keys.values(), key=lambda kh: kh[0].id)
                if key.tenant == tenant
            ]

    def revoke_api_key(self, key_id: int) -> ApiKey:
        s = self.state
        with s.lock:
            found = s.api_keys.get(key_id)
            if found is None:
                raise NotFound("API key", key_id)
            key, secret_hash = found
            if key.revoked_at is None:
                key = dataclasses.replace(key, revoked_at=s.clock())
                s.api_keys[key_id] = (key, secret_hash)
            return key

    def find_api_key(self, prefix: str) -> tuple[ApiKey, str] | None:
        s = self.state
        with s.lock:
            key_id = s.api_key_prefixes.get(prefix)
            return None if key_id is None else s.api_keys[key_id]

    def touch_api_key(self, key_id: int, at: datetime) -> None:
        s = self.state
        with s.lock:
            found = s.api_keys.get(key_id)
            if found is None:
                return
            key, secret_hash = found
            # The last use never moves back: touches may arrive out of order.
            if key.last_used_at is None or key.last_used_at < at:
                s.api_keys[key_id] = (dataclasses.replace(key, last_used_at=at), secret_hash)
