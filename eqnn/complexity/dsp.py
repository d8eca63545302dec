"""Classical DSP cost: overlap-save CDC and split-step DBP per recovered single-polarization symbol.

The formulas (dispersion memory ``N_CD = ceil(|beta2| L 2 pi B F_s)``, ``RMpS_CDC = sps 4 N (log2 N + 1) /
(N - N_CD + 1)``, ``RMpS_DBP = n_spans k sps (2 RMpS_lin + 13 + M + exp_multiplications) / 2`` with ``2M + 1`` taps of
the power filter of filtered DBP, ``M = 0`` without it) and the BoP / NABS conventions are stated in
:mod:`eqnn.complexity`. :func:`count_dbp_nonlinear_step_reference` performs DBP's nonlinear step one operation at a
time and counts them.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from channel.config import LinkConfig

from .counting import ComplexityError, Counter, average_csd_digits, check_bits, check_count
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
                   bandwidth_hz: Optional[float] = None, power_filter_taps: Optional[int] = None) -> Complexity:
    """Split-step DBP with ``steps_per_span`` steps per span, per recovered symbol of one polarization.

    ``RMpS = n_spans k sps (2 * 4 N (log2 N + 1)/(N - N_CD,step + 1) + 4 + (M + 1) + exp_multiplications + 8) / 2``
    with ``N_CD,step = ceil(|beta2| (L_span / k) 2 pi B F_s)``, ``N`` its optimal FFT size and ``2M + 1`` the taps
    of the power filter (filtered DBP; ``M = 0``: the phase scale alone); see :mod:`eqnn.complexity` for every
    term. The position of the nonlinear step within a step costs nothing (the linear sub-steps are merged as for
    the symmetric step).

    Args:
        config: the link.
        steps_per_span: k, integer in [1, 1000].
        samples_per_symbol: DBP oversampling (default ``config.receiver.dbp_samples_per_symbol``), [1, 64].
        fft_size: FFT size of each linear step (power of two >= N_CD,step), or None for the cheapest.
        exp_multiplications: real multiplications to evaluate ``exp(j phi)`` per sample (0: cos/sin look-up table).
        bits: sample/coefficient width for BoP and NABS, [2, 32] (None: 32).
        bandwidth_hz: bandwidth B of the dispersion memory (default ``R_s (1 + rolloff)``).
        power_filter_taps: taps 2M + 1 of the power filter of filtered DBP, an odd integer in [1, 1001]
            (default ``config.receiver.dbp_power_filter_taps``; 1: no filter).
    """
    _check_config(config)
    k = check_count("steps_per_span", steps_per_span, 1, 1000)
    filter_taps = check_count("power_filter_taps", config.receiver.dbp_power_filter_taps
                              if power_filter_taps is None else power_filter_taps, 1, 1001)
    if filter_taps % 2 != 1:
        raise ComplexityError(f"power_filter_taps = {filter_taps}: allowed odd integers in [1, 1001]")
    half_taps = (filter_taps - 1) // 2
    sps = check_count("samples_per_symbol", config.receiver.dbp_samples_per_symbol
                       if samples_per_symbol is None else samples_per_symbol, 1, 64)
    exp_m = check_count("exp_multiplications", exp_multiplications, 0)
    b = check_bits("bits", bits)
    taps = dispersion_taps(config, config.link.span_length / k, sps, bandwidth_hz)
    n = _check_fft_size(fft_size, taps)
    lin = _overlap_save_ops(n, taps)
    n_steps = config.link.n_spans * k
    # per time slot (dual-polarization sample) of one step; divided by 2 polarizations at the end
    per_slot = {"const_mults": 2 * lin["const_mults"] + 1 + half_taps,  # both pols' filters + phase scale
                                                                      # (folded into the M + 1 power-filter taps)
                "var_mults": 4 + exp_m + 8,                          # |A|^2, exp(j phi), 2 complex rotations
                "product_adds": 2 * lin["product_adds"] + 3 + 4 + half_taps,  # power sum, rotations, filter sum
                "plain_adds": 2 * lin["plain_adds"] + half_taps}     # filter: pairs of symmetric taps pre-added
    ops = {key: value * n_steps * sps / 2 for key, value in per_slot.items()}
    details = {"steps_per_span": k, "n_steps": n_steps, "fft_size": n, "taps_per_step": taps,
               "samples_per_symbol": sps, "outputs_per_block": n - taps + 1,
               "linear_rmps_per_sample_per_pol": 4 * (n * math.log2(n) + n) / (n - taps + 1),
               "nonlinear_rmps_per_dual_pol_sample": 13 + half_taps + exp_m, "exp_multiplications": exp_m,
               "power_filter_taps": filter_taps,
               "scheme": "per step: overlap-save linear step on both polarizations + nonlinear phase rotation"
                         + (f" of the power filtered by a symmetric {filter_taps}-tap FIR" if filter_taps > 1 else "")}
    return _dsp_result(f"DBP-{k}", ops, b, details)


def count_dbp_nonlinear_step_reference(field: np.ndarray, coefficient: float,
                                       power_filter: Optional[np.ndarray] = None) -> tuple[np.ndarray, Counter]:
    """DBP's nonlinear step on ``field`` done one real operation at a time, counting them (the reference of the
    nonlinear term of :func:`dbp_complexity`).

    Per dual-polarization sample ``n`` (indices modulo the block, as the stepper filters circularly):
    ``P[n] = Re(A_x)^2 + Im(A_x)^2 + Re(A_y)^2 + Im(A_y)^2`` (4 multiplications, 3 additions); the phase
    ``phi[n] = c_0 P[n] + sum_{m=1..M} c_m (P[n - m] + P[n + m])`` with the constants ``c_m = coefficient g[M + m]``
    of a symmetric filter ``g`` of ``2M + 1`` taps (``M`` pre-additions, ``M + 1`` multiplications, ``M`` additions;
    without a filter ``phi = coefficient P``, one multiplication); ``exp(j phi)`` by a cos/sin look-up (no
    multiplication); the rotation of both polarizations (2 complex multiplications: 8 multiplications, 4 additions).

    Args:
        field: complex (2, n): the field before the step.
        coefficient: the phase scale of the step, ``-xi (8/9) gamma h_eff`` for DBP (any real number).
        power_filter: the FIR taps ``g``, shape (2M + 1,), symmetric (``g[M + m] = g[M - m]``); None: no filter.
    Returns: (the field after the step, complex128 (2, n); the :class:`Counter` of its operations).
    """
    x = np.asarray(field, dtype=np.complex128)
    if x.ndim != 2 or x.shape[0] != 2:
        raise ComplexityError(f"field must have shape (2, n), got {x.shape}")
    g = np.array([1.0]) if power_filter is None else np.asarray(power_filter, dtype=float)
    if g.ndim != 1 or len(g) % 2 != 1 or not np.allclose(g, g[::-1], rtol=0, atol=0):
        raise ComplexityError("power_filter must be a symmetric FIR of an odd number of taps")
    half = (len(g) - 1) // 2
    constants = [float(coefficient * g[half + m]) for m in range(half + 1)]  # precomputed once per step
    counter = Counter()
    n = x.shape[1]
    power = np.empty(n)
    for i in range(n):
        ax, ay = x[0, i], x[1, i]
        terms = [counter.mul(ax.real, ax.real), counter.mul(ax.imag, ax.imag),
                 counter.mul(ay.real, ay.real), counter.mul(ay.imag, ay.imag)]
        power[i] = counter.add(counter.add(counter.add(terms[0], terms[1]), terms[2]), terms[3])
    out = np.empty_like(x)
    for i in range(n):
        phase = counter.mul(constants[0], power[i])
        for m in range(1, half + 1):
            pair = counter.add(power[(i - m) % n], power[(i + m) % n])
            phase = counter.add(phase, counter.mul(constants[m], pair))
        cos, sin = math.cos(phase), math.sin(phase)  # look-up table: no multiplication
        for pol in range(2):
            a = x[pol, i]
            re = counter.add(counter.mul(a.real, cos), -counter.mul(a.imag, sin))
            im = counter.add(counter.mul(a.real, sin), counter.mul(a.imag, cos))
            out[pol, i] = complex(re, im)
    return out, counter

