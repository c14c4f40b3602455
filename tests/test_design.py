"""The grid: axes checked at the door, arms named from their values, names that parse back, per-arm configs."""

from __future__ import annotations

import pytest

from sd1job.config import ConfigError, config_from_mapping
from sd1job.units import UnitError, select_units

SETS = {
    name: {"train": {"dry": f"{name}/d.wav", "wet": f"{name}/w.wav"}, "test_dir": f"{name}/test"}
    for name in ("Low", "High")
}


def grid_config(**grid: list) -> object:
    return config_from_mapping(
        {
            "dataset": {"contexts": [44, 88]},
            "train": {"repeats": 2},
            "recordings": {"sets": SETS},
            "sweep": {"grid": grid},
        }
    )


def test_without_a_grid_names_and_units_are_as_before() -> None:
    config = config_from_mapping({"dataset": {"contexts": [44, 440]}})
    assert [u.name for u in config.units()] == ["c44-s25", "c440-s25"]
    assert [u.path for u in config.units()] == ["c44/s25", "c440/s25"]
    assert config.data_variants()[0][0] == ""


def test_arms_are_the_product_of_the_axes_and_each_name_parses_back_to_its_unit() -> None:
    config = grid_config(**{"recordings.set": ["Low", "High"], "train.lstm_units": [64, 96]})
    units = config.units()
    assert len(units) == 2 * 2 * 2 * 2
    assert units[0].name == "Low_lu64-c44-s25" and units[-1].name == "High_lu96-c88-s26"
    assert units[-1].path == "High_lu96/c88/s26" and units[-1].arm == "High_lu96-c88"
    for unit in units:
        assert select_units(units, name=unit.name) == [unit]
        arm = config.for_unit(unit)
        values = dict(unit.grid)
        assert arm.train.lstm_units == values["train.lstm_units"]
        assert arm.recordings.train.dry == f"{values['recordings.set']}/d.wav"
        assert arm.recordings.test_dir == f"{values['recordings.set']}/test" and not arm.sweep.grid
    assert [tag for tag, _ in config.data_variants()] == ["Low", "High"]
    assert config.data_variant(units[-1]) == "High"
    with pytest.raises(UnitError, match="not a unit of this config"):
        select_units(units, name="c44-s25")


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"train.lstm_unit": [64]}, "train.lstm_unit is not a config field (did you mean train.lstm_units?)"),
        ({"train.seed": [1, 2]}, "train.seed cannot be an axis: training seeds are the replicates"),
        ({"dataset.contexts": [[44]]}, "dataset.contexts cannot be an axis: it is the context axis already"),
        ({"eval.alpha": [0.1]}, "eval.alpha cannot be an axis"),
        (
            {"train.lstm_units": [64, "many"]},
            "sweep.grid: train.lstm_units[1] = 'many': Input should be a valid integer",
        ),
        ({"recordings.set": ["Low", "Mid"]}, "recordings.set 'Mid' is not one of recordings.sets"),
        ({"train.learning_rate": [0.01, 0.01]}, "values must be unique"),
    ],
)
def test_a_grid_that_cannot_run_is_refused_in_one_line_naming_the_axis(grid: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        grid_config(**grid)
    assert message in str(error.value) and "\n" not in str(error.value)
