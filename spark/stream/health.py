"""Is the tick loop healthy? A stall watchdog, pure so it is tested without a broker.

The loop records when it last went round (``iterated_at``) and when it last took
messages (``consumed_at``). It is

* ``starting`` until its first assignment is restored,
* ``dead`` when its thread has ended,
* ``stalled`` when it has not gone round for ``stall_s`` (stuck in a call), or when the
  group has lag (messages waiting) and it took none for ``stall_s``,
* ``ok`` otherwise: idle with nothing to read is healthy.

>>> Watchdog(60).assess(now=100.0, alive=True, ready=True, iterated_at=99.0,
...                     consumed_at=10.0, lag=0)["status"]
'ok'
>>> Watchdog(60).assess(now=100.0, alive=True, ready=True, iterated_at=99.0,
...                     consumed_at=10.0, lag=5)["status"]
'stalled'
"""

from __future__ import annotations


class Watchdog:
    def __init__(self, stall_s: float = 60.0) -> None:
        self.stall_s = stall_s

    def assess(
        self,
        now: float,
        alive: bool,
        ready: bool,
        iterated_at: float,
        consumed_at: float,
        lag: float,
    ) -> dict:
        """The tick loop's status and why, from monotonic times in seconds."""
        since_round, since_messages = now - iterated_at, now - consumed_at
        facts = {
            "seconds_since_last_round": round(since_round, 1),
            "seconds_since_last_messages": round(since_messages, 1),
            "lag": lag,
        }
        if not alive:
            return {"status": "dead", "reason": "the tick loop's thread has ended", **facts}
        if not ready:
            return {"status": "starting", "reason": "restoring its partitions", **facts}
        if since_round > self.stall_s:
            reason = f"no round of the loop for {since_round:.0f} s (stuck in a call?)"
            return {"status": "stalled", "reason": reason, **facts}
        if lag > 0 and since_messages > self.stall_s:
            reason = f"{lag:.0f} messages wait but none were taken for {since_messages:.0f} s"
            return {"status": "stalled", "reason": reason, **facts}
        return {"status": "ok", "reason": "", **facts}
