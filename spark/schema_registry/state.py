"""The Schema Registry's state: a pure replay of its event log, and the checks before a write.

Events are JSON objects appended to one partition (``spark.schema_registry.log``):

* ``{"op": "register", "subject", "id", "schema"}``: a new version of ``subject``
  (no-op if the subject already has ``id`` as a live version);
* ``{"op": "delete_version", "subject", "version", "permanent"}``;
* ``{"op": "delete_subject", "subject", "permanent"}``;
* ``{"op": "config", "subject" (null = global), "compatibility" (null = remove)}``.

Version numbers are not in the events: they follow from the order of the log, so every
process replaying the same log agrees on them. Ids are content-derived
(``spark.serde.registry.schema_id``), so they need no coordination either.
``RegistryError`` carries Confluent's HTTP status and error code.

>>> st = State()
>>> text = '{"type": "record", "name": "T", "fields": [{"name": "a", "type": "int"}]}'
>>> ev = st.register_event("t-value", text)
>>> st.apply(ev)
>>> st.version("t-value", "latest")["version"], st.register_event("t-value", text) is None
(1, True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from avro.schema import parse as avro_parse

from spark.serde.registry import parse, schema_id

LEVELS = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)
DEFAULT_LEVEL = "BACKWARD"


class RegistryError(Exception):
    """An answer other than success: HTTP status, Confluent error code, message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def subject_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


@dataclass
class Version:
    version: int
    id: int
    deleted: bool = False


@dataclass
class State:
    schemas: dict[int, str] = field(default_factory=dict)  # id -> text first registered
    subjects: dict[str, list[Version]] = field(default_factory=dict)
    global_level: str = DEFAULT_LEVEL
    subject_levels: dict[str, str] = field(default_factory=dict)
    applied: int = 0  # events replayed
    protected: dict[str, set[int]] = field(default_factory=dict)  # see protect()

    # --- replay -----------------------------------------------------------------------------
    def apply(self, event: dict) -> None:
        """Fold one event into the state. Never raises on a well-formed event that no
        longer applies (e.g. deleting what another server deleted first): the log wins."""
        self.applied += 1
        op, subject = event.get("op"), event.get("subject")
        if op == "register":
            sid = int(event["id"])
            self.schemas.setdefault(sid, event["schema"])
            versions = self.subjects.setdefault(subject, [])
            if any(v.id == sid and not v.deleted for v in versions):
                return
            versions.append(Version(max((v.version for v in versions), default=0) + 1, sid))
        elif op == "delete_version":
            versions = self.subjects.get(subject, [])
            for v in list(versions):
                if v.version == event["version"]:
                    if event.get("permanent"):
                        versions.remove(v)
                    else:
                        v.deleted = True
            if not versions:
                self.subjects.pop(subject, None)
        elif op == "delete_subject":
            if event.get("permanent"):
                self.subjects.pop(subject, None)
                self.subject_levels.pop(subject, None)
            else:
                for v in self.subjects.get(subject, []):
                    v.deleted = True
        elif op == "config":
            level = event.get("compatibility")
            if subject is None:
                self.global_level = level or DEFAULT_LEVEL
            elif level is None:
                self.subject_levels.pop(subject, None)
            else:
                self.subject_levels[subject] = level

    # --- reads ------------------------------------------------------------------------------
    def live(self, subject: str, deleted: bool = False) -> list[Version]:
        return [v for v in self.subjects.get(subject, []) if deleted or not v.deleted]

    def subject_names(self, deleted: bool = False) -> list[str]:
        return sorted(s for s in self.subjects if self.live(s, deleted))

    def level(self, subject: str | None) -> str:
        if subject is not None and subject in self.subject_levels:
            return self.subject_levels[subject]
        return self.global_level

    def find(self, subject: str, version: str | int, deleted: bool = False) -> Version:
        """One version of ``subject`` ("latest", "-1" or a number), Confluent's errors."""
        if not self.live(subject, deleted=True):
            raise subject_not_found(subject)
        versions = self.live(subject, deleted)
        if not versions:
            raise RegistryError(404, 40404, f"Subject '{subject}' was soft deleted.")
        if str(version) in ("latest", "-1"):
            return versions[-1]
        try:
            number = int(version)
        except ValueError:
            number = 0
        if number < 1:
            raise RegistryError(
                422,
                42202,
                "The specified version '"
                f"{version}' is not a valid version id. Allowed values are between "
                '[1, 2^31-1] and the string "latest"',
            )
        for v in versions:
            if v.version == number:
                return v
        raise RegistryError(404, 40402, f"Version {number} not found.")

    def version(self, subject: str, version: str | int, deleted: bool = False) -> dict:
        v = self.find(subject, version, deleted)
        return {
            "subject": subject,
            "version": v.version,
            "id": v.id,
            "schema": self.schemas[v.id],
        }

    def subjects_of(self, sid: int, deleted: bool = False) -> list[dict]:
        return [
            {"subject": s, "version": v.version}
            for s in sorted(self.subjects)
            for v in self.live(s, deleted)
            if v.id == sid
        ]

    # --- writes: checks, then the event to append -------------------------------------------
    def register_event(self, subject: str, text: str, schema_type: str = "AVRO") -> dict | None:
        """The event that registers ``text`` under ``subject``; None if it already is a live
        version there. RegistryError 42201 (invalid) or 409 (incompatible)."""
        parsed, canonical_id = validate(text, schema_type)
        if any(v.id == canonical_id for v in self.live(subject)):
            return None
        problems = self.incompatibilities(subject, parsed, self.level(subject))
        if problems:
            raise RegistryError(
                409,
                409,
                "Schema being registered is incompatible with an earlier schema for subject "
                f'"{subject}", details: {problems}',
            )
        return {"op": "register", "subject": subject, "id": canonical_id, "schema": text}

    def lookup(self, subject: str, text: str, schema_type: str = "AVRO", deleted=False) -> dict:
        """POST /subjects/{subject}: the version of ``subject`` holding this schema."""
        if not self.live(subject, deleted=True):
            raise subject_not_found(subject)
        _parsed, sid = validate(text, schema_type)
        for v in self.live(subject, deleted):
            if v.id == sid:
                return self.version(subject, v.version, deleted=True)
        raise RegistryError(404, 40403, "Schema not found")

    def incompatibilities(
        self, subject: str, parsed: dict, level: str, against: Version | None = None
    ) -> list[str]:
        """Why ``parsed`` may not follow ``subject``'s live versions under ``level``
        (or only ``against``, one version, when given); [] when it may."""
        from spark.serde.compat import incompatibilities

        if level == "NONE":
            return []
        versions = [against] if against is not None else self.live(subject)
        if not versions:
            return []
        if against is None and not level.endswith("_TRANSITIVE"):
            versions = versions[-1:]
        base = level.removesuffix("_TRANSITIVE")
        problems: list[str] = []
        for v in versions:
            old = json.loads(self.schemas[v.id])
            if base in ("BACKWARD", "FULL"):
                problems += incompatibilities(reader=parsed, writer=old)
            if base in ("FORWARD", "FULL"):
                problems += incompatibilities(reader=old, writer=parsed)
        return problems

    def protect(self, subject: str, ids: set[int]) -> None:
        """Versions with these ids under ``subject`` cannot be deleted (the catalog's
        contracts: stock readers of our topics look them up by subject)."""
        self.protected.setdefault(subject, set()).update(ids)

    def _refuse_protected(self, subject: str, versions: list[Version]) -> None:
        held = [v.version for v in versions if v.id in self.protected.get(subject, ())]
        if held:
            raise RegistryError(
                422,
                42205,
                f"Operation not permitted: versions {held} of subject '{subject}' are the "
                "contract of a catalog topic (schemas/); change the contract there instead",
            )

    def delete_version_event(self, subject: str, version: str, permanent: bool) -> tuple[dict, int]:
        v = self.find(subject, version, deleted=permanent)
        self._refuse_protected(subject, [v])
        if permanent and not v.deleted:
            raise RegistryError(
                404,
                40407,
                f"Subject '{subject}' Version {v.version} was not deleted first before "
                "being permanently deleted",
            )
        if not permanent and v.deleted:
            raise RegistryError(
                404, 40406, f"Subject '{subject}' Version {v.version} was soft deleted."
            )
        event = {"op": "delete_version", "subject": subject, "version": v.version}
        return {**event, "permanent": permanent}, v.version

    def delete_subject_event(self, subject: str, permanent: bool) -> tuple[dict, list[int]]:
        everything = self.live(subject, deleted=True)
        if not everything:
            raise subject_not_found(subject)
        self._refuse_protected(subject, everything)
        live = self.live(subject)
        if permanent and live:
            raise RegistryError(
                404,
                40405,
                f"Subject '{subject}' was not deleted first before being permanently deleted",
            )
        if not permanent and not live:
            raise RegistryError(404, 40404, f"Subject '{subject}' was soft deleted.")
        versions = [v.version for v in (everything if permanent else live)]
        return {"op": "delete_subject", "subject": subject, "permanent": permanent}, versions


def validate(text: Any, schema_type: str = "AVRO") -> tuple[dict, int]:
    """(schema JSON, content-derived id) of a schema text; RegistryError 42201 if invalid."""
    if schema_type != "AVRO":
        raise RegistryError(
            422, 42201, f"Invalid schema: schema type {schema_type} is not supported (AVRO only)"
        )
    if not isinstance(text, str):
        raise RegistryError(422, 42201, "Invalid schema: 'schema' must be a string")
    try:
        parsed = json.loads(text)
        parse(parsed)
        avro_parse(text)  # Apache Avro is stricter (duplicate fields, bad defaults)
        return parsed, schema_id(parsed)
    except Exception as exc:  # json and fastavro raise several types
        raise RegistryError(422, 42201, f"Invalid schema {text[:200]}: {exc}") from None
