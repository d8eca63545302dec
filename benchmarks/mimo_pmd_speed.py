"""Speed of the adaptive 2x2 MIMO equalizer (channel/mimo.py), cost of the PMD sections in the SSFM stepper, and the
SNR the equalizer restores on a linear link with PMD.

    OMP_NUM_THREADS=1 EQNN_FFT_WORKERS=1 python benchmarks/mimo_pmd_speed.py

MIMO: 2^16 DP-16QAM symbols at 2 sps (AWGN, 20 dB, a random polarization rotation), each training mode, 15 taps,
blocks of 16 symbols; symbols per second of CPU time (``time.process_time``: the machine is shared) over both passes
(4096 training symbols, then the whole block). PMD: one span of 2^14 symbols at 4 sps, 20 fixed steps, with 0 and with
20 / 100 sections per span; CPU seconds per span. Link: DP-16QAM, 2^16 symbols, 4 x 50 km, gamma = 0, -8 dBm (ASE
on), 1 ps/sqrt(km) (mean DGD 14 ps) for 5 PMD seeds: the CDC SNR without and with each equalizer mode, against the
PMD-free link.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

import channel
from channel.fiber import SplitStepFourier
from channel.metrics import effective_snr_db
from channel.mimo import AdaptiveEqualizer, assign_polarizations
from channel.pmd import differential_group_delay, haar_su2
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


def pmd_link_snr() -> None:
    base = channel.reference_config().replace(
        transmitter={"modulation": "16QAM", "n_symbols": 2**16, "seed": 7, "launch_power_dbm": -8.0},
        fiber={"gamma_per_w_km": 0.0}, link={"n_spans": 4, "span_length_km": 50.0},
        propagation={"step_mode": "fixed", "steps_per_span": 1}, receiver={"dbp_steps_per_span": []})
    print(f"linear link with PMD: PMD-free CDC SNR {channel.simulate(base, dbp=False).metrics['CDC'].snr_db:.2f} dB")
    omega = np.array([-1.0, 1.0]) * 2 * np.pi * 1e9
    for seed in range(5):
        cfg = base.replace(fiber={"pmd_ps_sqrt_km": 1.0, "pmd_seed": seed})
        dgd = differential_group_delay(channel.PolarizationModeDispersion.from_link(cfg).jones_matrix(omega), omega)
        row = [f"  seed {seed}: DGD {dgd * 1e12:4.1f} ps",
               f"no MIMO {channel.simulate(cfg, dbp=False).metrics['CDC'].snr_db:6.2f} dB"]
        for mode in ("cma", "rde", "data_aided"):
            equalized = channel.simulate(cfg.replace(receiver={"mimo": mode}), dbp=False)
            row.append(f"{mode} {equalized.metrics['CDC'].snr_db:.2f}")
        print(", ".join(row))


if __name__ == "__main__":
    mimo_speed()
    pmd_cost()
    pmd_link_snr()
