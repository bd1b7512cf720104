"""Operator commands: signed by the CLI, checked by every worker. Whatever arrives on a
command topic, checking it raises CommandRejected with a reason or passes; it never
stops the tick loop."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spark.commands import CommandRejected, check_command, sign, verify

KEY = bytes(range(32))
VALUES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
FIELDS = ["action", "limit_name", "value", "reason", "operator", "ts", "symbol", "nonce",
          "key_id", "signature"]  # fmt: skip
COMMANDS = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), VALUES)


def kill(ts: int = 5_000_000) -> dict:
    return {"action": "kill", "limit_name": None, "value": None, "reason": "r",
            "operator": "o", "ts": ts}  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["gate", "risk"]), COMMANDS)
def test_any_command_is_checked_without_crashing(kind, command):
    command.setdefault("ts", 0)
    with contextlib.suppress(CommandRejected):
        check_command(kind, command)
    with contextlib.suppress(CommandRejected):
        verify(command, KEY, 0, 300, set())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["action", "reason", "operator", "ts", "value", "limit_name", "nonce"]),
       VALUES)  # fmt: skip
def test_changing_any_field_breaks_the_signature(field, value):
    signed = sign(kill(), KEY)
    if signed.get(field) == value:
        return
    with pytest.raises(CommandRejected) as exc:
        verify(dict(signed, **{field: value}), KEY, 0, 300, set())
    emptied_nonce = field == "nonce" and not value
    assert exc.value.reason == ("unsigned_command" if emptied_nonce else "bad_signature")


def test_stale_replayed_unsigned_and_foreign_commands_have_their_reasons():
    seen: set = set()
    signed = sign(kill(ts=1_000_000_000), KEY)
    verify(signed, KEY, 1_000_000_000 + 10_000_000, 300, seen)  # taken 10 s after: fine
    reasons = []
    for record, broker_us in (
        (signed, 1_000_000_000),  # the same again
        (sign(kill(ts=1_000_000_000), KEY), 1_000_000_000 + 301_000_000),
        (kill(), 0),
        (sign(kill(), bytes(32)), 0),
    ):
        with pytest.raises(CommandRejected) as exc:
            verify(record, KEY, broker_us, 300, seen)
        reasons.append(exc.value.reason)
    assert reasons == ["replayed_command", "stale_command", "unsigned_command", "unknown_key"]


def test_unknown_actions_and_limits_are_invalid():
    for kind, command in (
        ("risk", {"action": "explode"}),
        ("risk", {"action": "set_limit", "limit_name": "max_leverage", "value": 2.0}),
        ("risk", {"action": "set_limit", "limit_name": "max_gross_notional", "value": None}),
        ("gate", {"action": "toggle"}),
    ):
        with pytest.raises(CommandRejected) as exc:
            check_command(kind, command)
        assert exc.value.reason == "invalid_command"
