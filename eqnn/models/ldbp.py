"""The ``ldbp`` family: learned digital back-propagation (Häger & Pfister, "Nonlinear interference mitigation via deep
neural networks", OFC 2018; "Physics-based deep learning for fiber-optic communication systems", IEEE JSAC 39(1),
2021): DBP written as a deep network of short complex FIRs and nonlinear phase rotations, trained end to end.

Input: the received field of the channel under test before CDC, at ``sps = receiver.dbp_samples_per_symbol``
samples per symbol (:attr:`channel.Transmission.rx_field`, the input of DBP), in sqrt(mW) (:mod:`eqnn.data_field`):
``(T, 4)`` = ``[Re A_x, Im A_x, Re A_y, Im A_y]`` per sample. Output: ``(B, n_outputs)``: the transmitted symbols
of the target polarizations (x, or x and y), one per ``sps`` input samples.

Layers (:mod:`eqnn.layers.ldbp`), for ``S = n_spans * steps_per_span`` steps, every filter "valid" (the output is
shorter than the input by the filter's length minus 1)::

    fir_1 -> nonlinear_1 -> fir_2 -> nonlinear_2 -> ... -> fir_S -> nonlinear_S -> output [-> select]

``fir_i``: a complex FIR of ``taps`` taps (the same on both polarizations) for the dispersion (and loss/gain) of
the linear part before nonlinear step ``i``; ``nonlinear_i``: ``A <- A exp(j theta_i (g_i * P))``, ``P = |A_x|^2 +
|A_y|^2``, with a learnable ``theta_i`` and, with ``power_taps > 1``, a learnable real filter ``g_i`` over the power of
neighbouring samples (filtered DBP / enhanced SSFM); ``output``: a complex FIR of ``output_taps`` taps with stride
``sps``: the last linear part, the RRC matched filter, the sampling at the symbol instants and the receiver's complex
gain in one filter; ``select``: the target polarizations (an x-only model drops the y output).

Initialization from DBP (:func:`initial_weights`): the model is first the DBP of :mod:`channel.dbp` with the same
steps per span, ``xi`` and nonlinear-step position ``p`` (fixed, or searched on the training transmission with
:meth:`channel.dbp.DigitalBackPropagation.optimize`), which back-propagates span by span (gain ``1/sqrt(G)``) with
steps ``L(q h) N(h) L((1 - q) h)``, ``h = L_span / k``, ``q = 1 - p``. Merging adjacent linear parts, the linear
part before nonlinear step ``i`` (0-based) is ``L(q h)`` for ``i = 0`` and ``L(h)`` after, times ``1/sqrt(G)`` at a
span start (``i`` a multiple of k); the last is ``L((1 - q) h)``. ``L(l)`` has the response
``exp(alpha l / 2) exp(-j (beta2/2 w^2 - beta3/6 w^3) l)`` (the inverse fiber). Each FIR is the least-squares
fit (:func:`fit_fir`) of its response: weight 1 over ``|f| <= fit_bandwidth R_s / 2`` (the signal band by
default), weight ``out_of_band_weight`` towards 0 in the stop band beyond a transition of :data:`TRANSITION` R_s
(a cascade of many steps multiplies the out-of-band gains: unconstrained, the noise there grows without bound;
where the fitted filters' peak gains, multiplied over the cascade, would exceed :data:`MAX_CASCADE_GAIN` (short
filters: 13 taps per 50-km span peak at 5.5 with the default weight, 10^14 over 20 spans, and the float32 model
overflows), the stop-band weight is raised tenfold at a time, up to 1, until they do not), no weight in the
transition (without dispersion slope the response is even in frequency and
the taps symmetric, ``w_k = w_{N-1-k}``, made exact; a product then serves two taps, :mod:`eqnn.layers.ldbp`); the
output filter is fitted over the whole band to
``L((1 - q) h) RRC(f) / c`` (zero outside the RRC's band), ``c`` the complex gain of DBP's output against the
transmitted symbols on the training transmission. ``theta_i = (8/9) (-xi gamma) h_eff(-alpha, h, q) 10^-3`` (per
mW, :func:`channel.fiber.effective_length`); power filters start as a unit centre tap (plain DBP). With filters long
enough, the untrained model reproduces DBP's symbols (``tests/test_ldbp.py`` states the tolerance).

The link quantities are resolved once, by :func:`prepare` from the (first) training transmission, into
``LDBPConfig.link`` (:class:`LDBPLink`): the saved model config carries them, so a loaded model is rebuilt with the
same architecture before its weights are restored.

Data (:mod:`eqnn.data_field`): training blocks of ``block_length`` symbols (the input extended by the model's reach
on each side, circularly, as the simulator's block is circular); inference in blocks of ``inference_block`` symbols.
``data.residual``, ``data.normalize_targets`` and ``data.augment`` do not apply (the target is the transmitted
symbol itself; the field keeps its physical scale, which the nonlinearity needs).

Cost (:mod:`eqnn.complexity`, :mod:`eqnn.layers.ldbp`): one inference block of ``B`` symbols (input ``sps B - 1 +
D`` samples, ``D`` the total shortening), counted on the actual taps, divided by ``2 B``: per recovered symbol and
polarization. LDBP recovers both polarizations with the same filters, so it is costed as DBP is, on both (an x-only
model computes the y output too and drops it). Unpruned, per symbol and polarization, with time-domain filters:
``S (4 sps N + 13 sps / 2) + 4 N_out`` plus the block edges (``N = taps``, ``N_out = output_taps``, no power
filter); with a filter applied in the frequency domain (``filter_domain``), its ``4 sps N`` (``4 N_out``) becomes
``sps 4 F (log2 F + 1) / (F - N + 1)`` (F its FFT size), plus the last block's unused part: the cost of DBP's linear
steps (:func:`eqnn.complexity.dsp.dbp_complexity`), which the taps' values no longer change.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Union

import numpy as np

from channel.validation import ConfigError, check_choice, check_int, check_number

from ..data_field import FIELD_UNIT_W  # the model input's unit: sqrt(mW) (|A|^2 of order 1 at the powers studied)
from ..keras2 import keras  # tf_keras, imported on first use (configs validate without TensorFlow)
from .common import check_name, keras_name
from .registry import CustomInput, ModelFamily, register_model_family

#: width (in units of the symbol rate) of the transition band between the fitted band and the stop band (free)
TRANSITION = 0.2
#: frequency points of the least-squares fits over the whole band [-fs/2, fs/2)
FIT_POINTS = 4096
#: the xi / position search of ``prepare`` runs on at most this many symbols of the training transmission
SEARCH_SYMBOLS = 2**16
#: bound on the product over the steps of each fitted step filter's peak gain |H(w)| (60 dB); beyond it
#: :func:`initial_weights` raises the stop-band weight (module docstring)
MAX_CASCADE_GAIN = 1e3
MAX_TAPS = 4001
MAX_BLOCK = 2**20


@dataclass(frozen=True)
class LDBPLink:
    """The link quantities an LDBP is initialized from, resolved from the training transmission (module docstring).

    Attributes:
        n_spans: spans.  span_length_m: span length (m).  alpha: power attenuation (1/m).
        beta2, beta3: dispersion of the received channel (s^2/m, s^3/m).  gamma: nonlinear coefficient (1/W/m).
        gain: amplifier power gain (linear).  symbol_rate: R_s (Hz).  samples_per_symbol: of the input field.
        rolloff: RRC roll-off.  xi: DBP's nonlinear scaling.  nonlinear_position: p (from the high-power end).
        output_gain_re, output_gain_im: complex gain of DBP's output (input in sqrt(mW)) against the symbols.
    """

    n_spans: int
    span_length_m: float
    alpha: float
    beta2: float
    beta3: float
    gamma: float
    gain: float
    symbol_rate: float
    samples_per_symbol: int
    rolloff: float
    xi: float
    nonlinear_position: float
    output_gain_re: float = 1.0
    output_gain_im: float = 0.0


def _odd(key: str, value: Any, high: int) -> int:
    check_int(key, value, 1, high)
    if value % 2 != 1:
        raise ConfigError(f"{key} = {value!r}: allowed odd integers in [1, {high}]")
    return int(value)


@dataclass(frozen=True)
class LDBPConfig:
    """Learned digital back-propagation on the received field before CDC (:mod:`eqnn.models.ldbp`).

    Attributes:
        name: label.
        steps_per_span: k, DBP steps per span (nonlinear steps = n_spans k), [1, 64].
        taps: complex taps of each step's FIR (samples at the DBP oversampling), an odd integer in [1, 4001].
        taps_per_step: complex taps of each step's FIR, one odd integer in [1, 4001] per step (n_spans *
            steps_per_span of them), or leave it out: every step has ``taps``. Set by compression (pruning the
            outermost taps, ``ldbp_edges``) when the steps' filters end up with different lengths.
        output_taps: complex taps of the output filter (last linear part, matched filter, sampling and gain), an
            odd integer in [1, 4001].
        power_taps: taps of the learnable real filter on the power of each nonlinear step (1: none, plain DBP's
            rotation), an odd integer in [1, 101].
        xi: DBP's nonlinear scaling the phases start from, a number in [0, 1.5], or "optimize" (searched on the
            training transmission as DBP's xi is).
        nonlinear_position: position p in [0, 1] of the nonlinear step in each step, from its high-power end (0.5:
            symmetric), or "optimize" (searched jointly with xi).
        fit_bandwidth: the band (in units of the symbol rate, centred) over which each step's FIR is fitted to its
            dispersion response with full weight, a number in (0, samples per symbol], or "signal" (``1 +
            rolloff``).
        out_of_band_weight: least-squares weight (relative to 1 in the fitted band) of the stop band, where each
            step's FIR is fitted towards 0, [0, 1]: larger suppresses noise and out-of-band growth over many steps,
            smaller fits the band better (raised where the cascade would amplify by more than 60 dB,
            :data:`MAX_CASCADE_GAIN`).
        filter_domain: how every FIR (the steps' and the output filter) is applied: "time" (a convolution, 4 real
            multiplications per complex tap and output), "frequency" (overlap-save with radix-2 FFTs of the cheapest
            size for its taps), or "auto" (per filter, the cheaper of the two: the frequency domain from 9 taps at
            1 sample per output, from 19 for the strided output filter at 2 samples per symbol). The output is the
            same; only the cost differs (:mod:`eqnn.layers.ldbp`).
        block_length: symbols per training block, [1, 1048576].
        inference_block: symbols per inference block (the cost is counted on one), [1, 1048576].
        link: the link quantities the model is initialized from; set by training from the training transmission
            (leave it out of a TOML).
    """

    type: ClassVar[str] = "ldbp"
    name: str = "LDBP"
    steps_per_span: int = 1
    taps: int = 15
    output_taps: int = 41
    power_taps: int = 1
    xi: Union[float, str] = "optimize"
    nonlinear_position: Union[float, str] = 0.5
    fit_bandwidth: Union[float, str] = "signal"
    out_of_band_weight: float = 1e-4
    filter_domain: str = "auto"
    block_length: int = 256
    inference_block: int = 4096
    link: Optional[LDBPLink] = None
    taps_per_step: Optional[tuple[int, ...]] = None

    def __post_init__(self) -> None:
        s = "models.ldbp"
        check_name(s, self.name)
        check_int(f"{s}.steps_per_span", self.steps_per_span, 1, 64)
        _odd(f"{s}.taps", self.taps, MAX_TAPS)
        _odd(f"{s}.output_taps", self.output_taps, MAX_TAPS)
        _odd(f"{s}.power_taps", self.power_taps, 101)
        for key, high in (("xi", 1.5), ("nonlinear_position", 1.0)):
            value = getattr(self, key)
            if isinstance(value, str):
                check_choice(f"{s}.{key}", value, ("optimize",))
            else:
                object.__setattr__(self, key, check_number(f"{s}.{key}", value, 0.0, high))
        if isinstance(self.fit_bandwidth, str):
            check_choice(f"{s}.fit_bandwidth", self.fit_bandwidth, ("signal",))
        else:
            value = check_number(f"{s}.fit_bandwidth", self.fit_bandwidth, 0.0, 64.0)
            if value <= 0:
                raise ConfigError(f"{s}.fit_bandwidth = {value!r}: allowed a number in (0, samples per symbol] or "
                                  "'signal'")
            object.__setattr__(self, "fit_bandwidth", value)
        object.__setattr__(self, "out_of_band_weight", check_number(f"{s}.out_of_band_weight",
                                                                    self.out_of_band_weight, 0.0, 1.0))
        if self.taps_per_step is not None:
            if isinstance(self.taps_per_step, (str, bytes)) or not isinstance(self.taps_per_step, (list, tuple)) \
                    or not self.taps_per_step:
                raise ConfigError(f"{s}.taps_per_step = {self.taps_per_step!r}: allowed a list of odd integers in "
                                  f"[1, {MAX_TAPS}], one per step, or leave it out")
            object.__setattr__(self, "taps_per_step", tuple(
                _odd(f"{s}.taps_per_step[{i}]", v, MAX_TAPS) for i, v in enumerate(self.taps_per_step)))
        check_choice(f"{s}.filter_domain", self.filter_domain, ("time", "frequency", "auto"))
        check_int(f"{s}.block_length", self.block_length, 1, MAX_BLOCK)
        check_int(f"{s}.inference_block", self.inference_block, 1, MAX_BLOCK)
        if isinstance(self.link, dict):
            names = {f.name for f in dataclasses.fields(LDBPLink)}
            unknown = set(self.link) - names
            if unknown:
                raise ConfigError(f"{s}.link: unknown key(s) {sorted(unknown)}; allowed {', '.join(sorted(names))}")
            try:
                object.__setattr__(self, "link", LDBPLink(**self.link))
            except TypeError as exc:
                raise ConfigError(f"{s}.link: {exc}") from None
        elif self.link is not None and not isinstance(self.link, LDBPLink):
            raise ConfigError(f"{s}.link = {self.link!r}: set by training; leave it out")
        if self.link is not None and self.taps_per_step is not None and len(self.taps_per_step) != self.n_steps():
            raise ConfigError(f"{s}.taps_per_step has {len(self.taps_per_step)} entries: allowed one per step "
                              f"({self.n_steps()} = n_spans x steps_per_span)")
        if self.link is not None and isinstance(self.fit_bandwidth, float) and \
                self.fit_bandwidth > self.link.samples_per_symbol:
            raise ConfigError(f"{s}.fit_bandwidth = {self.fit_bandwidth}: allowed (0, "
                              f"{self.link.samples_per_symbol}] (the samples per symbol of the field) or 'signal'")

    @property
    def sps(self) -> int:
        return 2 if self.link is None else int(self.link.samples_per_symbol)

    def n_steps(self) -> int:
        """Nonlinear steps ``S`` (1 per FIR before the output filter); ``steps_per_span`` when the link is unset."""
        return self.steps_per_span * (1 if self.link is None else self.link.n_spans)

    def step_taps(self, i: int) -> int:
        """Complex taps of the FIR of step ``i`` (1-based): ``taps_per_step[i - 1]``, else ``taps``."""
        return self.taps if self.taps_per_step is None else self.taps_per_step[i - 1]

    @property
    def reach(self) -> int:
        """Half the total shortening ``D / 2`` (samples): output symbol ``j`` is centred on input sample
        ``sps j + reach``."""
        s = self.n_steps()
        firs = sum(self.step_taps(i) - 1 for i in range(1, s + 1))
        return (firs + s * (self.power_taps - 1) + self.output_taps - 1) // 2

    def input_samples(self, symbols: int) -> int:
        """Input samples of a block delivering ``symbols`` symbols: ``sps (symbols - 1) + 1 + 2 reach``."""
        return self.sps * (symbols - 1) + 1 + 2 * self.reach


# -------------------------------------------------------------------------------------------- initialization


def fit_fir(response, n_taps: int, omega: np.ndarray, weights: np.ndarray, ridge: float = 1e-9) -> np.ndarray:
    """Weighted least-squares FIR: complex taps ``w`` (n_taps,) minimizing
    ``sum_f weights_f |sum_k w_k exp(j omega_f (k - M)) - response_f|^2 + ridge sum_f weights_f ||w||^2``.

    ``omega``: angular frequencies in rad per sample, ``response`` the target at them (complex), ``weights`` >= 0.
    """
    m = (n_taps - 1) // 2
    a = np.exp(1j * np.outer(omega, np.arange(n_taps) - m))
    sw = np.sqrt(weights)[:, None]
    lhs = (sw * a).conj().T @ (sw * a) + ridge * float(np.sum(weights)) * np.eye(n_taps)
    rhs = (sw * a).conj().T @ (sw[:, 0] * response)
    return np.linalg.solve(lhs, rhs)


def _linear_response(link: LDBPLink, length: float, omega_rad_s: np.ndarray) -> np.ndarray:
    """Response of the inverse fiber over ``length`` m: ``exp(alpha l/2) exp(-j (beta2/2 w^2 - beta3/6 w^3) l)``."""
    phase = -(link.beta2 / 2 * omega_rad_s**2 - link.beta3 / 6 * omega_rad_s**3) * length
    return math.exp(link.alpha * length / 2) * np.exp(1j * phase)


def segments(config: LDBPConfig) -> tuple[list[tuple[float, float]], float]:
    """([(length m, scalar) of the linear part before each nonlinear step], length of the last linear part)."""
    link = config.link
    k = config.steps_per_span
    h = link.span_length_m / k
    q = 0.5 if link.nonlinear_position == 0.5 else 1.0 - link.nonlinear_position
    g = 1 / math.sqrt(link.gain)
    out = [((q * h) if i == 0 else h, g if i % k == 0 else 1.0) for i in range(link.n_spans * k)]
    return out, (1 - q) * h


def initial_weights(config: LDBPConfig) -> dict[str, list[np.ndarray]]:
    """``{layer name: weights}`` of the DBP the model starts as (module docstring); needs ``config.link``."""
    from channel.fiber import MANAKOV_FACTOR, effective_length
    from channel.transmitter import rrc_spectrum

    link = config.link
    if link is None:
        raise ValueError("initial_weights needs config.link (set by prepare from a training transmission)")
    sps = link.samples_per_symbol
    fs = sps * link.symbol_rate
    digital = 2 * np.pi * np.fft.fftfreq(FIT_POINTS)  # rad per sample
    omega = digital * fs
    f_rel = np.abs(np.fft.fftfreq(FIT_POINTS, d=1 / sps))  # |f| / R_s
    band = (1 + link.rolloff) if config.fit_bandwidth == "signal" else float(config.fit_bandwidth)
    inside = f_rel <= band / 2 + 1e-12
    parts, last = segments(config)
    stop = f_rel >= band / 2 + TRANSITION / 2
    keys = [(round(length, 6), scalar, config.step_taps(i)) for i, (length, scalar) in enumerate(parts, start=1)]
    lengths: dict = {}  # per distinct filter, the exact length of its first step
    for key, (length, _) in zip(keys, parts):
        lengths.setdefault(key, length)
    weight = config.out_of_band_weight
    while True:
        weights = np.where(inside, 1.0, np.where(stop, weight, 0.0))
        cache: dict = {}
        for key, length in lengths.items():
            target = np.where(inside, key[1] * _linear_response(link, length, omega), 0.0)
            taps = fit_fir(target, key[2], digital, weights)
            if link.beta3 == 0:  # an even response: the LS taps are symmetric; make them exactly so
                taps = (taps + taps[::-1]) / 2
            cache[key] = taps
        peaks = {key: float(np.max(np.abs(np.fft.fft(taps, FIT_POINTS)))) for key, taps in cache.items()}
        if math.prod(peaks[key] for key in keys) <= MAX_CASCADE_GAIN or weight >= 1.0:
            break
        weight = min(1.0, max(10 * weight, 1e-6))
    h = link.span_length_m / config.steps_per_span
    q = 0.5 if link.nonlinear_position == 0.5 else 1.0 - link.nonlinear_position
    theta = MANAKOV_FACTOR * (-link.xi * link.gamma) * effective_length(-link.alpha, h, q) * FIELD_UNIT_W
    out: dict[str, list[np.ndarray]] = {}
    for i, key in enumerate(keys, start=1):
        taps = cache[key]
        out[f"fir_{i}"] = [np.stack([taps.real, taps.imag], axis=-1).astype(np.float32)]
        nl = [np.float32(theta)]
        if config.power_taps > 1:
            g = np.zeros(config.power_taps, np.float32)
            g[(config.power_taps - 1) // 2] = 1.0
            nl.append(g)
        out[f"nonlinear_{i}"] = nl
    gain = complex(link.output_gain_re, link.output_gain_im)
    target = _linear_response(link, last, omega) * rrc_spectrum(FIT_POINTS, fs, link.symbol_rate, link.rolloff) / gain
    taps = fit_fir(target, config.output_taps, digital, np.ones(FIT_POINTS))
    if link.beta3 == 0:
        taps = (taps + taps[::-1]) / 2
    out["output"] = [np.stack([taps.real, taps.imag], axis=-1).astype(np.float32)]
    return out


def prepare(config: LDBPConfig, transmissions) -> LDBPConfig:
    """``config`` with :attr:`LDBPConfig.link` resolved from the first of ``transmissions`` (the training data):
    the channel's fiber and amplifier, xi and the nonlinear position (searched with
    :meth:`channel.dbp.DigitalBackPropagation.optimize` on its first :data:`SEARCH_SYMBOLS` symbols where set to
    "optimize"), and the complex gain of that DBP's output. A config whose link is set is returned unchanged."""
    from channel.dbp import DigitalBackPropagation
    from channel.receiver import complex_gain

    if config.link is not None:
        return config
    items = list(transmissions) if isinstance(transmissions, (list, tuple)) else [transmissions]
    t = items[0]
    dbp = DigitalBackPropagation.from_link(t.config)
    sps = dbp.samples_per_symbol
    n = min(t.tx_indices.shape[-1], SEARCH_SYMBOLS)
    field, tx = t.rx_field[:, :n * sps], t.tx_symbols[:, :n]
    k = config.steps_per_span
    if dbp.power_filter_taps > 1:
        dbp = dataclasses.replace(dbp, power_filter_taps=1)  # LDBP starts from plain DBP; its power filters learn
    settings = dbp.optimize(field, k, tx, config.xi, config.nonlinear_position, None)
    out = dbp.backpropagate(field, k, settings.xi, nonlinear_position=settings.nonlinear_position)
    rx = dbp.receiver.matched_filter_and_sample(out, sps)
    gain = complex(np.mean(complex_gain(rx, tx))) / math.sqrt(FIELD_UNIT_W)
    p = dbp.params
    link = LDBPLink(n_spans=dbp.n_spans, span_length_m=float(dbp.span_length), alpha=float(p.alpha),
                    beta2=float(p.beta2), beta3=float(p.beta3), gamma=float(p.gamma), gain=float(dbp.gain),
                    symbol_rate=float(dbp.symbol_rate), samples_per_symbol=int(sps),
                    rolloff=float(dbp.receiver.rolloff), xi=float(settings.xi),
                    nonlinear_position=float(settings.nonlinear_position), output_gain_re=gain.real,
                    output_gain_im=gain.imag)
    return dataclasses.replace(config, link=link)


# ------------------------------------------------------------------------------------------------- the model


def build_ldbp(config: LDBPConfig, input_shape: tuple, n_outputs: int) -> keras.Model:
    """The model of ``config`` over a variable time axis ``(None, 4)`` -> ``(None, n_outputs)``, with the DBP
    weights of :func:`initial_weights` when ``config.link`` is set (identity filters and zero phases otherwise)."""
    from ..layers.ldbp import ComplexFIR, NonlinearPhase, SelectPolarizations

    if n_outputs not in (2, 4):
        raise ValueError(f"an LDBP outputs 2 (x) or 4 (x and y) real numbers per symbol, got n_outputs = {n_outputs}")
    inputs = keras.Input(shape=(None, 4), name="field")
    h = inputs
    for i in range(1, config.n_steps() + 1):
        h = ComplexFIR(config.step_taps(i), domain=config.filter_domain, name=f"fir_{i}")(h)
        h = NonlinearPhase(config.power_taps, name=f"nonlinear_{i}")(h)
    h = ComplexFIR(config.output_taps, stride=config.sps, domain=config.filter_domain, name="output")(h)
    if n_outputs == 2:
        h = SelectPolarizations((0,), name="select")(h)
    model = keras.Model(inputs, h, name=keras_name(config))
    if config.link is not None:
        for name, weights in initial_weights(config).items():
            model.get_layer(name).set_weights(weights)
    return model


def ldbp_resized(config: LDBPConfig, model) -> LDBPConfig:
    """``config`` with the filter lengths of ``model`` (built from ``config``, then possibly with its outermost
    taps pruned, :mod:`eqnn.compression.pruning.ldbp_taps`): ``taps`` when every step's FIR has the same length,
    else ``taps_per_step``; ``output_taps``."""
    steps = [int(model.get_layer(f"fir_{i}").taps) for i in range(1, config.n_steps() + 1)]
    output = int(model.get_layer("output").taps)
    if len(set(steps)) == 1:
        return dataclasses.replace(config, taps=steps[0], taps_per_step=None, output_taps=output)
    return dataclasses.replace(config, taps_per_step=tuple(steps), output_taps=output)


def ldbp_roles(config: LDBPConfig) -> dict[str, str]:
    names = {}
    for i in range(1, config.n_steps() + 1):
        names[f"fir_{i}"] = "conv"
        names[f"nonlinear_{i}"] = "hidden"
    names["output"] = "output"
    return names


def _training_set(config, transmissions, data_config):
    from ..data_field import make_field_blocks

    return make_field_blocks(transmissions, data_config, config)


def _predict(model, config, transmission, data_config, batch_size):
    from ..data_field import predict_field

    return predict_field(model, config, transmission, data_config, batch_size)


def _complexity_arguments(config: LDBPConfig, n_outputs: int) -> dict:
    return {"time_steps": config.input_samples(config.inference_block),
            "symbols_per_window": 2 * config.inference_block}


LDBP = register_model_family(ModelFamily(
    config=LDBPConfig, build=build_ldbp, roles=ldbp_roles, resized_config=ldbp_resized,
    prunable=lambda config: [],
    custom_input=CustomInput(prepare=prepare, training_set=_training_set, predict=_predict,
                             complexity_arguments=_complexity_arguments,
                             input_shape=lambda config: (config.input_samples(config.block_length), 4))))
