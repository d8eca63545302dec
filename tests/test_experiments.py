"""Every ready-to-run config in experiments/ loads and validates (no simulation or training is run)."""

from pathlib import Path

import numpy as np
import pytest

import channel
from channel.config import read_toml
from eqnn.studies.compression_config import load_compression_config
from eqnn.study import StudyConfig, load_study

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
LINKS = {"reference.toml"}  # link configs (channel.load_config); every other TOML is a training or study file


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.toml")), ids=lambda p: p.name)
def test_experiment_config_loads(path, tmp_path):
    if path.name in LINKS:
        assert isinstance(channel.load_config(path), channel.LinkConfig)
    elif set(data := read_toml(path, "study")) == {"compression"}:  # the search of a saved model (eqnn compress)
        assert load_compression_config(path).n_calls > 0
    elif "dataset" in data:
        # measured data: files of the documented layout (random symbols of the right shapes) stand in for the files
        # the example names (python -m eqnn.measured writes them), written where the test can
        table = data["dataset"]
        rng = np.random.default_rng(0)
        points = channel.qam_constellation(table["modulation"])[0]
        for key in ("path", "test_path"):
            names = table.get(key, [])
            table[key] = [str(tmp_path / f"{key}{i}.npz") for i in range(len(names))]
            for file in table[key]:
                arrays = {table["tx_symbols"]: points[rng.integers(0, points.size, (2, 8192))],
                          table["rx_symbols"]: rng.normal(size=(2, 8192)) + 1j * rng.normal(size=(2, 8192))}
                if "rx_waveform" in table:
                    arrays[table["rx_waveform"]] = rng.normal(size=(2, 8192 * table.get("samples_per_symbol", 2))) \
                        + 0j
                np.savez(file, **arrays)
        study = StudyConfig.from_dict(data, base_dir=path.parent)
        assert study.train.dataset is not None and study.train.models
    else:
        study = load_study(path)
        assert study.train.models, f"{path.name}: no [[models]]"
