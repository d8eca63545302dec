"""The digital signal processing of the coherent receiver after channel selection: one chain for CDC and for DBP.

    [frequency-offset acquisition and removal]  (:func:`acquire_frequency_offset`, on the field before CDC/DBP)
    -> CDC (or DBP) -> matched filter -> [adaptive 2x2 MIMO] or sampling -> [carrier recovery] -> normalize
                                                                           (:func:`recover_symbols`)

Frequency offset. The 4th-power estimator (:func:`channel.carrier_recovery.estimate_frequency_offset`) needs one
transmitted polarization per input: an output ``c1 a_x + c2 a_y`` has the spectral line ``E[a^4] (c1^4 + c2^4)``,
which vanishes for a polarization rotation of 45 degrees with ``arg(c1^4 / c2^4) = pi``. Without the MIMO
(``receiver.mimo = "off"``) it is taken on the CD-compensated field, as before (the link has no PMD to rotate the
polarizations, or the receiver does not undo it anyway). With the MIMO it is taken on the outputs of the MIMO's blind
training (CMA, then CMA or RDE: insensitive to the carrier phase and to a frequency offset, as their errors depend on
``|y|`` only; :meth:`channel.mimo.AdaptiveEqualizer.blind_outputs`) at one sample per symbol (unambiguous for
``|df| < R_s / 8``), the polarization-demultiplexed signal of a real receiver's order "CDC -> MIMO -> FOE -> CPR"
(Savory, IEEE JSTQE 16(5), 1164, 2010). The estimate is then removed from the field before CDC and DBP: removing it
after CDC would leave the group delay ``2 pi |beta2| L df`` of the offset carrier (4 symbols at 1 GHz on 1000 km of
SSMF at 30 GBd), which a real receiver's timing recovery and frame synchronization absorb but the simulator's
symbol alignment does not. The acquisition costs one extra CDC, matched filter and blind MIMO training per
transmission (not per DBP evaluation: DBP receives the corrected field).

Phase. With the MIMO and blind phase search both on, the equalizer adapts blind and refines its taps with the carrier
phase removed (:meth:`channel.mimo.AdaptiveEqualizer.equalize_with_carrier_phase`; the decision-directed stages of
the plain MIMO chain assume a static phase and fail under laser phase noise on 64QAM); the phase search and the pilots
(:class:`channel.carrier_recovery.CarrierRecovery`) then recover the phase of its outputs.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .carrier_recovery import CarrierRecovery, CarrierRecoveryResult
from .mimo import AdaptiveEqualizer
from .receiver import CoherentReceiver, normalize


def acquire_frequency_offset(field: np.ndarray, samples_per_symbol: int, receiver: CoherentReceiver,
                             equalizer: Optional[AdaptiveEqualizer], recovery: Optional[CarrierRecovery]
                             ) -> tuple[np.ndarray, Optional[float]]:
    """Estimate the carrier frequency offset and remove it from ``field`` (module docstring).

    Args: field complex (2, n_symbols * samples_per_symbol) in sqrt(W), the selected channel before CDC; receiver,
        equalizer (None: ``receiver.mimo = "off"``), recovery (None: carrier recovery off).
    Returns: (field with the offset removed, the estimate df_hat in Hz); (field, None) when the estimator is off.
    """
    if recovery is None or not recovery.config.frequency_offset_estimation:
        return field, None
    if equalizer is None:
        return recovery.remove_frequency_offset(field, receiver, samples_per_symbol)
    two = receiver.matched_filter(field, samples_per_symbol, cdc=True, output_samples_per_symbol=2)
    return recovery.remove_frequency_offset(field, receiver, samples_per_symbol,
                                            demultiplexed=equalizer.blind_outputs(two))


def recover_symbols(signal: np.ndarray, samples_per_symbol: int, tx_symbols: np.ndarray,
                    receiver: CoherentReceiver, equalizer: Optional[AdaptiveEqualizer],
                    recovery: Optional[CarrierRecovery], cdc: bool = False, overwrite_input: bool = False
                    ) -> tuple[np.ndarray, Optional[CarrierRecoveryResult]]:
    """CDC (if ``cdc``), matched filter, MIMO or sampling, carrier recovery and gain normalization.

    Args: signal complex (2, n_symbols * samples_per_symbol) in sqrt(W) (after DBP, or the field for CDC);
        tx_symbols complex (2, n_symbols), the transmitted unit-energy symbols (pilots, preamble, normalization).
    Returns: (complex128 (2, n_symbols) normalized symbols (:func:`channel.receiver.normalize`), the carrier
        recovery's result or None without it).
    """
    if equalizer is None:
        sampled = receiver.matched_filter_and_sample(signal, samples_per_symbol, cdc=cdc,
                                                     overwrite_input=overwrite_input)
    else:
        track_phase = recovery is not None and recovery.config.method != "none"
        sampled = equalizer.receive(receiver, signal, samples_per_symbol, tx_symbols, cdc=cdc,
                                    overwrite_input=overwrite_input, track_phase=track_phase)
    recovered = None if recovery is None else recovery(sampled, tx_symbols)
    return normalize(sampled if recovered is None else recovered.symbols, tx_symbols), recovered
