"""Avro contracts of every catalog topic, and their released versions.

``<Name>.avsc`` is the current contract. ``history/<Name>/v<N>.avsc`` are the
versions released before; ``spark schemas check`` proves the current one can
read data written with every one of them (BACKWARD compatibility), and
``spark schemas release`` records the current one as the next version.

>>> from spark.schemas import load_current
>>> load_current("Tick")["name"]
'Tick'
"""

from __future__ import annotations

import json
import re
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


def _root() -> Traversable:
    return resources.files(__package__)


def schema_names() -> list[str]:
    """Names of all current schemas (file stems), sorted."""
    return sorted(p.name[: -len(".avsc")] for p in _root().iterdir() if p.name.endswith(".avsc"))


def load_current(name: str) -> dict:
    """The current contract ``name`` as a JSON object (not yet parsed by fastavro)."""
    path = _root().joinpath(f"{name}.avsc")
    if not path.is_file():
        raise KeyError(f"no schema {name!r}; known: {', '.join(schema_names())}")
    return json.loads(path.read_text())


def released_versions(name: str) -> list[tuple[int, dict]]:
    """``(version, schema)`` of every released version of ``name``, oldest first."""
    folder = _root().joinpath("history", name)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        match = _VERSION_FILE.match(p.name)
        if match:
            found.append((int(match.group(1)), json.loads(p.read_text())))
    return sorted(found, key=lambda item: item[0])


def history_dir() -> Path:
    """Filesystem path of the history folder (for ``spark schemas release`` in a checkout)."""
    return Path(str(_root().joinpath("history")))
