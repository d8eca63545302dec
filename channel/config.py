"""Typed, validated configuration of a simulated coherent optical link.

Every block of the simulator is configured by a frozen dataclass. Units at this
boundary are the ones of the field (dBm, km, dB/km, ps/nm/km, 1/W/km, nm, GBd);
the ``*_si`` properties convert to SI units, which are used everywhere inside.

A whole scenario is a :class:`LinkConfig`; :func:`load_config` reads one from TOML::

    [transmitter]
    modulation = "64QAM"
    symbol_rate_gbd = 30.0
    ...
    [fiber]
    [link]
    [propagation]
    [receiver]

Every field is validated on construction; a bad value raises
:class:`ConfigError` naming the field, the value and the allowed range.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union, get_args, get_origin, get_type_hints

import numpy as np
import tomllib

from .carrier_recovery import CarrierRecoveryConfig
from .laser import LaserConfig, check_frequency_offset
from .transceiver import TransceiverConfig
from .validation import ConfigError, check_choice, check_int, check_number, check_table  # noqa: F401 (re-exported)

SPEED_OF_LIGHT = 299_792_458.0  # m/s
PLANCK = 6.626_070_15e-34  # J s

MODULATIONS = ("QPSK", "16QAM", "64QAM", "256QAM")
PRECISIONS = ("complex64", "complex128")
STEP_MODES = ("fixed", "adaptive", "logarithmic")
#: receiver.mimo: the adaptive 2x2 MIMO equalizer's training mode (:mod:`channel.mimo`)
MIMO_MODES = ("off", "cma", "rde", "data_aided")
#: receiver.mimo_tracking: how the equalizer adapts after training (:mod:`channel.mimo`)
MIMO_TRACKING = ("decision_directed", "blind", "frozen")
#: receiver.mimo_taps: odd integers up to this
MIMO_MAX_TAPS = 255
#: allowed values (and, for "optimize", the search interval) of receiver.dbp_power_filter_bandwidth, in units of the
#: symbol rate
DBP_FILTER_BANDWIDTH_BOUNDS = (0.02, 2.0)
#: receiver.dbp_power_filter_taps: odd integers up to this
DBP_FILTER_MAX_TAPS = 63




def _check_range(name: str, value: float, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> None:
    check_number(name, value, low, high, low_open=low_open, high_open=high_open)


def unknown_keys_error(data: Any, cls: type, section: str) -> None:
    """Raise :class:`ConfigError` if ``data`` is not a table or has keys that ``cls`` has no field for."""
    check_table(section, data, cls)


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    check_choice(name, value, choices)


def _check_number_or_optimize(name: str, value: Any, low: float, high: float) -> None:
    """``value`` is a finite number in [low, high] or the string "optimize"; else :class:`ConfigError`."""
    allowed = f"a number in [{low:g}, {high:g}] or \"optimize\""
    if isinstance(value, str):
        if value != "optimize":
            raise ConfigError(f"{name} = {value!r}: allowed {allowed}")
        return
    try:
        check_number(name, value, low, high)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; or \"optimize\"") from None


SINGLE_CHANNEL_SAMPLES_PER_SYMBOL = 4
WDM_BROADENING_FACTOR = 1.25


def _check_sps_int(value: Any) -> None:
    """Check ``transmitter.samples_per_symbol``: an integer in [2, 64] or the string "auto"."""
    rng = "[2, 64]"
    if value == "auto" and isinstance(value, str):
        return
    if isinstance(value, str):
        raise ConfigError(f"transmitter.samples_per_symbol = {value!r}: allowed integers in {rng} or \"auto\"")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"transmitter.samples_per_symbol = {value!r}: must be an integer in {rng} or \"auto\"")
    if value < 2 or value > 64:
        raise ConfigError(f"transmitter.samples_per_symbol = {value!r} is out of range: allowed integers in "
                          f"{rng} or \"auto\"")


def auto_samples_per_symbol(n_channels: int, channel_spacing_ghz: float, symbol_rate_gbd: float,
                            rolloff: float) -> int:
    """Samples per symbol that ``samples_per_symbol = "auto"`` resolves to.

    Single channel: 4 (:data:`SINGLE_CHANNEL_SAMPLES_PER_SYMBOL`, the default chosen by
    ``benchmarks/convergence.py``). WDM (``n = n_channels > 1``, spacing ``df``, symbol rate ``Rs``,
    roll-off ``b``): the smallest *even* integer ``sps >= 4`` whose sample rate ``sps * Rs`` covers both

        F * ((n - 1) df + (1 + b) Rs)    (the band of the outer channels, edge to edge, times F = 1.25
                                          (:data:`WDM_BROADENING_FACTOR`): room for the nonlinear spectral
                                          broadening, so that it does not alias around the periodic grid)
        n df                             (the WDM grid: the validation minimum)

    Even values keep ``n_symbols * sps`` a product of small primes for the FFT when ``n_symbols`` is.
    E.g. 30 GBd, roll-off 0.1, 50 GHz: 3 channels -> 6 (180 GHz), 5 -> 10 (300 GHz), 7 -> 14, 9 -> 20.
    The result may exceed 64 (the caller rejects it).
    """
    if n_channels <= 1:
        return SINGLE_CHANNEL_SAMPLES_PER_SYMBOL
    outer_band = WDM_BROADENING_FACTOR * ((n_channels - 1) * channel_spacing_ghz + (1 + rolloff) * symbol_rate_gbd)
    band = max(outer_band, n_channels * channel_spacing_ghz)
    sps = math.ceil(band / symbol_rate_gbd - 1e-9)
    sps += sps % 2
    return max(sps, SINGLE_CHANNEL_SAMPLES_PER_SYMBOL)


@dataclass(frozen=True)
class TransmitterConfig:
    """Dual-polarization square-QAM transmitter.

    Attributes:
        modulation: "QPSK", "16QAM", "64QAM" or "256QAM"; Gray-mapped square constellation.
        symbol_rate_gbd: symbol rate in GBd, (0, 1000].
        rolloff: root-raised-cosine roll-off factor, [0, 1].
        samples_per_symbol: simulation oversampling, integer in [2, 64], or "auto": the value
            :func:`auto_samples_per_symbol` derives from the total bandwidth. "auto" is resolved on
            construction, so the field always holds an integer and a config built with "auto" is equal
            to (and has the same digest as) one built with the resolved integer. A copy made with
            ``replace``/``dataclasses.replace`` keeps that integer: pass "auto" again together with a
            new ``n_channels``, spacing, symbol rate or roll-off to re-derive it.
        n_symbols: symbols per polarization (and per channel), integer in [64, 2**24].
        seed: seed of every random draw of the run (symbols and ASE noise), integer >= 0.
        launch_power_dbm: launch power per channel (sum of both polarizations), dBm, [-30, 30].
        n_channels: number of WDM channels, odd, [1, 63]: channel c (0-based) sits at
            (c - (n_channels-1)/2) * channel_spacing_ghz (rounded to the FFT grid); the one received is
            ``receiver.channel_index`` (default: the centre one).
        channel_spacing_ghz: WDM channel spacing in GHz, (0, 10000]; with n_channels > 1 at least the
            signal bandwidth symbol_rate_gbd * (1 + rolloff).
    """

    modulation: str = "64QAM"
    symbol_rate_gbd: float = 30.0
    rolloff: float = 0.1
    samples_per_symbol: int = 4
    n_symbols: int = 2**16
    seed: int = 1
    launch_power_dbm: float = 0.0
    n_channels: int = 1
    channel_spacing_ghz: float = 50.0

    def __post_init__(self) -> None:
        _check_choice("transmitter.modulation", self.modulation, MODULATIONS)
        _check_range("transmitter.symbol_rate_gbd", self.symbol_rate_gbd, 0, 1000, low_open=True)
        _check_range("transmitter.rolloff", self.rolloff, 0, 1)
        _check_sps_int(self.samples_per_symbol)
        check_int("transmitter.n_symbols", self.n_symbols, 64, 2**24)
        check_int("transmitter.seed", self.seed, 0)
        _check_range("transmitter.launch_power_dbm", self.launch_power_dbm, -30, 30)
        check_int("transmitter.n_channels", self.n_channels, 1, 63)
        if self.n_channels % 2 == 0:
            raise ConfigError(f"transmitter.n_channels = {self.n_channels}: must be odd "
                              "(the centre channel is the one received)")
        _check_range("transmitter.channel_spacing_ghz", self.channel_spacing_ghz, 0, 10_000, low_open=True)
        if self.n_channels > 1:
            bandwidth_ghz = self.symbol_rate_gbd * (1 + self.rolloff)
            if self.channel_spacing_ghz < bandwidth_ghz:
                raise ConfigError(
                    f"transmitter.channel_spacing_ghz = {self.channel_spacing_ghz:g} is smaller than the "
                    f"signal bandwidth {bandwidth_ghz:g} GHz: allowed >= symbol_rate_gbd * (1 + rolloff)")
        if self.samples_per_symbol == "auto":
            sps = auto_samples_per_symbol(self.n_channels, self.channel_spacing_ghz, self.symbol_rate_gbd,
                                          self.rolloff)
            if sps > 64:
                raise ConfigError(
                    f"transmitter.samples_per_symbol = 'auto' resolves to {sps} for {self.n_channels} channels "
                    f"at {self.channel_spacing_ghz:g} GHz and {self.symbol_rate_gbd:g} GBd: allowed integers in "
                    "[2, 64]; use fewer channels or a narrower spacing")
            object.__setattr__(self, "samples_per_symbol", sps)
        if self.n_channels > 1:
            total_ghz = self.n_channels * self.channel_spacing_ghz
            sample_rate_ghz = self.samples_per_symbol * self.symbol_rate_gbd
            if sample_rate_ghz < total_ghz:
                raise ConfigError(
                    f"transmitter.samples_per_symbol = {self.samples_per_symbol}: the sample rate "
                    f"{sample_rate_ghz:g} GHz is below the WDM bandwidth {total_ghz:g} GHz; allowed >= "
                    f"{math.ceil(total_ghz / self.symbol_rate_gbd)}, or \"auto\"")

    @property
    def bits_per_symbol(self) -> int:
        return {"QPSK": 2, "16QAM": 4, "64QAM": 6, "256QAM": 8}[self.modulation]

    @property
    def symbol_rate(self) -> float:
        """Symbol rate in Bd."""
        return self.symbol_rate_gbd * 1e9

    @property
    def sample_rate(self) -> float:
        """Simulation sample rate in Hz."""
        return self.symbol_rate * self.samples_per_symbol

    @property
    def launch_power_w(self) -> float:
        """Launch power per channel in W."""
        return 1e-3 * 10 ** (self.launch_power_dbm / 10)


@dataclass(frozen=True)
class FiberConfig:
    """Single-mode fiber.

    Attributes:
        attenuation_db_km: power attenuation alpha in dB/km, [0, 10].
        dispersion_ps_nm_km: dispersion parameter D in ps/nm/km, [-100, 100].
        dispersion_slope_ps_nm2_km: dispersion slope S = dD/dlambda in ps/nm^2/km, [-1, 1] (0: no beta3).
        gamma_per_w_km: nonlinear coefficient gamma in 1/W/km, [0, 100].
        wavelength_nm: carrier wavelength in nm, [800, 2000].
        pmd_ps_sqrt_km: polarization-mode dispersion coefficient D_PMD in ps/sqrt(km), [0, 10]: the mean
            differential group delay (DGD) of the whole link is ``D_PMD sqrt(n_spans span_length_km)`` ps
            (coarse-step model, :mod:`channel.pmd`). 0 (the default): no PMD.
        pmd_sections_per_span: birefringent sections (each with its own random polarization rotation) per span,
            integer in [1, 1000] (default 20); the DGD statistics tend to the Maxwellian law as the total number of
            sections grows (:mod:`channel.pmd`).
        pmd_seed: seed of the fibre's PMD realization (the random rotations), integer >= 0: the same seed gives the
            same fibre, whatever the transmission seed. These three keys are left out of :meth:`LinkConfig.to_dict`
            at their defaults (digests of configs written before they existed are unchanged).
    """

    attenuation_db_km: float = 0.2
    dispersion_ps_nm_km: float = 17.0
    dispersion_slope_ps_nm2_km: float = 0.0
    gamma_per_w_km: float = 1.3
    wavelength_nm: float = 1550.0
    pmd_ps_sqrt_km: float = 0.0
    pmd_sections_per_span: int = 20
    pmd_seed: int = 0

    def __post_init__(self) -> None:
        _check_range("fiber.attenuation_db_km", self.attenuation_db_km, 0, 10)
        _check_range("fiber.dispersion_ps_nm_km", self.dispersion_ps_nm_km, -100, 100)
        _check_range("fiber.dispersion_slope_ps_nm2_km", self.dispersion_slope_ps_nm2_km, -1, 1)
        _check_range("fiber.gamma_per_w_km", self.gamma_per_w_km, 0, 100)
        _check_range("fiber.wavelength_nm", self.wavelength_nm, 800, 2000)
        _check_range("fiber.pmd_ps_sqrt_km", self.pmd_ps_sqrt_km, 0, 10)
        check_int("fiber.pmd_sections_per_span", self.pmd_sections_per_span, 1, 1000)
        check_int("fiber.pmd_seed", self.pmd_seed, 0)

    @property
    def alpha(self) -> float:
        """Field-power attenuation coefficient in 1/m (P(z) = P0 exp(-alpha z))."""
        return self.attenuation_db_km / (10 * math.log10(math.e)) / 1e3

    @property
    def wavelength(self) -> float:
        return self.wavelength_nm * 1e-9

    @property
    def carrier_frequency(self) -> float:
        """Carrier frequency in Hz."""
        return SPEED_OF_LIGHT / self.wavelength

    @property
    def beta2(self) -> float:
        """Group-velocity dispersion beta2 = -D lambda^2 / (2 pi c) in s^2/m."""
        d_si = self.dispersion_ps_nm_km * 1e-6  # ps/(nm km) -> s/m^2
        return -d_si * self.wavelength**2 / (2 * math.pi * SPEED_OF_LIGHT)

    @property
    def beta3(self) -> float:
        """Third-order dispersion beta3 = (lambda / (2 pi c))^2 (lambda^2 S + 2 lambda D) in s^3/m."""
        d_si = self.dispersion_ps_nm_km * 1e-6
        s_si = self.dispersion_slope_ps_nm2_km * 1e3  # ps/(nm^2 km) -> s/m^3
        lam = self.wavelength
        return (lam / (2 * math.pi * SPEED_OF_LIGHT)) ** 2 * (lam**2 * s_si + 2 * lam * d_si) \
            if self.dispersion_slope_ps_nm2_km != 0 else 0.0

    @property
    def gamma(self) -> float:
        """Nonlinear coefficient in 1/W/m."""
        return self.gamma_per_w_km * 1e-3


@dataclass(frozen=True)
class SpanConfig:
    """The multi-span link: identical spans, each followed by an EDFA whose gain equals the span loss.

    Attributes:
        n_spans: number of spans, integer in [1, 1000].
        span_length_km: length of each span in km, (0, 500].
        noise_figure_db: EDFA noise figure in dB, [0, 20] (3 dB is the high-gain quantum limit;
            values below 3 dB are allowed for studies).
        noiseless: if true, the amplifiers add no ASE noise.
    """

    n_spans: int = 20
    span_length_km: float = 50.0
    noise_figure_db: float = 4.5
    noiseless: bool = False

    def __post_init__(self) -> None:
        check_int("link.n_spans", self.n_spans, 1, 1000)
        _check_range("link.span_length_km", self.span_length_km, 0, 500, low_open=True)
        _check_range("link.noise_figure_db", self.noise_figure_db, 0, 20)
        if not isinstance(self.noiseless, bool):
            raise ConfigError(f"link.noiseless = {self.noiseless!r}: must be true or false")

    @property
    def span_length(self) -> float:
        """Span length in m."""
        return self.span_length_km * 1e3


@dataclass(frozen=True)
class PropagationConfig:
    """Split-step Fourier propagation settings of the forward (physical) link.

    Attributes:
        step_mode: "fixed" (``steps_per_span`` equal steps) or "adaptive" (step lengths chosen so
            that the nonlinear phase rotation (8/9) gamma P(z) L_eff(h) of the mean launch power
            P(z) = P0 exp(-alpha z) stays at ``max_nonlinear_phase_rad`` per step; the same step
            plan is used for every span), or "logarithmic" (``steps_per_span`` steps of equal nonlinear
            phase, i.e. equal ``exp(-alpha z) L_eff(h)``: the logarithmic step-size distribution of
            Bosco et al., IEEE PTL 12(5), 2000; short steps at the start of the span, long at its end).
        steps_per_span: number of steps per span in fixed and logarithmic mode, [1, 100000].
        max_nonlinear_phase_rad: bound on the nonlinear phase per step in adaptive mode, (0, 1].
        max_step_km: upper bound on any adaptive step length in km, (0, 500].
        precision: "complex64" or "complex128".
    """

    step_mode: str = "adaptive"
    steps_per_span: int = 50
    max_nonlinear_phase_rad: float = 5e-3
    max_step_km: float = 10.0
    precision: str = "complex128"

    def __post_init__(self) -> None:
        _check_choice("propagation.step_mode", self.step_mode, STEP_MODES)
        check_int("propagation.steps_per_span", self.steps_per_span, 1, 100_000)
        _check_range("propagation.max_nonlinear_phase_rad", self.max_nonlinear_phase_rad, 0, 1,
                     low_open=True)
        _check_range("propagation.max_step_km", self.max_step_km, 0, 500, low_open=True)
        _check_choice("propagation.precision", self.precision, PRECISIONS)


@dataclass(frozen=True)
class ReceiverConfig:
    """Coherent receiver and digital back-propagation.

    Attributes:
        dbp_steps_per_span: DBP variants to compute, e.g. (1, 2, 4); each an integer in [1, 1000];
            empty for none.
        dbp_samples_per_symbol: oversampling at which DBP runs, integer in [2, 16] (default 2).
        dbp_xi: nonlinear scaling xi of DBP: a number in [0, 2], or "optimize" (chosen to maximize
            the effective SNR on the first half of the block, per DBP variant).
        channel_index: the WDM channel under test, 0-based (channel c at (c - (n_channels-1)/2) *
            channel_spacing_ghz on the simulation frequency grid), integer in
            [0, transmitter.n_channels - 1]; not set (None, the default): the centre channel
            (n_channels - 1) / 2. The receiver shifts it to baseband and filters it
            (:func:`channel.receiver.select_channel`); CDC and single-channel DBP act on it alone.
            Unset, it is left out of :meth:`LinkConfig.to_dict` (so digests of configs written before
            the key existed are unchanged); an explicit index, even the centre one, is part of the digest.
        dbp_nonlinear_position: where the nonlinear step sits within each DBP step, as a fraction p of the step
            from its high-power end (the span input side): a number in [0, 1] (0.5, the default: the symmetric
            step, today's DBP; 0: at the high-power end), or "optimize" (searched jointly with every other
            "optimize" DBP parameter on the first half of the block, per DBP variant; reported with xi). Costs
            nothing. See :mod:`channel.dbp`.
        dbp_power_filter_taps: filtered DBP (Du & Lowery, Opt. Express 18(16), 2010): the number of taps of a
            Gaussian low-pass FIR applied to the power (squared magnitude summed over both polarizations) before
            each nonlinear phase rotation, an odd integer in [1, 63]; 1 (the default): no filter. Each pair of
            taps adds one multiplication per sample and step to the DBP cost.
        dbp_power_filter_bandwidth: the filter's 3-dB (amplitude) bandwidth in units of the symbol rate, a number
            in [0.02, 2], or "optimize" (the default: searched with the other DBP parameters). A number requires
            dbp_power_filter_taps > 1. These three keys are left out of :meth:`LinkConfig.to_dict` at their
            defaults (digests of configs written before they existed are unchanged).
        mimo: the adaptive 2x2 butterfly MIMO equalizer after CDC (and after DBP), at 2 samples per symbol
            (:mod:`channel.mimo`): "off" (the default: none), "cma" (trained blind by the constant-modulus
            algorithm), "rde" (blind, radius-directed after a CMA start: for 16QAM and above) or "data_aided"
            (least-squares taps on a preamble of known symbols: the first mimo_training_symbols of the block).
            It undoes PMD and the polarization rotation of the link.
        mimo_taps: FIR taps per butterfly branch (T/2-spaced), odd integer in [1, 255] (default 15).
        mimo_step_size: step size mu of the blind training (CMA, RDE, and the decision-directed LMS that ends it),
            (0, 0.1] (default 3e-3; the equalizer's input has unit power per sample; CMA diverges near 1e-2).
        mimo_tracking_step_size: step size of the tracking pass (decision-directed LMS, or blind CMA/RDE),
            (0, 0.1] (default 1e-4).
        mimo_training_symbols: symbols of the training pass (blind, or the known preamble), integer in
            [64, transmitter.n_symbols] (default 4096).
        mimo_block_symbols: symbols per block of the block LMS (taps updated once per block with the summed
            gradient of its symbols), integer in [1, 1024] (default 16; 1: symbol-by-symbol LMS).
        mimo_tracking: adaptation after training, over the whole block: "decision_directed" (the default: LMS
            on the nearest constellation points), "blind" (continue CMA/RDE: insensitive to phase noise) or
            "frozen" (the trained taps). These seven keys are left out of :meth:`LinkConfig.to_dict` at their
            defaults.
    """

    dbp_steps_per_span: tuple[int, ...] = (1, 2)
    dbp_samples_per_symbol: int = 2
    dbp_xi: Union[float, str] = "optimize"
    channel_index: Optional[int] = None
    dbp_nonlinear_position: Union[float, str] = 0.5
    dbp_power_filter_taps: int = 1
    dbp_power_filter_bandwidth: Union[float, str] = "optimize"
    mimo: str = "off"
    mimo_taps: int = 15
    mimo_step_size: float = 3e-3
    mimo_tracking_step_size: float = 1e-4
    mimo_training_symbols: int = 4096
    mimo_block_symbols: int = 16
    mimo_tracking: str = "decision_directed"

    def __post_init__(self) -> None:
        if isinstance(self.dbp_steps_per_span, list):
            object.__setattr__(self, "dbp_steps_per_span", tuple(self.dbp_steps_per_span))
        if not isinstance(self.dbp_steps_per_span, tuple):
            raise ConfigError(f"receiver.dbp_steps_per_span = {self.dbp_steps_per_span!r}: must be a "
                              "list of integers in [1, 1000]")
        for k in self.dbp_steps_per_span:
            check_int("receiver.dbp_steps_per_span[]", k, 1, 1000)
        if len(set(self.dbp_steps_per_span)) != len(self.dbp_steps_per_span):
            raise ConfigError(f"receiver.dbp_steps_per_span = {list(self.dbp_steps_per_span)}: "
                              "values must be distinct")
        check_int("receiver.dbp_samples_per_symbol", self.dbp_samples_per_symbol, 2, 16)
        if isinstance(self.dbp_xi, str):
            _check_choice("receiver.dbp_xi", self.dbp_xi, ("optimize",))
        else:
            _check_range("receiver.dbp_xi", self.dbp_xi, 0, 2)
        if self.channel_index is not None:
            index = self.channel_index
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
                raise ConfigError(f"receiver.channel_index = {index!r}: allowed integers in "
                                  "[0, transmitter.n_channels - 1] (default: the centre channel)")
        _check_number_or_optimize("receiver.dbp_nonlinear_position", self.dbp_nonlinear_position, 0, 1)
        taps = self.dbp_power_filter_taps
        if isinstance(taps, bool) or not isinstance(taps, (int, np.integer)) or not 1 <= taps <= DBP_FILTER_MAX_TAPS \
                or taps % 2 != 1:
            raise ConfigError(f"receiver.dbp_power_filter_taps = {taps!r}: allowed odd integers in "
                              f"[1, {DBP_FILTER_MAX_TAPS}] (1: no power filter)")
        low, high = DBP_FILTER_BANDWIDTH_BOUNDS
        _check_number_or_optimize("receiver.dbp_power_filter_bandwidth", self.dbp_power_filter_bandwidth, low, high)
        if taps == 1 and self.dbp_power_filter_bandwidth != "optimize":
            raise ConfigError(f"receiver.dbp_power_filter_bandwidth = {self.dbp_power_filter_bandwidth!r} has no "
                              "effect with receiver.dbp_power_filter_taps = 1 (no power filter): set the taps to an "
                              f"odd integer in [3, {DBP_FILTER_MAX_TAPS}] or remove the bandwidth")
        _check_choice("receiver.mimo", self.mimo, MIMO_MODES)
        taps = self.mimo_taps
        if isinstance(taps, bool) or not isinstance(taps, (int, np.integer)) or not 1 <= taps <= MIMO_MAX_TAPS \
                or taps % 2 != 1:
            raise ConfigError(f"receiver.mimo_taps = {taps!r}: allowed odd integers in [1, {MIMO_MAX_TAPS}]")
        _check_range("receiver.mimo_step_size", self.mimo_step_size, 0, 0.1, low_open=True)
        _check_range("receiver.mimo_tracking_step_size", self.mimo_tracking_step_size, 0, 0.1, low_open=True)
        check_int("receiver.mimo_training_symbols", self.mimo_training_symbols, 64, 2**24)
        check_int("receiver.mimo_block_symbols", self.mimo_block_symbols, 1, 1024)
        _check_choice("receiver.mimo_tracking", self.mimo_tracking, MIMO_TRACKING)


@dataclass(frozen=True)
class LinkConfig:
    """A complete simulated link scenario.

    Load one with :func:`load_config` or build it in code; vary the launch power with
    :meth:`with_launch_power`. ``name`` is a label only. The impairment sections ``laser``
    (:class:`channel.laser.LaserConfig`), ``transceiver`` (:class:`channel.transceiver.TransceiverConfig`) and
    ``carrier_recovery`` (:class:`channel.carrier_recovery.CarrierRecoveryConfig`) are off by default and then
    left out of :meth:`to_dict` (digests of configs written before they existed are unchanged).
    """

    transmitter: TransmitterConfig = field(default_factory=TransmitterConfig)
    fiber: FiberConfig = field(default_factory=FiberConfig)
    link: SpanConfig = field(default_factory=SpanConfig)
    propagation: PropagationConfig = field(default_factory=PropagationConfig)
    receiver: ReceiverConfig = field(default_factory=ReceiverConfig)
    name: str = "link"
    laser: LaserConfig = field(default_factory=LaserConfig)
    transceiver: TransceiverConfig = field(default_factory=TransceiverConfig)
    carrier_recovery: CarrierRecoveryConfig = field(default_factory=CarrierRecoveryConfig)

    def __post_init__(self) -> None:
        for f, cls in _SECTIONS.items():
            if not isinstance(getattr(self, f), cls):
                raise ConfigError(f"{f}: expected a {cls.__name__}, got {type(getattr(self, f)).__name__}")
        if self.receiver.dbp_samples_per_symbol > self.transmitter.samples_per_symbol:
            raise ConfigError(
                f"receiver.dbp_samples_per_symbol = {self.receiver.dbp_samples_per_symbol} exceeds "
                f"transmitter.samples_per_symbol = {self.transmitter.samples_per_symbol}: allowed "
                f"[2, {self.transmitter.samples_per_symbol}]")
        if self.receiver.channel_index is not None and self.receiver.channel_index >= self.transmitter.n_channels:
            raise ConfigError(
                f"receiver.channel_index = {self.receiver.channel_index} is out of range for "
                f"transmitter.n_channels = {self.transmitter.n_channels}: allowed integers in "
                f"[0, {self.transmitter.n_channels - 1}]")
        if self.transmitter.n_symbols * self.transmitter.samples_per_symbol > 2**26:
            raise ConfigError("transmitter.n_symbols * transmitter.samples_per_symbol = "
                              f"{self.transmitter.n_symbols * self.transmitter.samples_per_symbol}: "
                              "allowed at most 2**26 samples per polarization")
        if self.laser.frequency_offset_hz:
            from .receiver import channel_filter_bandwidth  # the receiver module imports this one
            check_frequency_offset(self.laser.frequency_offset_hz, self.transmitter.symbol_rate,
                                   self.receiver.dbp_samples_per_symbol, self.transmitter.rolloff,
                                   channel_filter_bandwidth(self),
                                   self.receiver.mimo != "off" and self.carrier_recovery.frequency_offset_estimation)
        if self.receiver.mimo != "off" and self.receiver.mimo_training_symbols > self.transmitter.n_symbols:
            raise ConfigError(f"receiver.mimo_training_symbols = {self.receiver.mimo_training_symbols} exceeds "
                              f"transmitter.n_symbols = {self.transmitter.n_symbols}: allowed integers in "
                              f"[64, {self.transmitter.n_symbols}]")

    @property
    def received_channel(self) -> int:
        """0-based index of the channel under test: ``receiver.channel_index``, else the centre one."""
        if self.receiver.channel_index is None:
            return (self.transmitter.n_channels - 1) // 2
        return self.receiver.channel_index

    @property
    def total_length(self) -> float:
        """Total fiber length in m."""
        return self.link.n_spans * self.link.span_length

    def with_launch_power(self, launch_power_dbm: float) -> "LinkConfig":
        return dataclasses.replace(
            self, transmitter=dataclasses.replace(self.transmitter, launch_power_dbm=float(launch_power_dbm)))

    def with_seed(self, seed: int) -> "LinkConfig":
        return dataclasses.replace(self, transmitter=dataclasses.replace(self.transmitter, seed=int(seed)))

    def replace(self, **sections: Any) -> "LinkConfig":
        """Return a copy with fields of sections replaced, e.g. ``replace(link={"n_spans": 2})``."""
        updates = {}
        for section, values in sections.items():
            if section == "name":
                updates["name"] = values
                continue
            if section not in _SECTIONS:
                raise ConfigError(f"unknown section {section!r}: allowed {', '.join(_SECTIONS)}")
            updates[section] = _build(_SECTIONS[section], values, section, base=getattr(self, section))
        return dataclasses.replace(self, **updates)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["receiver"]["dbp_steps_per_span"] = list(self.receiver.dbp_steps_per_span)
        if self.receiver.channel_index is None:  # unset = centre: keeps digests of older configs
            del d["receiver"]["channel_index"]
        for key in _RECEIVER_KEYS_OMITTED_AT_DEFAULT:  # today's DBP: keeps digests of older configs
            if getattr(self.receiver, key) == getattr(_DEFAULT_RECEIVER, key):
                del d["receiver"][key]
        for section in _SECTIONS_OMITTED_AT_DEFAULT:  # off: keeps digests of older configs
            if getattr(self, section) == _SECTIONS[section]():
                del d[section]
        for key in _FIBER_KEYS_OMITTED_AT_DEFAULT:  # no PMD: keeps digests of older configs
            if getattr(self.fiber, key) == getattr(_DEFAULT_FIBER, key):
                del d["fiber"][key]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def digest(self) -> str:
        """A hash of every field: two configs with equal digests simulate identical data."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict) -> "LinkConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"configuration must be a table, got {type(data).__name__}")
        unknown = set(data) - set(_SECTIONS) - {"name"}
        if unknown:
            raise ConfigError(f"unknown section(s) {sorted(unknown)}: allowed {', '.join(_SECTIONS)}, name")
        kwargs: dict[str, Any] = {s: _build(c, data.get(s, {}), s) for s, c in _SECTIONS.items()}
        if "name" in data:
            kwargs["name"] = str(data["name"])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> "LinkConfig":
        return cls.from_dict(json.loads(text))


#: receiver keys left out of :meth:`LinkConfig.to_dict` (and the digest) at their default values: they were added
#: after simulation caches existed, and at those values DBP is what it was before them
_RECEIVER_KEYS_OMITTED_AT_DEFAULT = ("dbp_nonlinear_position", "dbp_power_filter_taps", "dbp_power_filter_bandwidth",
                                     "mimo", "mimo_taps", "mimo_step_size", "mimo_tracking_step_size",
                                     "mimo_training_symbols", "mimo_block_symbols", "mimo_tracking")
_DEFAULT_RECEIVER = ReceiverConfig()
#: fiber keys left out of :meth:`LinkConfig.to_dict` at their default values (no PMD: the fibre of older configs)
_FIBER_KEYS_OMITTED_AT_DEFAULT = ("pmd_ps_sqrt_km", "pmd_sections_per_span", "pmd_seed")
_DEFAULT_FIBER = FiberConfig()

_SECTIONS = {"transmitter": TransmitterConfig, "fiber": FiberConfig, "link": SpanConfig,
             "propagation": PropagationConfig, "receiver": ReceiverConfig, "laser": LaserConfig,
             "transceiver": TransceiverConfig, "carrier_recovery": CarrierRecoveryConfig}
#: sections left out of :meth:`LinkConfig.to_dict` (and the digest) when equal to their defaults (all off)
_SECTIONS_OMITTED_AT_DEFAULT = ("laser", "transceiver", "carrier_recovery")


def _build(cls: type, values: dict, section: str, base: Any = None):
    """Construct dataclass ``cls`` from a TOML table, checking keys and types."""
    unknown_keys_error(values, cls, section)
    hints = get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        name = f"{section}.{key}"
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif get_origin(hint) is Union and isinstance(value, int) and not isinstance(value, bool) \
                and float in get_args(hint):
            value = float(value)
        elif hint is bool and not isinstance(value, bool):
            raise ConfigError(f"{name} = {value!r}: must be true or false")
        elif hint is str and not isinstance(value, str):
            raise ConfigError(f"{name} = {value!r}: must be a string")
        kwargs[key] = value
    if base is not None:
        return dataclasses.replace(base, **kwargs)
    return cls(**kwargs)


def read_toml(path: str | Path, what: str = "config file") -> dict:
    """Parse a TOML file. A missing path, a folder, an unreadable or non-UTF-8 file, bad syntax or a file without
    any key raises :class:`ConfigError` in one line naming the file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {str(path)!r} is a folder: allowed a TOML file")
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {str(path)!r} cannot be read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {str(path)!r}: byte 0x{raw[exc.start]:02x} at offset {exc.start} is not UTF-8 "
                          "text: allowed a TOML file (UTF-8 text)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    if not data:
        raise ConfigError(f"{what} {str(path)!r} is empty (no keys): allowed a TOML file with at least one "
                          "table or key (see docs/config_reference.md)")
    return data


def load_config(path: str | Path) -> LinkConfig:
    """Read a :class:`LinkConfig` from a TOML file: a link file (sections as in the module docstring), or
    a training/study file whose ``[scenario]`` holds the link (resolved by :func:`scenario_from_table`:
    an optional ``base`` link file, relative to the file, plus overrides); its other keys are ignored.
    """
    return _load_config(Path(path), ())


def _load_config(path: Path, chain: tuple[Path, ...]) -> LinkConfig:
    resolved = path.resolve()
    if resolved in chain:
        raise ConfigError(f"scenario.base = {str(path)!r}: the file includes itself "
                          f"({' -> '.join(p.name for p in chain + (resolved,))})")
    data = read_toml(path)
    if "scenario" in data:
        return _scenario_from_table(data["scenario"], path.parent, chain + (resolved,))
    return LinkConfig.from_dict(data)


def scenario_from_table(table: Any, base_dir: str | Path | None = None) -> LinkConfig:
    """The link of a ``[scenario]`` table (training and study TOML files, see ``eqnn/train.py``).

    ``table`` is a path string (same as ``{base = path}``) or a table: ``base`` (optional) a link file
    (or a file with its own ``[scenario]``), relative to ``base_dir`` if such a file exists there, else to
    the working directory; ``name`` a label; every other key a section of overrides of the base (or of the
    built-in defaults without ``base``), e.g. ``[scenario.transmitter] n_channels = 5``.
    """
    return _scenario_from_table(table, base_dir, ())


def _scenario_from_table(table: Any, base_dir: str | Path | None, chain: tuple[Path, ...]) -> LinkConfig:
    if isinstance(table, str):
        table = {"base": table}
    if not isinstance(table, dict):
        raise ConfigError(f"[scenario] must be a table or a link file path, got {table!r}")
    table = dict(table)
    base = table.pop("base", None)
    if base is None:
        return LinkConfig.from_dict(table)
    if not isinstance(base, str):
        raise ConfigError(f"scenario.base = {base!r}: must be a path to a link TOML")
    path = Path(base)
    if not path.is_absolute() and base_dir is not None and (Path(base_dir) / path).is_file():
        path = Path(base_dir) / path
    link = _load_config(path, chain)
    name = table.pop("name", None)
    if table:
        link = link.replace(**table)
    if name is not None:
        link = link.replace(name=str(name))
    return link


def reference_config() -> LinkConfig:
    """The built-in reference link: single-channel DP-64QAM, 30 GBd, 20 x 50 km SSMF, NF 4.5 dB."""
    return LinkConfig(name="reference")

