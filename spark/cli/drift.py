"""``spark drift eval``: the drift detectors on recorded ticks; ``spark drift profile``: the
time-of-day profile the gate rule's profile part reads."""

from __future__ import annotations

import math
from pathlib import Path

import click

from spark.cli.app import CONTEXT, cli, print_json
from spark.cli.common import (
    HORIZON_HELP,
    HorizonType,
    format_option,
    learner_settings,
    paths_option,
    read_ticks,
)
from spark.errors import SparkError


@cli.group(context_settings=CONTEXT)
def drift() -> None:
    """Drift detection: measure detectors on a real regime change."""


@drift.command("eval")
@paths_option("--data", "paths", "Ticks before the switch (several files, or a glob).")
@paths_option("--then", "then_paths", "Ticks after the switch: another instrument, venue or day.")
@format_option(required=True)
@click.option("--horizon", type=HorizonType(), default=None, help=HORIZON_HELP)
@click.option(
    "--detector",
    "detectors",
    multiple=True,
    help="Detectors to run (repeat; default: all): gate, break, profile (with "
    "SPARK_DRIFT_PROFILE), psi_confirmed, psi_spread, psi_vol, adwin. See docs/drift.md.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object: delay_ticks and false_alarms_per_100k of the default "
    "detector, and the same per detector under detectors.",
)
@click.option(
    "--pdf",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a PDF: delay and false alarms per detector as bar charts, with targets.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
def drift_eval_command(paths, then_paths, fmt, horizon, detectors, as_json, pdf, progress) -> None:
    """Stream --data, then --then, through the live feature, model and drift code and report,
    per detector, the delay to the first alarm after the switch (ticks and seconds) and the
    false alarms per 100,000 ticks before it."""
    import sys

    from spark.drift.evaluate import drift_eval
    from spark.progress import tick_progress

    settings = learner_settings("logreg", horizon)
    first, then = read_ticks(paths, fmt, None, None), read_ticks(then_paths, fmt, None, None)
    show = sys.stderr.isatty() if progress is None else progress
    try:
        with tick_progress(len(first) + len(then), show, label="drift eval") as advance:
            result = drift_eval(
                first, then, settings, detectors=list(detectors) or None, on_tick=advance
            )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--detector") from None
    if pdf is not None:
        from spark.drift.evaluate import write_eval_pdf

        def names(ps) -> str:
            shown = ", ".join(Path(p).name for p in ps[:2])
            return shown + (f" and {len(ps) - 2} more" if len(ps) > 2 else "")

        write_eval_pdf(result, pdf, f"Drift: {names(paths)} then {names(then_paths)}")
    if as_json:
        print_json(result)
        return
    click.echo(
        f"{result['ticks_before']:,} ticks before the switch, {result['ticks_after']:,} after"
    )
    for name, d in result["detectors"].items():
        delay = (
            "no alarm after the switch"
            if d["delay_ticks"] is None
            else f"delay {d['delay_ticks']:,} ticks ({d['delay_s']:.0f}s)"
        )
        mark = " (default)" if name == result["detector"] else ""
        if name == "gate":
            mark += f": the gate rule {d['watches']}"
        click.echo(
            f"  {name:14} {delay}, {d['false_alarms_per_100k']:.1f} false alarms "
            f"per 100k ticks{mark}"
        )


def _hour(text: str) -> float:
    hour, _, minute = text.partition(":")
    return int(hour) + (int(minute) / 60 if minute else 0.0)


def _session(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        start, end = (t.strip() for t in text.split("-"))
        hours = [_hour(t) for t in (start, end)]
    except (ValueError, IndexError):
        raise click.BadParameter(
            f"{text!r}: give local hours as HH:MM-HH:MM, e.g. 09:30-16:00", param_hint="--session"
        ) from None
    if not 0 <= hours[0] < hours[1] <= 24:
        raise click.BadParameter(
            f"{text!r}: the start must come before the end, within a day", param_hint="--session"
        )
    return hours[0], hours[1]


def _kinds(given: tuple[str, ...]) -> dict[str, list[str]]:
    """--kind NAME=SYMBOL,SYMBOL,... as {name: [symbols]}."""
    out: dict[str, list[str]] = {}
    for text in given:
        name, _, members = text.partition("=")
        symbols = [m.strip() for m in members.split(",") if m.strip()]
        if not name.strip() or not symbols or name.strip() == "*":
            raise click.BadParameter(
                f"{text!r}: give NAME=SYMBOL,SYMBOL, e.g. fx=EURUSD,NZDUSD", param_hint="--kind"
            )
        if name.strip() in out:
            raise click.BadParameter(f"kind {name.strip()} given twice", param_hint="--kind")
        out[name.strip()] = symbols
    return out


def _who(key: str) -> str:
    """An ``unseen`` key as words: a symbol, a shape, or every other instrument."""
    from spark.drift.profile import ANY, PAIR

    if key == ANY:
        return "every other instrument"
    if key.startswith("@"):
        return "every currency pair" if key == PAIR else "every stock ticker"
    return key


def _unseen(given: tuple[str, ...], kinds: tuple[str, ...]) -> dict[str, str]:
    """--unseen KIND, SYMBOL=KIND or @SHAPE=KIND as {symbol, shape or "*": kind}; each kind
    one of --kind's."""
    from spark.drift.profile import ANY, SHAPES

    names = set(_kinds(kinds))
    out: dict[str, str] = {}
    for text in given:
        symbol, _, kind = text.rpartition("=")
        symbol, kind = symbol.strip() or ANY, kind.strip()
        if symbol.startswith("@") and symbol not in SHAPES:
            raise click.BadParameter(
                f"{text!r}: no shape {symbol!r}; shapes: {', '.join(SHAPES)} (a currency pair, "
                "a stock ticker)",
                param_hint="--unseen",
            )
        if kind not in names:
            raise click.BadParameter(
                f"{text!r}: no kind {kind!r} is learnt here; add --kind {kind or 'NAME'}="
                f"SYMBOL,SYMBOL (kinds given: {', '.join(sorted(names)) or 'none'})",
                param_hint="--unseen",
            )
        if symbol in out and out[symbol] != kind:
            what = "every other instrument" if symbol == ANY else _who(symbol)
            raise click.BadParameter(f"{what} given to two kinds", param_hint="--unseen")
        out[symbol] = kind
    return out


def _rollovers(values, groups: dict) -> dict[str, int]:
    """--rollover KIND=MINUTES as {kind: minutes}; each kind one of --kind's."""
    out: dict[str, int] = {}
    for text in values:
        name, _, minutes = text.partition("=")
        name = name.strip()
        try:
            value = int(minutes)
        except ValueError:
            value = -1
        if not name or value < 0:
            raise click.BadParameter(f"{text!r}: give KIND=MINUTES, e.g. fx=90",
                                     param_hint="--rollover")  # fmt: skip
        if name not in groups:
            raise click.BadParameter(f"{text!r}: no kind {name!r} is learnt here; add --kind "
                                     f"{name}=SYMBOL,...", param_hint="--rollover")  # fmt: skip
        out[name] = value
    return out


@drift.command("profile")
@paths_option("--data", "paths", "Earlier days of the instruments: one file per day (LEAN).")
@format_option(required=False)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The profile file to write (JSON); give it to workers as SPARK_DRIFT_PROFILE.",
)
@click.option(
    "--session",
    default=None,
    metavar="HH:MM-HH:MM",
    help="Keep only these local hours of each day (e.g. 09:30-16:00 for US equities' "
    "regular session, as the research measured them). Default: the whole file.",
)
@click.option("--tz", default=None, help="Time zone of --session (default: the file's own).")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    metavar="NAME=SYMBOL,SYMBOL",
    help="Also learn an entry for a kind of market from these instruments' days (repeat "
    "for more kinds), e.g. fx=EURUSD,NZDUSD. It watches instruments the profile has no "
    "days of (see --unseen): their spread and move size against their own recent level, "
    "with limits from these instruments.",
)
@click.option(
    "--unseen",
    multiple=True,
    metavar="KIND | SYMBOL=KIND | @SHAPE=KIND",
    help="Which kind watches an instrument without days here: KIND for every one, "
    "SYMBOL=KIND for one, @pair=KIND for every currency pair (two ISO 4217 codes: EURUSD, "
    "EUR/USD), @ticker=KIND for every stock ticker (BAC, BRK.B) (repeat). An exact symbol "
    "comes first, then its shape, then KIND alone. Default: none is watched by this part.",
)
@click.option(
    "--kinds-only",
    is_flag=True,
    help="Write only the --kind entries, no instrument's own entry: a file for other venues "
    "too (an own entry is learnt on this data's spread levels; a kind's reads each "
    "instrument against its own recent level). The shipped default file is such a file.",
)
@click.option(
    "--rollover",
    "rollovers",
    multiple=True,
    metavar="KIND=MINUTES",
    help="Learn the kind's limits without the FX day's rollover (17:00 New York, from 5 "
    "minutes before to MINUTES after), and mute its symbols' gate rule there (repeat for "
    "more kinds). On the shared data a pair's spread x3 is then seen outside the window, "
    "and the profile part sees no switch inside it. The shipped file has none "
    "(docs/drift.md, sessions 36-37). Default: none.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the profile written.")
def drift_profile_command(paths, fmt, out, session, tz, kinds, unseen, kinds_only, rollovers,
                          as_json) -> None:  # fmt: skip
    """Learn each instrument's time-of-day profile from earlier days, for the gate rule's
    profile part (SPARK_GATE_RULE=break+dt_spread+profile, SPARK_DRIFT_PROFILE=FILE).

    Per instrument and 30-minute bucket of the UTC day: the median of the spread and of the
    move size; per instrument a lower and an upper limit on each, scored leave one day out
    at a budget of 1 alarm per 100k ticks of those days (docs/drift.md, sessions 27-28).
    An instrument needs two days at least; one with fewer is left out and named.

    An instrument seen for the first time has no days to learn from. --kind learns an entry
    for a kind of market from its instruments' days, and --unseen gives new instruments to
    it: e.g. --kind fx=EURUSD,NZDUSD --unseen fx (docs/drift.md, session 30, for what it
    catches and its false alarms), or by shape: --unseen @pair=fx --unseen @ticker=equity.
    A kind's statistics are taken against their own level as it was 1,000 ticks before, and
    its limits are learnt without the US payrolls release windows of the days given, as
    workers mute those (SPARK_DRIFT_RELEASES; docs/drift.md, session 35), and, with
    --rollover fx=90, without the FX day's rollover, in which workers then mute its
    symbols too (session 36).

    Workers run a shipped file of kinds only by default (SPARK_DRIFT_PROFILE=bundled:
    fx and stock entries from this project's train days, docs/drift.md, session 31)."""
    from spark.drift.profile import build, build_kind, days_from_files

    groups, assigned = _kinds(kinds), _unseen(unseen, kinds)
    after = _rollovers(rollovers, groups)
    if kinds_only and not groups:
        raise click.UsageError("--kinds-only writes the --kind entries only: give --kind")
    days = days_from_files(paths, fmt, _session(session), tz)
    profile = build({} if kinds_only else days)
    for name, members in groups.items():
        lacking = [m for m in members if m not in days]
        if lacking:
            raise click.BadParameter(
                f"kind {name}: no days of {', '.join(lacking)} in the data (it has: "
                f"{', '.join(sorted(days)) or 'no instrument'})",
                param_hint="--kind",
            )
        try:
            profile.kinds[name] = build_kind({m: days[m] for m in members}, profile.locked,
                                             rollover=after.get(name, 0))  # fmt: skip
        except SparkError as exc:
            raise click.BadParameter(f"kind {name}: {exc}", param_hint="--kind") from None
    profile.unseen = assigned
    out.parent.mkdir(parents=True, exist_ok=True)
    profile.save(out)
    left_out = [] if kinds_only else sorted(set(days) - set(profile.symbols))
    if as_json:
        print_json({**profile.as_dict(), "path": str(out), "left_out": left_out})
        return
    click.echo(f"wrote {out}: {len(profile.symbols)} instrument(s)")
    extra = math.log(profile.margin)  # the alarm levels: the limits widened by the margin
    for name, (_, limits) in sorted(profile.symbols.items()):
        click.echo(
            f"  {name:10} {len(profile.days[name])} days; alarms (log units about the "
            f"profile, held {profile.hold:,} ticks) on the spread below "
            f"{limits[2] - extra:+.3f} or above {limits[0] + extra:+.3f}, on the move size "
            f"below {limits[3] - extra:+.3f} or above {limits[1] + extra:+.3f}"
        )
    for name in left_out:
        click.echo(f"  {name:10} left out: {len(days[name])} day(s); two are needed")
    for name in sorted(set(profile.unseen) & set(profile.symbols)):
        click.echo(
            f"  {name:10} has its own days here, so its own entry watches it, not "
            f"--unseen {name}={profile.unseen[name]}"
        )
    for name, k in sorted(profile.kinds.items()):
        extra = math.log(k.margin)
        watched = [s for s, kind in sorted(profile.unseen.items()) if kind == name]
        who = ", ".join(_who(s) for s in watched)
        click.echo(
            f"  kind {name}: {k.days} days of {', '.join(k.instruments)}; alarms (log units "
            f"about its own level over {k.slow:,.0f} ticks, held {k.hold:,}) on the spread "
            f"below {k.limits[2] - extra:+.3f} or above {k.limits[0] + extra:+.3f}, on the "
            f"move size below {k.limits[3] - extra:+.3f} or above {k.limits[1] + extra:+.3f}; "
            f"watches: {who or 'nothing (see --unseen)'}"
            + (
                f"; muted from 16:55 New York for {k.rollover + 5} minutes (rollover)"
                if k.rollover
                else ""
            )  # fmt: skip
        )
    if not profile.symbols and not profile.kinds:
        raise click.ClickException("no instrument has two days: nothing to profile")
