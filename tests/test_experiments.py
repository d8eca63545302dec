"""Every ready-to-run config in experiments/ loads and validates (no simulation or training is run)."""

from pathlib import Path

import pytest

import channel
from eqnn.study import load_study

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
LINKS = {"reference.toml"}  # link configs (channel.load_config); every other TOML is a training or study file


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.toml")), ids=lambda p: p.name)
def test_experiment_config_loads(path):
    if path.name in LINKS:
        assert isinstance(channel.load_config(path), channel.LinkConfig)
    else:
        study = load_study(path)
        assert study.train.models, f"{path.name}: no [[models]]"
