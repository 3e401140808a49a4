"""The built-in OpenFeature provider: flag rules from a YAML or JSON file, reloaded when it
changes, with the environment over them.

The file is checked for a change at most once every ``reload_ms`` milliseconds, by the
evaluation that comes along after that time: one ``os.stat`` of the path, compared on its
inode, size and modification time. A changed file is read and checked whole before it
replaces the rules in force; one that cannot be used leaves the last good rules in force and
is logged once (``FLAGS_RELOAD_FAILED``). No thread, no file-system watcher: it works the same
on a network file system and on a Kubernetes ConfigMap, whose update swaps a symbolic link.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from commerce.adapters.flags.rules import Rules, RulesError, decide, parse, switch
from commerce.core.auth import Role
from commerce.core.events import LogEvent, event_log
from commerce.core.flags import KNOWN, Flag, FlagsReport

log = event_log(__name__)

NAME = "commerce-file"
MAX_FILE_BYTES = 1 << 20
"""A flags file larger than this is refused: it is a few rules, not a data set."""
ENVIRONMENT = "environment"
"""The ``file`` of events about ``COMMERCE_FLAG_*`` variables."""

Signature = tuple[int, int, int, int] | None
"""(device, inode, size, modification time in ns) of the file; ``None``: it cannot be seen."""


def env_name(flag: str) -> str:
    """The variable that overrides ``flag`` for everyone: ``COMMERCE_FLAG_AS_OF_READS``."""
    return "COMMERCE_FLAG_" + flag.upper().replace("-", "_")


def setting_name(flag: str) -> str:
    """``env_name`` as plugins see it: lower-cased, without ``COMMERCE_`` (``flag_as_of_reads``)."""
    return env_name(flag).removeprefix("COMMERCE_").lower()


def signature(path: Path) -> Signature:
    try:
        found = path.stat()
    except OSError:
        return None
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)


def load(path: Path, known: Mapping[str, Flag] = KNOWN) -> Rules:
    """The rules of the file at ``path``; ``RulesError``, in one line, if it cannot be used.

    ``.json`` files are read as JSON, anything else as YAML (of which JSON is nearly a
    subset, so a JSON file named ``.yaml`` reads too).
    """
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise RulesError(f"larger than {MAX_FILE_BYTES} bytes; a flags file holds rules only")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RulesError("not UTF-8 text") from None
    return parse(_document(path, text), known)


def _document(path: Path, text: str) -> Any:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise RulesError(
                f"not JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise RulesError(f"not YAML: {where}{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"not YAML: {' '.join(str(exc).split())}") from None


class FileProvider(AbstractProvider):
    """OpenFeature boolean flags from ``path`` (``None``: no file, defaults only), with
    ``overrides`` (flag -> value, from the environment) before every rule.

    The file is read now: a file that cannot be used raises ``RulesError``, so that the
    service does not start with rules other than the ones written. Evaluation context: the
    targeting key (or the ``tenant`` attribute) is the tenant; ``role`` the caller's role.
    The resolution's ``variant`` is ``on`` or ``off``; its metadata says which ``rule``
    decided and, in ``detail``, why.
    """

    def __init__(
        self,
        path: Path | None,
        *,
        overrides: Mapping[str, bool] | None = None,
        unknown_overrides: Sequence[str] = (),
        reload_ms: int = 1000,
        known: Mapping[str, Flag] = KNOWN,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._path = path
        self._overrides = dict(overrides or {})
        self._unknown_overrides = tuple(unknown_overrides)
        self._interval = max(0, reload_ms) / 1000
        self._known = known
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._rules = Rules()
        self._seen: Signature = None
        self._next_check = 0.0
        if self._unknown_overrides:
            log(
                LogEvent.FLAGS_UNKNOWN,
                "ignored: %s set flags this version does not know",
                ", ".join(self._unknown_overrides),
                file=ENVIRONMENT,
                unknown=list(self._unknown_overrides),
            )
        if path is not None:
            self._seen = signature(path)
            self._rules = load(path, known)
            self._loaded(self._rules)
            self._next_check = monotonic() + self._interval

    @property
    def path(self) -> Path | None:
        return self._path

    def get_metadata(self) -> Metadata:
        return Metadata(name=NAME)

    # -- the rules in force -------------------------------------------------------------

    def rules(self) -> Rules:
        """The rules in force, read again first if the file changed since it was last looked
        at and ``reload_ms`` have passed since then."""
        path = self._path
        if path is None or self._monotonic() < self._next_check:
            return self._rules
        # One thread looks; the others go on with the rules in force meanwhile.
        if not self._lock.acquire(blocking=False):
            return self._rules
        try:
            self._next_check = self._monotonic() + self._interval
            seen = signature(path)
            if seen == self._seen:
                return self._rules
            self._seen = seen
            try:
                rules = load(path, self._known)
            except RulesError as exc:
                log(
                    LogEvent.FLAGS_RELOAD_FAILED,
                    "flags file %s changed but cannot be used, the last good rules stay: %s",
                    path,
                    exc,
                    file=str(path),
                    error=str(exc),
                )
                return self._rules
            changed = sorted(set(rules.flags) ^ set(self._rules.flags)) or sorted(rules.flags)
            self._rules = rules
            self._loaded(rules)
            self.emit_provider_configuration_changed(ProviderEventDetails(flags_changed=changed))
            return rules
        finally:
            self._lock.release()

    def _loaded(self, rules: Rules) -> None:
        log(
            LogEvent.FLAGS_LOADED,
            "flags file %s read: rules for %s",
            self._path,
            ", ".join(sorted(rules.flags)) or "no flag",
            file=str(self._path),
            flags=sorted(rules.flags),
        )
        if rules.unknown:
            log(
                LogEvent.FLAGS_UNKNOWN,
                "flags file %s names flags this version does not know, ignored: %s",
                self._path,
                ", ".join(rules.unknown),
                file=str(self._path),
                unknown=list(rules.unknown),
            )

    def report(self) -> FlagsReport:
        """The rules in force, for ``commerce flags list``."""
        rules = self.rules()
        lines: dict[str, tuple[str, ...]] = {}
        for key in self._known:
            found = rules.flags.get(key)
            own = found.lines() if found is not None else ()
            override = self._overrides.get(key)
            if override is not None:
                word = "on" if override else "off"
                own = (f"environment: {env_name(key)}={word} -> {word} for all", *own)
            lines[key] = own
        defaults = {
            key: found.default for key, found in rules.flags.items() if found.default is not None
        }
        source = f"file {self._path}" if self._path is not None else "no file"
        if self._overrides:
            source += " and the environment"
        unknown = (*rules.unknown, *self._unknown_overrides)
        return FlagsReport(source, lines, defaults, tuple(unknown))

    # -- OpenFeature ----------------------------------------------------------------------

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        flag = self._known.get(flag_key)
        if flag is None:
            return FlagResolutionDetails(
                default_value,
                error_code=ErrorCode.FLAG_NOT_FOUND,
                error_message=f"no flag {flag_key!r}",
                reason=Reason.ERROR,
            )
        context = evaluation_context or EvaluationContext()
        tenant = context.targeting_key or context.attributes.get("tenant")
        if not isinstance(tenant, str) or not tenant:
            return FlagResolutionDetails(
                default_value,
                error_code=ErrorCode.TARGETING_KEY_MISSING,
                error_message="the tenant is the targeting key, and none was given",
                reason=Reason.ERROR,
            )
        role_name = context.attributes.get("role")
        role = (
            Role[role_name]
            if isinstance(role_name, str) and role_name in Role.__members__
            else None
        )
        decision = decide(
            flag,
            self.rules().flags.get(flag_key),
            tenant,
            role,
            self._overrides.get(flag_key),
            env_name(flag_key),
        )
        return FlagResolutionDetails(
            decision.value,
            reason=decision.reason,
            variant="on" if decision.value else "off",
            flag_metadata={"rule": decision.rule, "detail": decision.detail},
        )

    def _not_boolean(self, flag_key: str, default_value: Any) -> FlagResolutionDetails[Any]:
        return FlagResolutionDetails(
            default_value,
            error_code=ErrorCode.TYPE_MISMATCH,
            error_message=f"{flag_key!r}: the flags of this provider are on or off",
            reason=Reason.ERROR,
        )

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._not_boolean(flag_key, default_value)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._not_boolean(flag_key, default_value)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._not_boolean(flag_key, default_value)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._not_boolean(flag_key, default_value)


def overrides_from(settings: Mapping[str, str]) -> tuple[dict[str, bool], list[str]]:
    """The ``COMMERCE_FLAG_*`` overrides among the plugin settings (flag -> value), and the
    variables that name no known flag. A value other than on or off raises ``RulesError``."""
    by_setting = {setting_name(key): key for key in KNOWN}
    overrides: dict[str, bool] = {}
    unknown: list[str] = []
    for name, raw in sorted(settings.items()):
        if not name.startswith("flag_"):
            continue
        variable = "COMMERCE_" + name.upper()
        key = by_setting.get(name)
        if key is None:
            unknown.append(variable)
            continue
        overrides[key] = switch(raw, variable)
    return overrides, unknown
