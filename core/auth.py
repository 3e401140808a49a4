"""Principals and roles: who is calling, for which tenant, allowed to do what."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Role(IntEnum):
    """Roles are ordered: each may do everything the ones below it may."""

    reader = 1
    writer = 2
    admin = 3


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    subject: str
    role: Role

    def may(self, needed: Role) -> bool:
        return self.role >= needed
