"""eqnn.data: window shapes and alignment, guard band, train-only normalization, train/test independence,
config validation. No TensorFlow needed."""

import math

import numpy as np
import pytest

import channel
from channel import ConfigError
from eqnn.data import (
    DataConfig,
    DataError,
    Normalization,
    check_independent,
    dispersion_memory_symbols,
    fit_normalization,
    make_datasets,
    make_windows,
    resolve_guard,
    resolve_taps,
    symbol_features,
    window_centres,
    window_fingerprints,
)

N_SYMBOLS = 2048


def small_link(noiseless_linear: bool = False, n_symbols: int = N_SYMBOLS):
    link = channel.reference_config().replace(
        transmitter={"modulation": "16QAM", "n_symbols": n_symbols, "seed": 1, "launch_power_dbm": 2.0},
        link={"n_spans": 2, "span_length_km": 40.0}, propagation={"step_mode": "fixed", "steps_per_span": 4},
        receiver={"dbp_steps_per_span": [1], "dbp_xi": 1.0}, name="small")
    if noiseless_linear:
        link = link.replace(link={"noiseless": True}, fiber={"gamma_per_w_km": 0.0})
    return link


@pytest.fixture(scope="module")
def linear_tr():
    """Noiseless, linear link: after CDC the received symbols equal the transmitted ones."""
    tr = channel.simulate(small_link(noiseless_linear=True), dbp=False)
    assert np.max(np.abs(tr.rx_cdc - tr.tx_symbols)) < 1e-9
    return tr


@pytest.fixture(scope="module")
def noisy_pair():
    link = small_link()
    return channel.simulate(link.with_seed(11), dbp=False), channel.simulate(link.with_seed(12), dbp=False)


def test_windows_shape_and_centre_alignment(linear_tr):
    taps, guard = 3, 5
    cfg = DataConfig(taps=taps, guard_symbols=guard)
    norm = fit_normalization(linear_tr, cfg)
    ws = make_windows(linear_tr, cfg, norm)
    n_windows = N_SYMBOLS - 2 * (taps + guard)
    assert ws.x.shape == (n_windows, 2 * taps + 1, 4) and ws.x.dtype == np.float32
    assert ws.y.shape == (n_windows, 2) and ws.input_shape == (7, 4) and ws.n_outputs == 2
    np.testing.assert_array_equal(ws.centres, np.arange(taps + guard, N_SYMBOLS - taps - guard))
    raw = ws.x.astype(np.float64) * np.asarray(norm.x_std) + np.asarray(norm.x_mean)
    feats = symbol_features(linear_tr.rx_cdc)
    for j in range(2 * taps + 1):  # row j of window i is symbol centres[i] - taps + j
        np.testing.assert_allclose(raw[:, j, :], feats[ws.centres - taps + j], atol=1e-6)
    # the centre row is the symbol the target belongs to (rx = tx on this link)
    tx_x = linear_tr.tx_symbols[0, ws.centres]
    np.testing.assert_allclose(raw[:, taps, 0] + 1j * raw[:, taps, 1], tx_x, atol=1e-6)
    np.testing.assert_allclose(ws.target_symbols()[0], tx_x, atol=1e-6)
    np.testing.assert_array_equal(ws.tx_indices, linear_tr.tx_indices[:1, ws.centres])
    # feature order [Re x, Im x, Re y, Im y]
    np.testing.assert_allclose(raw[:, taps, 2] + 1j * raw[:, taps, 3], linear_tr.tx_symbols[1, ws.centres], atol=1e-6)


def test_both_polarizations_targets(linear_tr):
    cfg = DataConfig(taps=2, guard_symbols=0, both_polarizations=True)
    ws = make_windows(linear_tr, cfg, fit_normalization(linear_tr, cfg))
    assert ws.y.shape == (N_SYMBOLS - 4, 4) and cfg.n_outputs == 4
    np.testing.assert_allclose(ws.target_symbols(), linear_tr.tx_symbols[:, ws.centres], atol=1e-6)
    np.testing.assert_array_equal(ws.tx_indices, linear_tr.tx_indices[:, ws.centres])


def test_guard_band_and_no_wrap(linear_tr):
    taps, guard = 4, 37
    ws = make_windows(linear_tr, DataConfig(taps=taps, guard_symbols=guard),
                      fit_normalization(linear_tr, DataConfig(taps=taps, guard_symbols=guard)))
    assert ws.centres[0] == guard + taps and ws.centres[-1] == N_SYMBOLS - guard - taps - 1
    used = (ws.centres[:, None] + np.arange(-taps, taps + 1)[None, :])
    assert used.min() == guard and used.max() == N_SYMBOLS - guard - 1  # no window wraps, guard untouched
    assert np.all(np.diff(used, axis=1) == 1)
    # guard 0: the first window starts at symbol 0, still no wrap-around
    assert window_centres(100, 5, 0)[0] == 5 and window_centres(100, 5, 0)[-1] == 94
    with pytest.raises(DataError, match="taps = 30 and data.guard_symbols = 20"):
        window_centres(100, 30, 20)
    with pytest.raises(DataError, match="no window"):
        make_windows(linear_tr, DataConfig(taps=1000, guard_symbols=100), fit_normalization(
            linear_tr, DataConfig(taps=2, guard_symbols=0)))


def test_auto_taps_and_guard_formula():
    ref = channel.reference_config()
    beta2 = abs(ref.fiber.beta2)
    rs = ref.transmitter.symbol_rate
    expected = math.ceil(beta2 * 2 * math.pi * rs * 1.1 * 1e6 * rs / 2)
    assert dispersion_memory_symbols(ref) == expected == 68
    assert resolve_taps(DataConfig(), ref) == 50  # clipped to auto_taps_max
    assert resolve_taps(DataConfig(auto_taps_max=80), ref) == 68
    assert resolve_guard(DataConfig(), ref) == 68
    short = small_link()
    assert dispersion_memory_symbols(short) < 10 and resolve_taps(DataConfig(), short) == 10  # auto_taps_min
    assert resolve_taps(DataConfig(taps=7), ref) == 7
    assert DataConfig().resolved(ref) == DataConfig(taps=50, guard_symbols=68)


def test_normalization_fitted_on_train_only(noisy_pair):
    train, test = noisy_pair
    cfg = DataConfig(taps=3, guard_symbols=10)
    tr_set, te_set = make_datasets(train, test, cfg)
    assert tr_set.normalization == te_set.normalization == fit_normalization(train, cfg)
    assert tr_set.normalization != fit_normalization(test, cfg)
    # training features are standardized exactly over the symbols they use
    used = symbol_features(train.rx_cdc)[10:N_SYMBOLS - 10]
    np.testing.assert_allclose(tr_set.normalization.x_mean, used.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(tr_set.normalization.x_std, used.std(axis=0), rtol=1e-12)
    centre = tr_set.x[:, 3, :].astype(np.float64)
    np.testing.assert_allclose(centre.mean(axis=0), 0, atol=0.02)
    # test windows use the training statistics, not their own
    raw = te_set.x[:, 3, :].astype(np.float64) * np.asarray(tr_set.normalization.x_std) + \
        np.asarray(tr_set.normalization.x_mean)
    np.testing.assert_allclose(raw, symbol_features(test.rx_cdc)[te_set.centres], atol=1e-5)
    # targets: de-normalization inverts normalization
    np.testing.assert_allclose(te_set.target_symbols()[0], test.tx_symbols[0, te_set.centres], atol=1e-6)
    # without target normalization the targets are the symbols themselves (residual=False) or the
    # transmitted minus the received centre symbols (residual=True, the default)
    plain = make_datasets(train, test, DataConfig(taps=3, guard_symbols=10, normalize_targets=False,
                                                  residual=False))[1]
    np.testing.assert_allclose(plain.y[:, 0], test.tx_symbols[0, te_set.centres].real, atol=1e-6)
    np.testing.assert_array_equal(plain.offset, 0)
    res = make_datasets(train, test, DataConfig(taps=3, guard_symbols=10, normalize_targets=False))[1]
    correction = test.tx_symbols[0, te_set.centres] - test.rx_cdc[0, te_set.centres]
    np.testing.assert_allclose(res.y[:, 0] + 1j * res.y[:, 1], correction, atol=1e-6)
    np.testing.assert_allclose(res.offset[0], test.rx_cdc[0, te_set.centres])
    # a model that outputs zeros (in raw units) equalizes to exactly the CDC symbols in residual mode
    np.testing.assert_allclose(res.outputs_to_symbols(np.zeros_like(res.y))[0], test.rx_cdc[0, te_set.centres])
    # residual targets are the small correction: standardized, they still have unit variance
    np.testing.assert_allclose(te_set.y.std(axis=0), 1, atol=0.15)


def test_train_and_test_are_independent(noisy_pair):
    train, test = noisy_pair
    a, b = train.tx_symbols[0], test.tx_symbols[0]
    n = a.size
    corr = np.abs(np.vdot(a - a.mean(), b - b.mean())) / (np.linalg.norm(a - a.mean()) * np.linalg.norm(b - b.mean()))
    assert corr < 5 / math.sqrt(n)  # uncorrelated symbol sequences
    # no lagged copy either (cross-correlation over all circular lags)
    xc = np.abs(np.fft.ifft(np.fft.fft(a) * np.conj(np.fft.fft(b)))) / (np.linalg.norm(a) * np.linalg.norm(b))
    assert xc.max() < 6 / math.sqrt(n)
    taps = 3
    tr_set, te_set = make_datasets(train, test, DataConfig(taps=taps, guard_symbols=0))
    train_keys = window_fingerprints(train, tr_set.centres, taps)
    test_keys = window_fingerprints(test, te_set.centres, taps)
    assert len(train_keys) == len(tr_set) and len(test_keys) == len(te_set)
    assert not train_keys & test_keys  # no test window equals a training window
    assert not np.array_equal(train.rx_cdc, test.rx_cdc)
    # the same seed twice is refused
    with pytest.raises(DataError, match="seed 11"):
        check_independent(train, train)
    with pytest.raises(DataError, match="different seeds"):
        make_datasets(train, train, DataConfig(taps=3))


def test_rejects_test_data_of_another_link(noisy_pair):
    train, _ = noisy_pair
    shorter = channel.simulate(small_link(n_symbols=1024).with_seed(99), dbp=False)
    _, te_set = make_datasets(train, shorter, DataConfig(taps=3))  # another block length is fine
    assert len(te_set) == 1024 - 2 * (3 + resolve_guard(DataConfig(), shorter.config))
    other = channel.simulate(small_link(n_symbols=1024).replace(link={"n_spans": 3}).with_seed(99), dbp=False)
    with pytest.raises(DataError, match="different link"):
        make_datasets(train, other, DataConfig(taps=3))


def test_several_powers_concatenate(noisy_pair):
    train, _ = noisy_pair
    low = channel.simulate(train.config.with_launch_power(-1.0), dbp=False)
    cfg = DataConfig(taps=2, guard_symbols=0)
    norm = fit_normalization([train, low], cfg)
    ws = make_windows([train, low], cfg, norm)
    per = N_SYMBOLS - 4
    assert len(ws) == 2 * per and ws.launch_powers_dbm == [2.0, -1.0]
    np.testing.assert_array_equal(ws.block, np.repeat([0, 1], per))
    np.testing.assert_allclose(ws.target_symbols()[0, per:], low.tx_symbols[0, ws.centres[per:]], atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"taps": -1}, r"data.taps = -1 is out of range: allowed integers in \[0, 1000\]"),
    ({"taps": 2.5}, r"data.taps = 2.5: must be an integer"),
    ({"taps": "many"}, r"data.taps = 'many': allowed an integer in \[0, 1000\] or 'auto'"),
    ({"guard_symbols": "x"}, r"data.guard_symbols = 'x'"),
    ({"guard_symbols": -3}, r"data.guard_symbols = -3 is out of range"),
    ({"both_polarizations": "yes"}, r"data.both_polarizations = 'yes': must be true or false"),
    ({"normalize_targets": 1}, r"data.normalize_targets = 1: must be true or false"),
    ({"auto_taps_min": 30, "auto_taps_max": 20}, r"data.auto_taps_min = 30 exceeds data.auto_taps_max = 20"),
])
def test_bad_data_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DataConfig(**kwargs)


def test_data_config_from_dict():
    assert DataConfig.from_dict({"taps": 5}) == DataConfig(taps=5)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['tap'\] in \[data\]"):
        DataConfig.from_dict({"tap": 5})


def test_normalization_round_trip_and_validation():
    norm = Normalization((0.0, 1.0, 0.0, 0.0), (1.0, 2.0, 1.0, 1.0), (0.0, 0.0), (0.5, 0.5))
    assert Normalization.from_dict(norm.to_dict()) == norm
    with pytest.raises(DataError, match="std must be > 0"):
        Normalization((0.0,), (0.0,), (0.0,), (1.0,))
