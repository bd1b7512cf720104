"""Tick messages of one partition → a TickBatch of the valid ones, and the rest with reasons.

The checks are the ingest rules of ``spark.ticks.check.check_tick_message`` (contract,
key = symbol, ``spark.ticks.model.validate``), run on columns: a compiled pass reads
every current-contract value (``spark.serde.fast``), older writer versions go through
fastavro's schema resolution, and the columns are checked with numpy. A message that
fails any check is handed to ``check_tick_message`` itself, which gives the reason and
the detail for its dead letter, so the two can never disagree about why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from fastavro.schema import to_parsing_canonical_form
from numba import njit

from spark.errors import SerializationError
from spark.pipeline.batch import PRICES, TickBatch
from spark.serde import fast
from spark.serde.avro import AvroSerde
from spark.ticks.check import check_tick_message, rejection
from spark.ticks.model import MAX_PRICE, MAX_SIZE, MAX_TS_US, SYMBOL

BID, ASK, BID_SIZE, ASK_SIZE, LAST, LAST_SIZE = range(6)


@dataclass
class Rejected:
    index: int  # position among the messages given
    reason: str
    detail: str


@njit(cache=True)
def _keys_differ(buf, sym_at, sym_len, keys, key_at, key_len, which, out) -> None:
    for k in which:
        if sym_len[k] != key_len[k]:
            out[k] = True
            continue
        for b in range(sym_len[k]):
            if buf[sym_at[k] + b] != keys[key_at[k] + b]:
                out[k] = True
                break


def _offsets(parts: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(p) for p in parts), np.int64, len(parts))
    starts = np.zeros(len(parts), np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return np.frombuffer(b"".join(parts), np.uint8), starts, lengths


class TickDecoder:
    def __init__(self, serde: AvroSerde, max_future_s: float = 600.0) -> None:
        self.serde = serde
        self.max_future_us = round(max_future_s * 1e6)
        self._current = to_parsing_canonical_form(serde._reader("Tick"))
        self._writer_is_current: dict[int, bool] = {}
        self._good_symbol: dict[bytes, bool] = {}

    def _is_current(self, schema_id: int) -> bool:
        known = self._writer_is_current.get(schema_id)
        if known is None:
            try:
                writer = self.serde.registry.schema_for(schema_id)
            except SerializationError:
                return False  # the message takes the slow path, which names the reason
            known = to_parsing_canonical_form(writer) == self._current
            self._writer_is_current[schema_id] = known
        return known

    def _symbol_ok(self, key: bytes) -> bool:
        known = self._good_symbol.get(key)
        if known is None:
            try:
                known = bool(SYMBOL.match(key.decode()))
            except UnicodeDecodeError:
                known = False
            self._good_symbol[key] = known
        return known

    def decode(
        self,
        keys: list[bytes | None],
        values: list[bytes | None],
        offsets: list[int],
        received: list[int],
    ) -> tuple[TickBatch, np.ndarray, list[Rejected]]:
        """(batch of the valid ticks, their positions among the messages, rejections)."""
        n = len(values)
        buf, starts, lengths = _offsets([v or b"" for v in values])
        status, schema = np.zeros(n, np.int8), np.zeros(n, np.int64)
        fast.read_headers(buf, starts, lengths, status, schema)
        ok = status == fast.OK
        ids = [s for s in np.unique(schema[ok]).tolist() if self._is_current(s)]
        current = ok & np.isin(schema, ids)
        sym_at, sym_len, ts = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
        prices = np.full((n, len(PRICES)), math.nan)
        present = np.zeros((n, len(PRICES)), np.bool_)
        fast.read_tick_bodies(
            buf,
            starts,
            lengths,
            np.flatnonzero(current),
            status,
            sym_at,
            sym_len,
            ts,
            prices,
            present,
        )
        # anything not read by the compiled pass (other writer versions, bad headers or
        # bodies) is checked message by message
        suspect = ~(current & (status == fast.OK))
        no_key = np.fromiter((k is None for k in keys), np.bool_, n)
        suspect |= no_key
        key_buf, key_at, key_len = _offsets([k or b"" for k in keys])
        _keys_differ(
            buf, sym_at, sym_len, key_buf, key_at, key_len, np.flatnonzero(~suspect), suspect
        )
        for k in np.flatnonzero(~suspect).tolist():
            if not self._symbol_ok(keys[k]):
                suspect[k] = True
        finite = np.isfinite(prices)
        quoted = prices[:, [BID, ASK, LAST]]
        bad_price = present[:, [BID, ASK, LAST]] & (
            ~finite[:, [BID, ASK, LAST]] | (quoted <= 0) | (quoted > MAX_PRICE)
        )
        sizes = prices[:, [BID_SIZE, ASK_SIZE, LAST_SIZE]]
        bad_size = present[:, [BID_SIZE, ASK_SIZE, LAST_SIZE]] & (
            ~finite[:, [BID_SIZE, ASK_SIZE, LAST_SIZE]] | (sizes < 0) | (sizes > MAX_SIZE)
        )
        suspect |= (ts <= 0) | (ts >= MAX_TS_US)
        suspect |= ~present[:, [BID, ASK, LAST]].any(axis=1)
        suspect |= bad_price.any(axis=1) | bad_size.any(axis=1)
        suspect |= present[:, BID] & present[:, ASK] & (prices[:, BID] > prices[:, ASK])
        rejected = []
        for k in np.flatnonzero(suspect).tolist():
            try:
                tick = check_tick_message(self.serde, keys[k], values[k])
            except Exception as exc:  # noqa: BLE001 - every failure is a dead letter
                rejected.append(Rejected(k, *rejection(exc)))
                continue
            # valid after all: an older writer version, read by fastavro
            ts[k] = tick.ts
            for f, name in enumerate(PRICES):
                value = getattr(tick, name)
                present[k, f] = value is not None
                prices[k, f] = math.nan if value is None else value
            suspect[k] = False
        # stamped too far ahead of when the broker took it: a clock or unit mistake that
        # would hold the symbol's label queue (labels wait for time to pass it) for ever
        stamp = np.asarray(received, np.int64)
        ahead = ~suspect & (stamp > 0) & (ts > stamp + self.max_future_us)
        for k in np.flatnonzero(ahead).tolist():
            seconds = (ts[k] - stamp[k]) / 1e6
            rejected.append(
                Rejected(k, "future_timestamp", f"ts is {seconds:,.0f} s after the broker took it")
            )
        suspect |= ahead
        good = np.flatnonzero(~suspect)
        index: dict[bytes, int] = {}
        code = np.fromiter(
            (index.setdefault(keys[k], len(index)) for k in good.tolist()), np.int32, len(good)
        )
        batch = TickBatch.from_columns(
            [k.decode() for k in index],
            code,
            ts[good],
            {
                name: np.where(present[good, f], prices[good, f], math.nan)
                for f, name in enumerate(PRICES)
            },
            np.asarray(offsets, np.int64)[good],
            np.asarray(received, np.int64)[good],
        )
        return batch, good, rejected
