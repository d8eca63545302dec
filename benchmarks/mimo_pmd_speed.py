"""Speed of the adaptive 2x2 MIMO equalizer (channel/mimo.py) and cost of the PMD sections in the SSFM stepper.

    OMP_NUM_THREADS=1 EQNN_FFT_WORKERS=1 python benchmarks/mimo_pmd_speed.py

MIMO: 2^16 DP-16QAM symbols at 2 sps (AWGN, 20 dB, a random polarization rotation), each training mode, 15 taps,
blocks of 16 symbols; symbols per second of CPU time (``time.process_time``: the machine is shared) over both passes
(4096 training symbols, then the whole block). PMD: one span of 2^14 symbols at 4 sps, 20 fixed steps, with 0 and with
20 / 100 sections per span; CPU seconds per span.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

import channel
from channel.fiber import SplitStepFourier
from channel.metrics import effective_snr_db
from channel.mimo import AdaptiveEqualizer, assign_polarizations
from channel.pmd import haar_su2
from channel.receiver import CoherentReceiver, normalize


def mimo_speed(n_symbols: int = 2**16) -> None:
    cfg = channel.reference_config().replace(transmitter={"modulation": "16QAM", "n_symbols": n_symbols,
                                                          "samples_per_symbol": 2, "seed": 1})
    tx = channel.transmit(cfg.transmitter)
    field = tx.field / np.sqrt(np.mean(np.abs(tx.field) ** 2))
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(field.shape) + 1j * rng.standard_normal(field.shape)) * np.sqrt(0.5 * 10 ** -2)
    receiver = dataclasses.replace(CoherentReceiver.from_link(cfg), length=0.0)
    rotated = haar_su2(rng, 1)[0] @ field + noise
    two = receiver.matched_filter(rotated, 2, output_samples_per_symbol=2)
    reference = effective_snr_db(normalize(receiver.matched_filter_and_sample(field + noise, 2), tx.symbols),
                                 tx.symbols)
    print(f"MIMO, {n_symbols} symbols, 15 taps, blocks of 16; SNR without rotation {reference:.2f} dB")
    for mode, tracking in [("cma", "decision_directed"), ("rde", "decision_directed"),
                           ("data_aided", "decision_directed"), ("cma", "blind"), ("cma", "frozen")]:
        eq = AdaptiveEqualizer(mode=mode, modulation="16QAM", tracking=tracking)
        start, wall = time.process_time(), time.perf_counter()
        y = eq.equalize(two, tx.symbols)
        seconds, wall = time.process_time() - start, time.perf_counter() - wall
        snr = effective_snr_db(normalize(assign_polarizations(y, tx.symbols), tx.symbols), tx.symbols)
        print(f"  {mode:10s} {tracking:17s} {n_symbols / seconds:9.0f} symbols/s  ({seconds:.2f} s CPU, "
              f"{wall:.2f} s wall)  SNR {snr:.2f} dB")


def pmd_cost(n_symbols: int = 2**14) -> None:
    base = channel.reference_config().replace(transmitter={"n_symbols": n_symbols}, link={"n_spans": 1},
                                              propagation={"step_mode": "fixed", "steps_per_span": 20})
    field = channel.transmit(base.transmitter).field
    print(f"SSFM, one span, {n_symbols * 4} samples, 20 steps")
    for pmd, sections in [(0.0, 20), (0.1, 20), (0.1, 100)]:
        cfg = base.replace(fiber={"pmd_ps_sqrt_km": pmd, "pmd_sections_per_span": sections})
        solver = SplitStepFourier.from_link(cfg, workers=1)
        solver.propagate(field, 1)
        start = time.process_time()
        for _ in range(3):
            solver.propagate(field, 1)
        seconds = (time.process_time() - start) / 3
        print(f"  pmd {pmd} ps/sqrt(km), {sections if pmd else 0:3d} sections: {seconds:.3f} s")


if __name__ == "__main__":
    mimo_speed()
    pmd_cost()
