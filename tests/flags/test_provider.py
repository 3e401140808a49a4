"""The built-in provider through the OpenFeature SDK: the file read at start, a change picked
up while running, a bad edit kept out, the environment over the file, and the settings."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext

from commerce.adapters.flags import file_flags
from commerce.adapters.flags.client import OpenFeatureFlags
from commerce.adapters.flags.provider import FileProvider
from commerce.adapters.flags.rules import RulesError
from commerce.core.auth import Role
from commerce.core.errors import FeatureDisabled, Misconfigured
from commerce.core.events import LogEvent
from commerce.core.flags import (
    AS_OF_READS,
    COUNTED_SETS,
    DEFAULT,
    ERROR,
    FlagContext,
    explain,
    require,
)
from tests.flags.conftest import Write

MakeFlags = Callable[..., OpenFeatureFlags]

ACME_ONLY = """\
    flags:
      as-of-reads:
        default: off
        tenants:
          allow: [acme]
    """
GLOBEX_ONLY = ACME_ONLY.replace("acme", "globex")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _value(flags: OpenFeatureFlags, tenant: str, role: Role | None = None) -> bool:
    return flags.evaluate(AS_OF_READS.key, FlagContext(tenant, role)).value


def _events(caplog: pytest.LogCaptureFixture, event: LogEvent) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) is event]


def test_without_a_file_every_flag_has_its_built_in_default(make_flags: MakeFlags) -> None:
    flags = make_flags()
    result = flags.evaluate(AS_OF_READS.key, FlagContext("acme"))
    assert (result.value, result.reason, result.rule) == (True, DEFAULT, "built-in default")
    assert flags.report().source == "no file"


def test_the_file_decides_per_tenant_through_the_openfeature_client(
    make_flags: MakeFlags, write: Write
) -> None:
    flags = make_flags(flags_file=str(write(ACME_ONLY)))
    assert _value(flags, "acme") is True
    assert _value(flags, "globex") is False
    explained = explain(flags, "as-of-reads", "globex")
    assert (explained.rule, explained.detail) == (
        "default",
        "no rule matched: the file's default, off",
    )


def test_a_json_file_reads_as_well(make_flags: MakeFlags, tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": {"counted-sets": {"tenants": {"deny": ["acme"]}}}}))
    flags = make_flags(flags_file=str(path))
    assert flags.evaluate(COUNTED_SETS.key, FlagContext("acme")).value is False
    assert flags.evaluate(COUNTED_SETS.key, FlagContext("globex")).value is True


def test_the_provider_answers_the_openfeature_api_with_variant_and_rule(write: Write) -> None:
    provider = FileProvider(write(ACME_ONLY))
    api.set_provider_and_wait(provider, "commerce-test-domain")
    try:
        client = api.get_client("commerce-test-domain")
        details = client.get_boolean_details(
            "as-of-reads", True, EvaluationContext("acme", {"role": "reader"})
        )
        assert (details.value, details.variant, details.reason) == (True, "on", "TARGETING_MATCH")
        assert details.flag_metadata["rule"] == "tenants.allow"
        missing = client.get_boolean_details("no-such-flag", False, EvaluationContext("acme"))
        assert missing.error_code == "FLAG_NOT_FOUND"
        wrong_type = client.get_string_details("as-of-reads", "x", EvaluationContext("acme"))
        assert wrong_type.error_code == "TYPE_MISMATCH"
        no_tenant = client.get_boolean_details("as-of-reads", True)
        assert no_tenant.error_code == "TARGETING_KEY_MISSING"
    finally:
        api.set_provider_and_wait(api.get_client().provider, "commerce-test-domain")


def test_two_instances_in_one_process_keep_their_own_rules(
    make_flags: MakeFlags, tmp_path: Path
) -> None:
    one, other = tmp_path / "one.yaml", tmp_path / "other.yaml"
    one.write_text("flags:\n  as-of-reads: off\n")
    other.write_text("flags:\n  as-of-reads: on\n")
    first, second = make_flags(flags_file=str(one)), make_flags(flags_file=str(other))
    assert (_value(first, "acme"), _value(second, "acme")) == (False, True)


def test_a_closed_instance_no_longer_answers_with_its_rules(write: Write) -> None:
    flags = file_flags({"flags_file": str(write("flags:\n  as-of-reads: off\n"))})
    assert _value(flags, "acme") is False
    flags.close()
    # Unbound: the SDK's no-op provider answers the default it is given, with its reason.
    result = flags.evaluate(AS_OF_READS.key, FlagContext("acme"))
    assert result.value is True
    assert result.rule != "default"


def test_a_changed_file_is_read_again_once_the_interval_has_passed(
    write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    provider = FileProvider(write(ACME_ONLY), reload_ms=500, monotonic=clock)
    flags = OpenFeatureFlags(provider, provider.report)
    try:
        write(GLOBEX_ONLY)
        with caplog.at_level(logging.INFO, logger="commerce"):
            clock.now += 0.4
            assert _value(flags, "acme") is True  # not looked at yet
            clock.now += 0.2
            assert _value(flags, "acme") is False
            assert _value(flags, "globex") is True
        [loaded] = _events(caplog, LogEvent.FLAGS_LOADED)
        assert loaded.flags == ["as-of-reads"]  # type: ignore[attr-defined]
    finally:
        flags.close()


def test_an_unchanged_file_is_not_read_again(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    provider = FileProvider(write(ACME_ONLY), reload_ms=0, monotonic=clock)
    reads: list[Path] = []
    original = Path.read_text

    def counting(self: Path, *args: object, **kwargs: object) -> str:
        reads.append(self)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", counting)
    for _ in range(5):
        clock.now += 1
        provider.rules()
    assert reads == []


def test_a_bad_edit_keeps_the_last_good_rules_and_is_logged_once(
    write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    provider = FileProvider(write(ACME_ONLY), reload_ms=0, monotonic=clock)
    flags = OpenFeatureFlags(provider, provider.report)
    try:
        with caplog.at_level(logging.INFO, logger="commerce"):
            write("flags:\n  as-of-reads:\n    rollout: 200\n")
            for _ in range(3):
                clock.now += 1
                assert _value(flags, "acme") is True
                assert _value(flags, "globex") is False
            [failed] = _events(caplog, LogEvent.FLAGS_RELOAD_FAILED)
            assert "flags.as-of-reads.rollout: must be a percentage" in failed.error  # type: ignore[attr-defined]
            assert failed.levelno == logging.WARNING
            write(GLOBEX_ONLY)
            clock.now += 1
            assert _value(flags, "globex") is True
    finally:
        flags.close()


def test_a_file_removed_while_running_keeps_the_last_good_rules(
    write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    path = write(ACME_ONLY)
    provider = FileProvider(path, reload_ms=0, monotonic=clock)
    with caplog.at_level(logging.INFO, logger="commerce"):
        path.unlink()
        clock.now += 1
        assert "acme" in provider.rules().flags["as-of-reads"].allow_tenants
    [failed] = _events(caplog, LogEvent.FLAGS_RELOAD_FAILED)
    assert "cannot read it" in failed.error  # type: ignore[attr-defined]


def test_a_bad_file_at_start_is_one_line_that_names_the_variable(
    make_flags: MakeFlags, write: Write
) -> None:
    path = write("flags:\n  as-of-reads: {tenants: [acme]}\n")
    with pytest.raises(Misconfigured) as refused:
        make_flags(flags_file=str(path))
    assert refused.value.detail == (
        f"COMMERCE_FLAGS_FILE {path}: flags.as-of-reads.tenants: must be a mapping with "
        "`allow` and/or `deny` lists"
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("flags: [\n", "not YAML: line 2, column 1"),
        ("", "the file is empty"),
        ("\xff", None),
    ],
)
def test_a_file_that_is_not_yaml_is_refused_with_its_line(
    make_flags: MakeFlags, flags_file: Path, text: str, words: str | None
) -> None:
    if words is None:
        flags_file.write_bytes(b"\xff\xfe")
        words = "not UTF-8 text"
    else:
        flags_file.write_text(text)
    with pytest.raises(Misconfigured) as refused:
        make_flags(flags_file=str(flags_file))
    assert words in refused.value.detail
    assert "\n" not in refused.value.detail


def test_a_missing_file_is_refused(make_flags: MakeFlags, tmp_path: Path) -> None:
    with pytest.raises(Misconfigured, match="cannot read it"):
        make_flags(flags_file=str(tmp_path / "absent.yaml"))


def test_the_environment_overrides_the_file_for_every_tenant(
    make_flags: MakeFlags, write: Write
) -> None:
    flags = make_flags(flags_file=str(write(ACME_ONLY)), flag_as_of_reads="on")
    result = flags.evaluate(AS_OF_READS.key, FlagContext("globex"))
    assert (result.value, result.reason, result.rule) == (True, "STATIC", "environment")
    off = make_flags(flag_counted_sets="off")
    assert off.evaluate(COUNTED_SETS.key, FlagContext("acme", Role.admin)).value is False
    assert off.report().rules["counted-sets"] == (
        "environment: COMMERCE_FLAG_COUNTED_SETS=off -> off for all",
    )


def test_an_override_that_is_not_on_or_off_stops_the_start(make_flags: MakeFlags) -> None:
    with pytest.raises(Misconfigured, match="COMMERCE_FLAG_AS_OF_READS: must be on or off"):
        make_flags(flag_as_of_reads="sometimes")


def test_flags_this_version_does_not_know_are_warned_about_and_reported(
    make_flags: MakeFlags, write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="commerce"):
        flags = make_flags(
            flags_file=str(write("flags:\n  old-flag: on\n  as-of-reads: on\n")),
            flag_new_flag="on",
        )
    assert flags.report().unknown == ("old-flag", "COMMERCE_FLAG_NEW_FLAG")
    warned = _events(caplog, LogEvent.FLAGS_UNKNOWN)
    assert [r.unknown for r in warned] == [["COMMERCE_FLAG_NEW_FLAG"], ["old-flag"]]  # type: ignore[attr-defined]
    assert _value(flags, "acme") is True


@pytest.mark.parametrize("raw", ["soon", "-1", "1.5"])
def test_a_reload_interval_that_is_not_whole_milliseconds_stops_the_start(
    make_flags: MakeFlags, raw: str
) -> None:
    with pytest.raises(Misconfigured, match="COMMERCE_FLAGS_RELOAD_MS"):
        make_flags(flags_reload_ms=raw)


def test_require_lets_a_request_on_and_logs_it_at_debug(
    make_flags: MakeFlags, write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    flags = make_flags(flags_file=str(write(ACME_ONLY)))
    with caplog.at_level(logging.DEBUG, logger="commerce"):
        assert require(flags, AS_OF_READS, "acme", Role.reader).rule == "tenants.allow"
    [evaluated] = _events(caplog, LogEvent.FLAG_EVALUATED)
    assert evaluated.levelno == logging.DEBUG
    assert (evaluated.flag, evaluated.rule) == ("as-of-reads", "tenants.allow")  # type: ignore[attr-defined]


def test_require_refuses_with_an_error_that_names_only_the_flag(
    make_flags: MakeFlags, write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    flags = make_flags(flags_file=str(write(ACME_ONLY)))
    with (
        caplog.at_level(logging.INFO, logger="commerce"),
        pytest.raises(FeatureDisabled) as refused,
    ):
        require(flags, AS_OF_READS, "globex", Role.admin)
    assert refused.value.detail == "the feature 'as-of-reads' is not enabled for this tenant"
    assert refused.value.extra == {"flag": "as-of-reads"}
    [disabled] = _events(caplog, LogEvent.FEATURE_DISABLED)
    assert (disabled.flag, disabled.reason, disabled.rule) == ("as-of-reads", "DEFAULT", "default")  # type: ignore[attr-defined]


def test_explain_refuses_a_flag_it_does_not_know(make_flags: MakeFlags) -> None:
    from commerce.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unknown flag 'nope'; the flags are: as-of-reads"):
        explain(make_flags(), "nope", "acme")


def test_an_error_in_the_provider_falls_back_to_the_built_in_default() -> None:
    class Broken(FileProvider):
        def rules(self) -> object:  # type: ignore[override]
            raise RulesError("boom")

    flags = OpenFeatureFlags(Broken(None))
    try:
        result = flags.evaluate(AS_OF_READS.key, FlagContext("acme"))
    finally:
        flags.close()
    assert (result.value, result.reason, result.rule) == (True, ERROR, "error")
