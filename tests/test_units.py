"""Unit names, folders and selection: one spelling of a unit everywhere."""

from __future__ import annotations

import pytest

from sd1job.units import Unit, UnitError, parse_unit, select_units, sweep_units, training_seeds


def test_names_and_folders_of_both_kinds() -> None:
    windowed, stateful = Unit("windowed", 440, 25), Unit("stateful", None, 26)
    assert (windowed.name, windowed.path, windowed.arm) == ("c440-s25", "c440/s25", "c440")
    assert (stateful.name, stateful.path, stateful.arm) == ("stateful-s26", "stateful/s26", "stateful")
    assert parse_unit("c440-s25") == windowed and parse_unit(" stateful-s26 ") == stateful
    with pytest.raises(ValueError):
        Unit("windowed", None, 25)
    with pytest.raises(ValueError):
        Unit("stateful", 44, 25)


@pytest.mark.parametrize("name", ["c0-s25", "c44", "c44-25", "stateful", "statefull-s1", "c-4-s1", ""])
def test_malformed_names_are_refused_in_one_line(name: str) -> None:
    with pytest.raises(UnitError, match="not a unit name"):
        parse_unit(name)


def test_sweep_units_and_seeds() -> None:
    assert training_seeds(25, 3) == [25, 26, 27]
    units = sweep_units(["windowed", "stateful"], [44, 440], 25, 2)
    assert [u.name for u in units] == ["c44-s25", "c44-s26", "c440-s25", "c440-s26", "stateful-s25", "stateful-s26"]


def test_selection_by_name_context_seed_and_kind() -> None:
    units = sweep_units(["windowed", "stateful"], [44, 440], 25, 2)
    assert select_units(units, name="c440-s26") == [Unit("windowed", 440, 26)]
    assert [u.name for u in select_units(units, context=44)] == ["c44-s25", "c44-s26"]
    assert [u.name for u in select_units(units, context=44, seed=26)] == ["c44-s26"]
    assert [u.name for u in select_units(units, kind="stateful")] == ["stateful-s25", "stateful-s26"]
    assert [u.name for u in select_units(units, seed=25)] == ["c44-s25", "c440-s25", "stateful-s25"]
    assert select_units(units) == units
    with pytest.raises(UnitError, match="not a unit of this config"):
        select_units(units, name="c88-s25")
    with pytest.raises(UnitError, match=r"no unit of this config has context 88 \("):
        select_units(units, context=88)
    with pytest.raises(UnitError, match="seed 0"):
        select_units(units, seed=0)
