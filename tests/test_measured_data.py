"""Training on measured data (``[dataset]``, :mod:`eqnn.measured`, :mod:`channel.measured`): a file written from a
simulated transmission reads back as that transmission, training on it gives the model trained on the simulation,
and bad files or parts fail in one line naming the array and the file."""

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tomllib
from scipy import io
from tiny_configs import TINY_TRAINING

import channel
from channel import ConfigError
from channel.measured import DatasetError, MeasuredPart, dataset_length, load_part, read_array, save_dataset
from eqnn.measured import DatasetConfig, export_simulation, main
from eqnn.study import _dsp_rows
from eqnn.training.config import TrainRunConfig

ROOT = Path(__file__).resolve().parent.parent
BASE = tomllib.loads('name = "tiny"\npowers_dbm = [0.0]\n' + TINY_TRAINING)
ARRAYS = {"tx_symbols": "tx", "rx_symbols": "rx", "modulation": "16QAM", "symbol_rate_gbd": 30.0}


@pytest.fixture(scope="module")
def simulated():
    """(config, train transmission, test transmission with DBP-1) of the tiny training study at 0 dBm."""
    config = TrainRunConfig.from_dict(BASE)
    return (config, channel.simulate(config.train_link(0.0), dbp=False),
            channel.simulate(config.test_link(0.0), dbp=True))


def _measured(tmp_path, dataset: dict, **top) -> TrainRunConfig:
    data = {k: v for k, v in BASE.items() if k != "powers_dbm"}
    return TrainRunConfig.from_dict({**data, **top, "dataset": {**ARRAYS, **dataset}}, base_dir=tmp_path)


def _write(path: Path, tr, waveform: bool = True) -> Path:
    return save_dataset(tr, path, tx_symbols="tx", rx_symbols="rx", rx_waveform="wave" if waveform else None)


@pytest.mark.parametrize("suffix", [".npz", ".mat", ".h5"])
def test_a_saved_transmission_reads_back_as_itself(tmp_path, simulated, suffix):
    """Files of each format give the simulated transmissions: the same link, symbol indices, received symbols (one
    complex gain removed again: equal to rounding), field, CDC metrics, and DBP on the read waveform."""
    config, train, test = simulated
    _write(tmp_path / f"train{suffix}", train), _write(tmp_path / f"test{suffix}", test)
    measured = _measured(tmp_path, {"path": f"train{suffix}", "test_path": f"test{suffix}", "launch_power_dbm": 0.0,
                                    "rx_waveform": "wave", "rescale_waveform": False})
    assert measured.dbp and measured.powers_dbm == (0.0,)
    for which, sim in (("train", train), ("test", test)):
        assert measured.train_link(0.0) == config.train_link(0.0) and measured.test_link(0.0) == config.test_link(0.0)
        tr = measured.transmission(which, 0.0, dbp=which == "test")
        assert tr.config == sim.config and np.array_equal(tr.tx_indices, sim.tx_indices)
        np.testing.assert_allclose(tr.rx_cdc, sim.rx_cdc, rtol=0, atol=1e-12)
        assert np.array_equal(tr.rx_field, sim.rx_field)
        assert tr.metrics["CDC"].snr_db == pytest.approx(sim.metrics["CDC"].snr_db, abs=1e-9)
    assert tr.metrics["DBP-1"].snr_db == pytest.approx(test.metrics["DBP-1"].snr_db, abs=1e-9)
    assert tr.metrics["DBP-1"].snr_db > tr.metrics["CDC"].snr_db + 1  # DBP ran on the read waveform


def test_layouts_scale_and_rescaled_waveform(tmp_path, simulated):
    """(N, 2) arrays, the real/imag compound of MATLAB v7.3, transmitted symbols on an integer grid and a received
    signal of another gain and phase read as the (2, N) originals; the waveform is scaled to the launch power."""
    _, train, _ = simulated
    path = tmp_path / "v73.h5"
    compound = np.dtype([("real", "<f8"), ("imag", "<f8")])
    rx = train.rx_cdc.T * (3e-3 * np.exp(0.7j))
    with h5py.File(path, "w") as f:
        pairs = np.empty(rx.shape, compound)
        pairs["real"], pairs["imag"] = rx.real, rx.imag
        f.create_dataset("rx", data=pairs)
        f.create_dataset("tx", data=(train.tx_symbols * np.sqrt(10)).T)  # 16QAM levels +-1, +-3
        f.create_dataset("wave", data=train.rx_field.T * 1e4)
    part = MeasuredPart(str(path), "tx", "rx", "wave", start=0, stop=train.rx_cdc.shape[1])
    tr = load_part(part, train.config)
    assert np.array_equal(tr.tx_indices, train.tx_indices)
    np.testing.assert_allclose(tr.rx_cdc, train.rx_cdc, rtol=0, atol=1e-12)
    power_w = np.sum(np.mean(np.abs(tr.rx_field) ** 2, axis=-1))
    assert power_w == pytest.approx(1e-3, rel=1e-12)  # 0 dBm launch power
    np.testing.assert_allclose(tr.rx_field / np.sqrt(power_w), train.rx_field / np.sqrt(
        np.sum(np.mean(np.abs(train.rx_field) ** 2, axis=-1))), rtol=0, atol=1e-12)


def test_parts_of_one_file(tmp_path, simulated):
    """Fractions and symbol ranges pick the same symbols; the parts' links have their lengths; overlap is refused."""
    _, train, _ = simulated
    _write(tmp_path / "one.npz", train, waveform=False)
    by_fraction = _measured(tmp_path, {"path": "one.npz", "launch_power_dbm": 0.0, "train": [0.0, 0.75],
                                       "test": [0.75, 1.0]})
    by_symbol = _measured(tmp_path, {"path": "one.npz", "launch_power_dbm": 0.0, "train": [0, 768],
                                     "test": [768, 1024]})
    assert not by_fraction.dbp
    for which, (a, b) in (("train", (0, 768)), ("test", (768, 1024))):
        assert by_fraction.measured_part(which, 0.0) == by_symbol.measured_part(which, 0.0)
        tr = by_fraction.transmission(which, 0.0)
        assert tr.config.transmitter.n_symbols == b - a and np.array_equal(tr.tx_indices, train.tx_indices[:, a:b])
    with pytest.raises(ConfigError, match=r"^dataset.train = \[0.0, 0.8\] and dataset.test = \[0.7, 1.0\] overlap"):
        _measured(tmp_path, {"path": "one.npz", "launch_power_dbm": 0.0, "train": [0.0, 0.8], "test": [0.7, 1.0]})
    with pytest.raises(ConfigError, match="overlap"):
        _measured(tmp_path, {"path": "one.npz", "launch_power_dbm": 0.0, "train": [0, 600], "test": [0.5, 1.0]})
    with pytest.raises(ConfigError, match=r"dataset.test = \[900, 2000\]: symbols \[900, 2000\) of .*one.npz"):
        _measured(tmp_path, {"path": "one.npz", "launch_power_dbm": 0.0, "train": [0, 900], "test": [900, 2000]})


def test_the_model_fingerprint_tells_parts_apart(tmp_path, simulated):
    """A saved model is reused (``resume``) only on the same data: two parts of equal length differ in the key;
    simulated data keep their key (the links' digests alone)."""
    from eqnn.training.run import _data_key

    config, train, _ = simulated
    _write(tmp_path / "one.npz", train, waveform=False)
    first = _measured(tmp_path, {"path": "one.npz", "launch_power_dbm": 0.0, "train": [0.0, 0.5], "test": [0.5, 1.0]})
    second = _measured(tmp_path, {"path": "one.npz", "launch_power_dbm": 0.0, "train": [0.5, 1.0],
                                  "test": [0.0, 0.5]})
    assert first.train_link(0.0) == second.train_link(0.0)
    keys = [_data_key([c.transmission("train", 0.0)]) for c in (first, second, first)]
    assert keys[0] != keys[1] and keys[0] == keys[2]
    assert _data_key([train]) == [config.train_link(0.0).digest()]


@pytest.mark.parametrize("dataset, top, needle", [
    ({"train": [0.0, 0.5]}, {}, "dataset.test is required without dataset.test_path"),
    ({"train": [0.0, 0.5], "test": [0.5, 1]}, {}, "dataset.test = [0.5, 1]: allowed two fractions"),
    ({"train": [0.5, 0.2], "test": [0.5, 1.0]}, {}, "dataset.train = [0.5, 0.2]: allowed"),
    ({"train": [0.0, 0.5], "test": [0.5, 1.0], "launch_power_dbm": [0.0, 1.0]}, {},
     "dataset.launch_power_dbm = [0.0, 1.0]: one launch power per file of dataset.path (1 file(s))"),
    ({"train": [0.0, 0.5], "test": [0.5, 1.0], "modulation": "8QAM"}, {}, "dataset.modulation = '8QAM'"),
    ({"train": [0.0, 0.5], "test": [0.5, 1.0], "symbol_rate_gbd": 0}, {}, "dataset.symbol_rate_gbd = 0"),
    ({"train": [0.0, 0.5], "test": [0.5, 1.0], "samples_per_symbol": 1}, {}, "dataset.samples_per_symbol = 1"),
    ({"train": [0.0, 0.5], "test": [0.5, 1.0], "tx_symbol": "tx"}, {}, "unknown key(s) ['tx_symbol'] in [dataset]"),
    ({"train": [0.0, 0.5], "test": [0.5, 1.0]}, {"dbp": True}, "dbp = true needs dataset.rx_waveform"),
    ({"train": [0.0, 0.5], "test": [0.5, 1.0]}, {"powers_dbm": [1.0]}, "powers_dbm = [1.0]: with a [dataset]"),
    ({"train": [0.0, 0.5], "test": [0.5, 1.0]}, {"train_symbols": 512}, "train_symbols = 512: not allowed"),
    ({"train": [0.0, 0.05], "test": [0.5, 1.0]}, {}, "dataset.train = [0.0, 0.05]: 51 symbols"),
    ({"train": [0.0, 0.5], "test": [0.5, 1.0]},
     {"models": [{"type": "ldbp", "name": "L"}]}, "dataset.rx_waveform is required"),
])
def test_bad_dataset_table(tmp_path, simulated, dataset, top, needle):
    _write(tmp_path / "one.npz", simulated[1], waveform=False)
    with pytest.raises(ConfigError) as info:
        _measured(tmp_path, {"path": "one.npz", "launch_power_dbm": 0.0, **dataset}, **top)
    assert needle in str(info.value) and "\n" not in str(info.value)


def _bad_files(tmp_path: Path, tr) -> list[tuple[Path, dict, str]]:
    """(file, dataset arrays, expected message) of each malformed file."""
    tx, rx = tr.tx_symbols, tr.rx_cdc
    cases = []

    def npz(name, **arrays):
        np.savez(tmp_path / name, **arrays)
        return tmp_path / name

    cases.append((npz("shape.npz", tx=tx, rx=np.vstack([rx, rx[:1]])), {},
                  "dataset.rx_symbols = 'rx' in {}: shape (3, 1024): allowed (2, N) or (N, 2)"))
    cases.append((npz("missing.npz", tx=tx, received=rx), {},
                  "dataset.rx_symbols = 'rx' in {}: no such array (the file holds ['received', 'tx'])"))
    cases.append((npz("length.npz", tx=tx, rx=rx[:, :1000]), {},
                  "dataset.rx_symbols = 'rx' in {}: 1000 symbols per polarization, but tx_symbols 'tx' has 1024"))
    cases.append((npz("pickled.npz", tx=tx, rx=np.array([{"a": 1}, None], dtype=object)), {},
                  "dataset.rx_symbols = 'rx' in {}: holds objects (pickled or referenced data is never loaded)"))
    cases.append((npz("real.npz", tx=tx, rx=np.abs(rx)), {}, "dataset.rx_symbols = 'rx' in {}: dtype float64 is "
                  "not complex"))
    cases.append((npz("wave.npz", tx=tx, rx=rx, wave=tr.rx_field[:, :-2]), {"rx_waveform": "wave"},
                  "dataset.rx_waveform = 'wave' in {}: 2046 samples per polarization: allowed 1024 symbols x "
                  "samples_per_symbol 2 = 2048"))
    cases.append((npz("notqam.npz", tx=tx * np.exp(0.3j), rx=rx), {},
                  "dataset.tx_symbols = 'tx' in {}: not 16QAM constellation points"))
    cases.append((npz("nan.npz", tx=tx, rx=np.where(np.arange(1024) == 5, np.nan, rx)), {},
                  "dataset.rx_symbols = 'rx' in {}: 2 value(s) are not finite"))
    io.savemat(tmp_path / "cell.mat", {"tx": tx, "rx": np.array([rx, "text"], dtype=object)})
    cases.append((tmp_path / "cell.mat", {}, "dataset.rx_symbols = 'rx' in {}: holds MATLAB class 'cell'"))
    with h5py.File(tmp_path / "ref.h5", "w") as f:
        f.create_dataset("tx", data=tx)
        refs = f.create_dataset("rx", (2,), dtype=h5py.ref_dtype)
        refs[0] = f["tx"].ref
        refs.attrs["MATLAB_class"] = np.bytes_(b"cell")
    cases.append((tmp_path / "ref.h5", {}, "dataset.rx_symbols = 'rx' in {}: holds"))
    (tmp_path / "text.npz").write_text("not a dataset")
    cases.append((tmp_path / "text.npz", {}, "dataset file {}: not a .npz, HDF5 or MATLAB file"))
    return cases


def test_bad_files_fail_in_one_line_naming_array_and_file(tmp_path, simulated):
    for path, extra, message in _bad_files(tmp_path, simulated[1]):
        with pytest.raises(DatasetError) as info:  # checks of the headers when the config is read ...
            config = _measured(tmp_path, {"path": path.name, "launch_power_dbm": 0.0, "train": [0.0, 0.5],
                                          "test": [0.5, 1.0], **extra})
            config.transmission("train", 0.0)  # ... or of the values when the data are read
        text = str(info.value)
        assert text.startswith(message.format(path)) and "\n" not in text, (path.name, text)


def test_dataset_length_and_read_array_of_a_mat_file(tmp_path, simulated):
    """MATLAB v5: natively complex (N, 2) arrays, orientation by the axis of length 2."""
    tr = simulated[1]
    io.savemat(tmp_path / "m.mat", {"tx": tr.tx_symbols.T, "rx": tr.rx_cdc})
    assert dataset_length(tmp_path / "m.mat", "tx", "rx") == 1024
    assert np.array_equal(read_array(tmp_path / "m.mat", "tx_symbols", "tx"), tr.tx_symbols)


def test_training_on_the_file_is_training_on_the_simulation(tmp_path, simulated):
    """The same weights and the same Q table (NN and CDC rows), whether the training stage simulates the
    transmissions or reads them from files written from those simulations."""
    from eqnn.studies.compress_cli import _measured_parts
    from eqnn.training.equalizer import load_equalizer
    from eqnn.training.run import train_stage

    _, train, test = simulated
    _write(tmp_path / "train.npz", train, waveform=False), _write(tmp_path / "test.npz", test, waveform=False)
    sim_config = TrainRunConfig.from_dict({**BASE, "dbp": False})
    file_config = _measured(tmp_path, {"path": "train.npz", "test_path": "test.npz", "launch_power_dbm": 0.0})
    results = {}
    for label, config in (("sim", sim_config), ("file", file_config)):
        results[label] = train_stage(config, tmp_path / label, cache_dir=False, progress=False, tables=False)
    weights = [load_equalizer(tmp_path / label / "models" / "MLP@+0p00dBm").model.get_weights()
               for label in ("sim", "file")]
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    rows = [{(r.method, r.launch_power_dbm): r for r in results[label].rows} for label in ("sim", "file")]
    assert rows[0].keys() == rows[1].keys() == {("MLP", 0.0), ("CDC", 0.0)}
    for key in rows[0]:
        assert rows[1][key].snr_db == pytest.approx(rows[0][key].snr_db, abs=1e-4)
        assert rows[1][key].bit_errors == rows[0][key].bit_errors
    # eqnn compress <saved folder> reads the same parts again
    saved = load_equalizer(tmp_path / "file" / "models" / "MLP@+0p00dBm")
    train_parts, test_parts = _measured_parts(saved)
    assert train_parts == [file_config.measured_part("train", 0.0)]
    assert test_parts == [file_config.measured_part("test", 0.0)]
    again = load_part(test_parts[0], channel.LinkConfig.from_dict(saved.info["test_links"][0]))
    assert np.array_equal(again.tx_indices, test.tx_indices)


def test_export_and_the_dsp_stage_of_a_study(tmp_path, simulated, capsys):
    """``python -m eqnn.measured`` writes the transmissions of a training TOML with the [dataset] table that reads
    them; stage 1 of ``eqnn run`` then reports CDC and DBP of the read test data, equal to the simulation's."""
    from eqnn.study import StudyConfig, _stage_dsp

    config, _, test = simulated
    (tmp_path / "sim.toml").write_text('name = "tiny"\npowers_dbm = [0.0]\ncache_dir = ""\n' + TINY_TRAINING)
    assert main([str(tmp_path / "sim.toml"), str(tmp_path / "data"), "--format", "h5"]) == 0
    table = tomllib.loads(capsys.readouterr().out)["dataset"]  # the printed [dataset] table
    assert table == export_simulation(tmp_path / "sim.toml", tmp_path / "data", "h5")
    assert [Path(p).name for p in table["path"] + table["test_path"]] == ["train_0dBm.h5", "test_0dBm.h5"]
    data = {k: v for k, v in BASE.items() if k != "powers_dbm"}
    study = StudyConfig.from_dict({**data, "dataset": {**table, "rescale_waveform": False},
                                   "study": {"dsp_powers_dbm": []}})
    log = {}
    rows = {r.method: r for r in _stage_dsp(study, tmp_path / "cache", False, log, None)}
    assert set(rows) == {"CDC", "DBP-1"} and log["dsp"]["measured"] == 1
    sim_rows = {r.method: r for r in _dsp_rows(test, config, {"CDC": 0.0, "DBP-1": 0.0})}
    for method in rows:
        assert rows[method].snr_db == pytest.approx(sim_rows[method].snr_db, abs=1e-9)
    with pytest.raises(ConfigError, match=r"study.dsp_powers_dbm: 1 dBm is not a launch power of the dataset"):
        StudyConfig.from_dict({**data, "dataset": table, "study": {"dsp_powers_dbm": [1.0]}})


_PROBE = """
import sys
from eqnn.cli import main
code = main(sys.argv[1:])
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'tf_keras', 'tensorflow_model_optimization'})
print(code, ','.join(heavy) or '-')
"""


@pytest.mark.parametrize("command, dataset, needle", [
    ("run", 'train = [0.0, 0.5]\ntest = [0.5, 1.0]\nrx_symbols = "nothing"\n',
     "dataset.rx_symbols = 'nothing' in"),
])
def test_bad_dataset_fails_before_tensorflow(tmp_path, simulated, command, dataset, needle):
    """``eqnn run`` (the same config loading as ``eqnn train`` and ``eqnn compress``): one line on stderr, exit
    code 2, TensorFlow never imported."""
    _write(tmp_path / "one.npz", simulated[1], waveform=False)
    text = TINY_TRAINING + ('\n[dataset]\npath = "one.npz"\nlaunch_power_dbm = 0.0\ntx_symbols = "tx"\n'
                            'modulation = "16QAM"\nsymbol_rate_gbd = 30.0\n' + dataset)
    if "rx_symbols" not in dataset:
        text += 'rx_symbols = "rx"\n'
    (tmp_path / "m.toml").write_text('name = "m"\n' + text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _PROBE, command, str(tmp_path / "m.toml"), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.stdout.split() == ["2", "-"], proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"eqnn {command}: error: ") and needle in lines[0], proc.stderr


def test_dataset_table_round_trips(tmp_path, simulated):
    """to_dict/from_dict: the same config (paths made absolute), so results.json rebuilds it from anywhere."""
    _write(tmp_path / "one.npz", simulated[1], waveform=False)
    config = _measured(tmp_path, {"path": "one.npz", "launch_power_dbm": 0.0, "train": [0, 700], "test": [0.75, 1.0]})
    again = TrainRunConfig.from_dict(config.to_dict())
    assert again == config and isinstance(again.dataset, DatasetConfig)
    assert again.measured_part("test", 0.0) == config.measured_part("test", 0.0)
