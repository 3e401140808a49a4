"""Spans as an OTLP ``ExportTraceServiceRequest``, serialized straight to protobuf bytes.

The same bytes as ``encode_spans(spans).SerializePartialToString()`` of
``opentelemetry-exporter-otlp-proto-common`` (tests/telemetry/test_otlp_exporter.py decodes
both with ``opentelemetry-proto`` and compares them), at a fraction of the cost. What that
encoder pays for, per span, and this one does not:

- it groups spans by ``Resource`` and ``InstrumentationScope`` as dictionary keys, and
  ``Resource.__hash__`` serializes the resource's attributes as JSON on every call, once per
  span; here spans are grouped by the identity of their resource and scope, each encoded once
  per exporter (and groups that encode alike are merged, as the SDK's equal keys are);
- it builds a protobuf object per span, attribute, value, event and status, each through a
  Python call that checks the value's type, before serializing the tree; here each field is
  written as bytes once, and an attribute seen before (``db.system=sqlite``,
  ``http.request.method=GET``, a tenant) is one lookup in a bounded cache of its bytes.

The encoding is OTLP's protobuf wire format (``opentelemetry/proto/trace/v1/trace.proto``):
fields in field-number order, default scalars left out, a message set but empty written as an
empty message (``status`` of an unset status), as the protobuf library writes them.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status

from commerce.adapters.telemetry.lean_spans import LeanSpan
from commerce.core.events import LogEvent, event_log

log = event_log(__name__)

_KIND = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
"""``SpanKind`` -> OTLP's ``Span.SpanKind`` (0 is unspecified)."""

_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
"""``SpanFlags``: the parent's "is remote" is known, and it is remote."""

_CACHE_LIMIT = 4096
"""Attributes whose bytes are kept; the cache is emptied when it holds more."""

_INT64 = 1 << 63
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_double = struct.Struct("<d").pack


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: ``tag`` (already encoded), length, payload."""
    return tag + _varint(len(payload)) + payload


def _string(tag: bytes, value: str | None) -> bytes:
    return _field(tag, value.encode("utf-8")) if value else b""


# Tags (field number << 3 | wire type), encoded, named message_field.
_KV_KEY, _KV_VALUE = b"\x0a", b"\x12"
_ANY_STRING, _ANY_BOOL, _ANY_INT, _ANY_DOUBLE = b"\x0a", b"\x10", b"\x18", b"\x21"
_ANY_ARRAY, _ANY_KVLIST, _ANY_BYTES = b"\x2a", b"\x32", b"\x3a"
_LIST_VALUES = b"\x0a"
_REQUEST_RESOURCE_SPANS = b"\x0a"
_RS_RESOURCE, _RS_SCOPE_SPANS, _RS_SCHEMA_URL = b"\x0a", b"\x12", b"\x1a"
_RESOURCE_ATTRIBUTES = b"\x0a"
_SS_SCOPE, _SS_SPANS, _SS_SCHEMA_URL = b"\x0a", b"\x12", b"\x1a"
_SCOPE_NAME, _SCOPE_VERSION, _SCOPE_ATTRIBUTES = b"\x0a", b"\x12", b"\x1a"
_SPAN_TRACE_ID, _SPAN_SPAN_ID, _SPAN_TRACE_STATE, _SPAN_PARENT = b"\x0a", b"\x12", b"\x1a", b"\x22"
_SPAN_NAME, _SPAN_KIND, _SPAN_START, _SPAN_END = b"\x2a", b"\x30", b"\x39", b"\x41"
_SPAN_ATTRIBUTES, _SPAN_DROPPED_ATTRIBUTES, _SPAN_EVENTS = b"\x4a", b"\x50", b"\x5a"
_SPAN_DROPPED_EVENTS, _SPAN_LINKS, _SPAN_DROPPED_LINKS = b"\x60", b"\x6a", b"\x70"
_SPAN_STATUS, _SPAN_FLAGS = b"\x7a", b"\x85\x01"
_EVENT_TIME, _EVENT_NAME, _EVENT_ATTRIBUTES, _EVENT_DROPPED = b"\x09", b"\x12", b"\x1a", b"\x20"
_LINK_TRACE_ID, _LINK_SPAN_ID, _LINK_ATTRIBUTES = b"\x0a", b"\x12", b"\x22"
_LINK_DROPPED, _LINK_FLAGS = b"\x28", b"\x35"
_STATUS_MESSAGE, _STATUS_CODE = b"\x12", b"\x18"


# -- values --------------------------------------------------------------------------------
def _any_value(value: Any) -> bytes:
    """An ``AnyValue`` message's payload, as the SDK's ``_encode_value`` fills it (its
    fields are a ``oneof``: a zero, ``False`` or ``""`` is written too)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return _ANY_BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, str):
        return _field(_ANY_STRING, value.encode("utf-8"))
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ValueError(f"{value} is out of the range of int64")
        return _ANY_INT + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return _ANY_DOUBLE + _pack_double(value)
    if isinstance(value, bytes):
        return _field(_ANY_BYTES, value)
    if isinstance(value, Sequence):
        items = b"".join(_field(_LIST_VALUES, _any_value(item)) for item in value)
        return _field(_ANY_ARRAY, items)
    if isinstance(value, Mapping):
        items = b"".join(_field(_LIST_VALUES, _key_value(str(k), v)) for k, v in value.items())
        return _field(_ANY_KVLIST, items)
    raise TypeError(f"Invalid type {type(value)} of value {value}")


def _key_value(key: str, value: Any) -> bytes:
    return _string(_KV_KEY, key) + _field(_KV_VALUE, _any_value(value))


_CACHED = frozenset({str, int, bool})
_cache: dict[tuple[str, type, object], bytes] = {}


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Each attribute as a ``KeyValue`` field ``tag``; one that cannot be encoded is logged
    and left out, as the SDK's encoder does."""
    if not attributes:
        return b""
    parts = []
    cache = _cache
    # Keys, then each value: a span's attributes are a Python mapping, whose items() view
    # costs half as much again.
    for key in attributes:
        value = attributes[key]
        # Strings and integers are kept; the type is in the key, as True == 1.
        kind = type(value)
        cache_key = (key, kind, value) if kind in _CACHED else None
        encoded = None if cache_key is None else cache.get(cache_key)
        if encoded is None:
            try:
                encoded = _field(tag, _key_value(key, value))
            except Exception as error:
                log(
                    LogEvent.SPANS_NOT_EXPORTED,
                    "an attribute could not be encoded and was left out: %s",
                    key,
                    reason="encoding_failed",
                    spans=1,
                    error=str(error)[:200],
                )
                continue
            if cache_key is not None and tag == _SPAN_ATTRIBUTES:
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[cache_key] = encoded
        parts.append(encoded)
    return b"".join(parts)


# -- spans ---------------------------------------------------------------------------------
_KIND_FIELD = {kind: _SPAN_KIND + bytes((value,)) for kind, value in _KIND.items()}
_TIMES = struct.Struct("<BQBQ")
"""start_time_unix_nano and end_time_unix_nano, with their tags (both fixed64)."""
_STATUS_FIELD = {0: b"\x7a\x00", 1: b"\x7a\x02\x18\x01", 2: b"\x7a\x02\x18\x02"}
"""A status without a description, by code: UNSET, OK, ERROR."""
_LOCAL_FLAGS = _SPAN_FLAGS + _pack_fixed32(_HAS_IS_REMOTE)
_REMOTE_FLAGS = _SPAN_FLAGS + _pack_fixed32(_HAS_IS_REMOTE | _IS_REMOTE)
_names: dict[str, bytes] = {}


def _flags(parent: SpanContext | None) -> bytes:
    remote = parent is not None and parent.is_remote
    return _pack_fixed32(_HAS_IS_REMOTE | _IS_REMOTE if remote else _HAS_IS_REMOTE)


def _span(span: ReadableSpan) -> bytes:
    if type(span) is LeanSpan:
        # The plugin's own spans (lean_spans.py), read without their properties' copies.
        return _span_fields(
            span._context,
            span._parent,
            span._name,
            span._kind,
            span._start_time,
            span._end_time,
            span._attributes,
            span.dropped_attributes,
            span._events,
            span._dropped_events,
            span._links,
            span._dropped_links,
            span._status,
        )
    return _span_fields(
        span.context,
        span.parent,
        span.name,
        span.kind,
        span.start_time,
        span.end_time,
        span.attributes,
        span.dropped_attributes,
        span.events,
        span.dropped_events,
        span.links,
        span.dropped_links,
        span.status,
    )


def _span_fields(
    context: SpanContext | None,
    parent: SpanContext | None,
    name: str,
    kind: SpanKind,
    start: int | None,
    end: int | None,
    attributes: Mapping[str, Any] | None,
    dropped_attributes: int,
    events: Sequence[Event],
    dropped_events: int,
    links: Sequence[Link],
    dropped_links: int,
    status: Status,
) -> bytes:
    assert context is not None  # a span the SDK made has one
    parts = [
        b"\x0a\x10"  # trace_id, 16 bytes
        + context.trace_id.to_bytes(16, "big")
        + b"\x12\x08"  # span_id, 8 bytes
        + context.span_id.to_bytes(8, "big")
    ]
    trace_state = context.trace_state
    if trace_state:
        state = ",".join(f"{k}={v}" for k, v in trace_state.items())
        parts.append(_string(_SPAN_TRACE_STATE, state))
    if parent is not None:
        parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    encoded_name = _names.get(name)
    if encoded_name is None:
        encoded_name = _string(_SPAN_NAME, name)
        if len(_names) >= _CACHE_LIMIT:
            _names.clear()
        _names[name] = encoded_name
    parts.append(encoded_name)
    parts.append(_KIND_FIELD[kind])
    if start and end:
        parts.append(_TIMES.pack(0x39, start, 0x41, end))
    else:
        parts.append(_SPAN_START + _pack_fixed64(start) if start else b"")
        parts.append(_SPAN_END + _pack_fixed64(end) if end else b"")
    parts.append(_attributes(_SPAN_ATTRIBUTES, attributes))
    if dropped_attributes:
        parts.append(_SPAN_DROPPED_ATTRIBUTES + _varint(dropped_attributes))
    if events:
        parts.extend(_field(_SPAN_EVENTS, _event(event)) for event in events)
    if dropped_events:
        parts.append(_SPAN_DROPPED_EVENTS + _varint(dropped_events))
    if links:
        parts.extend(_field(_SPAN_LINKS, _link(link)) for link in links)
    if dropped_links:
        parts.append(_SPAN_DROPPED_LINKS + _varint(dropped_links))
    if status.description:
        code = status.status_code.value
        parts.append(
            _field(
                _SPAN_STATUS,
                _string(_STATUS_MESSAGE, status.description)
                + (_STATUS_CODE + _varint(code) if code else b""),
            )
        )
    else:
        parts.append(_STATUS_FIELD[status.status_code.value])
    parts.append(_REMOTE_FLAGS if parent is not None and parent.is_remote else _LOCAL_FLAGS)
    return b"".join(parts)


def _event(event: Event) -> bytes:
    dropped = event.dropped_attributes
    return b"".join(
        (
            _EVENT_TIME + _pack_fixed64(event.timestamp) if event.timestamp else b"",
            _string(_EVENT_NAME, event.name),
            _attributes(_EVENT_ATTRIBUTES, event.attributes),
            _EVENT_DROPPED + _varint(dropped) if dropped else b"",
        )
    )


def _link(link: Link) -> bytes:
    # As the SDK's encoder: no trace_state on a link.
    dropped = link.dropped_attributes
    return b"".join(
        (
            _LINK_TRACE_ID + b"\x10" + link.context.trace_id.to_bytes(16, "big"),
            _LINK_SPAN_ID + b"\x08" + link.context.span_id.to_bytes(8, "big"),
            _attributes(_LINK_ATTRIBUTES, link.attributes),
            _LINK_DROPPED + _varint(dropped) if dropped else b"",
            _LINK_FLAGS + _flags(link.context),
        )
    )


def span_field(span: ReadableSpan) -> bytes:
    """``span`` as the ``spans`` field of a ``ScopeSpans`` message."""
    return _field(_SS_SPANS, _span(span))


class EncodedSpan:
    """A span encoded when it ended, with what groups it in a request: a queue of these holds
    one small object per span (bytes are no work for the garbage collector) where a queue
    of spans holds a dozen containers each (attributes, events, links, locks...)."""

    __slots__ = ("data", "instrumentation_scope", "resource")

    def __init__(self, span: ReadableSpan) -> None:
        self.resource = span.resource
        self.instrumentation_scope = span.instrumentation_scope
        self.data = span_field(span)


# -- the request ---------------------------------------------------------------------------
_Encoded = tuple[bytes, bytes]
"""A resource's or scope's field, and its ``schema_url`` field (``b""`` without one)."""


class SpanEncoder:
    """Encodes batches of spans as OTLP requests; keeps the encoding of each resource and
    scope it has met (by identity, holding the object so that its id is not reused)."""

    def __init__(self) -> None:
        self._resources: dict[int, tuple[Resource, _Encoded]] = {}
        self._scopes: dict[int, tuple[InstrumentationScope | None, _Encoded]] = {}

    def _resource(self, resource: Resource) -> _Encoded:
        known = self._resources.get(id(resource))
        if known is not None and known[0] is resource:
            return known[1]
        encoded = (
            _field(_RS_RESOURCE, _attributes(_RESOURCE_ATTRIBUTES, resource.attributes)),
            _string(_RS_SCHEMA_URL, resource.schema_url),
        )
        if len(self._resources) >= 64:
            self._resources.clear()
        self._resources[id(resource)] = (resource, encoded)
        return encoded

    def _scope(self, scope: InstrumentationScope | None) -> _Encoded:
        known = self._scopes.get(id(scope))
        if known is not None and known[0] is scope:
            return known[1]
        if scope is None:
            encoded = (_field(_SS_SCOPE, b""), b"")
        else:
            body = _string(_SCOPE_NAME, scope.name) + _string(_SCOPE_VERSION, scope.version)
            body += _attributes(_SCOPE_ATTRIBUTES, scope.attributes)
            encoded = (_field(_SS_SCOPE, body), _string(_SS_SCHEMA_URL, scope.schema_url))
        if len(self._scopes) >= 256:
            self._scopes.clear()
        self._scopes[id(scope)] = (scope, encoded)
        return encoded

    def encode(self, spans: Sequence[ReadableSpan | EncodedSpan]) -> bytes:
        """The serialized ``ExportTraceServiceRequest`` of ``spans`` (each a span, or a span
        encoded already)."""
        # resource -> scope -> the spans' fields, in first-seen order, as the SDK's encoder
        # groups them (a resource or scope equal to another one is encoded alike, so its
        # spans join the other's group, as with the SDK's equal keys).
        groups: dict[_Encoded, dict[_Encoded, list[bytes]]] = {}
        last_key: tuple[int, int] | None = None
        last_list: list[bytes] = []
        for span in spans:
            scope = span.instrumentation_scope or None
            key = (id(span.resource), id(scope))
            if key != last_key:
                by_scope = groups.setdefault(self._resource(span.resource), {})
                last_list = by_scope.setdefault(self._scope(scope), [])
                last_key = key
            last_list.append(span.data if isinstance(span, EncodedSpan) else span_field(span))
        out = []
        for (resource, resource_schema), by_scope in groups.items():
            body = [resource]
            for (scope_field, scope_schema), encoded_spans in by_scope.items():
                body.append(
                    _field(_RS_SCOPE_SPANS, scope_field + b"".join(encoded_spans) + scope_schema)
                )
            body.append(resource_schema)
            out.append(_field(_REQUEST_RESOURCE_SPANS, b"".join(body)))
        return b"".join(out)
