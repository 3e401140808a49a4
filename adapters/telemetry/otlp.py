"""The OTLP/HTTP span exporter: OpenTelemetry's own, with a faster encoder.

- ``OTLPSpanExporter`` is ``opentelemetry-exporter-otlp-proto-http``'s exporter, configured
  the same way (the ``OTEL_EXPORTER_OTLP_*`` variables, read by it) and sending with the same
  client (headers, compression, retries, size limit, its own metrics); only the step that
  turns a batch of spans into the request's bytes is ``otlp_encoding.SpanEncoder``, which
  writes the same bytes at a fraction of the cost (see that module).
- ``EncodingBatchSpanProcessor`` is the SDK's ``BatchSpanProcessor`` (its queue, batches,
  export thread and ``OTEL_BSP_*`` settings) that, in front of that exporter, queues each span
  encoded as it ends (``EncodedSpan``) rather than the span itself: the span's objects are
  freed at once instead of living on in the queue, where they would be carried into the older
  generations of the garbage collector and make its full passes longer and more frequent;
  the export thread is left with joining bytes and sending them.

Both reach into attributes of the package's classes that are not their public interface
(the exporter's ``_client``, ``_metrics``, ``_max_request_size``, ``_shutdown``, the
processor's ``_batch_processor``): where they are not what this module expects (another
version of the package), the exporter and the processor work as the package's own do,
slower but the same.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, cast

from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as SdkOTLPSpanExporter,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from commerce.adapters.telemetry.otlp_encoding import EncodedSpan, SpanEncoder
from commerce.core.events import LogEvent, event_log

log = event_log(__name__)

QUEUE_SIZE = 16 * 2048
"""The queue's size unless ``OTEL_BSP_MAX_QUEUE_SIZE`` says otherwise: 16 times the SDK's
2,048, as an encoded span holds about 0.6 KB (a server span) where a span holds about 3 KB
(the queue full: about 20 MB). The export thread has to win the interpreter lock from the
request threads to empty the queue; a burst fills it meanwhile, and a full queue drops spans."""


class PayloadTooLarge(Exception):
    """A batch's request is larger than the exporter's ``max_request_size``."""


class OTLPSpanExporter(SdkOTLPSpanExporter):
    """``OTLPSpanExporter`` of OpenTelemetry, whose batches are encoded by ``SpanEncoder``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._encoder = SpanEncoder()
        client = getattr(self, "_client", None)
        metrics = getattr(self, "_metrics", None)
        self.fast = (
            callable(getattr(client, "export", None))
            and callable(getattr(metrics, "export_operation", None))
            and isinstance(getattr(self, "_max_request_size", None), int)
            and isinstance(getattr(self, "_shutdown", None), bool)
        )
        """Whether batches are encoded by ``SpanEncoder`` (else by the package)."""

    def export(self, spans: Sequence[ReadableSpan | EncodedSpan]) -> SpanExportResult:
        """Send ``spans`` (spans, or spans encoded by ``EncodingBatchSpanProcessor``)."""
        if not self.fast or self._shutdown:
            return super().export(cast(Sequence[ReadableSpan], spans))
        # As the package's export, but for the encoder.
        with self._metrics.export_operation(len(spans)) as result:
            try:
                data = self._encoder.encode(spans)
            except Exception as error:
                log(
                    LogEvent.SPANS_NOT_EXPORTED,
                    "a batch of spans could not be encoded: %s",
                    error,
                    reason="encoding_failed",
                    spans=len(spans),
                    error=str(error)[:200],
                )
                result.error = error
                return SpanExportResult.FAILURE
            if 0 < self._max_request_size < len(data):
                log(
                    LogEvent.SPANS_NOT_EXPORTED,
                    "dropped a batch of spans: %d bytes encoded, over the limit of %d",
                    len(data),
                    self._max_request_size,
                    reason="too_large",
                    spans=len(spans),
                    error=None,
                )
                result.error = PayloadTooLarge(
                    f"Serialized span request size {len(data)} bytes exceeds "
                    f"max_request_size {self._max_request_size} bytes."
                )
                return SpanExportResult.FAILURE
            sent = self._client.export(data)
            if not sent.success:
                result.error = sent.error
                result.error_attrs = (
                    {"http.response.status_code": sent.status_code}
                    if sent.status_code is not None
                    else None
                )
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


class EncodingBatchSpanProcessor(BatchSpanProcessor):
    """``BatchSpanProcessor`` that queues each sampled span encoded as it ends, for an
    ``OTLPSpanExporter`` of this module (any other exporter gets the spans themselves)."""

    def __init__(
        self, span_exporter: Any, max_queue_size: int | None = None, **kwargs: Any
    ) -> None:
        if (
            max_queue_size is None
            and not os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE", "").strip()
            and isinstance(span_exporter, OTLPSpanExporter)
            and span_exporter.fast
        ):
            max_queue_size = QUEUE_SIZE
        super().__init__(span_exporter, max_queue_size, **kwargs)
        batch = getattr(self, "_batch_processor", None)
        self._emit = getattr(batch, "emit", None)
        self.encodes = (
            isinstance(span_exporter, OTLPSpanExporter)
            and span_exporter.fast
            and callable(self._emit)
        )
        """Whether spans are encoded as they end (else queued as they are)."""

    def on_end(self, span: ReadableSpan) -> None:
        if not self.encodes:
            super().on_end(span)
            return
        context = span.context
        if not (context and context.trace_flags.sampled):
            return
        try:
            item: ReadableSpan | EncodedSpan = EncodedSpan(span)
        except Exception:  # the exporter encodes it, and logs why it cannot
            item = span
        cast(Any, self._emit)(item)
