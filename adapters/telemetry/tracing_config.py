"""The tracing plugin's settings: which exporters, which sampler, which service, read from
OpenTelemetry's standard ``OTEL_*`` variables and checked (docs/observability.md, "Tracing
settings")."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from opentelemetry.sdk.trace.export import (
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

from commerce.core.errors import Misconfigured
from commerce.plugins.hookspecs import Settings

NAME = "commerce"
"""The instrumentation scope and the default service name."""


_ON = frozenset({"on", "true", "1", "yes"})
_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)


# -- configuration -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TracingConfig:
    """The plugin's settings, checked: which exporters, which sampler, which service."""

    exporters: tuple[str, ...] = ()
    sampler: str = "parentbased_always_on"
    sampler_arg: float = 1.0
    service_name: str = NAME
    probes: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.exporters)

    @classmethod
    def from_settings(
        cls, settings: Settings, environ: Mapping[str, str] | None = None
    ) -> TracingConfig:
        """From the ``OTEL_*`` variables of ``environ`` (the process's) and the settings.

        ``Misconfigured`` for an exporter or sampler this plugin does not know, or a ratio
        that is not one: a misspelt variable stops the service rather than losing its traces.
        """
        env = os.environ if environ is None else environ
        probes = settings.get("trace_probes", "").strip().lower() in _ON
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return cls(probes=probes)
        names = [
            name.strip().lower()
            for name in env.get("OTEL_TRACES_EXPORTER", "").split(",")
            if name.strip()
        ]
        exporters = tuple(dict.fromkeys(name for name in names if name != "none"))
        unknown = [name for name in exporters if name not in ("otlp", "console")]
        if unknown:
            raise Misconfigured(
                f"OTEL_TRACES_EXPORTER: {unknown[0][:40]!r} is not an exporter this service "
                "has; use otlp, console or none"
            )
        sampler = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or cls.sampler
        if sampler not in _SAMPLERS:
            raise Misconfigured(
                f"OTEL_TRACES_SAMPLER: {sampler[:40]!r} is not a sampler; use one of "
                + ", ".join(_SAMPLERS)
            )
        arg = cls.sampler_arg
        raw_arg = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
        if raw_arg and sampler.endswith("traceidratio"):
            try:
                arg = float(raw_arg)
            except ValueError:
                arg = -1.0
            if not 0.0 <= arg <= 1.0:
                raise Misconfigured(
                    f"OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, not {raw_arg[:40]!r}"
                )
        return cls(
            exporters=exporters,
            sampler=sampler,
            sampler_arg=arg,
            service_name=env.get("OTEL_SERVICE_NAME", "").strip() or NAME,
            probes=probes,
        )

    def make_sampler(self) -> Sampler:
        root: Sampler
        kind = self.sampler.removeprefix("parentbased_")
        if kind == "always_on":
            root = ALWAYS_ON
        elif kind == "always_off":
            root = ALWAYS_OFF
        else:
            root = TraceIdRatioBased(self.sampler_arg)
        return ParentBased(root) if self.sampler.startswith("parentbased_") else root

    def make_exporters(self) -> list[SpanExporter]:
        made: list[SpanExporter] = []
        for name in self.exporters:
            if name == "console":
                made.append(ConsoleSpanExporter(service_name=self.service_name))
            else:
                # Imported only when asked for: the OTLP exporter (and protobuf) is optional.
                # It is OpenTelemetry's, with an encoder of the service's (adapters/telemetry/
                # otlp.py: the same bytes, a fraction of the CPU).
                try:
                    from commerce.adapters.telemetry.otlp import OTLPSpanExporter
                except ImportError as e:
                    raise Misconfigured(
                        "OTEL_TRACES_EXPORTER=otlp needs the package "
                        "opentelemetry-exporter-otlp-proto-http"
                    ) from e
                made.append(OTLPSpanExporter())
        return made
