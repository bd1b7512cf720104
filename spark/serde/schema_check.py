"""``spark schemas check`` and ``release``: contracts parse, and evolve BACKWARD compatibly."""

from __future__ import annotations

import json

from spark import schemas
from spark.serde.compat import backward_incompatibilities
from spark.serde.registry import EmbeddedRegistry, parse
from spark.topics import catalog


def check_all() -> tuple[list[str], list[str]]:
    """(problems, summary lines) over every schema and its released versions."""
    problems: list[str] = []
    summary: list[str] = []
    names = schemas.schema_names()
    for name in names:
        try:
            current = schemas.load_current(name)
            parse(current)
        except Exception as exc:  # noqa: BLE001 - report every kind of parse failure
            problems.append(f"{name}.avsc does not parse: {exc}")
            continue
        if current.get("name") != name:
            problems.append(f"{name}.avsc defines record {current.get('name')!r}, not {name!r}")
        released = schemas.released_versions(name)
        if not released:
            summary.append(f"{name:16} new (not released yet)")
            continue
        for version, old in released:
            for reason in backward_incompatibilities(current, old):
                problems.append(f"{name} cannot read data written with v{version}: {reason}")
        latest = released[-1][0]
        changed = _normalized(current) != _normalized(released[-1][1])
        summary.append(
            f"{name:16} v{latest}{' + unreleased changes' if changed else ''}, "
            f"checked against {len(released)} released version(s)"
        )
    for spec in catalog().values():
        if not (spec.is_raw or spec.is_json) and spec.value not in names:
            problems.append(f"topic {spec.name} names schema {spec.value!r}, which does not exist")
    if not problems:
        try:
            EmbeddedRegistry()
        except RuntimeError as exc:
            problems.append(str(exc))
    return problems, summary


def _normalized(schema: dict) -> str:
    return json.dumps(schema, sort_keys=True)


def release() -> list[str]:
    """Write each changed or new schema as its next version; return the files written."""
    written = []
    root = schemas.history_dir()
    for name in schemas.schema_names():
        current = schemas.load_current(name)
        released = schemas.released_versions(name)
        if released and _normalized(released[-1][1]) == _normalized(current):
            continue
        version = released[-1][0] + 1 if released else 1
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"v{version}.avsc"
        path.write_text(json.dumps(current, indent=2) + "\n")
        written.append(str(path))
    return written
