import copy
import json

import pytest
from click.testing import CliRunner

from spark import schemas
from spark.cli import cli
from spark.serde.compat import backward_incompatibilities
from spark.serde.registry import parse


@pytest.mark.parametrize("name", schemas.schema_names())
def test_schema_parses_and_documents_every_field(name):
    schema = schemas.load_current(name)
    parse(schema)
    assert schema["doc"]
    for field in schema["fields"]:
        assert field.get("doc"), f"{name}.{field['name']} has no doc"
        ftype = field["type"]
        is_time = isinstance(ftype, dict) and ftype.get("logicalType", "").startswith("timestamp")
        if field["name"] in ("ts", "since", "created", "started", "finished"):
            assert is_time, f"{name}.{field['name']} should be timestamp-micros"
        if isinstance(ftype, list) and "null" in ftype:
            assert ftype[0] == "null" and field.get("default", "missing") is None, (
                f"{name}.{field['name']}: optional fields default to null"
            )


def test_every_schema_is_released():
    for name in schemas.schema_names():
        assert schemas.released_versions(name), f"{name} has no released version"


def test_spark_schemas_check_passes_on_this_repo():
    result = CliRunner().invoke(cli, ["schemas", "check"])
    assert result.exit_code == 0, result.output
    assert "BACKWARD compatible" in result.output


TICK_V1 = dict(schemas.released_versions("Tick")[0][1])


def _with_fields(schema, fields):
    changed = copy.deepcopy(schema)
    changed["fields"] = fields
    return changed


def test_adding_an_optional_field_is_backward_compatible():
    new = _with_fields(
        TICK_V1,
        TICK_V1["fields"]
        + [{"name": "seq", "type": ["null", "long"], "default": None, "doc": "x"}],
    )
    assert backward_incompatibilities(new, TICK_V1) == []


def test_adding_a_required_field_is_not():
    new = _with_fields(TICK_V1, TICK_V1["fields"] + [{"name": "seq", "type": "long"}])
    assert backward_incompatibilities(new, TICK_V1) == [
        "/fields/10: reader field missing default value (seq)"
    ]


def test_narrowing_a_type_is_not():
    fields = [dict(f, type="float") if f["name"] == "bid" else f for f in TICK_V1["fields"]]
    problems = backward_incompatibilities(_with_fields(TICK_V1, fields), TICK_V1)
    assert problems and "reader type: float not compatible with writer type: double" in problems[0]


def test_promotions_and_enum_rules():
    old = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "n", "type": "int"},
            {"name": "side", "type": {"type": "enum", "name": "S", "symbols": ["A", "B"]}},
        ],
    }
    widened = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "n", "type": "double"},
            {"name": "side", "type": {"type": "enum", "name": "S", "symbols": ["A", "B", "C"]}},
        ],
    }
    assert backward_incompatibilities(widened, old) == []
    dropped = copy.deepcopy(widened)
    dropped["fields"][1]["type"]["symbols"] = ["A"]
    assert backward_incompatibilities(dropped, old) == [
        "/fields/1/type/symbols: missing enum symbols ({'B'})"
    ]
    dropped["fields"][1]["type"]["default"] = "A"
    assert backward_incompatibilities(dropped, old) == []


def test_union_must_cover_every_writer_branch():
    old = {"type": "record", "name": "R", "fields": [{"name": "x", "type": ["null", "string"]}]}
    new = {"type": "record", "name": "R", "fields": [{"name": "x", "type": "string"}]}
    assert backward_incompatibilities(new, old) == [
        "/: type mismatch (reader type: string not compatible with writer type: null)"
    ]
    assert backward_incompatibilities(old, new) == []


def test_check_fails_on_a_breaking_change(tmp_path, monkeypatch):
    """`spark schemas check` exits 1 when the current schema cannot read a released one."""
    import shutil

    import spark.schemas as pkg

    root = tmp_path / "schemas"
    shutil.copytree(pkg.history_dir().parent, root)
    tick = json.loads((root / "Tick.avsc").read_text())
    tick["fields"].append({"name": "seq", "type": "long", "doc": "breaks old data"})
    (root / "Tick.avsc").write_text(json.dumps(tick))
    monkeypatch.setattr(pkg, "_root", lambda: root)
    result = CliRunner().invoke(cli, ["schemas", "check"])
    assert result.exit_code == 1
    assert "Tick cannot read data written with v1" in result.output


def test_release_writes_the_next_version(tmp_path, monkeypatch):
    import shutil

    import spark.schemas as pkg

    root = tmp_path / "schemas"
    shutil.copytree(pkg.history_dir().parent, root)
    tick = json.loads((root / "Tick.avsc").read_text())
    tick["fields"].append({"name": "seq", "type": ["null", "long"], "default": None, "doc": "n"})
    (root / "Tick.avsc").write_text(json.dumps(tick))
    monkeypatch.setattr(pkg, "_root", lambda: root)
    monkeypatch.setattr(pkg, "history_dir", lambda: root / "history")
    result = CliRunner().invoke(cli, ["schemas", "release"])
    assert result.exit_code == 0, result.output
    assert (root / "history" / "Tick" / "v2.avsc").is_file()
    assert "1 schemas released" in result.output
