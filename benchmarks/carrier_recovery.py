"""Carrier recovery under laser phase noise: the SNR cost of blind phase search, and the reference link with lasers.

Part 1 (symbol level, seconds): DP-16QAM / DP-64QAM symbols with AWGN at a fixed SNR, rotated by a Wiener phase of
linewidth x symbol time ``dnu Ts`` (the sum of both lasers), recovered by blind phase search (per polarization and
joint); the effective SNR after the data-aided gain against the same symbols and noise without phase noise.

Part 2 (link, minutes): ``channel.reference_config()`` with ``--symbols`` symbols at ``--power`` dBm, ideal lasers
against 100 kHz Tx and LO lasers with a 1 GHz offset and carrier recovery (4th-power FOE, blind phase search with
64 test phases, window 65, joint polarizations, pilots 1/64): SNR after CDC and DBP-1/DBP-2 (xi optimized), cycle
slips, offset estimate.

Usage::

    python benchmarks/carrier_recovery.py                 # both parts
    python benchmarks/carrier_recovery.py --no-link       # part 1 only
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import channel
from channel.carrier_recovery import blind_phase_search, count_cycle_slips
from channel.laser import wiener_phase
from channel.metrics import effective_snr_db
from channel.receiver import normalize
from channel.transmitter import qam_constellation


def symbol_level(n_symbols: int = 2**15) -> None:
    print("| modulation | SNR (dB) | dnu Ts | B, W | penalty per pol. (dB) | penalty joint (dB) | slips |")
    print("|---|---|---|---|---|---|---|")
    for modulation, snr_db, test_phases in [("16QAM", 16.0, 32), ("64QAM", 22.0, 64)]:
        for linewidth_ts in (1e-6, 1e-5, 3e-5, 1e-4):
            rng = np.random.default_rng(11)
            points = qam_constellation(modulation)[0]
            a = points[rng.integers(0, len(points), (2, n_symbols))]
            noise = (rng.standard_normal(a.shape) + 1j * rng.standard_normal(a.shape)) * math.sqrt(
                10 ** (-snr_db / 10) / 2)
            y = a * np.exp(1j * wiener_phase(linewidth_ts, 1.0, n_symbols, rng)) + noise
            ideal = effective_snr_db(normalize(a + noise, a), a)
            penalties, slips = [], 0
            for joint in (False, True):
                out = normalize(y * np.exp(1j * blind_phase_search(y, modulation, test_phases, 65, joint)), a)
                penalties.append(ideal - effective_snr_db(out, a))
                slips += count_cycle_slips(out, a, joint_polarizations=joint)
            print(f"| {modulation} | {snr_db:g} | {linewidth_ts:g} | {test_phases}, 65 | {penalties[0]:.2f} | "
                  f"{penalties[1]:.2f} | {slips} |")


def link_level(power_dbm: float, n_symbols: int) -> None:
    base = channel.reference_config().replace(transmitter={"n_symbols": n_symbols, "launch_power_dbm": power_dbm},
                                              receiver={"dbp_steps_per_span": [1, 2]})
    impaired = base.replace(
        laser={"tx_linewidth_hz": 1e5, "lo_linewidth_hz": 1e5, "frequency_offset_hz": 1e9},
        carrier_recovery={"method": "blind_phase_search", "test_phases": 64, "window_symbols": 65,
                          "joint_polarizations": True, "pilot_rate": 1 / 64, "frequency_offset_estimation": True})
    for label, config in (("ideal lasers", base), ("lasers + carrier recovery", impaired)):
        start = time.perf_counter()
        tr = channel.simulate(config)
        snrs = ", ".join(f"{k} {m.snr_db:.2f} dB" for k, m in tr.metrics.items())
        print(f"{label}: {snrs}; {tr.info.get('carrier_recovery')}; {time.perf_counter() - start:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-link", action="store_true", help="skip part 2")
    parser.add_argument("--power", type=float, default=-2.0, help="launch power of part 2, dBm")
    parser.add_argument("--symbols", type=int, default=2**14, help="symbols per polarization of part 2")
    args = parser.parse_args()
    symbol_level()
    if not args.no_link:
        link_level(args.power, args.symbols)


if __name__ == "__main__":
    main()
