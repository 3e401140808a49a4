"""The rules of the flags file: what each rule does, their order, the rollout's stable hash,
and the one-line errors of a file that cannot be used."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from commerce.adapters.flags.rules import (
    BUCKETS,
    FlagRules,
    RulesError,
    bucket,
    decide,
    in_rollout,
    parse,
)
from commerce.core.auth import Role
from commerce.core.flags import (
    AS_OF_READS,
    COUNTED_SETS,
    DEFAULT,
    KNOWN,
    SPLIT,
    STATIC,
    TARGETING_MATCH,
    Flag,
)

TENANTS = [f"tenant-{n:04d}" for n in range(2000)]


def _rules(body: Any, flag: Flag = AS_OF_READS) -> FlagRules:
    return parse({"flags": {flag.key: body}}, KNOWN).flags[flag.key]


def test_a_flag_the_file_does_not_name_has_its_built_in_default() -> None:
    decision = decide(AS_OF_READS, None, "acme", None)
    assert (decision.value, decision.reason, decision.rule) == (True, DEFAULT, "built-in default")


@pytest.mark.parametrize(("written", "value"), [("on", True), ("off", False), (False, False)])
def test_a_bare_on_or_off_is_the_flags_default_for_every_tenant(written: Any, value: bool) -> None:
    rules = _rules(written)
    for tenant in ("acme", "globex"):
        decision = decide(AS_OF_READS, rules, tenant, Role.admin)
        assert (decision.value, decision.reason, decision.rule) == (value, DEFAULT, "default")


def test_tenants_on_the_allow_list_get_it_and_the_others_keep_the_default() -> None:
    rules = _rules({"default": "off", "tenants": {"allow": ["acme"]}})
    allowed = decide(AS_OF_READS, rules, "acme", Role.reader)
    assert (allowed.value, allowed.reason, allowed.rule) == (True, TARGETING_MATCH, "tenants.allow")
    assert decide(AS_OF_READS, rules, "globex", Role.reader).value is False


def test_tenants_on_the_deny_list_lose_it_whatever_their_role() -> None:
    rules = _rules({"tenants": {"deny": ["globex"]}, "roles": {"allow": ["admin"]}})
    denied = decide(AS_OF_READS, rules, "globex", Role.admin)
    assert (denied.value, denied.rule) == (False, "tenants.deny")
    assert decide(AS_OF_READS, rules, "acme", Role.reader).value is True


def test_a_role_rule_decides_by_the_callers_role() -> None:
    rules = _rules({"default": "off", "roles": {"allow": ["admin", "writer"]}})
    assert decide(AS_OF_READS, rules, "acme", Role.admin).rule == "roles.allow"
    assert decide(AS_OF_READS, rules, "acme", Role.writer).value is True
    reader = decide(AS_OF_READS, rules, "acme", Role.reader)
    assert (reader.value, reader.rule) == (False, "default")
    # Without a caller (the CLI without --role), a role rule cannot match.
    assert decide(AS_OF_READS, rules, "acme", None).value is False


def test_a_denied_role_is_refused_even_in_an_allowed_tenant() -> None:
    rules = _rules({"tenants": {"allow": ["acme"]}, "roles": {"deny": ["reader"]}})
    assert decide(AS_OF_READS, rules, "acme", Role.reader).rule == "roles.deny"
    assert decide(AS_OF_READS, rules, "acme", Role.writer).rule == "tenants.allow"


def test_the_environment_overrides_every_rule_of_the_file() -> None:
    rules = _rules({"tenants": {"allow": ["acme"]}})
    off = decide(AS_OF_READS, rules, "acme", Role.admin, False, "COMMERCE_FLAG_AS_OF_READS")
    assert (off.value, off.reason, off.rule) == (False, STATIC, "environment")
    assert "COMMERCE_FLAG_AS_OF_READS" in off.detail
    assert decide(AS_OF_READS, None, "acme", None, True, "X").value is True


def test_the_bucket_is_a_stable_hash_pinned_across_versions() -> None:
    # SHA-256 of "as-of-reads\0acme": the same on every machine, process and version, so a
    # tenant never flips because a server restarted. If this changes, every rollout moves.
    assert (bucket("as-of-reads", "acme"), bucket("as-of-reads", "globex")) == (323, 6379)
    assert [bucket(AS_OF_READS.key, t) for t in ("acme", "globex", "initech")] == [
        bucket_of("as-of-reads", "acme"),
        bucket_of("as-of-reads", "globex"),
        bucket_of("as-of-reads", "initech"),
    ]
    assert all(0 <= bucket("f", t) < BUCKETS for t in TENANTS)


def bucket_of(flag: str, tenant: str) -> int:
    """The documented bucket, computed independently of the module."""
    digest = hashlib.sha256(flag.encode() + b"\0" + tenant.encode()).hexdigest()
    return int(digest[:16], 16) % 10_000


def test_a_rollout_gives_a_tenant_the_same_answer_every_time() -> None:
    rules = _rules({"rollout": 30})
    first = {t: decide(AS_OF_READS, rules, t, None).value for t in TENANTS}
    again = {t: decide(AS_OF_READS, rules, t, Role.admin).value for t in reversed(TENANTS)}
    assert first == again
    assert all(decide(AS_OF_READS, rules, t, None).reason == SPLIT for t in TENANTS[:10])


@pytest.mark.parametrize("percent", [0, 1, 10, 25, 50, 90, 100])
def test_a_rollout_reaches_about_its_share_of_tenants(percent: int) -> None:
    on = sum(in_rollout(AS_OF_READS.key, t, percent) for t in TENANTS)
    expected = len(TENANTS) * percent / 100
    # Deterministic (the hash is stable): the bound is the binomial spread at 4 sigma.
    assert abs(on - expected) <= 4 * (len(TENANTS) * 0.25) ** 0.5 + 1, (percent, on)
    if percent in (0, 100):
        assert on == expected


def test_raising_a_rollout_only_adds_tenants() -> None:
    before = {t for t in TENANTS if in_rollout(AS_OF_READS.key, t, 10)}
    after = {t for t in TENANTS if in_rollout(AS_OF_READS.key, t, 40)}
    assert before < after


def test_two_flags_roll_out_to_different_tenants() -> None:
    one = {t for t in TENANTS if in_rollout(AS_OF_READS.key, t, 50)}
    other = {t for t in TENANTS if in_rollout(COUNTED_SETS.key, t, 50)}
    assert one != other
    # Independent halves overlap in about a quarter of the tenants, not in half.
    assert abs(len(one & other) - len(TENANTS) / 4) < len(TENANTS) / 10


def test_a_tenant_named_by_a_rule_is_not_subject_to_the_rollout() -> None:
    outside = next(t for t in TENANTS if not in_rollout(AS_OF_READS.key, t, 5))
    rules = _rules({"rollout": 5, "tenants": {"allow": [outside]}})
    assert decide(AS_OF_READS, rules, outside, None).rule == "tenants.allow"


def test_flags_this_version_does_not_know_are_listed_and_ignored() -> None:
    rules = parse({"flags": {"as-of-reads": "off", "next-big-thing": "on"}}, KNOWN)
    assert set(rules.flags) == {"as-of-reads"}
    assert rules.unknown == ("next-big-thing",)


def test_a_numeric_tenant_id_in_yaml_is_read_as_its_digits() -> None:
    assert _rules({"tenants": {"allow": [1234]}}).allow_tenants == frozenset({"1234"})


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (None, "the file is empty"),
        ([1, 2], "must be a mapping"),
        ({"flag": {}}, "unknown top-level key 'flag'"),
        ({"flags": ["as-of-reads"]}, "flags: must be a mapping"),
        ({"flags": {"as-of-reads": "maybe"}}, "flags.as-of-reads: must be on or off"),
        ({"flags": {"as-of-reads": {"tenant": {"allow": ["a"]}}}}, "unknown rule 'tenant'"),
        ({"flags": {"as-of-reads": {"tenants": ["a"]}}}, "flags.as-of-reads.tenants: must be"),
        ({"flags": {"as-of-reads": {"tenants": {"only": ["a"]}}}}, "unknown key 'only'"),
        ({"flags": {"as-of-reads": {"tenants": {"allow": "a"}}}}, "allow: must be a list"),
        ({"flags": {"as-of-reads": {"tenants": {"allow": [False]}}}}, "allow[0]: must be"),
        ({"flags": {"as-of-reads": {"roles": {"allow": ["root"]}}}}, "must be a role"),
        ({"flags": {"as-of-reads": {"rollout": 101}}}, "rollout: must be a percentage"),
        ({"flags": {"as-of-reads": {"rollout": "half"}}}, "rollout: must be a percentage"),
        ({"flags": {"as-of-reads": {"rollout": 5, "default": "on"}}}, "both rollout and default"),
        (
            {"flags": {"as-of-reads": {"tenants": {"allow": ["a"], "deny": ["a"]}}}},
            "'a' is both allowed and denied",
        ),
    ],
)
def test_a_file_that_cannot_be_used_is_refused_with_where_and_why(
    document: Any, words: str
) -> None:
    with pytest.raises(RulesError) as refused:
        parse(document, KNOWN)
    assert words in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_rollout_may_be_written_with_a_percent_sign() -> None:
    assert _rules({"rollout": "12.5%"}).rollout == 12.5


def test_the_rules_are_listed_in_the_order_they_are_tried() -> None:
    rules = _rules(
        {
            "tenants": {"allow": ["b", "a"], "deny": ["z"]},
            "roles": {"allow": ["admin"], "deny": ["reader"]},
            "rollout": 20,
        }
    )
    assert rules.lines() == (
        "tenants.deny: z -> off",
        "roles.deny: reader -> off",
        "tenants.allow: a, b -> on",
        "roles.allow: admin -> on",
        "rollout: 20% of tenants -> on, the others off",
    )
