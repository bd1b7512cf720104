"""Compiled Avro for the hot path: Tick values read in a batch, FeatureVector and Prediction
values written in a batch, in Confluent's wire format, byte for byte what fastavro reads and
writes (tests compare them).

Reading: values whose writer schema is the current Tick contract are decoded by
``read_ticks`` in one compiled pass; any other writer version goes through fastavro's
schema resolution (``AvroSerde``); undecodable values are reported per message. Writing:
``FeatureWriter`` and ``PredictionWriter`` encode whole columns into one buffer and return
each value as bytes.

Avro's binary encoding, as used here: long/int = zig-zag varint; double = 8 bytes little
endian; string = length (long) then UTF-8; union = branch index (long) then the value;
map = one block: count (long), then (key, value) pairs, then 0.
"""

from __future__ import annotations

import struct

import numpy as np
from numba import njit

from spark.serde.encoders import PRIMITIVES

OK, TOO_SHORT, BAD_MAGIC, BAD_BODY = 0, 1, 2, 3
# Tick fields after symbol and ts, in contract order: each ["null", "double"]
TICK_DOUBLES = ("bid", "ask", "bid_size", "ask_size", "last", "last_size")


@njit(cache=True)
def _varint(buf, at, end):
    """(zig-zag decoded long, position after it); position -1 when malformed."""
    result = 0
    shift = 0
    while True:
        if at >= end or shift > 63:
            return 0, -1
        b = buf[at]
        at += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    return (result >> 1) ^ -(result & 1), at


@njit(cache=True)
def read_headers(buf, starts, lengths, status, schema):
    """The wire-format header of every value: status OK with its schema id, or why not."""
    for k in range(starts.shape[0]):
        at = starts[k]
        if lengths[k] < 5:
            status[k] = TOO_SHORT
        elif buf[at] != 0:
            status[k] = BAD_MAGIC
        else:
            schema[k] = (buf[at + 1] << 24) | (buf[at + 2] << 16) | (buf[at + 3] << 8) | buf[at + 4]
            status[k] = OK


@njit(cache=True)
def read_tick_bodies(buf, starts, lengths, which, status, sym_at, sym_len, ts, values, present):
    """Decode the current-contract Tick bodies of messages ``which``; a body that does not
    parse or leaves trailing bytes gets status BAD_BODY."""
    scratch = np.empty(1, np.float64)
    scratch_bytes = scratch.view(np.uint8)
    for k in which:
        at, end = starts[k] + 5, starts[k] + lengths[k]
        size, at = _varint(buf, at, end)
        if at < 0 or size < 0 or at + size > end:
            status[k] = BAD_BODY
            continue
        sym_at[k], sym_len[k] = at, size
        at += size
        value, at = _varint(buf, at, end)
        if at < 0:
            status[k] = BAD_BODY
            continue
        ts[k] = value
        bad = False
        for f in range(6):
            branch, at = _varint(buf, at, end)
            if at < 0 or branch < 0 or branch > 1:
                bad = True
                break
            if branch == 1:
                if at + 8 > end:
                    bad = True
                    break
                scratch_bytes[:] = buf[at : at + 8]
                values[k, f] = scratch[0]
                present[k, f] = True
                at += 8
            else:
                values[k, f] = np.nan
                present[k, f] = False
        if bad:
            status[k] = BAD_BODY
            continue
        for _f in range(2):  # venue, source: ["null", "string"], not used downstream
            branch, at = _varint(buf, at, end)
            if at < 0 or branch < 0 or branch > 1:
                bad = True
                break
            if branch == 1:
                size, at = _varint(buf, at, end)
                if at < 0 or size < 0 or at + size > end:
                    bad = True
                    break
                at += size
        if bad or at != end:
            status[k] = BAD_BODY


@njit(cache=True)
def _put_varint(out, at, value):
    v = (value << 1) ^ (value >> 63)
    while v >= 0x80 or v < 0:
        out[at] = (v & 0x7F) | 0x80
        v = (v >> 7) & 0x1FFFFFFFFFFFFFF
        at += 1
    out[at] = v
    return at + 1


@njit(cache=True)
def _put_double(out, at, value, scratch, scratch_bytes):
    scratch[0] = value
    out[at : at + 8] = scratch_bytes
    return at + 8


@njit(cache=True)
def _put_bytes(out, at, data, lo, hi):
    out[at : at + hi - lo] = data[lo:hi]
    return at + hi - lo


@njit(cache=True)
def _put_str(out, at, table, lo, hi):
    at = _put_varint(out, at, hi - lo)
    return _put_bytes(out, at, table, lo, hi)


@njit(cache=True)
def _copy(out, at, data, lo, n):
    for k in range(n):
        out[at + k] = data[lo + k]
    return at + n


@njit(cache=True)
def write_features(
    header,
    block,
    places,
    symbols,
    sym_bounds,
    rows,
    slot,
    ts,
    quotes,
    qb,
    xb,
    received,
    out,
    ends,
):
    """FeatureVector values of ``rows``: symbol, ts, mid, bid, ask, values (map), feature_set,
    computed_at (null), tick_received_at (null when 0). ``block``: the bytes from the map to
    computed_at with the values zeroed, ``places`` where each value goes in it; ``qb`` and
    ``xb``: the quotes and features as bytes (8 a value)."""
    n = places.shape[0]
    size = block.shape[0]
    for r in range(rows.shape[0]):
        i = rows[r]
        at = _copy(out, 0 if r == 0 else ends[r - 1], header, 0, header.shape[0])
        s = slot[i]
        at = _put_varint(out, at, sym_bounds[s + 1] - sym_bounds[s])
        at = _copy(out, at, symbols, sym_bounds[s], sym_bounds[s + 1] - sym_bounds[s])
        at = _put_varint(out, at, ts[i])
        at = _copy(out, at, qb[i], 0, 8)
        for side in (1, 2):
            if np.isnan(quotes[i, side]):
                out[at] = 0
                at += 1
            else:
                out[at] = 2
                at = _copy(out, at + 1, qb[i], 8 * side, 8)
        base = at
        at = _copy(out, at, block, 0, size)
        row = xb[i]
        for j in range(n):
            _copy(out, base + places[j], row, 8 * j, 8)
        if received[i] > 0:
            out[at] = 2
            at = _put_varint(out, at + 1, received[i])
        else:
            out[at] = 0
            at += 1
        ends[r] = at


@njit(cache=True)
def write_predictions(
    header,
    symbols,
    sym_bounds,
    rows,
    slot,
    ts,
    probs,
    model,
    model_id,
    version,
    roles,
    role_bounds,
    role_of,
    horizon_ms,
    out,
    ends,
):
    """Prediction values of ``rows`` for model column ``model``: symbol, ts, prob_up,
    model_id, model_version, role, horizon_ms, predicted_at (null)."""
    scratch = np.empty(1, np.float64)
    sb = scratch.view(np.uint8)
    at = 0
    for r in range(rows.shape[0]):
        i = rows[r]
        at = _put_bytes(out, at, header, 0, header.shape[0])
        s = slot[i]
        at = _put_str(out, at, symbols, sym_bounds[s], sym_bounds[s + 1])
        at = _put_varint(out, at, ts[i])
        at = _put_double(out, at, probs[i, model], scratch, sb)
        at = _put_bytes(out, at, model_id, 0, model_id.shape[0])
        at = _put_varint(out, at, version)
        role = role_of[i]
        at = _put_bytes(out, at, roles, role_bounds[role], role_bounds[role + 1])
        at = _put_varint(out, at, horizon_ms)
        at = _put_varint(out, at, 0)  # predicted_at: null (deterministic records)
        ends[r] = at


# the Avro encoding of a long / a string, for the writers' constant parts
avro_long, avro_string = PRIMITIVES["long"], PRIMITIVES["string"]


def wire_header(schema_id: int) -> np.ndarray:
    return np.frombuffer(struct.pack(">bI", 0, schema_id), np.uint8).copy()


def _table(texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    bounds = np.zeros(len(texts) + 1, np.int64)
    bounds[1:] = np.cumsum([len(t) for t in texts])
    data = np.frombuffer(b"".join(texts), np.uint8) if texts else np.zeros(0, np.uint8)
    return data.copy(), bounds


def split(buf: np.ndarray, ends: np.ndarray) -> list[bytes]:
    """Each encoded value as bytes."""
    if not len(ends):
        return []
    data = buf[: ends[-1]].tobytes()
    starts = [0, *ends[:-1].tolist()]
    return [data[a:b] for a, b in zip(starts, ends.tolist(), strict=True)]


class FeatureWriter:
    """FeatureVector values from pipeline columns (``spark.pipeline.StepResult``)."""

    def __init__(self, schema_id: int, feature_names: tuple[str, ...], feature_set: str) -> None:
        self.header = wire_header(schema_id)
        # the values map, feature_set and computed_at (null) are the same bytes in every
        # record but for the 8 bytes of each value: written once here, copied per record
        block, places = bytearray(avro_long(len(feature_names))), []
        for name in feature_names:
            block += avro_string(name)
            places.append(len(block))
            block += bytes(8)
        block += avro_long(0) + avro_string(feature_set) + avro_long(0)
        self.block = np.frombuffer(bytes(block), np.uint8).copy()
        self.places = np.array(places, np.int64)
        self.fixed = 5 + 10 + 10 + 8 + 18 + len(self.block) + 11

    def encode(self, symbols: list[str], rows, slot, ts, quotes, x, received) -> list[bytes]:
        raw = [s.encode() for s in symbols]
        table, bounds = _table(raw)
        longest = max((len(s) for s in raw), default=0)
        out = np.empty(len(rows) * (self.fixed + longest), np.uint8)
        ends = np.empty(len(rows), np.int64)
        quotes = np.ascontiguousarray(quotes, np.float64)
        x = np.ascontiguousarray(x, np.float64)
        write_features(
            self.header,
            self.block,
            self.places,
            table,
            bounds,
            rows,
            slot,
            ts,
            quotes,
            quotes.view(np.uint8),
            x.view(np.uint8),
            received,
            out,
            ends,
        )
        return split(out, ends)


class PredictionWriter:
    """Prediction values of one model column from pipeline columns."""

    ROLES = ("challenger", "champion")

    def __init__(self, schema_id: int) -> None:
        self.header = wire_header(schema_id)
        self.roles, self.role_bounds = _table([avro_string(r) for r in self.ROLES])

    def encode(
        self,
        symbols,
        rows,
        slot,
        ts,
        probs,
        model: int,
        model_id: str,
        version: int,
        champion,
        horizon_ms: int,
    ) -> list[bytes]:
        raw = [s.encode() for s in symbols]
        table, bounds = _table(raw)
        mid = np.frombuffer(avro_string(model_id), np.uint8).copy()
        longest = max((len(s) for s in raw), default=0)
        out = np.empty(
            len(rows) * (5 + 10 + longest + 10 + 8 + len(mid) + 10 + 12 + 10 + 1), np.uint8
        )
        ends = np.empty(len(rows), np.int64)
        role_of = (champion == model).astype(np.int64)
        write_predictions(
            self.header,
            table,
            bounds,
            rows,
            slot,
            ts,
            probs,
            model,
            mid,
            version,
            self.roles,
            self.role_bounds,
            role_of,
            horizon_ms,
            out,
            ends,
        )
        return split(out, ends)
