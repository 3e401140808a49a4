"""Flags come from a plugin: the built-in ``file`` provider by default, another by name, and
the app built from configuration asks the one the runtime made."""

from __future__ import annotations

import falcon.testing
import pytest

from commerce.core.errors import Misconfigured
from commerce.core.flags import Evaluation, FlagContext, FlagsReport
from commerce.entrypoints.bootstrap import bootstrap
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.app import get_app
from commerce.plugins import get_plugin_manager, hookimpl
from commerce.plugins.hookspecs import FlagsProvider
from commerce.plugins.hookspecs import Settings as PluginSettings
from tests.flags.conftest import Write


class EverythingOff:
    """A flags port of a test plugin: every flag off, with its own reason."""

    def __init__(self) -> None:
        self.closed = False

    def evaluate(self, flag: str, context: FlagContext) -> Evaluation:
        return Evaluation(flag, False, "STATIC", "test-plugin", "the test plugin says off")

    def report(self) -> FlagsReport:
        return FlagsReport("the test plugin")

    def close(self) -> None:
        self.closed = True


class OffPlugin:
    def __init__(self) -> None:
        self.made: list[EverythingOff] = []

    def _make(self, settings: PluginSettings) -> EverythingOff:
        made = EverythingOff()
        self.made.append(made)
        return made

    @hookimpl
    def commerce_flag_providers(self) -> list[FlagsProvider]:
        return [FlagsProvider("everything-off", self._make)]


def _settings(**extra: str) -> Settings:
    return Settings(database_url="memory://", auth=("none",), extra=extra)


def test_the_built_in_file_provider_is_the_default_and_is_closed_with_the_runtime(
    write: Write,
) -> None:
    path = write("flags:\n  as-of-reads: off\n")
    runtime = bootstrap(_settings(flags_file=str(path)))
    try:
        assert runtime.flags.report().source == f"file {path}"
        assert runtime.flags.evaluate("as-of-reads", FlagContext("demo")).value is False
    finally:
        runtime.close()
    assert "flags" not in runtime.__dict__


def test_commerce_flags_provider_picks_another_plugins_provider() -> None:
    pm = get_plugin_manager()
    plugin = OffPlugin()
    pm.register(plugin, name="test-flags")
    runtime = bootstrap(_settings(flags_provider="everything-off"), pm)
    try:
        assert runtime.flags.evaluate("counted-sets", FlagContext("demo")).rule == "test-plugin"
    finally:
        runtime.close()
    assert [made.closed for made in plugin.made] == [True]


def test_an_unknown_flags_provider_is_refused_with_the_names_there_are() -> None:
    runtime = bootstrap(_settings(flags_provider="flagd"))
    with pytest.raises(Misconfigured) as refused:
        _ = runtime.flags
    assert refused.value.detail == (
        "no plugin provides the feature flags provider 'flagd'; "
        "COMMERCE_FLAGS_PROVIDER may name: file"
    )


def test_two_plugins_providing_the_same_name_are_refused() -> None:
    pm = get_plugin_manager()
    pm.register(OffPlugin(), name="one")
    pm.register(OffPlugin(), name="two")
    with pytest.raises(Misconfigured, match=r"two plugins provide .* 'everything-off'"):
        _ = bootstrap(_settings(), pm).flags


def test_the_app_from_configuration_asks_the_runtimes_flags(write: Write) -> None:
    path = write("flags:\n  as-of-reads:\n    tenants:\n      deny: [demo]\n")
    app = get_app(
        Settings(database_url="memory://", auth=("none",), extra={"flags_file": str(path)})
    )
    result = falcon.testing.TestClient(app).simulate_get(
        "/stores/1/inventory", params={"as_of": "2030-01-01T00:00:00Z"}
    )
    assert result.status_code == 404
    assert result.json["flag"] == "as-of-reads"
