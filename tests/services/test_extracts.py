"""`govsms db load`: registry extracts validated row by row, upserted all or nothing."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from workers import extracts
from workers.cli import main
from workers.local import demo

GOOD = """{
  "mbg": [{"phone": "8 701 123 45 67", "iin": "880102300452"}],
  "persons": [
    {"iin": "880102300452", "full_name": "Test Person", "birth_date": "1988-01-02",
     "status": "valid"}
  ],
  "vehicle_inspections": [{"plate": "123 abc 01", "valid_from": "2026-03-01",
                           "valid_to": "2027-03-01", "vehicle": "Toyota Camry"}],
  "kindergarten_queue": [{"child_iin": "880102300452", "position": 17,
                          "kindergarten": "Balapan", "applied_on": "2024-05-20"}],
  "housing_queue": [{"iin": "880102300452", "position": 1234, "category": "general",
                     "registered_on": "2019-03-12", "authority": "Akimat"}]
}"""


def counts(conn) -> dict[str, int]:
    tables = {"mbg": "mbg.subscribers", "persons": "persons.individuals",
              "vehicle_inspections": "vehicles.inspections",
              "kindergarten_queue": "kindergarten.queue", "housing_queue": "housing.queue"}
    return {k: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for k, t in tables.items()}


def test_a_good_extract_loads_normalised_and_twice_is_the_same(conn):
    assert extracts.load(conn, extracts.validate(GOOD)) == dict.fromkeys(extracts.SECTIONS, 1)
    extracts.load(conn, extracts.validate(GOOD))
    assert counts(conn) == dict.fromkeys(extracts.SECTIONS, 1)
    assert conn.execute("SELECT phone FROM mbg.subscribers").fetchone() == ("+77011234567",)
    assert conn.execute("SELECT plate FROM vehicles.inspections").fetchone() == ("123ABC01",)


def test_an_upsert_updates(conn):
    extracts.load(conn, extracts.validate(GOOD))
    extracts.load(conn, extracts.validate(GOOD.replace('"position": 1234', '"position": 99')))
    assert conn.execute("SELECT position FROM housing.queue").fetchone() == (99,)


@pytest.mark.parametrize(("change", "message"), [
    (('"iin": "880102300452"}]', '"iin": "880102300453"}]'), "line 2: mbg: iin: Value error, not a valid IIN"),
    (('"status": "valid"', '"status": "alive"'), "line 4: persons: status"),
    (('"123 abc 01"', '"12 abc 01"'), "line 7: vehicle_inspections: plate: Value error, not a plate"),
    (('"valid_to": "2027-03-01"', '"valid_to": "2025-03-01"'),
     "line 7: vehicle_inspections: row: Value error, valid_to is before"),
    (('"position": 17', '"position": 0'), "line 9: kindergarten_queue: position"),
    (('"authority": "Akimat"', '"authority": "Akimat", "extra": 1'), "line 11: housing_queue: extra"),
    (('"8 701 123 45 67"', '"call me"'), "line 2: mbg: phone: Value error, not a phone number"),
    (('"mbg":', '"mgb":'), "line 2: unknown section 'mgb'"),
    (('"position": 17,', '"position": 17'), "line 10: Expecting ',' delimiter"),
])
def test_a_bad_row_names_its_line_and_loads_nothing(conn, change, message):
    with pytest.raises(extracts.ExtractError) as caught:
        extracts.validate(GOOD.replace(*change))
    assert str(caught.value).startswith(message)


def test_top_level_keys_are_optional():
    assert extracts.validate('{"housing_queue": []}') == {key: [] for key in extracts.SECTIONS}
    assert extracts.validate("{}") == {key: [] for key in extracts.SECTIONS}
    with pytest.raises(extracts.ExtractError, match="line 1: expected {"):
        extracts.validate('[{"mbg": []}]')


def test_cli_load_reports_counts_and_refuses_a_bad_file(conn, database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("GOVSMS_DATABASE_URL", database_url)
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace('"status": "valid"', '"status": "alive"'))
    refused = CliRunner().invoke(main, ["db", "load", str(bad)])
    assert refused.exit_code == 1 and "line 4: persons: status" in refused.output
    assert "nothing loaded" in refused.output and counts(conn)["mbg"] == 0
    loaded = CliRunner().invoke(main, ["db", "load", str(good)])
    assert loaded.exit_code == 0, loaded.output
    assert "mbg 1, persons 1, vehicle_inspections 1" in loaded.output


def test_seed_demo_loads_tens_of_thousands_of_valid_rows(conn, database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("GOVSMS_DATABASE_URL", database_url)
    result = CliRunner().invoke(main, ["db", "seed-demo", "--persons", "3000",
                                       "--out", str(tmp_path / "demo.json")])
    assert result.exit_code == 0, result.output
    loaded = counts(conn)
    assert loaded["persons"] > 3000 and all(loaded.values())
    # The file it wrote is an extract `db load` accepts as it is.
    assert extracts.validate((tmp_path / "demo.json").read_text())["mbg"]


def test_demo_data_is_deterministic_and_covers_the_personas():
    first, second = demo.dataset(persons=500), demo.dataset(persons=500)
    assert json.dumps(first, default=str) == json.dumps(second, default=str)
    assert len(demo.dataset()["persons"]) >= 20_000
    phones = {row["phone"] for row in first["mbg"]}
    assert demo.AIGERIM.phone in phones and demo.NURLAN.phone not in phones
