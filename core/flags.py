"""Feature flags: the port, the flags this version knows, and the one check the use cases make.

A feature behind a flag is asked about with the caller's tenant and role (``FlagContext``);
the answer (``Evaluation``) says whether it is on and why: which rule decided, in words a
person can act on. The use cases call ``require`` before they do what the flag guards, so the
HTTP API and the command line honour a flag alike; an adapter (a plugin's
``commerce_flag_providers``) decides the answers. ``DEFAULTS`` answers every flag with its
built-in default: what an app built without a flags plugin runs with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from commerce.core.auth import Role
from commerce.core.errors import FeatureDisabled, InvalidInput
from commerce.core.events import LogEvent, event_log

log = event_log("commerce.flags")


@dataclass(frozen=True, slots=True)
class Flag:
    """A flag this version of the service knows: its key, its value when no rule decides,
    and what it guards."""

    key: str
    default: bool
    description: str


AS_OF_READS = Flag(
    "as-of-reads",
    True,
    "Point-in-time reads: `GET /stores/{store_id}/inventory?as_of=...`, a store's levels as "
    "they were at a moment, derived from the change ledger.",
)
COUNTED_SETS = Flag(
    "counted-sets",
    True,
    "Counted sets: `PUT /stores/{store_id}/inventory/{item_id}`, a level set to the quantity a "
    "count found (with `expected_quantity` or `If-Match`, only if it still holds that).",
)

KNOWN: Mapping[str, Flag] = MappingProxyType({f.key: f for f in (AS_OF_READS, COUNTED_SETS)})
"""Every flag this version knows, by key. A flag a configuration names that is not here is
reported and ignored (it may belong to an older or a newer version of the service)."""


# The reasons an evaluation gives, in OpenFeature's words.
STATIC = "STATIC"
"""A value set for everyone (an environment override)."""
TARGETING_MATCH = "TARGETING_MATCH"
"""A rule about the tenant or the role matched."""
SPLIT = "SPLIT"
"""The percentage rollout decided, by the tenant's stable bucket."""
DEFAULT = "DEFAULT"
"""No rule matched: the flag's default (the file's, else the built-in one)."""
ERROR = "ERROR"
"""The evaluation failed; the built-in default applies."""


@dataclass(frozen=True, slots=True)
class FlagContext:
    """Who asks: the tenant, and the caller's role when there is a caller."""

    tenant: str
    role: Role | None = None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A flag's value for one context, and why: ``reason`` is one of the constants above,
    ``rule`` names the rule that decided (``tenants.deny``, ``rollout``, ``default``...),
    ``detail`` says it in a sentence."""

    flag: str
    value: bool
    reason: str
    rule: str
    detail: str


@dataclass(frozen=True, slots=True)
class FlagsReport:
    """What the flags are configured by, for ``commerce flags list``.

    ``source`` says where the rules come from; ``rules`` holds, for each known flag, its rules
    in the order they are tried, one line each (none: the default decides); ``unknown`` lists
    the flags the configuration names that this version does not know (ignored).
    """

    source: str
    rules: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    defaults: Mapping[str, bool] = field(default_factory=dict)
    """A flag's default where the configuration sets one (else the built-in one applies)."""
    unknown: tuple[str, ...] = ()


class Flags(Protocol):
    """The feature flags port: evaluates a known flag for a context, never raising for a
    flag it has no rules for (the built-in default answers)."""

    def evaluate(self, flag: str, context: FlagContext) -> Evaluation: ...

    def report(self) -> FlagsReport: ...

    def close(self) -> None: ...


def _word(value: bool) -> str:
    return "on" if value else "off"


class Defaults:
    """Every flag at its built-in default; no configuration, nothing to close."""

    def evaluate(self, flag: str, context: FlagContext) -> Evaluation:
        value = flag_named(flag).default
        return Evaluation(
            flag,
            value,
            DEFAULT,
            "built-in default",
            f"no rule applies: the default, {_word(value)}",
        )

    def report(self) -> FlagsReport:
        return FlagsReport("built-in defaults (no flags plugin)", dict.fromkeys(KNOWN, ()))

    def close(self) -> None:
        pass


DEFAULTS: Flags = Defaults()


def flag_named(key: str) -> Flag:
    """The known flag ``key``; ``InvalidInput`` naming the known ones otherwise."""
    found = KNOWN.get(key)
    if found is None:
        raise InvalidInput("flag", f"unknown flag {key[:60]!r}; the flags are: {', '.join(KNOWN)}")
    return found


def explain(flags: Flags, key: str, tenant: str, role: Role | None = None) -> Evaluation:
    """The flag ``key``'s value for ``tenant`` (and ``role``), with its reason: what
    ``commerce flags eval`` prints. Nothing is refused or logged."""
    return flags.evaluate(flag_named(key).key, FlagContext(tenant, role))


def require(flags: Flags, flag: Flag, tenant: str, role: Role | None = None) -> Evaluation:
    """Go on if ``flag`` is on for ``tenant`` (and ``role``); ``FeatureDisabled`` if it is off.

    Every evaluation is an event, so that metrics count them by flag and result: a refusal
    is ``FEATURE_DISABLED`` (INFO), an evaluation that lets the request through is
    ``FLAG_EVALUATED`` (DEBUG). The problem names the flag and nothing else: whether it is on
    for any other tenant is not the caller's to learn.
    """
    result = flags.evaluate(flag.key, FlagContext(tenant, role))
    if result.value:
        log(
            LogEvent.FLAG_EVALUATED,
            "flag %s is on: %s",
            flag.key,
            result.detail,
            flag=flag.key,
            reason=result.reason,
            rule=result.rule,
        )
        return result
    log(
        LogEvent.FEATURE_DISABLED,
        "refused: flag %s is off for this tenant: %s",
        flag.key,
        result.detail,
        flag=flag.key,
        reason=result.reason,
        rule=result.rule,
    )
    raise FeatureDisabled(flag.key)
