"""Classical DSP cost: overlap-save CDC and split-step DBP per recovered single-polarization symbol.

The formulas (dispersion memory ``N_CD = ceil(|beta2| L 2 pi B F_s)``, ``RMpS_CDC = sps 4 N (log2 N + 1) /
(N - N_CD + 1)``, ``RMpS_DBP = n_spans k sps (2 RMpS_lin + 13 + exp_multiplications) / 2``) and the BoP / NABS
conventions are stated in :mod:`eqnn.complexity`.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from channel.config import LinkConfig

from .counting import ComplexityError, average_csd_digits, check_bits, check_count
from .results import Complexity


def dispersion_taps(config: LinkConfig, length_m: float, samples_per_symbol: int,
                    bandwidth_hz: Optional[float] = None) -> int:
    """``N_CD = max(1, ceil(|beta2| L 2 pi B F_s))``: dispersion memory of ``length_m`` of fiber in samples.

    ``B`` defaults to the signal bandwidth ``R_s (1 + rolloff)``; ``F_s = samples_per_symbol * R_s``.
    """
    if bandwidth_hz is None:
        bandwidth_hz = config.transmitter.symbol_rate * (1 + config.transmitter.rolloff)
    elif not (isinstance(bandwidth_hz, (int, float)) and math.isfinite(bandwidth_hz) and bandwidth_hz > 0):
        raise ComplexityError(f"bandwidth_hz = {bandwidth_hz!r}: allowed a finite number > 0 (Hz) or None")
    fs = samples_per_symbol * config.transmitter.symbol_rate
    spread_samples = abs(config.fiber.beta2) * length_m * 2 * math.pi * bandwidth_hz * fs
    return max(1, math.ceil(spread_samples - 1e-9))


def overlap_save_rmps_per_sample(fft_size: int, taps: int) -> float:
    """Real multiplications per output sample of one polarization: ``4 N (log2 N + 1) / (N - N_CD + 1)``."""
    return 4 * fft_size * (math.log2(fft_size) + 1) / (fft_size - taps + 1)


def optimal_fft_size(taps: int, max_log2: int = 24) -> int:
    """The power of two ``N >= max(2, taps)`` minimizing :func:`overlap_save_rmps_per_sample` (smallest on ties)."""
    start = max(1, math.ceil(math.log2(max(taps, 2))))
    best, best_cost = None, math.inf
    for m in range(start, max(start, max_log2) + 1):
        n = 2**m
        cost = overlap_save_rmps_per_sample(n, taps)
        if cost < best_cost - 1e-12:
            best, best_cost = n, cost
    return best


def _overlap_save_ops(fft_size: int, taps: int) -> dict:
    """Operations per output sample of one polarization of an overlap-save filter (see module docstring)."""
    n, lg = fft_size, math.log2(fft_size)
    outputs = n - taps + 1
    complex_mults = n * lg + n  # FFT + IFFT twiddles (n/2 log2 n each) + n filter coefficients
    return {"const_mults": 4 * complex_mults / outputs,
            "product_adds": 2 * complex_mults / outputs,
            "plain_adds": 2 * (2 * n * lg) / outputs}  # 2 transforms x (n/2 log2 n butterflies x 4 real adds)


def _dsp_result(name: str, ops: dict, bits: int, details: dict) -> Complexity:
    """Combine operation counts per symbol into a :class:`Complexity`."""
    mults = ops["const_mults"] + ops["var_mults"]
    adds = ops["product_adds"] + ops["plain_adds"]
    bop = mults * bits * bits + ops["product_adds"] * (2 * bits + 1) + ops["plain_adds"] * (bits + 1)
    nabs = ops["const_mults"] * (2 * average_csd_digits(bits) - 1) + ops["var_mults"] * (2 * bits - 1) + adds
    return Complexity(name=name, rmps=mults, additions=adds, bop=bop, nabs=nabs, bits=bits, details=details)


def _check_config(config) -> None:
    if not isinstance(config, LinkConfig):
        raise ComplexityError(f"config: expected a channel.LinkConfig, got {type(config).__name__}")


def cdc_complexity(config: LinkConfig, samples_per_symbol: int = 2, fft_size: Optional[int] = None,
                   bits: Optional[int] = None, bandwidth_hz: Optional[float] = None) -> Complexity:
    """Frequency-domain (overlap-save) CDC of the whole link, per recovered symbol of one polarization.

    ``RMpS = sps * 4 N_FFT (log2 N_FFT + 1) / (N_FFT - N_CD + 1)`` (Spinnler 2010; Freire et al. 2021/2023),
    ``N_CD = ceil(|beta2| L_total 2 pi B F_s)``, ``N_FFT`` the optimal power of two unless given.

    Args:
        config: the link.
        samples_per_symbol: oversampling of the CDC, integer in [1, 64] (default 2).
        fft_size: a power of two >= N_CD, or None for the cheapest.
        bits: sample/coefficient width for BoP and NABS, integer in [2, 32] (None: 32).
        bandwidth_hz: bandwidth B of the dispersion memory (default ``R_s (1 + rolloff)``).
    """
    _check_config(config)
    sps = check_count("samples_per_symbol", samples_per_symbol, 1, 64)
    b = check_bits("bits", bits)
    taps = dispersion_taps(config, config.total_length, sps, bandwidth_hz)
    n = _check_fft_size(fft_size, taps)
    per_sample = _overlap_save_ops(n, taps)
    ops = {"const_mults": sps * per_sample["const_mults"], "var_mults": 0.0,
           "product_adds": sps * per_sample["product_adds"], "plain_adds": sps * per_sample["plain_adds"]}
    details = {"fft_size": n, "taps": taps, "samples_per_symbol": sps, "outputs_per_block": n - taps + 1,
               "length_m": config.total_length, "scheme": "overlap-save, radix-2 FFT/IFFT, per polarization"}
    return _dsp_result("CDC", ops, b, details)


def _check_fft_size(fft_size, taps: int) -> int:
    if fft_size is None:
        return optimal_fft_size(taps)
    if isinstance(fft_size, bool) or not isinstance(fft_size, (int, np.integer)) or fft_size < max(taps, 2) \
            or (int(fft_size) & (int(fft_size) - 1)) != 0:
        raise ComplexityError(f"fft_size = {fft_size!r}: allowed a power of two >= max(2, N_CD = {taps}), or None "
                              "for the cheapest")
    return int(fft_size)


def dbp_complexity(config: LinkConfig, steps_per_span: int, samples_per_symbol: Optional[int] = None,
                   fft_size: Optional[int] = None, exp_multiplications: int = 0, bits: Optional[int] = None,
                   bandwidth_hz: Optional[float] = None) -> Complexity:
    """Split-step DBP with ``steps_per_span`` steps per span, per recovered symbol of one polarization.

    ``RMpS = n_spans k sps (2 * 4 N (log2 N + 1)/(N - N_CD,step + 1) + 4 + 1 + exp_multiplications + 8) / 2``
    with ``N_CD,step = ceil(|beta2| (L_span / k) 2 pi B F_s)`` and ``N`` its optimal FFT size; see the module
    docstring for every term.

    Args:
        config: the link.
        steps_per_span: k, integer in [1, 1000].
        samples_per_symbol: DBP oversampling (default ``config.receiver.dbp_samples_per_symbol``), [1, 64].
        fft_size: FFT size of each linear step (power of two >= N_CD,step), or None for the cheapest.
        exp_multiplications: real multiplications to evaluate ``exp(j phi)`` per sample (0: cos/sin look-up table).
        bits: sample/coefficient width for BoP and NABS, [2, 32] (None: 32).
        bandwidth_hz: bandwidth B of the dispersion memory (default ``R_s (1 + rolloff)``).
    """
    _check_config(config)
    k = check_count("steps_per_span", steps_per_span, 1, 1000)
    sps = check_count("samples_per_symbol", config.receiver.dbp_samples_per_symbol
                       if samples_per_symbol is None else samples_per_symbol, 1, 64)
    exp_m = check_count("exp_multiplications", exp_multiplications, 0)
    b = check_bits("bits", bits)
    taps = dispersion_taps(config, config.link.span_length / k, sps, bandwidth_hz)
    n = _check_fft_size(fft_size, taps)
    lin = _overlap_save_ops(n, taps)
    n_steps = config.link.n_spans * k
    # per time slot (dual-polarization sample) of one step; divided by 2 polarizations at the end
    per_slot = {"const_mults": 2 * lin["const_mults"] + 1,          # both pols' filters + phase scale
                "var_mults": 4 + exp_m + 8,                          # |A|^2, exp(j phi), 2 complex rotations
                "product_adds": 2 * lin["product_adds"] + 3 + 4,    # power sum, rotations
                "plain_adds": 2 * lin["plain_adds"]}
    ops = {key: value * n_steps * sps / 2 for key, value in per_slot.items()}
    details = {"steps_per_span": k, "n_steps": n_steps, "fft_size": n, "taps_per_step": taps,
               "samples_per_symbol": sps, "outputs_per_block": n - taps + 1,
               "linear_rmps_per_sample_per_pol": 4 * (n * math.log2(n) + n) / (n - taps + 1),
               "nonlinear_rmps_per_dual_pol_sample": 13 + exp_m, "exp_multiplications": exp_m,
               "scheme": "per step: overlap-save linear step on both polarizations + nonlinear phase rotation"}
    return _dsp_result(f"DBP-{k}", ops, b, details)

