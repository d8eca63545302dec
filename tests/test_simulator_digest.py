"""The simulation cache is keyed by the configuration and :data:`channel.storage.SIMULATOR_VERSION` (and, for WDM
links, :data:`channel.storage.WDM_VERSION`): a change of the physics that does not bump them would let old cache
files pass for new results. These tests pin a digest of the output of two tiny links (single channel and WDM; fixed
seed, ASE noise, fixed steps, CDC and DBP-1 at xi = 1) to the versions they belong to, so any change of the
simulator's numbers fails here until the version is bumped and the digest updated.

The digest is a SHA-256 of the received CDC and DBP symbols (unit-energy constellation scale) rounded to
:data:`QUANTUM` = 1e-7: last-bit floating-point differences between machines (FFT code paths, SIMD, thread counts,
about 1e-15 here) move a value across a rounding boundary with a probability of about 1e-8 per value, while any
change of the physics moves the symbols by far more than 1e-7.
"""

from __future__ import annotations

import hashlib

import numpy as np

import channel
from channel import storage

QUANTUM = 1e-7

# {SIMULATOR_VERSION: digest} and {(SIMULATOR_VERSION, WDM_VERSION): digest}; add a line when bumping a version
SINGLE_CHANNEL_DIGESTS = {2: "f74bf4da49c652aca765da174f30c0c5984d1384c69e8d981e5383dd4b4521a6"}
WDM_DIGESTS = {(2, 2): "a9469d2bc230f27d7a445904784e8d3727f9e4a6cd678d1fe2fbc5f11fe50c59"}

MESSAGE = ("the simulator's output changed: bump SIMULATOR_VERSION in channel/storage.py and update this digest "
           "(WDM_VERSION instead if only WDM links changed)")


def tiny_link(**transmitter) -> channel.LinkConfig:
    return channel.reference_config().replace(
        transmitter={"modulation": "16QAM", "n_symbols": 512, "seed": 11, "launch_power_dbm": 2.0, **transmitter},
        link={"n_spans": 2, "span_length_km": 60.0, "noise_figure_db": 5.0},
        propagation={"step_mode": "fixed", "steps_per_span": 6},
        receiver={"dbp_steps_per_span": [1, 3], "dbp_xi": 1.0})


def output_digest(tr: channel.Transmission) -> str:
    """SHA-256 of the CDC and DBP symbols of ``tr`` rounded to :data:`QUANTUM` (they are ~unit RMS)."""
    h = hashlib.sha256()
    for name, symbols in [("CDC", tr.rx_cdc)] + [(f"DBP-{k}", tr.rx_dbp[k]) for k in sorted(tr.rx_dbp)]:
        parts = np.stack([symbols.real, symbols.imag])
        assert 0.5 < np.sqrt(np.mean(parts**2) * 2) < 2, f"{name}: not on the unit-energy scale"
        h.update(name.encode())
        h.update(np.round(parts / QUANTUM).astype("<i8").tobytes())
    h.update(tr.tx_indices.astype("<i8").tobytes())
    return h.hexdigest()


def test_single_channel_output_matches_the_simulator_version():
    digest = output_digest(channel.simulate(tiny_link()))
    assert storage.SIMULATOR_VERSION in SINGLE_CHANNEL_DIGESTS, MESSAGE
    assert digest == SINGLE_CHANNEL_DIGESTS[storage.SIMULATOR_VERSION], f"{MESSAGE}; new digest {digest}"


def test_wdm_output_matches_the_simulator_and_wdm_versions():
    cfg = tiny_link(n_channels=3, channel_spacing_ghz=50.0, samples_per_symbol="auto")
    cfg = cfg.replace(fiber={"dispersion_slope_ps_nm2_km": 0.06}, receiver={"channel_index": 0})
    digest = output_digest(channel.simulate(cfg))
    key = (storage.SIMULATOR_VERSION, storage.WDM_VERSION)
    assert key in WDM_DIGESTS, MESSAGE
    assert digest == WDM_DIGESTS[key], f"{MESSAGE}; new digest {digest}"
