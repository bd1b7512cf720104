"""Spark: a streaming trading-signal platform on Kafka (README.md, docs/)."""

from __future__ import annotations

import hashlib
from pathlib import Path

STAMP = "numba-sources"


def fresh_numba_cache(root: Path | None = None) -> bool:
    """Drop numba's cached machine code under ``root`` (the package) when any compiled
    module's source changed; True if it dropped any.

    Numba keys a cached function by its own file's timestamp only. The tick loop in
    ``spark.pipeline.core`` inlines ``spark.features.kernel.update``: after an edit of the
    kernel alone (a ``git pull`` in an editable install), the loop would load the old
    kernel's code from its cache and write rows of the old width, silently. One hash over
    every module that uses numba, kept beside the caches, catches that. Unwritable
    locations (a read-only install) are left alone.
    """
    root = root or Path(__file__).resolve().parent
    try:
        digest = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            source = path.read_bytes()
            if b"numba" in source:
                digest.update(path.relative_to(root).as_posix().encode() + b"\0" + source)
        stamp = root / "__pycache__" / STAMP
        if stamp.is_file() and stamp.read_text() == digest.hexdigest():
            return False
        dropped = False
        for cached in root.rglob("__pycache__/*.nb[ic]"):
            cached.unlink(missing_ok=True)
            dropped = True
        stamp.parent.mkdir(exist_ok=True)
        stamp.write_text(digest.hexdigest())
        return dropped
    except OSError:
        return False


fresh_numba_cache()
