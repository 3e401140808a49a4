"""Feature flags as a plugin: the OpenFeature SDK, with a built-in provider that reads a file.

The provider ``file`` (the default of ``COMMERCE_FLAGS_PROVIDER``) is configured by:

- ``COMMERCE_FLAGS_FILE``: a YAML or JSON file of rules (docs/flags.md); unset, every flag
  has its built-in default. A file that cannot be used stops the start (one line, exit 2);
  an edit that cannot be used while the service runs leaves the last good rules in force.
- ``COMMERCE_FLAGS_RELOAD_MS``: how often, at most, the file is looked at for a change
  (default 1000; 0: at every evaluation).
- ``COMMERCE_FLAG_<NAME>``: ``on`` or ``off`` for every tenant, over the file's rules
  (``COMMERCE_FLAG_AS_OF_READS=off``).
"""

from __future__ import annotations

from pathlib import Path

from commerce.adapters.flags.client import OpenFeatureFlags
from commerce.adapters.flags.provider import FileProvider, overrides_from
from commerce.adapters.flags.rules import RulesError
from commerce.core.errors import Misconfigured
from commerce.plugins import hookimpl
from commerce.plugins.hookspecs import FlagsProvider, Settings

DEFAULT_RELOAD_MS = 1000

__all__ = ["FileProvider", "OpenFeatureFlags", "commerce_flag_providers", "file_flags"]


def _reload_ms(settings: Settings) -> int:
    raw = settings.get("flags_reload_ms", "").strip()
    if not raw:
        return DEFAULT_RELOAD_MS
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise Misconfigured(
            f"COMMERCE_FLAGS_RELOAD_MS must be a whole number of milliseconds, not {raw[:40]!r}"
        )
    return int(raw)


def file_flags(settings: Settings) -> OpenFeatureFlags:
    """The ``file`` provider's flags for ``settings``; ``Misconfigured`` in one line if the
    file or a ``COMMERCE_FLAG_*`` variable cannot be used."""
    raw = settings.get("flags_file", "").strip()
    path = Path(raw) if raw else None
    reload_ms = _reload_ms(settings)
    try:
        overrides, unknown = overrides_from(settings)
    except RulesError as exc:
        raise Misconfigured(str(exc)) from None
    try:
        provider = FileProvider(
            path, overrides=overrides, unknown_overrides=unknown, reload_ms=reload_ms
        )
    except RulesError as exc:
        raise Misconfigured(f"COMMERCE_FLAGS_FILE {raw}: {exc}") from None
    return OpenFeatureFlags(provider, provider.report)


@hookimpl
def commerce_flag_providers() -> list[FlagsProvider]:
    return [
        FlagsProvider(
            name="file",
            make=file_flags,
            description="OpenFeature, with rules from COMMERCE_FLAGS_FILE (YAML or JSON), "
            "reloaded when it changes, and COMMERCE_FLAG_<NAME> overrides",
        )
    ]
