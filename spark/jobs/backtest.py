"""Backtest jobs: a JobRequest's parameters checked, run, and turned into a JobResult.

Parameters (``params_json`` of a JobRequest, or the CLI's options), docs/jobs.md:

* data: ``data`` (list of file paths, required), ``format`` (default lean-quote),
  ``symbol`` (for formats that need it), ``tz`` (of LEAN times), ``limit`` (first N
  valid ticks), ``window`` (``[a, b, m]``: only the ticks from cut a to cut b of m
  windows of equal tick count, cut i at ``round(i * n / m)`` of the n valid ticks: how a
  walk-forward sweep fanned out names a child's train or test window; its metrics then
  carry ``window_ticks``, ``window_first_ts`` and ``window_last_ts``);
* strategy: every field of ``spark.backtest.engine.BacktestParams``;
* ``variants`` (what a fanned-out sweep sends a child, ``spark.jobs.fanout``): a list of
  more strategies (each a JSON object of ``BacktestParams`` fields, at most
  ``MAX_VARIANTS``) run over the same ticks, those that share the model in one model run
  (``run_grouped``); the metrics add variant j's (from 1) as ``variant<j>.<name>``, and
  every ``seconds`` is its share of its model run.

Paths must resolve inside an allowed data folder: ``SPARK_DATA_DIRS``
(os.pathsep-separated), else the bundled sample data and ``$SPARK_HOME/data``,
so whoever can write the request topic cannot make a worker read any file.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from spark.backtest.engine import BacktestParams, InvalidParams, run_backtest, run_grouped
from spark.config import spark_home
from spark.errors import SparkError
from spark.export.reports import create_new, write_report
from spark.pipeline.batch import TickBatch
from spark.ticks.columns import read_batch
from spark.ticks.readers import FORMATS

DATA_KEYS = ("data", "format", "symbol", "tz", "limit", "window")
VARIANTS = "variants"  # more strategies over the same ticks (a sweep's child)
MAX_VARIANTS = 64
MAX_WINDOWS = 1000  # m of a window [a, b, m]
MIN_WINDOW_TICKS = 100  # fewer ticks in a window of a walk-forward fail it


def cut(n: int, i: int, m: int) -> int:
    """Where cut i of m windows of equal count falls in n ticks (walk-forward windows)."""
    return round(i * n / m)


def check_window(window) -> list[int] | None:
    """``[a, b, m]`` with 0 <= a < b <= m <= MAX_WINDOWS; InvalidParams says what is wrong."""
    if window is None:
        return None
    ok = (
        isinstance(window, list)
        and len(window) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) for v in window)
    )
    if not ok or not 0 <= window[0] < window[1] <= window[2] <= MAX_WINDOWS:
        raise InvalidParams(
            f"window must be [a, b, m] with 0 <= a < b <= m <= {MAX_WINDOWS}, not {window!r}"
        )
    return list(window)


OUTPUTS = ("json", "csv", "xlsx", "pdf")  # export jobs: the report's file format


def data_roots() -> list[Path]:
    raw = os.environ.get("SPARK_DATA_DIRS")
    if raw:
        return [Path(p).resolve() for p in raw.split(os.pathsep) if p]
    bundled = Path(__file__).resolve().parent.parent / "data"
    return [bundled, (spark_home() / "data").resolve()]


def check_request(params: dict, restrict: bool = True) -> tuple[dict, BacktestParams]:
    """(data spec, strategy params) of a backtest request; InvalidParams names the problem.

    ``restrict``: paths must be inside ``data_roots()`` (requests from a topic); the CLI
    running on the user's own machine passes False.
    """
    if not isinstance(params, dict):
        raise InvalidParams("parameters must be a JSON object")
    data = {k: params[k] for k in DATA_KEYS if k in params}
    strategy = BacktestParams.from_dict(
        {k: v for k, v in params.items() if k not in DATA_KEYS and k != VARIANTS}
    )
    variants_of(params)
    paths = data.get("data")
    if isinstance(paths, str):
        paths = [paths]
    if not paths or not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise InvalidParams('"data" must be a file path or a list of them')
    roots = data_roots()
    resolved = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if restrict and not any(path.is_relative_to(root) for root in roots):
            allowed = os.pathsep.join(str(r) for r in roots)
            raise InvalidParams(f"{raw} is outside the data folders ({allowed}; SPARK_DATA_DIRS)")
        if not path.is_file():
            raise InvalidParams(f"no such file: {raw}")
        resolved.append(str(path))
    fmt = data.get("format", "lean-quote")
    if fmt not in FORMATS:
        raise InvalidParams(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    limit = data.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidParams(f"limit must be a whole number >= 1, not {limit!r}")
    symbol, tz = data.get("symbol"), data.get("tz")
    for name, value in (("symbol", symbol), ("tz", tz)):
        if value is not None and not isinstance(value, str):
            raise InvalidParams(f"{name} must be a string, not {value!r}")
    spec = {"data": resolved, "format": fmt, "symbol": symbol, "tz": tz, "limit": limit}
    window = check_window(data.get("window"))
    if window is not None:
        spec["window"] = window
    return spec, strategy


def variants_of(params: dict) -> list[BacktestParams]:
    """The checked ``variants`` of a backtest request (none: []); InvalidParams names the
    first wrong one."""
    given = params.get(VARIANTS)
    if given is None:
        return []
    if not isinstance(given, list) or not given or len(given) > MAX_VARIANTS:
        raise InvalidParams(
            f'"{VARIANTS}" must be a list of 1 to {MAX_VARIANTS} objects of strategy parameters'
        )
    out = []
    for j, variant in enumerate(given, 1):
        if isinstance(variant, dict) and (set(variant) & {*DATA_KEYS, VARIANTS}):
            raise InvalidParams(f"variant {j}: only strategy parameters, not the data")
        try:
            out.append(BacktestParams.from_dict(variant))
        except InvalidParams as exc:
            raise InvalidParams(f"variant {j}: {exc}") from None
    return out


DEFAULT_MAX_ROWS = 50_000_000


DEFAULT_MAX_BYTES = 500_000_000  # reading costs 10-14 bytes of memory a byte: ~5-7 GB


def _cap(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw.strip() else default
    except ValueError:
        raise SparkError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 0:
        raise SparkError(f"{name} must be >= 0, not {value}")
    return value


def job_max_rows() -> int:
    """``SPARK_JOB_MAX_ROWS``: most valid ticks a job from a topic may run on (0: no cap)."""
    return _cap("SPARK_JOB_MAX_ROWS", DEFAULT_MAX_ROWS)


def job_max_bytes() -> int:
    """``SPARK_JOB_MAX_BYTES``: most uncompressed bytes of data files a job from a topic
    may read (0: no cap), checked before reading: reading holds the bytes in memory."""
    return _cap("SPARK_JOB_MAX_BYTES", DEFAULT_MAX_BYTES)


def data_bytes(paths: list[str], cap: int) -> int:
    """Uncompressed bytes of the files (a zip's first member as its directory declares it,
    which the reader holds to; a gzip counted by decompressing, stopping past ``cap``)."""
    import gzip

    from spark.ticks.readers import LineSource

    total = 0
    for raw in paths:
        path = Path(raw)
        if path.suffix == ".gz" and not zipfile.is_zipfile(path):
            try:
                with gzip.open(path, "rb") as fh:
                    while total <= cap and (chunk := fh.read(1 << 20)):
                        total += len(chunk)
            except (OSError, EOFError) as exc:
                raise SparkError(f"cannot read {path}: {exc}") from None
        else:
            total += LineSource(path).size
        if total > cap:
            break
    return total


def load_ticks(data: dict, cap: int | None = None, max_bytes: int | None = None) -> TickBatch:
    """The valid ticks a checked data spec names, in time order, as columns.

    ``cap`` (jobs from a topic: ``job_max_rows()``): more valid ticks than that, after
    ``limit``, fail the job with the count and what to do, instead of running for hours.
    ``max_bytes`` (jobs from a topic: ``job_max_bytes()``): files holding more than that
    uncompressed fail the job before they are read.
    """
    if max_bytes:
        size = data_bytes(data["data"], max_bytes)
        if size > max_bytes:
            raise SparkError(
                f"the data files hold over {size:,} bytes uncompressed, over this worker's cap "
                f"of {max_bytes:,}: name fewer files, or raise SPARK_JOB_MAX_BYTES on the workers"
            )
    batch, _rejected = read_batch(
        [Path(p) for p in data["data"]], data["format"], data["symbol"], data["tz"]
    )
    if data["limit"]:
        batch = batch.take(0, data["limit"])
    if cap and len(batch) > cap:
        raise SparkError(
            f"the data holds {len(batch):,} valid ticks, over this worker's cap of {cap:,}: "
            "pass a smaller limit, or raise SPARK_JOB_MAX_ROWS on the workers"
        )
    window = data.get("window")
    if window is not None:
        a, b, m = window
        if len(batch) < MIN_WINDOW_TICKS * m:
            raise SparkError(
                f"{len(batch):,} ticks are too few for {m} windows (at least "
                f"{MIN_WINDOW_TICKS} each): fewer folds or more data"
            )
        batch = batch.take(cut(len(batch), a, m), cut(len(batch), b, m))
    return batch


def run_request(
    params: dict,
    report: Path | None = None,
    restrict: bool = True,
    on_tick=None,
    records: Path | None = None,
) -> dict:
    """Run a backtest request; a dict with ``metrics``, ``summary`` and ``artifact_uri``
    (the report with equity curve and fills written to ``report``, if given, in the
    format of its extension: json, csv, xlsx or pdf).

    Raises InvalidParams for bad parameters and SparkError for unreadable data.
    """
    data, strategy = check_request(params, restrict)
    variants = variants_of(params)
    if variants and records is not None:
        raise InvalidParams(f'"{VARIANTS}" and records cannot go together')
    ticks = load_ticks(data, *((job_max_rows(), job_max_bytes()) if restrict else ()))
    progress = None if on_tick is None else (lambda done: on_tick(done, len(ticks)))
    others = []
    if variants:
        result, *others = run_grouped(ticks, [strategy, *variants], on_tick=progress)
    elif records is None:
        result = run_backtest(ticks, strategy, on_tick=progress)
    else:  # every record, one JSON object a line: {"topic", "row", "record"}
        with open(records, "w") as out:

            def write(chunk: list) -> None:
                out.writelines(
                    json.dumps({"topic": t, "row": int(ticks.offset[i]), "record": rec}) + "\n"
                    for i, t, rec in chunk
                )

            result = run_backtest(ticks, strategy, on_tick=progress, on_records=write)
    if result.ticks == 0:
        names = ", ".join(Path(p).name for p in data["data"])
        raise SparkError(
            f"no valid ticks in {names} as {data['format']}: check the format (and --symbol)"
        )
    summary = result.summary() | {"data": data}
    metrics = result.metrics()
    for j, other in enumerate(others, 1):
        metrics |= {f"variant{j}.{k}": v for k, v in other.metrics().items()}
    if data.get("window") is not None:  # which ticks the window held, for the sweep's report
        metrics |= {
            "window_ticks": float(len(ticks)),
            "window_first_ts": float(ticks.ts[0]),
            "window_last_ts": float(ticks.ts[-1]),
        }
    artifact = None
    if report is not None:  # the format by the file's extension: json, csv, xlsx or pdf
        full = summary | {"equity_curve": result.equity_curve, "trades": result.trades}
        # from a topic (restrict): never over another report, never through a link
        artifact = write_report(full, report, exclusive=restrict).resolve().as_uri()
    return {"metrics": metrics, "summary": summary, "artifact_uri": artifact}


TOPIC_KEYS = ("topic", "output", "from", "to", "symbols", "fields")


def check_topic_export(params: dict) -> dict:
    """A topic export request (``spark.export.topic``): ``topic`` (catalog id or name),
    ``output`` (csv, xlsx, parquet, pdf), optional ``from``/``to`` (event time, µs or ISO-8601),
    ``symbols`` and ``fields`` (lists of strings). The checked parameters."""
    from spark.export.topic import OUTPUTS as TOPIC_OUTPUTS
    from spark.export.topic import columns_of, parse_time
    from spark.topics import catalog

    unknown = sorted(set(params) - set(TOPIC_KEYS))
    if unknown:
        raise InvalidParams(f"a topic export takes {', '.join(TOPIC_KEYS)}, not {unknown[0]!r}")
    try:
        spec = catalog().resolve(params["topic"]) if isinstance(params["topic"], str) else None
    except KeyError as exc:
        raise InvalidParams(exc.args[0]) from None
    if spec is None:
        raise InvalidParams('"topic" must be a catalog topic id or name')
    try:
        columns_of(spec)
    except SparkError as exc:
        raise InvalidParams(str(exc)) from None
    output = params.get("output", "csv")
    if not isinstance(output, str) or output not in TOPIC_OUTPUTS:
        raise InvalidParams(f"output must be one of {', '.join(TOPIC_OUTPUTS)}, not {output!r}")
    checked = {"topic": spec.id, "output": output}
    for key in ("from", "to"):
        value = params.get(key)
        if value is None:
            checked[key] = None
        elif isinstance(value, int) and not isinstance(value, bool):
            checked[key] = value
        elif isinstance(value, str):
            try:
                checked[key] = parse_time(value)
            except SparkError as exc:
                raise InvalidParams(str(exc)) from None
        else:
            raise InvalidParams(f"{key} must be µs since the epoch or ISO-8601, not {value!r}")
    for key in ("symbols", "fields"):
        value = params.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidParams(f"{key} must be a list of strings")
        checked[key] = value
    known = {name for name, _ in columns_of(spec)}
    if any(f not in known for f in checked["fields"]):
        raise InvalidParams(f"fields must be among {', '.join(sorted(known))}")
    return checked


def run_topic_export(params: dict, report: Path) -> dict:
    """A topic export on a worker: the file goes next to the job's report, created new
    (never over another file, never through a link)."""
    from spark.export.topic import export_topic
    from spark.topics import catalog

    checked = check_topic_export(params)
    path = report.with_suffix(f".{checked['output']}")
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(create_new(path))  # the name reserved as for reports; the writer fills it
    result = export_topic(
        catalog()[checked["topic"]],
        path,
        start_us=checked["from"],
        end_us=checked["to"],
        symbols=tuple(checked["symbols"]),
        fields=tuple(checked["fields"]),
    )
    metrics = {
        "read": float(result.read),
        "exported": float(result.exported),
        "skipped": float(sum(result.skipped.values())),
        "bytes": float(result.bytes),
        "seconds": result.seconds,
    }
    return {"metrics": metrics, "artifact_uri": path.resolve().as_uri()}


def check_export(params: dict, restrict: bool = True) -> tuple[dict, BacktestParams, str]:
    """An export request: a backtest's parameters plus ``output`` (json, csv, xlsx, pdf),
    or a topic export (``topic``: ``check_topic_export``)."""
    if not isinstance(params, dict):
        raise InvalidParams("parameters must be a JSON object")
    if "topic" in params:
        return {}, BacktestParams(), check_topic_export(params)["output"]
    output = params.get("output", "xlsx")
    if output not in OUTPUTS:
        raise InvalidParams(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
    data, strategy = check_request({k: v for k, v in params.items() if k != "output"}, restrict)
    return data, strategy, output


def run_export(params: dict, report: Path, restrict: bool = True) -> dict:
    """Run the backtest of an export request and write its report as ``output``, or export
    a topic."""
    if isinstance(params, dict) and "topic" in params:
        return run_topic_export(params, report)
    _data, _strategy, output = check_export(params, restrict)
    rest = {k: v for k, v in params.items() if k != "output"}
    return run_request(rest, report.with_suffix(f".{output}"), restrict)
