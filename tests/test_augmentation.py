"""Training-data augmentation by the QAM link's symmetries (eqnn.data "Augmentation", eqnn.training.fit):
the symmetries hold for the channel model, the transformed examples equal the windows/blocks of the transformed
transmission, the tf.data stream draws every transformation, and training with it is reproducible."""

import dataclasses

import numpy as np
import pytest
from test_data import small_link

import channel
from channel import ConfigError
from channel.fiber import FiberParameters, SplitStepFourier
from eqnn.data import DataConfig, fit_normalization, make_windows, symbol_features, symbol_targets
from eqnn.data_blocks import make_blocks


@pytest.fixture(scope="module")
def noisy():
    return channel.simulate(small_link().with_seed(3), dbp=False)


def test_the_symmetries_hold_for_the_fiber():
    """Manakov SSFM: a 90-degree rotation (any global phase) and the polarization exchange commute with the
    propagation (the physics that makes the augmentation exact)."""
    rng = np.random.default_rng(0)
    n = 1024
    field = (rng.normal(size=(2, n)) + 1j * rng.normal(size=(2, n))) * np.sqrt(5e-3)  # ~10 mW per pol.
    solver = SplitStepFourier(n, 100e9, FiberParameters(0.2 / 4.343e3, -21.7e-27, 0.0, 1.3e-3), [5e3] * 8)
    out = solver.propagate(field.copy())
    assert np.max(np.abs(solver.propagate(1j * field) - 1j * out)) < 1e-9 * np.max(np.abs(out))
    assert np.max(np.abs(solver.propagate(field[::-1].copy()) - out[::-1])) < 1e-9 * np.max(np.abs(out))
    # not trivially so: the nonlinearity mixes the polarizations (cross-phase modulation)
    alone = solver.propagate(np.stack([field[0], 0 * field[1]]))
    assert np.max(np.abs(alone[0] - out[0])) > 1e-3 * np.max(np.abs(out))


def test_augment_validation():
    assert DataConfig().augment == ()
    assert DataConfig(augment=["phase_rotation"]).augment == ("phase_rotation",)
    assert DataConfig.from_dict(DataConfig(augment=("polarization_swap",)).to_dict()).augment == ("polarization_swap",)
    assert "augment" not in DataConfig().to_dict()  # fingerprints of earlier models unchanged
    with pytest.raises(ConfigError, match=r"data\.augment = \['mirror'\].*phase_rotation"):
        DataConfig(augment=["mirror"])


def test_isotropic_normalization(noisy):
    norm = fit_normalization(noisy, DataConfig(taps=3, guard_symbols=5, augment=["phase_rotation"]))
    assert norm.x_mean == (0.0,) * 4 and len(set(norm.x_std)) == 1
    assert norm.y_mean == (0.0,) * 2 and len(set(norm.y_std)) == 1
    plain = fit_normalization(noisy, DataConfig(taps=3, guard_symbols=5))
    assert len(set(plain.x_std)) == 4


@pytest.mark.parametrize("both", [False, True])
def test_transformed_examples_are_those_of_the_transformed_transmission(noisy, both):
    tf = pytest.importorskip("tensorflow")
    from eqnn.training.fitting import augment_batch
    cfg = DataConfig(taps=3, guard_symbols=5, both_polarizations=both,
                     augment=["phase_rotation", "polarization_swap"])
    norm = fit_normalization(noisy, cfg)
    ws = make_windows(noisy, cfg, norm)
    n = len(ws)
    # polarization exchange: the windows of the swapped transmission, targets included
    swapped_tr = dataclasses.replace(noisy, tx_indices=noisy.tx_indices[::-1].copy(), rx_cdc=noisy.rx_cdc[::-1].copy())
    expected = make_windows(swapped_tr, cfg, norm)
    x, y = augment_batch(tf.constant(ws.x), tf.constant(ws.y_swap), tf.zeros(n, tf.int64), tf.ones(n, tf.bool))
    np.testing.assert_allclose(x.numpy(), expected.x, atol=1e-6)
    np.testing.assert_allclose(y.numpy(), expected.y, atol=1e-6)
    # rotation by q x 90 degrees: features and residual targets of j^q (rx, tx)
    pols = list(cfg.polarizations)
    centres = ws.centres
    for q in (1, 2, 3):
        rot = 1j ** q
        feats = norm.apply_x(symbol_features(rot * noisy.rx_cdc))
        xr = np.stack([feats[c - 3:c + 4] for c in centres])
        yr = norm.apply_y(symbol_targets(rot * (noisy.tx_symbols - noisy.rx_cdc)[pols][:, centres], range(len(pols))))
        x, y = augment_batch(tf.constant(ws.x), tf.constant(ws.y), tf.fill([n], q), tf.zeros(n, tf.bool))
        np.testing.assert_allclose(x.numpy(), xr, atol=1e-5)
        np.testing.assert_allclose(y.numpy(), yr, atol=1e-5)


def test_blocks_carry_swapped_targets(noisy):
    cfg = DataConfig(taps=3, guard_symbols=5, augment=["polarization_swap"])
    norm = fit_normalization(noisy, cfg)
    blocks = make_blocks(noisy, cfg, norm, block_length=64)
    swapped_tr = dataclasses.replace(noisy, tx_indices=noisy.tx_indices[::-1].copy(), rx_cdc=noisy.rx_cdc[::-1].copy())
    np.testing.assert_allclose(blocks.y_swap, make_blocks(swapped_tr, cfg, norm, block_length=64).y, atol=1e-6)
    assert blocks.take(slice(0, 3)).y_swap.shape == (3,) + blocks.y.shape[1:]


def test_the_stream_draws_every_transformation_and_repeats_with_the_seed():
    pytest.importorskip("tensorflow")
    from eqnn.training.fitting import make_dataset
    n = 400
    x = np.zeros((n, 1, 4), np.float32)
    x[:, 0, 0] = 1.0                      # x polarization = 1 + 0j, y polarization = 0
    y = np.tile(np.float32([[1.0, 0.0]]), (n, 1))
    y_swap = np.tile(np.float32([[0.0, 2.0]]), (n, 1))

    def epoch(ds):  # one pass over the data
        batches = [(bx.numpy()[:, 0], by.numpy()) for bx, by in ds]
        return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])

    ds = make_dataset(x, y, 64, shuffle=True, seed=5, augment=("phase_rotation", "polarization_swap"), y_swap=y_swap)
    (x1, y1), (x2, _) = epoch(ds), epoch(ds)
    kinds = {tuple(np.round(v).astype(int)) for v in x1}
    assert kinds == {(1, 0, 0, 0), (0, 1, 0, 0), (-1, 0, 0, 0), (0, -1, 0, 0),
                     (0, 0, 1, 0), (0, 0, 0, 1), (0, 0, -1, 0), (0, 0, 0, -1)}
    assert not np.array_equal(x1, x2)                         # drawn anew every epoch
    # a swapped example carries the swapped target, rotated like its features
    swapped = np.abs(x1[:, 2:]).sum(axis=1) > 0.5
    np.testing.assert_allclose(np.hypot(y1[swapped, 0], y1[swapped, 1]), 2.0, atol=1e-6)
    np.testing.assert_allclose(np.hypot(y1[~swapped, 0], y1[~swapped, 1]), 1.0, atol=1e-6)
    again = make_dataset(x, y, 64, shuffle=True, seed=5, augment=("phase_rotation", "polarization_swap"),
                         y_swap=y_swap)
    np.testing.assert_array_equal(epoch(again)[0], x1)      # same seed, same draws
