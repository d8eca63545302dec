"""Adaptive 2x2 MIMO equalizer: a T/2-spaced butterfly FIR trained by CMA, RDE or a known preamble, then tracking.

Receive chain with ``receiver.mimo != "off"`` (:func:`channel.link.simulate`, and after DBP in
:meth:`channel.dbp.DigitalBackPropagation.symbols`): channel selection -> CDC (or DBP) -> RRC matched filter,
resampled to 2 samples per symbol (:meth:`channel.receiver.CoherentReceiver.matched_filter`) -> this equalizer
(2 sps in, 1 sps out) -> polarization assignment -> gain normalization (:func:`channel.receiver.normalize`). It undoes
PMD, the link's random polarization rotation and residual linear ISI.

Butterfly. The input ``x = (x_x, x_y)``, shape (2, 2 n) (symbol k at sample 2k), is scaled to unit mean power per
sample; output ``p`` of symbol ``k`` is::

    y_p[k] = sum_q sum_(j=0)^(N-1) v_pq[j] x_q[2k - c + j]        (indices modulo 2n: the block is circular)

with ``N = mimo_taps`` (odd), ``c = (N - 1) / 2`` (tap ``c`` multiplies the symbol's own sample). The taps are held as
``W``, shape (2, 2N): row ``p`` is ``(v_px, v_py)``; with the window ``u_k = (x_x[2k-c : 2k+c+1], x_y[...])``, shape
(2N,), ``y[k] = W u_k``. Start: ``v_xx[c] = v_yy[c] = 1``, all other taps 0 (centre spike).

Update (stochastic gradient, ``w <- w + mu e conj(u)``), per output ``p``, with the error

    CMA:  e = y (R2 - |y|^2),   R2 = E|a|^4 / E|a|^2 of the constellation (Godard, 1980)
    RDE:  e = y (r_d^2 - |y|^2), r_d the constellation ring nearest to |y| (radius-directed)
    LMS:  e = d - y,            d the known symbol (data-aided preamble) or the nearest constellation point (DD)

Block LMS: the taps are updated once per block of ``B = mimo_block_symbols`` symbols with the gradient summed over
its symbols (``W <- W + mu sum_k e_k conj(u_k)^T``), the outputs of a block computed with the taps at its start; so
the loop runs over ``n / B`` blocks of vectorized work instead of ``n`` symbols (B = 1: plain LMS).

Two passes over the block:

1. Training, on the first ``T = mimo_training_symbols`` symbols. Blind (CMA, RDE): during its first half, CMA (also
   in mode "rde": RDE needs a pre-converged eye) adapts the x output only, and the y row is tied to it,
   ``v_yx = -conj(reverse(v_xy))``, ``v_yy = conj(reverse(v_xx))`` (the inverse of a unitary channel
   ``[[a, -b*], [b, a*]]`` has this form), so both outputs cannot converge to the same polarization (the CMA
   singularity); then both rows adapt freely: CMA in the third quarter, CMA or RDE (at ``mimo_step_size *``
   :data:`RDE_STEP_FACTOR`) in the last. Before decision-directed tracking, each
   output's phase is then aligned to the constellation by the fourth-power estimate ``phi_p = arg(-sum y_p^4) / 4``
   (square QAM has a negative real ``E[a^4]``), leaving a multiple of pi/2 that the gain normalization removes.
   Data-aided: the taps are the least-squares (Wiener) solution on the known first ``T`` symbols,
   ``W = argmin sum_k |d_k - W u_k|^2`` (minimum norm: no response outside the signal band); an LMS from the centre
   spike would need ~1/(mu lambda) symbols for the band-edge eigenmodes of the oversampled input's correlation
   matrix (lambda down to 1e-3 with roll-off 0.1), far more than a preamble. Blind training followed by
   decision-directed or frozen tracking ends with a DD-LMS run over the ``T`` training symbols at ``mimo_step_size``
   (the blind solutions leave a gain error and self-noise, 16QAM CMA at mu = 3e-3: ~17 dB SNR, that the decisions
   remove) and then the least-squares taps on those symbols with their decisions as the known symbols
   (decision-directed least squares: the data-aided solution once the decisions are right, blind all the same).
2. Output, over the whole block, from the trained taps, adapting with step ``mimo_tracking_step_size`` by
   ``mimo_tracking``: "decision_directed" (LMS on decisions), "blind" (CMA, or RDE for mode "rde" at
   :data:`RDE_STEP_FACTOR` times the step: insensitive to a carrier phase that moves, but limited by the CMA's
   self-noise on QAM: 21.5 dB on a 23 dB 16QAM signal at the default step) or "frozen" (no adaptation). Every symbol
   of the block is output by pass 2, so the symbol arrays keep their length and alignment.

Carrier phase (``track_phase``: set by :func:`channel.receiver_dsp.recover_symbols` when the receiver has blind
phase search, i.e. when the carrier phase moves: laser phase noise, a residual frequency offset). The stages above
that take decisions assume a static phase; with a moving one they become:

* blind training followed by decision-directed stages: the DD-LMS runs with a decision-directed phase-locked loop
  inside (:class:`PhaseTracker`: decisions on ``z = y exp(j phi)``, the error ``(D(z) - z) exp(-j phi)`` counter-
  rotated into the equalizer's frame, ``phi`` updated per LMS block by ``PHASE_LOOP_GAIN arg(sum D(z) conj(z))``,
  started by the fourth-power estimate), and the least-squares fit takes ``D(z) exp(-j phi)`` as its targets;
* data-aided training: after the least-squares fit on the preamble, the preamble's carrier phase is estimated on
  the outputs per block of ``PREAMBLE_PHASE_BLOCK`` symbols, ``theta = -arg(sum y conj(a))``, and the taps refitted
  to ``a exp(-j theta)`` (``PREAMBLE_PHASE_ITERATIONS`` times): the taps undo the channel, not the phase;
* decision-directed tracking uses the same loop; the outputs keep the carrier phase, which the carrier recovery
  (:mod:`channel.carrier_recovery`) then removes; the polarization assignment sums ``|sum y conj(a)|`` per block of
  ``ASSIGNMENT_BLOCK`` symbols (a whole-block sum would average the moving phase out).

Measured on the 64QAM reference link at -1 dBm with lasers of 100 kHz each and 0.1 ps/sqrt(km) PMD (16384 symbols,
SNR 19.24 dB without PMD and MIMO): blind training (CMA, RDE) leaves the outputs near 14 dB whatever the step size
(the constant-modulus and ring decisions of 64QAM at this SNR bias the taps), and from there the decision-directed
phase loop does not lock (8-10 dB at the end, cycle slips); the phase-aware data-aided training gives 19.17 dB with
frozen taps and with decision-directed tracking, no cycle slip left. Hence "data_aided" for 64QAM with lasers.

Polarization assignment: a blind equalizer may output the transmitted x on its y output; :func:`assign_polarizations`
swaps the outputs when they correlate better with the swapped transmitted symbols (data-aided, like the receiver's
gain normalization: the frame synchronization of a real receiver). Whole-symbol delays are not searched (the centre
spike start keeps them at 0).

Cost (equalization proper, per symbol and output): ``2N`` complex multiplications for the output and ``2N`` for the
update. Speed on this machine: see README (Adaptive MIMO equalizer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .config import LinkConfig
from .receiver import CoherentReceiver, complex_gain
from .transmitter import qam_constellation

#: RDE adapts with ``mimo_step_size`` times this: at the CMA's step, RDE misconverged on 64QAM for 2 of 5 random
#: rotations at 23 dB SNR (none at a third of it; measured with tests/test_mimo.py's signal)
RDE_STEP_FACTOR = 1 / 3

#: symbols per block of the phase-insensitive polarization assignment (``track_phase``)
ASSIGNMENT_BLOCK = 64

#: gain of the decision-directed phase-locked loop (:class:`PhaseTracker`), per LMS block
PHASE_LOOP_GAIN = 0.3
#: symbols of the fourth-power estimate that starts the loop
PHASE_ACQUISITION_SYMBOLS = 64
#: data-aided training with ``track_phase``: least-squares fits with the preamble's carrier phase removed, and the
#: symbols per block of that phase estimate (:func:`preamble_phase_rotation`)
PREAMBLE_PHASE_ITERATIONS, PREAMBLE_PHASE_BLOCK = 2, 64

ErrorFunction = Callable[[np.ndarray, int, int], np.ndarray]


@dataclass(frozen=True)
class AdaptiveEqualizer:
    """The adaptive 2x2 butterfly equalizer of the module docstring (fields: the ``receiver.mimo*`` keys).

    Attributes:
        mode: "cma", "rde" or "data_aided" (training).
        modulation: "QPSK", "16QAM", "64QAM" or "256QAM" (constellation of the decisions, CMA radius, RDE rings).
        taps: N, odd.  step_size: mu of blind training and blind tracking (and of the DD run closing the training).
        tracking_step_size: mu of the tracking pass (DD or blind).
        training_symbols: T.  block_symbols: B.  tracking: "decision_directed", "blind" or "frozen".
    """

    mode: str
    modulation: str
    taps: int = 15
    step_size: float = 3e-3
    tracking_step_size: float = 1e-4
    training_symbols: int = 4096
    block_symbols: int = 16
    tracking: str = "decision_directed"

    @classmethod
    def from_link(cls, config: LinkConfig) -> Optional["AdaptiveEqualizer"]:
        """The equalizer of ``config.receiver`` for ``config.transmitter.modulation``; None if ``mimo = "off"``."""
        rx = config.receiver
        if rx.mimo == "off":
            return None
        return cls(mode=rx.mimo, modulation=config.transmitter.modulation, taps=rx.mimo_taps,
                   step_size=rx.mimo_step_size, tracking_step_size=rx.mimo_tracking_step_size,
                   training_symbols=rx.mimo_training_symbols, block_symbols=rx.mimo_block_symbols,
                   tracking=rx.mimo_tracking)

    # --- the blocks of the receive chain ---

    def receive(self, receiver: CoherentReceiver, signal: np.ndarray, samples_per_symbol: int,
                tx_symbols: np.ndarray, cdc: bool = False, overwrite_input: bool = False,
                track_phase: bool = False) -> np.ndarray:
        """Matched filter (after CDC if ``cdc``) at 2 sps, :meth:`equalize`, :func:`assign_polarizations`.

        Args: signal complex (2, n_symbols * samples_per_symbol) in sqrt(W); tx_symbols complex (2, n_symbols), the
            transmitted unit-energy symbols (the preamble of "data_aided", and the polarization assignment);
            track_phase: the decision-directed stages track a moving carrier phase (module docstring, "Carrier
            phase"), and the polarization assignment is taken per block (:data:`ASSIGNMENT_BLOCK`).
        Returns: complex128 (2, n_symbols), about the unit-energy scale (then :func:`channel.receiver.normalize`).
        """
        two = receiver.matched_filter(signal, samples_per_symbol, cdc, overwrite_input, output_samples_per_symbol=2)
        out = self.equalize(two, tx_symbols[:, :self.training_symbols], track_phase)
        return assign_polarizations(out, tx_symbols, ASSIGNMENT_BLOCK if track_phase else None)

    def _windows(self, signal: np.ndarray) -> np.ndarray:
        """Checks ``signal`` (2, 2 n) and returns the :meth:`windows` of it scaled to unit mean power per sample."""
        signal = np.asarray(signal, dtype=complex)
        if signal.ndim != 2 or signal.shape[0] != 2 or signal.shape[1] % 2:
            raise ValueError(f"signal must have shape (2, 2 n_symbols), got {signal.shape}")
        n = signal.shape[1] // 2
        if not self.taps <= signal.shape[1] or self.training_symbols > n:
            raise ValueError(f"{n} symbols: at least training_symbols = {self.training_symbols} and "
                             f"taps = {self.taps} samples needed")
        return self.windows(signal / np.sqrt(np.mean(np.abs(signal) ** 2)))

    def equalize(self, signal: np.ndarray, preamble: Optional[np.ndarray] = None, track_phase: bool = False
                 ) -> np.ndarray:
        """Both passes of the module docstring.

        Args: signal complex (2, 2 n) at 2 samples per symbol, symbol k at sample 2k; preamble complex (2, >= T):
            the known first symbols (required for "data_aided", else unused); track_phase: the decision-directed
            stages track the carrier phase (module docstring, "Carrier phase").
        Returns: complex128 (2, n): the equalized symbols.
        """
        windows = self._windows(signal)
        n = windows.shape[1]
        tracker = PhaseTracker(Slicer(self._constellation()), n) if track_phase else None
        taps = self.train(windows, preamble, tracker)
        out = np.empty((n, 2), complex)
        error = self._tracking_error()
        if tracker is not None and self.tracking == "decision_directed":
            error = tracker.restart(self.outputs(windows[:, :PHASE_ACQUISITION_SYMBOLS], taps))
        self.adapt(windows, taps, error, self._tracking_step(), 0, n, out=out)
        return out.T.copy()

    def blind_outputs(self, signal: np.ndarray) -> np.ndarray:
        """The outputs over the whole block of the taps of the blind training alone (:meth:`blind_training`, CMA
        also for mode "data_aided"), held fixed: complex128 (2, n), polarization-demultiplexed but with any carrier
        phase and frequency offset of the input (what the frequency-offset estimator takes). signal as in
        :meth:`equalize`."""
        windows = self._windows(signal)
        taps = self.blind_training(windows, self.initial_taps())
        out = np.empty((windows.shape[1], 2), complex)
        self.adapt(windows, taps, None, 0.0, 0, windows.shape[1], out=out)
        return out.T.copy()

    # --- the pieces ---

    def windows(self, x: np.ndarray) -> np.ndarray:
        """Input windows, a read-only view of shape (2, n, N): ``[q, k, j] = x_q[(2k - c + j) mod 2n]``."""
        c = (self.taps - 1) // 2
        padded = np.concatenate([x[:, x.shape[1] - c:], x, x[:, :c]], axis=1) if c else x
        return np.lib.stride_tricks.sliding_window_view(padded, self.taps, axis=1)[:, ::2, :]

    def initial_taps(self) -> np.ndarray:
        """Centre spike, complex128 (2, 2N): ``v_xx[c] = v_yy[c] = 1``."""
        n, c = self.taps, (self.taps - 1) // 2
        taps = np.zeros((2, 2 * n), complex)
        taps[0, c] = taps[1, n + c] = 1.0
        return taps

    def train(self, windows: np.ndarray, preamble: Optional[np.ndarray] = None,
              tracker: Optional["PhaseTracker"] = None) -> np.ndarray:
        """Pass 1 on the first ``training_symbols`` windows; returns the taps (2, 2N) (phase-aligned for DD).
        With a ``tracker``, the decision-directed stages after blind training track the carrier phase."""
        taps = self.initial_taps()
        t = self.training_symbols
        if self.mode == "data_aided":
            if preamble is None or preamble.shape[-1] < t:
                raise ValueError(f"data-aided training needs a preamble of {t} known symbols per polarization")
            known = np.asarray(preamble)[:, :t]
            taps[:] = self.least_squares(windows[:, :t], known)
            for _ in range(PREAMBLE_PHASE_ITERATIONS if tracker is not None else 0):
                rotation = preamble_phase_rotation(self.outputs(windows[:, :t], taps).T, known)
                taps[:] = self.least_squares(windows[:, :t], known * np.conj(rotation))
        else:
            self.blind_training(windows, taps)
            if self.tracking != "blind" and tracker is not None:
                self.adapt(windows, taps, tracker.restart(self.outputs(windows[:, :PHASE_ACQUISITION_SYMBOLS], taps)),
                           self.step_size, 0, t)
                rotation = np.exp(1j * tracker.phase[:t])
                decided = Slicer(self._constellation())(self.outputs(windows[:, :t], taps) * rotation)
                taps[:] = self.least_squares(windows[:, :t], (decided * np.conj(rotation)).T)
            elif self.tracking != "blind":
                y = self.outputs(windows[:, :t], taps)
                taps *= np.exp(-1j * np.angle(-np.sum(y**4, axis=0)) / 4)[:, None]
                self.adapt(windows, taps, self._tracking_error(), self.step_size, 0, t)
                taps[:] = self.least_squares(windows[:, :t], Slicer(self._constellation())(self.outputs(windows[:, :t],
                                                                                                         taps).T))
        if not np.all(np.isfinite(taps)):
            raise FloatingPointError(f"the MIMO equalizer diverged in training: receiver.mimo_step_size = "
                                     f"{self.step_size:g} is too large for this signal (try 1e-3)")
        return taps

    def blind_training(self, windows: np.ndarray, taps: np.ndarray) -> np.ndarray:
        """The blind stages of pass 1 on the first ``training_symbols`` windows (2, n, N), in place on ``taps``
        (2, 2N): tied CMA, free CMA, then CMA or RDE (mode "rde"; CMA for the others). Returns ``taps``."""
        t = self.training_symbols
        cma = self._blind_error("cma")
        self.adapt(windows, taps, cma, self.step_size, 0, t // 2, tied=True)
        self.adapt(windows, taps, cma, self.step_size, t // 2, 3 * t // 4)
        self.adapt(windows, taps, self._blind_error(), self.step_size * self._blind_step_factor(), 3 * t // 4, t)
        return taps

    def least_squares(self, windows: np.ndarray, symbols: np.ndarray) -> np.ndarray:
        """Taps (2, 2N) minimizing ``sum_k |d_k - W u_k|^2`` over the windows (2, m, N) and symbols ``d``
        (2, m) (minimum-norm solution: no response where the input has no energy)."""
        u = np.concatenate([windows[0], windows[1]], axis=1)  # (m, 2N)
        return np.linalg.lstsq(u, symbols.T, rcond=None)[0].T

    def adapt(self, windows: np.ndarray, taps: np.ndarray, error: Optional[ErrorFunction], step: float,
              start: int, stop: int, tied: bool = False, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Block LMS over symbols ``[start, stop)``: per block, ``y = U W^T``, ``e = error(y, k0, k1)`` (shape
        (b, 2)), ``W <- W + step e^T conj(U)``, ``U`` the block's windows (b, 2N). ``tied``: only row x adapts, row
        y follows it (:meth:`tie`). ``error`` None: no adaptation. Outputs (b, 2) go to ``out[k0:k1]`` if given.
        Returns ``taps`` (updated in place)."""
        n_taps, size = self.taps, self.block_symbols
        if error is None:
            if out is not None:
                for k0 in range(start, stop, 4096):
                    k1 = min(k0 + 4096, stop)
                    out[k0:k1] = self.outputs(windows[:, k0:k1], taps)
            return taps
        block = np.empty((size, 2 * n_taps), complex)
        for k0 in range(start, stop, size):
            k1 = min(k0 + size, stop)
            u = block[:k1 - k0]
            u[:, :n_taps] = windows[0, k0:k1]
            u[:, n_taps:] = windows[1, k0:k1]
            y = u @ taps.T
            if out is not None:
                out[k0:k1] = y
            e = error(y, k0, k1)
            if tied:
                taps[0] += step * (e[:, 0] @ np.conj(u))
                self.tie(taps)
            else:
                taps += step * (e.T @ np.conj(u))
        return taps

    def tie(self, taps: np.ndarray) -> None:
        """Set row y from row x in place: ``v_yx = -conj(reverse(v_xy))``, ``v_yy = conj(reverse(v_xx))``."""
        n = self.taps
        taps[1, :n] = -np.conj(taps[0, n:][::-1])
        taps[1, n:] = np.conj(taps[0, :n][::-1])

    def outputs(self, windows: np.ndarray, taps: np.ndarray) -> np.ndarray:
        """``y[k] = W u_k`` for the given windows (2, m, N) with fixed taps: complex (m, 2)."""
        n = self.taps
        return windows[0] @ taps[:, :n].T + windows[1] @ taps[:, n:].T

    # --- error functions ---

    def _constellation(self) -> np.ndarray:
        return qam_constellation(self.modulation)[0]

    def _blind_error(self, algorithm: Optional[str] = None) -> ErrorFunction:
        """The CMA error, or the RDE error if ``algorithm`` (default: the mode) is "rde"."""
        points = self._constellation()
        if (algorithm or self.mode) == "rde":
            rings = np.unique(np.round(np.abs(points) ** 2, 12))
            edges = (rings[1:] + rings[:-1]) / 2

            def rde(y: np.ndarray, k0: int, k1: int) -> np.ndarray:
                power = y.real**2 + y.imag**2
                return y * (rings[np.searchsorted(edges, power)] - power)
            return rde
        radius = np.mean(np.abs(points) ** 4) / np.mean(np.abs(points) ** 2)

        def cma(y: np.ndarray, k0: int, k1: int) -> np.ndarray:
            return y * (radius - (y.real**2 + y.imag**2))
        return cma

    def _blind_step_factor(self) -> float:
        """:data:`RDE_STEP_FACTOR` in mode "rde", else 1."""
        return RDE_STEP_FACTOR if self.mode == "rde" else 1.0

    def _tracking_error(self) -> Optional[ErrorFunction]:
        if self.tracking == "frozen":
            return None
        if self.tracking == "blind":
            return self._blind_error()
        slicer = Slicer(self._constellation())
        return lambda y, k0, k1: slicer(y) - y

    def _tracking_step(self) -> float:
        return self.tracking_step_size * (1.0 if self.tracking == "decision_directed" else self._blind_step_factor())


def preamble_phase_rotation(outputs: np.ndarray, known: np.ndarray, block: int = None) -> np.ndarray:
    """``exp(j theta)``, complex (2, m), with ``theta = -arg(sum_block y conj(a))`` constant over each block of
    :data:`PREAMBLE_PHASE_BLOCK` symbols: the data-aided carrier phase of the outputs ``y`` (2, m) against the known
    symbols ``a`` (2, m) (``y exp(j theta)`` is aligned with ``a``)."""
    block = PREAMBLE_PHASE_BLOCK if block is None else block
    m = outputs.shape[-1]
    n_blocks = -(-m // block)
    z = np.zeros((2, n_blocks * block), complex)
    z[:, :m] = outputs * np.conj(known)
    sums = z.reshape(2, n_blocks, block).sum(axis=-1)
    return np.repeat(np.exp(-1j * np.angle(sums)), block, axis=1)[:, :m]


class PhaseTracker:
    """Decision-directed phase-locked loop inside the block LMS (module docstring, "Carrier phase").

    Per block of outputs ``y`` (b, 2) the phase ``phi`` (one per output) rotates them, ``z = y exp(j phi)``, the
    decisions ``d`` are taken on ``z``, the LMS error is counter-rotated into the equalizer's frame,
    ``e = (d - z) exp(-j phi)``, and the loop updates ``phi <- phi + g arg(sum_block d conj(z))`` (first order, gain
    ``g =`` :data:`PHASE_LOOP_GAIN`). ``phase`` (n, 2) records the phase used for every symbol.
    """

    def __init__(self, slicer: "Slicer", n_symbols: int, gain: float = None):
        self.slicer, self.gain = slicer, PHASE_LOOP_GAIN if gain is None else gain
        self.phase = np.zeros((n_symbols, 2))
        self.current = np.zeros(2)

    def restart(self, outputs: np.ndarray) -> ErrorFunction:
        """Start the loop at the fourth-power estimate ``phi = -arg(-sum y^4) / 4`` of ``outputs`` (m, 2) (square QAM:
        ``E[a^4]`` is negative real; a multiple of pi/2 is left, which the decisions do not mind); returns
        :meth:`error`."""
        self.current = -np.angle(-np.sum(outputs**4, axis=0)) / 4
        return self.error

    def error(self, y: np.ndarray, k0: int, k1: int) -> np.ndarray:
        """The counter-rotated decision error of the block ``y`` (b, 2) of symbols ``[k0, k1)``; advances the loop."""
        rotation = np.exp(1j * self.current)
        z = y * rotation
        d = self.slicer(z)
        self.phase[k0:k1] = self.current
        self.current = self.current + self.gain * np.angle(np.sum(d * np.conj(z), axis=0))
        return (d - z) * np.conj(rotation)


class Slicer:
    """Nearest point of a square QAM constellation, per real and imaginary part (the levels of ``points``)."""

    def __init__(self, points: np.ndarray):
        self.levels = np.unique(np.round(points.real, 12))
        self.edges = (self.levels[1:] + self.levels[:-1]) / 2

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """complex (...) -> the nearest constellation points, same shape."""
        return self.levels[np.searchsorted(self.edges, y.real)] + 1j * self.levels[np.searchsorted(self.edges, y.imag)]


def polarizations_swapped(received: np.ndarray, reference: np.ndarray, block: Optional[int] = None) -> bool:
    """Whether ``|c_xy| + |c_yx| > |c_xx| + |c_yy|``, ``c_pq`` the least-squares gain of output p against transmitted
    polarization q (:func:`channel.receiver.complex_gain`) over the whole block; with ``block``, ``|c_pq|`` is the
    sum over blocks of ``block`` symbols of ``|sum_k y_p[k] conj(a_q[k])|`` (insensitive to a carrier phase that
    moves slowly over a block). received, reference complex (2, n)."""
    if block is None:
        straight = np.abs(complex_gain(received, reference)).sum()
        swapped = np.abs(complex_gain(received[::-1], reference)).sum()
        return bool(swapped > straight)
    m = received.shape[-1] // block * block
    if m == 0:
        return polarizations_swapped(received, reference)
    z = received[:, None, :m] * np.conj(reference[None, :, :m])  # (p, q, m)
    c = np.abs(z.reshape(2, 2, -1, block).sum(axis=-1)).sum(axis=-1)
    return bool(c[0, 1] + c[1, 0] > c[0, 0] + c[1, 1])


def assign_polarizations(received: np.ndarray, reference: np.ndarray, block: Optional[int] = None) -> np.ndarray:
    """``received`` (2, n) with its rows swapped if :func:`polarizations_swapped` (whole block, or per ``block``
    symbols); reference complex (2, n), the transmitted symbols."""
    return received[::-1].copy() if polarizations_swapped(received, reference, block) else received
