"""The cap on copies at once that `azsnap capacity` and `azsnap simulate` model is the operator's own setting
(`AZSNAP_PARALLEL_COPIES`), read and checked as the operator reads it, and the output says which cap it used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.unit.test_capacity import manifest, write_list
from typer.testing import CliRunner

from azsnap.cli import app
from azsnap.settings import Settings, SettingsError, copy_cap

TARGET = {"region": "northeurope", "resourceGroup": "rg-dr"}


def fleet(tmp_path: Path, count: int) -> Path:
    items = [manifest(i) for i in range(count)]
    for item in items:
        item["spec"]["copies"] = [TARGET]
    return write_list(tmp_path / "fleet.yaml", items)


def capacity(path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["capacity", str(path), *args], env={"AZSNAP_PARALLEL_COPIES": "", **(env or {})})
    return result.exit_code, result.output


def test_the_cap_is_read_as_the_operator_reads_it() -> None:
    assert copy_cap(None, {}) == copy_cap(None, {"AZSNAP_PARALLEL_COPIES": ""})
    assert copy_cap(None, {}).value == Settings.from_env({}).parallel_copies == 100
    assert (
        copy_cap(None, {"AZSNAP_PARALLEL_COPIES": "40"}).value
        == Settings.from_env({"AZSNAP_PARALLEL_COPIES": "40"}).parallel_copies
    )
    assert copy_cap("7", {"AZSNAP_PARALLEL_COPIES": "40"}).value == 7  # the flag wins
    for bad in ("0", "-3", "many", "1.5"):
        with pytest.raises(SettingsError) as from_env:
            copy_cap(None, {"AZSNAP_PARALLEL_COPIES": bad})
        with pytest.raises(SettingsError) as operator:
            Settings.from_env({"AZSNAP_PARALLEL_COPIES": bad})
        assert str(from_env.value) == str(operator.value)  # the operator's own message
        with pytest.raises(SettingsError, match="--parallel-copies: "):
            copy_cap(bad, {})


def test_capacity_takes_the_flag_or_the_operators_variable_and_says_which(tmp_path: Path) -> None:
    path = fleet(tmp_path, 250)
    code, out = capacity(path)
    assert code == 0
    assert "250 start at once into one region, 100 may run there at once (the operator's default): 3 wave(s)" in out
    code, out = capacity(path, env={"AZSNAP_PARALLEL_COPIES": "50"})
    assert "50 may run there at once (AZSNAP_PARALLEL_COPIES): 5 wave(s)" in out
    code, out = capacity(path, "--parallel-copies", "25", env={"AZSNAP_PARALLEL_COPIES": "50"})
    assert "25 may run there at once (--parallel-copies): 10 wave(s)" in out
    code, out = capacity(path, "--json", env={"AZSNAP_PARALLEL_COPIES": "125"})
    (row,) = json.loads(out)["subscriptions"]
    assert (row["copyCap"], row["copyCapSource"], row["copyWaves"]) == (125, "AZSNAP_PARALLEL_COPIES", 2)


def test_a_bad_cap_is_refused_with_the_operators_message(tmp_path: Path) -> None:
    path = fleet(tmp_path, 3)
    code, out = capacity(path, env={"AZSNAP_PARALLEL_COPIES": "0"})
    assert code == 2
    assert "azsnap capacity: invalid operator settings: AZSNAP_PARALLEL_COPIES: Input should be greater than" in out
    code, out = capacity(path, "--parallel-copies", "lots")
    assert code == 2 and "azsnap capacity: --parallel-copies: Input should be a valid integer" in out
