"""Transceiver noise and converters (channel/transceiver.py), and the validation of every new configuration key
(laser, transceiver, carrier_recovery).

The quantizer is checked against the textbook SQNR ``6.02 ENOB + 1.76`` dB of a full-scale sinusoid and, for a
Gaussian input, against the granular noise ``Delta^2 / 12`` plus the closed-form clipping distortion; the electrical
SNR against a back-to-back link's measured SNR after the matched filter.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from tiny_configs import TINY_LINK_TAIL

import channel
from channel import ConfigError, LinkConfig
from channel.transceiver import quantize, sqnr_db
from eqnn.cli import main


def _sqnr(x: np.ndarray, q: np.ndarray) -> float:
    return 10 * math.log10(np.mean(x**2) / np.mean((q - x) ** 2))


@pytest.mark.parametrize("enob", [4, 6, 8, 10, 12])
def test_full_scale_sinusoid_gives_the_textbook_sqnr(enob):
    """A sinusoid whose peak is the full scale (clipping ratio sqrt(2)) quantized to ENOB bits (the frequency is
    incommensurate with the sampling): SQNR within 0.15 dB of 6.02 ENOB + 1.76 dB (the uniform-noise law) from
    8 bits on; below that, up to 0.6 dB under it (measured 0.53 dB at 4 bits, 0.28 at 6): the sine's arcsine density
    piles up in the outermost cells, whose error is then nearer Delta/2 than uniform."""
    n = 2**16
    x = np.sin(2 * math.pi * 0.1234567 * np.arange(n) + 0.3)
    x /= np.sqrt(np.mean(x**2)) * math.sqrt(2) / np.abs(x).max()  # peak = sqrt(2) rms exactly
    q = quantize(x, enob, math.sqrt(2))
    excess = (6.02 * enob + 1.76) - _sqnr(x, q)
    assert (abs(excess) < 0.15) if enob >= 8 else (0 < excess < 0.6), excess
    assert abs(sqnr_db(enob, math.sqrt(2)) - (6.02 * enob + 1.76)) < 0.01 * enob + 0.01


def _gaussian_sqnr_db(enob: float, ratio: float) -> float:
    """Unit-variance Gaussian x through a quantizer of full scale A = ratio, step Delta = 2A / 2^ENOB, outermost level
    L = A - Delta/2: granular Delta^2 / 12 for |x| < A (probability 1 - 2 Q(A)) plus overload
    2 E[(x - L)^2; x > A] = 2 [(1 + L^2) Q(A) + (A - 2L) phi(A)] (Q, phi: normal tail and density)."""
    step = 2 * ratio / 2.0**enob
    top = ratio - step / 2
    tail, density = stats.norm.sf(ratio), stats.norm.pdf(ratio)
    overload = 2 * ((1 + top**2) * tail + (ratio - 2 * top) * density)
    return -10 * math.log10(step**2 / 12 * (1 - 2 * tail) + overload)


@pytest.mark.parametrize("enob, ratio", [(4, 2.0), (6, 3.0), (8, 4.0), (5.5, 3.5), (8, 2.5)])
def test_gaussian_input_sqnr_with_clipping(enob, ratio):
    """A Gaussian input (2^18 samples): SQNR within 0.25 dB of granular plus overload noise; the overload term
    matters (at ENOB 8 and ratio 2.5 it costs more than 5 dB against the granular SQNR 6.02 ENOB + 4.77 - 20 log k,
    which :func:`sqnr_db` states)."""
    x = np.random.default_rng(3).standard_normal(2**18)
    measured = _sqnr(x, quantize(x, enob, ratio))
    assert abs(measured - _gaussian_sqnr_db(enob, ratio)) < 0.25, (measured, _gaussian_sqnr_db(enob, ratio))
    if (enob, ratio) == (8, 2.5):
        assert sqnr_db(enob, ratio) - measured > 5


def _back_to_back(**transceiver) -> LinkConfig:
    """One 1-km span without loss, dispersion effects aside, nonlinearity or ASE: only the transceiver's noise."""
    return channel.reference_config().replace(
        transmitter={"modulation": "16QAM", "n_symbols": 4096, "seed": 2},
        fiber={"gamma_per_w_km": 0.0}, link={"n_spans": 1, "span_length_km": 1.0, "noiseless": True},
        propagation={"step_mode": "fixed", "steps_per_span": 1}, transceiver=transceiver)


@pytest.mark.parametrize("transceiver, expected_db", [
    ({"tx_snr_db": 20.0}, 20.0),
    ({"rx_snr_db": 17.0}, 17.0),
    ({"tx_snr_db": 20.0, "rx_snr_db": 20.0}, 10 * math.log10(1 / (2 * 10**-2))),  # 1/SNR add: 16.99 dB
])
def test_back_to_back_link_measures_the_configured_snr(transceiver, expected_db):
    """Back to back (noiseless link), the effective SNR after CDC and the matched filter is the configured SNR over
    the symbol rate within 0.25 dB (2 x 4096 symbols: the estimate's standard deviation is about 0.05 dB);
    transmitter and receiver noise add as 1/SNR."""
    tr = channel.simulate(_back_to_back(**transceiver), dbp=False)
    assert abs(tr.metrics["CDC"].snr_db - expected_db) < 0.25, tr.metrics["CDC"].snr_db


@pytest.mark.parametrize("side, samples_per_symbol", [("adc", 2), ("dac", 4)])
def test_converter_noise_after_the_matched_filter(side, samples_per_symbol):
    """A 5-bit converter with a clipping ratio of 5 (clipping negligible): the quantization noise is white over the
    converter's sample rate, so after the matched filter the SNR is the granular SQNR plus 10 log10(fs / Rs) (the ADC
    samples at dbp_samples_per_symbol = 2, the DAC at the simulation's 4), within 0.3 dB."""
    tr = channel.simulate(_back_to_back(**{f"{side}_enob": 5.0, f"{side}_clipping_ratio": 5.0}), dbp=False)
    expected = sqnr_db(5.0, 5.0) + 10 * math.log10(samples_per_symbol)
    assert abs(tr.metrics["CDC"].snr_db - expected) < 0.3, (tr.metrics["CDC"].snr_db, expected)


BAD_VALUES = [
    # (section, key, value, substrings the one-line message must contain)
    ("laser", "tx_linewidth_hz", -1.0, ["laser.tx_linewidth_hz = -1.0", "[0, 1e+08]"]),
    ("laser", "lo_linewidth_hz", 2e8, ["laser.lo_linewidth_hz = 2", "[0, 1e+08]"]),
    ("laser", "lo_linewidth_hz", "1e5", ["laser.lo_linewidth_hz = '1e5'", "finite number"]),
    ("laser", "frequency_offset_hz", float("nan"), ["laser.frequency_offset_hz = nan", "finite number"]),
    ("laser", "frequency_offset_hz", 8e9, ["laser.frequency_offset_hz = 8", "[-7.5e+09, 7.5e+09]"]),
    ("transceiver", "tx_snr_db", 120.0, ["transceiver.tx_snr_db = 120.0", "[-10, 100]"]),
    ("transceiver", "rx_snr_db", True, ["transceiver.rx_snr_db = True", "finite number"]),
    ("transceiver", "dac_enob", 0.5, ["transceiver.dac_enob = 0.5", "[1, 24]"]),
    ("transceiver", "adc_enob", 30, ["transceiver.adc_enob = 30", "[1, 24]"]),
    ("transceiver", "adc_clipping_ratio", 2.0, ["transceiver.adc_clipping_ratio = 2.0", "no effect",
                                                "transceiver.adc_enob"]),
    ("carrier_recovery", "method", "viterbi", ["carrier_recovery.method = 'viterbi'", "'blind_phase_search'"]),
    ("carrier_recovery", "test_phases", 2, ["carrier_recovery.test_phases = 2", "[4, 1024]"]),
    ("carrier_recovery", "window_symbols", 64, ["carrier_recovery.window_symbols = 64", "odd", "[1, 4095]"]),
    ("carrier_recovery", "pilot_rate", 0.75, ["carrier_recovery.pilot_rate = 0.75", "[0, 0.5]"]),
    ("carrier_recovery", "pilot_block", 0, ["carrier_recovery.pilot_block = 0", "[1, 4096]"]),
    ("carrier_recovery", "joint_polarizations", 1, ["carrier_recovery.joint_polarizations = 1", "true or false"]),
    ("carrier_recovery", "frequency_offset_estimation", "yes",
     ["carrier_recovery.frequency_offset_estimation = 'yes'", "true or false"]),
    ("carrier_recovery", "pilot_rate", 0.1, ["carrier_recovery.pilot_rate = 0.1", "no effect", "'none'"]),
]


@pytest.mark.parametrize("section, key, value, expected", BAD_VALUES,
                         ids=[f"{s}.{k}={v!r}" for s, k, v, _ in BAD_VALUES])
def test_bad_value_names_key_value_and_range(section, key, value, expected):
    """Each bad value raises one line naming the key, the value and what is allowed, the same from code and from a
    table (the TOML path)."""
    with pytest.raises(ConfigError) as exc:
        channel.reference_config().replace(**{section: {key: value}})
    message = str(exc.value)
    assert "\n" not in message
    for text in expected:
        assert text in message, (text, message)
    with pytest.raises(ConfigError) as exc2:
        LinkConfig.from_dict({section: {key: value}})
    assert str(exc2.value) == message
    with pytest.raises(ConfigError, match="unknown key"):
        LinkConfig.from_dict({section: {"typo": 1}})


def test_bad_impairment_key_fails_the_command_line_in_one_line(tmp_path, capsys, monkeypatch):
    """`eqnn simulate` on a link file with a bad [laser] value: exit code 2, one line on stderr naming the key,
    before any propagation."""
    import channel.link

    monkeypatch.setattr(channel.link, "propagate_link", lambda *a, **k: pytest.fail("simulated despite bad input"))
    path = tmp_path / "link.toml"
    path.write_text('name = "small"\n[transmitter]\nmodulation = "16QAM"\nn_symbols = 512\n' + TINY_LINK_TAIL
                    + "[laser]\ntx_linewidth_hz = -5.0\n")
    assert main(["simulate", str(path), "--no-cache", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("eqnn simulate: error: ") and "laser.tx_linewidth_hz = -5.0" in err
