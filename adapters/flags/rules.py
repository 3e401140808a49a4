"""The rules of the flags file: read from a parsed document, checked, and applied to a context.

One flag's rules, tried in this order; the first that matches decides:

1. ``tenants.deny``: off for these tenants.
2. ``roles.deny``: off for callers of these roles.
3. ``tenants.allow``: on for these tenants.
4. ``roles.allow``: on for callers of these roles.
5. ``rollout``: on for this percentage of tenants, off for the others, by the tenant's
   stable bucket (``bucket``): a tenant keeps its answer, and one that is on at 20 % is on at
   30 % too.
6. ``default``: the file's value for everyone else; without it, the built-in default. A
   flag has a rollout or a default, not both (the default would never apply).

An environment override (``COMMERCE_FLAG_<NAME>``) comes before them all. Pure functions:
no file, no clock, so the same document and context always give the same answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from commerce.core.auth import Role
from commerce.core.flags import DEFAULT, SPLIT, STATIC, TARGETING_MATCH, Flag

BUCKETS = 10_000
"""Buckets a percentage is counted in: a rollout may be given to a hundredth of a percent."""

_RULE_KEYS = ("default", "tenants", "roles", "rollout", "description")
_LIST_KEYS = ("allow", "deny")
T = TypeVar("T")

_TRUE = frozenset({"on", "true", "yes", "1"})
_FALSE = frozenset({"off", "false", "no", "0"})


class RulesError(ValueError):
    """The document is not a valid flags file; the message says where and why, in one line."""


@dataclass(frozen=True, slots=True)
class FlagRules:
    """One flag's rules, as the file gives them (``None``: not given)."""

    default: bool | None = None
    allow_tenants: frozenset[str] = frozenset()
    deny_tenants: frozenset[str] = frozenset()
    allow_roles: frozenset[Role] = frozenset()
    deny_roles: frozenset[Role] = frozenset()
    rollout: float | None = None
    """Percent of tenants, from 0 to 100."""

    def lines(self) -> tuple[str, ...]:
        """The rules in the order they are tried, one line each, for ``commerce flags list``."""
        found = []
        if self.deny_tenants:
            found.append(f"tenants.deny: {', '.join(sorted(self.deny_tenants))} -> off")
        if self.deny_roles:
            found.append(f"roles.deny: {_roles(self.deny_roles)} -> off")
        if self.allow_tenants:
            found.append(f"tenants.allow: {', '.join(sorted(self.allow_tenants))} -> on")
        if self.allow_roles:
            found.append(f"roles.allow: {_roles(self.allow_roles)} -> on")
        if self.rollout is not None:
            found.append(f"rollout: {self.rollout:g}% of tenants -> on, the others off")
        return tuple(found)


@dataclass(frozen=True, slots=True)
class Rules:
    """What a flags file says: each flag's rules, and the flags it names that are not known."""

    flags: Mapping[str, FlagRules] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """A flag's value for a context, with the OpenFeature reason and the rule that decided."""

    value: bool
    reason: str
    rule: str
    detail: str


def _word(value: bool) -> str:
    return "on" if value else "off"


def _roles(roles: frozenset[Role]) -> str:
    return ", ".join(role.name for role in sorted(roles))


def switch(raw: object, where: str) -> bool:
    """``on``/``off`` (or ``true``/``false``, ``yes``/``no``, ``1``/``0``, or a boolean)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise RulesError(f"{where}: must be on or off, not {str(raw)[:40]!r}")


def parse(document: Any, known: Mapping[str, Flag]) -> Rules:
    """The rules of a parsed flags file; ``RulesError`` naming the place of the first fault.

    The document is ``{"flags": {key: rules}}``; a flag's rules are a mapping of
    ``_RULE_KEYS``, or a bare ``on``/``off`` (its default). A flag ``known`` does not hold is
    listed in ``unknown`` and otherwise ignored, so that a file may name the flags of the
    version before or after this one during a rollout.
    """
    if document is None:
        raise RulesError("the file is empty; write `flags: {}` for no rules")
    if not isinstance(document, dict):
        raise RulesError("the file must be a mapping with one key, `flags`")
    extra = sorted(str(k) for k in document if k != "flags")
    if extra:
        raise RulesError(f"unknown top-level key {extra[0]!r}; the file has one key, `flags`")
    flags = document.get("flags")
    if flags is None:
        flags = {}
    if not isinstance(flags, dict):
        raise RulesError("flags: must be a mapping of flag names to their rules")
    parsed: dict[str, FlagRules] = {}
    unknown: list[str] = []
    for key, body in flags.items():
        name = str(key)
        rules = _flag(body, f"flags.{name}")
        if name in known:
            parsed[name] = rules
        else:
            unknown.append(name)
    return Rules(parsed, tuple(sorted(unknown)))


def _flag(body: Any, where: str) -> FlagRules:
    if isinstance(body, bool | str):
        return FlagRules(default=switch(body, where))
    if body is None:
        return FlagRules()
    if not isinstance(body, dict):
        raise RulesError(f"{where}: must be on, off or a mapping of rules")
    for key in body:
        if key not in _RULE_KEYS:
            raise RulesError(
                f"{where}: unknown rule {str(key)!r}; a flag may have {', '.join(_RULE_KEYS)}"
            )
    default = None if body.get("default") is None else switch(body["default"], f"{where}.default")
    allow_tenants, deny_tenants = _lists(body.get("tenants"), f"{where}.tenants", _tenant)
    allow_roles, deny_roles = _lists(body.get("roles"), f"{where}.roles", _role)
    rollout = _percent(body.get("rollout"), f"{where}.rollout")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise RulesError(f"{where}.description: must be text")
    if rollout is not None and default is not None:
        raise RulesError(
            f"{where}: has both rollout and default; the rollout decides for every tenant the "
            "rules before it leave, so the default would never apply: remove one"
        )
    both = allow_tenants & deny_tenants
    if both:
        raise RulesError(f"{where}.tenants: {sorted(both)[0]!r} is both allowed and denied")
    both_roles = allow_roles & deny_roles
    if both_roles:
        raise RulesError(f"{where}.roles: {_roles(both_roles)} both allowed and denied")
    return FlagRules(
        default=default,
        allow_tenants=allow_tenants,
        deny_tenants=deny_tenants,
        allow_roles=allow_roles,
        deny_roles=deny_roles,
        rollout=rollout,
    )


def _lists(
    body: Any, where: str, item: Callable[[Any, str], T]
) -> tuple[frozenset[T], frozenset[T]]:
    """``allow`` and ``deny`` of a ``tenants`` or ``roles`` rule, each item checked."""
    if body is None:
        return frozenset(), frozenset()
    if not isinstance(body, dict):
        raise RulesError(f"{where}: must be a mapping with `allow` and/or `deny` lists")
    for key in body:
        if key not in _LIST_KEYS:
            raise RulesError(f"{where}: unknown key {str(key)!r}; use allow and/or deny")
    found: list[frozenset[T]] = []
    for key in _LIST_KEYS:
        values = body.get(key)
        if values is None:
            found.append(frozenset())
            continue
        if not isinstance(values, list):
            raise RulesError(f"{where}.{key}: must be a list")
        found.append(
            frozenset(item(value, f"{where}.{key}[{i}]") for i, value in enumerate(values))
        )
    return found[0], found[1]


def _tenant(value: Any, where: str) -> str:
    # YAML reads `no` as false and `1234` as a number: a tenant id must be text, so a bare
    # number is taken as its digits and a boolean is refused rather than guessed at.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RulesError(f"{where}: must be a tenant id (quote it: {str(value)[:40]!r})")
    text = str(value).strip()
    if not text:
        raise RulesError(f"{where}: must be a tenant id, not empty")
    return text


def _role(value: Any, where: str) -> Role:
    names = ", ".join(role.name for role in Role)
    if not isinstance(value, str) or value.strip().lower() not in Role.__members__:
        raise RulesError(f"{where}: must be a role ({names}), not {str(value)[:40]!r}")
    return Role[value.strip().lower()]


def _percent(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().endswith("%"):
        value = value.strip()[:-1]
    try:
        percent = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        percent = -1.0
    if not 0 <= percent <= 100:
        raise RulesError(f"{where}: must be a percentage from 0 to 100, not {str(value)[:40]!r}")
    return percent


def bucket(flag: str, tenant: str) -> int:
    """The tenant's bucket for ``flag``, from 0 to ``BUCKETS - 1``: the first 8 bytes of the
    SHA-256 of ``flag``, a NUL and ``tenant``. Stable across processes, versions and
    machines (unlike ``hash()``), and independent from one flag to another."""
    digest = hashlib.sha256(f"{flag}\0{tenant}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_rollout(flag: str, tenant: str, percent: float) -> bool:
    """Whether ``tenant`` is in the first ``percent`` % of the buckets of ``flag``."""
    return bucket(flag, tenant) < round(percent * BUCKETS / 100)


def decide(
    flag: Flag,
    rules: FlagRules | None,
    tenant: str,
    role: Role | None,
    override: bool | None = None,
    override_name: str = "",
) -> Decision:
    """The value of ``flag`` for ``tenant`` and ``role`` (see the module's order)."""
    if override is not None:
        return Decision(
            override, STATIC, "environment", f"{override_name} sets it {_word(override)} for all"
        )
    if rules is None:
        return _default(flag.default, "built-in default")
    if tenant in rules.deny_tenants:
        return Decision(False, TARGETING_MATCH, "tenants.deny", f"tenant {tenant} is denied")
    if role is not None and role in rules.deny_roles:
        return Decision(False, TARGETING_MATCH, "roles.deny", f"role {role.name} is denied")
    if tenant in rules.allow_tenants:
        return Decision(True, TARGETING_MATCH, "tenants.allow", f"tenant {tenant} is allowed")
    if role is not None and role in rules.allow_roles:
        return Decision(True, TARGETING_MATCH, "roles.allow", f"role {role.name} is allowed")
    if rules.rollout is not None:
        share = bucket(flag.key, tenant)
        value = in_rollout(flag.key, tenant, rules.rollout)
        return Decision(
            value,
            SPLIT,
            "rollout",
            f"tenant {tenant} is in bucket {share} of {BUCKETS}; the rollout takes the first "
            f"{rules.rollout:g}%: {_word(value)}",
        )
    if rules.default is not None:
        return _default(rules.default, "default")
    return _default(flag.default, "built-in default")


def _default(value: bool, rule: str) -> Decision:
    where = "the file's default" if rule == "default" else "the built-in default"
    return Decision(value, DEFAULT, rule, f"no rule matched: {where}, {_word(value)}")
