"""Hypothesis strategies for what an outsider may put in a URL: forged cursors, timestamps at
the edges of what storage holds, limits of any size, id lists past 64 bits."""

from __future__ import annotations

import base64
from datetime import UTC

from hypothesis import strategies as st

from commerce.core import usecases
from commerce.core.pagination import TimeKey, encode_cursor, encode_time_cursor

KINDS = sorted(
    {
        usecases.CHAINS,
        usecases.STORES,
        usecases.STORE_LEVELS,
        usecases.CHANGES,
        usecases.ITEMS,
        usecases.ITEM_LEVELS,
    }
)
"""Every cursor kind the lists issue."""

EDGE_INTEGERS = st.sampled_from(
    [0, 1, -1, 2**31, 2**53 - 1, 2**53, 2**63 - 1, 2**63, 2**64, 10**19 - 1, 10**19, 10**30]
)
INTEGERS = EDGE_INTEGERS | st.integers(min_value=-(10**25), max_value=10**25)
JUNK = st.text(max_size=30)


def _base64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def cursors() -> st.SearchStrategy[str]:
    """Cursors as this API issues them but for any kind and any key, and worse."""
    kinds = st.sampled_from(KINDS) | st.text(max_size=12)
    issued_shape = st.builds(lambda kind, key: _base64(f"{kind}:{key}".encode()), kinds, INTEGERS)
    well_formed = st.builds(
        lambda kind, key: encode_cursor(kind, key),
        st.sampled_from(KINDS),
        EDGE_INTEGERS.filter(lambda k: k >= 0) | st.integers(min_value=0, max_value=10**20),
    )
    # A list in time order (``changes?since=``) issues "<kind>:<microseconds>.<id>".
    time_shaped = st.builds(
        lambda kind, micros, key: _base64(f"{kind}:{micros}.{key}".encode()),
        kinds,
        INTEGERS,
        INTEGERS,
    )
    well_formed_in_time = st.builds(
        lambda kind, at, key: encode_time_cursor(kind, TimeKey(at.replace(tzinfo=UTC), key)),
        st.sampled_from(KINDS),
        st.datetimes(),
        EDGE_INTEGERS.filter(lambda k: 0 <= k <= 2**63 - 1),
    )
    return (
        well_formed
        | issued_shape
        | time_shaped
        | well_formed_in_time
        | st.binary(max_size=40).map(_base64)
        | JUNK
    )


def timestamps() -> st.SearchStrategy[str]:
    """RFC 3339 text at and past the edges: years 0 to 9999 (1 and 9999 most), months and days
    out of range, offsets up to ±99:99, fractions up to 15 digits, lower-case t and z."""
    edge_years = st.sampled_from([0, 1, 2, 1970, 9998, 9999])
    year = edge_years | st.integers(min_value=0, max_value=9999)
    two = st.integers(min_value=0, max_value=99)
    offset = st.sampled_from(["Z", "z", "+00:00", "-00:00", "+23:59", "-23:59", "+24:00"]) | (
        st.builds(lambda s, h, m: f"{s}{h:02d}:{m:02d}", st.sampled_from("+-"), two, two)
    )
    fraction = st.sampled_from(["", ".999999", ".9999999", ".000000001"]) | st.text(
        alphabet="0123456789", min_size=1, max_size=15
    ).map(lambda digits: "." + digits)
    shaped = st.builds(
        lambda y, mo, d, t, h, mi, s, f, o: (
            f"{y:04d}-{mo:02d}-{d:02d}{t}{h:02d}:{mi:02d}:{s:02d}{f}{o}"
        ),
        year,
        st.sampled_from([1, 12]) | st.integers(min_value=0, max_value=13),
        st.sampled_from([1, 31]) | st.integers(min_value=0, max_value=32),
        st.sampled_from("Tt"),
        st.sampled_from([0, 23]) | st.integers(min_value=0, max_value=24),
        st.integers(min_value=0, max_value=60),
        st.integers(min_value=0, max_value=60),
        fraction,
        offset,
    )
    return shaped | JUNK


def limits() -> st.SearchStrategy[str]:
    return (
        INTEGERS.map(str)
        | st.text(alphabet="0123456789", min_size=1, max_size=5000)
        | st.sampled_from(["", " 5", "+5", "5_0", "٣", "1e3"])
        | JUNK
    )


def id_lists() -> st.SearchStrategy[str]:
    spaced = st.sampled_from(["{}", " {} ", "{} ", "+{}", "0{}"])
    one = st.builds(lambda form, n: form.format(n), spaced, INTEGERS)
    return st.lists(one, min_size=1, max_size=1200).map(",".join) | JUNK


QUERY_VALUES = {
    "limit": limits(),
    "cursor": cursors(),
    "items": id_lists(),
    "as_of": timestamps(),
    "since": timestamps(),
    "until": timestamps(),
    "item_id": INTEGERS.map(str) | JUNK,
}
