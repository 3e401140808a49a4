"""A plugin that cannot work stops the start: a misspelled hook, or a scheme claimed twice."""

from __future__ import annotations

import pytest

from commerce.core.errors import Misconfigured
from commerce.core.ports import Storage
from commerce.entrypoints.bootstrap import bootstrap
from commerce.entrypoints.cli import main
from commerce.entrypoints.config import Settings
from commerce.plugins import StorageBackend, check_hooks, get_plugin_manager, hookimpl
from commerce.plugins.registry import Registry
from tests.cli.installed import Site

MISSPELLED = '''"""A storage plugin whose hook name lacks the final s."""

from commerce.plugins import StorageBackend, hookimpl


@hookimpl
def commerce_storage_backend() -> list[StorageBackend]:
    return []
'''


def _claiming(scheme: str, plugin: str) -> str:
    """The source of a plugin module whose backend opens ``scheme://`` URLs."""
    return f'''"""A storage plugin that opens {scheme}:// URLs."""

from commerce.adapters.storage.memory import memory_storage
from commerce.plugins import StorageBackend, hookimpl


@hookimpl
def commerce_storage_backends() -> list[StorageBackend]:
    return [
        StorageBackend(
            name="{plugin}", schemes=("{scheme}",), open=lambda url, settings: memory_storage()
        )
    ]
'''


class Misspelled:
    """Registered by hand, as a test or an application embedding the service would."""

    @hookimpl
    def commerce_storage_backend(self) -> list[StorageBackend]:
        return []


def _never_opened(url: str, settings: object) -> Storage:
    raise AssertionError("a refused backend is never opened")


class Claims:
    def __init__(self, name: str, scheme: str) -> None:
        self.name, self.scheme = name, scheme

    @hookimpl
    def commerce_storage_backends(self) -> list[StorageBackend]:
        return [StorageBackend(name=self.name, schemes=(self.scheme,), open=_never_opened)]


def _install_misspelled(site: Site) -> None:
    site.install("typo-plugin", "1.0", {"typo_plugin.py": MISSPELLED}, {"typo": "typo_plugin"})


# -- a misspelled hook ------------------------------------------------------------------


def test_an_installed_plugin_with_a_misspelled_hook_makes_get_plugin_manager_fail_naming_it(
    site: Site,
) -> None:
    _install_misspelled(site)
    with pytest.raises(Misconfigured) as raised:
        get_plugin_manager()
    message = str(raised.value)
    assert "'commerce_storage_backend'" in message
    assert "'typo'" in message
    assert "commerce_storage_backends" in message  # the hook it should have been


def test_check_hooks_names_a_misspelled_hook_of_a_plugin_registered_by_hand() -> None:
    pm = get_plugin_manager()
    pm.register(Misspelled(), name="by-hand")
    with pytest.raises(Misconfigured, match="'by-hand' implements 'commerce_storage_backend'"):
        check_hooks(pm)


def test_bootstrap_refuses_a_plugin_manager_given_a_misspelled_hook_since_it_was_made() -> None:
    pm = get_plugin_manager()
    pm.register(Misspelled(), name="by-hand")
    with pytest.raises(Misconfigured, match="commerce_storage_backend"):
        bootstrap(Settings(database_url="memory://"), pm)


def test_the_cli_prints_a_misspelled_hook_as_one_line_with_exit_status_2(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    _install_misspelled(site)
    assert main(["plugins"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("commerce: error: plugin 'typo' implements 'commerce_storage_backend'")


def test_the_plugins_of_a_sound_installation_pass_the_hook_check() -> None:
    check_hooks(get_plugin_manager())


# -- one scheme, two plugins ------------------------------------------------------------


def test_two_plugins_claiming_one_scheme_are_refused_naming_both() -> None:
    pm = get_plugin_manager()
    pm.register(Claims("first", "twice"), name="first-plugin")
    pm.register(Claims("second", "twice"), name="second-plugin")
    with pytest.raises(Misconfigured) as raised:
        Registry(pm)
    message = str(raised.value)
    assert "'first-plugin'" in message
    assert "'second-plugin'" in message
    assert "twice://" in message


def test_a_plugin_claiming_a_built_in_scheme_is_refused_naming_the_built_in() -> None:
    pm = get_plugin_manager()
    pm.register(Claims("mine", "memory"), name="usurper")
    with pytest.raises(Misconfigured, match="'memory' and 'usurper' both open memory://"):
        bootstrap(Settings(database_url="memory://"), pm)


def test_the_cli_prints_a_scheme_claimed_twice_as_one_line_with_exit_status_2(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.install(
        "twin-plugins",
        "1.0",
        {"twin_a.py": _claiming("twin", "a"), "twin_b.py": _claiming("twin", "b")},
        {"twin-a": "twin_a", "twin-b": "twin_b"},
    )
    assert main(["--database", "twin://", "tenants", "list"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("commerce: error:")
    assert "'twin-a'" in line
    assert "'twin-b'" in line
    assert "twin://" in line
