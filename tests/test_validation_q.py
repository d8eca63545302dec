"""Model selection on the validation Q-factor (training.monitor = "q"): the symbols the validation callback decides
are those the evaluation decides, early stopping restores the epoch of the best validation Q, and the option is
validated and left out of the fingerprints at its default."""

import dataclasses

import numpy as np
import pytest
import tf_keras as keras
from tiny_configs import tiny_link

import channel
from channel import ConfigError, evaluate_symbols
from channel.receiver import normalize
from eqnn.data import DataConfig, fit_normalization, make_windows
from eqnn.data_blocks import make_blocks
from eqnn.models import MLPConfig, build_model
from eqnn.training import TrainingConfig, fit
from eqnn.training.fitting import ValidationQ


@pytest.fixture(scope="module")
def noisy():
    """A tiny 16QAM link with enough noise for a few hundred bit errors after CDC."""
    cfg = tiny_link().replace(transmitter={"n_symbols": 4096, "launch_power_dbm": -16.0},
                              link={"noise_figure_db": 20.0})
    return channel.simulate(cfg, dbp=False)


def _q_of(callback, outputs):
    """ValidationQ on given outputs instead of a model's."""
    callback.model = type("Fixed", (), {"predict": staticmethod(lambda x, batch_size, verbose: outputs)})()
    return callback.q_db()


@pytest.mark.parametrize("kind", ["windows", "blocks"])
def test_validation_q_decides_the_evaluated_symbols(noisy, kind):
    config = DataConfig(taps=3, guard_symbols=8)
    norm = fit_normalization(noisy, config)
    data = make_windows(noisy, config, norm) if kind == "windows" else make_blocks(noisy, config, norm, 64)
    callback = ValidationQ(data, noisy.modulation, 1024)
    idx = data.symbol_indices()
    # zero residual outputs: the equalized symbols are the received ones after CDC, whose Q the evaluation gives
    received = data.outputs_to_symbols(np.zeros_like(data.y) + norm.apply_y(np.zeros((1, data.n_outputs))))
    tx = channel.transmitter.qam_constellation(noisy.modulation)[0][idx]
    expected = evaluate_symbols(normalize(received, tx), idx, noisy.modulation)
    assert expected.bit_errors > 50  # the check is not trivial
    q = _q_of(callback, np.zeros_like(data.y) + norm.apply_y(np.zeros((1, data.n_outputs))))
    assert q == pytest.approx(channel.q_factor_db(expected.ber), abs=1e-9)
    # the targets themselves: no bit error, a finite Q above the received one
    perfect = _q_of(callback, data.y)
    assert np.isfinite(perfect) and perfect > q + 3


def test_fit_restores_the_epoch_of_the_best_validation_q(noisy):
    config = DataConfig(taps=3, guard_symbols=8)
    data = make_windows(noisy, config, fit_normalization(noisy, config))
    training = TrainingConfig(epochs=6, batch_size=128, learning_rate=3e-3, patience=100, seed=2,
                              validation_split=0.25, monitor="q")
    keras.utils.set_random_seed(2)
    model = build_model(MLPConfig(name="m", units=(8,)), data.input_shape, data.n_outputs)
    summary = fit(model, data, training, progress=False)
    history = summary["history"]["val_q"]
    assert len(history) == 6 and summary["monitor"] == "val_q"
    assert summary["best_epoch"] == int(np.argmax(history)) + 1
    held = data.take(np.arange(len(data)) >= len(data) - int(len(data) * 0.25))
    check = ValidationQ(held, noisy.modulation, 1024)
    check.model = model
    assert check.q_db() == pytest.approx(max(history), abs=1e-9)  # the restored weights are the best epoch's


def test_monitor_is_validated_and_kept_out_of_fingerprints():
    with pytest.raises(ConfigError, match=r"training.monitor = 'ber': allowed values are 'loss', 'q'"):
        TrainingConfig(monitor="ber")
    with pytest.raises(ConfigError, match=r"training.monitor = 'q' needs a validation split"):
        TrainingConfig(monitor="q", validation_split=0)
    assert "monitor" not in TrainingConfig().to_dict()
    assert TrainingConfig(monitor="q").to_dict()["monitor"] == "q"
    assert dataclasses.replace(TrainingConfig(), monitor="q").monitor == "q"
