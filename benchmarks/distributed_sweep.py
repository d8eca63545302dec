"""Wall time of a launch-power sweep in this process versus on a local Dask cluster (eqnn.execution).

The sweep: ``channel.reference_config()`` (DP-64QAM, 30 GBd, 20 x 50 km, adaptive SSFM, CDC + DBP-1/2 with xi
optimized) at 9 launch powers, ``--symbols`` symbols per polarization, no cache (every power is simulated). Runs:

1. in-process: ``channel.sweep_launch_power`` (scipy.fft on all cores, ``EQNN_FFT_WORKERS`` unset);
2. ``--workers`` local Dask worker processes, one power per task, each worker's FFTs on one thread
   (``EQNN_FFT_WORKERS=1``: no oversubscription);
3. the same with the workers' FFTs on all cores (``EQNN_FFT_WORKERS`` = the core count; local workers default to
   their one thread), unless ``--skip-oversubscribed``.

Each Dask run includes starting the cluster (printed separately). The transmissions of every run are compared with
the in-process ones, array for array. The load average is recorded before and after (the machine may be shared).

Usage::

    python benchmarks/distributed_sweep.py                        # 9 powers, 2^15 symbols, 2 workers (~3 min)
    python benchmarks/distributed_sweep.py --symbols 65536 --workers 2 --powers=-4:4:1

Writes ``benchmarks/results/distributed_sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import channel
from eqnn.cli import parse_powers
from eqnn.execution import DaskExecutor, sweep

OUT = Path(__file__).resolve().parent / "results" / "distributed_sweep.json"


def _identical(a: list, b: list) -> bool:
    """Same received symbols (CDC and every DBP variant) and the same xi, bit for bit."""
    return all(np.array_equal(x.rx_cdc, y.rx_cdc) and x.dbp_xi == y.dbp_xi and x.rx_dbp.keys() == y.rx_dbp.keys()
               and all(np.array_equal(x.rx_dbp[k], y.rx_dbp[k]) for k in x.rx_dbp) for x, y in zip(a, b))


def _in_process(config, powers) -> tuple[list, dict]:
    start = time.perf_counter()
    trs = channel.sweep_launch_power(config, powers, dbp=True)
    return trs, {"run": "in-process", "fft_threads": os.cpu_count(), "wall_s": time.perf_counter() - start}


def _on_dask(config, powers, workers: int, fft_workers: str | None) -> tuple[list, dict]:
    """The sweep on a fresh local cluster whose workers inherit ``EQNN_FFT_WORKERS = fft_workers`` (None: unset)."""
    saved = os.environ.pop("EQNN_FFT_WORKERS", None)
    if fft_workers is not None:
        os.environ["EQNN_FFT_WORKERS"] = fft_workers
    try:
        start = time.perf_counter()
        with DaskExecutor(workers=workers, dashboard=None) as executor:
            executor.client()
            started = time.perf_counter()
            trs = sweep(executor, config, powers, dbp=True, progress=False)
            end = time.perf_counter()
    finally:
        os.environ.pop("EQNN_FFT_WORKERS", None)
        if saved is not None:
            os.environ["EQNN_FFT_WORKERS"] = saved
    return trs, {"run": f"{workers} Dask workers", "fft_threads": int(fft_workers or os.cpu_count()),
                 "startup_s": started - start, "sweep_s": end - started, "wall_s": end - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=2**15, help="symbols per polarization (default 32768)")
    parser.add_argument("--powers", default="-4:4:1", help="launch powers in dBm, START:STOP:STEP or a,b,c")
    parser.add_argument("--workers", type=int, default=2, help="local Dask worker processes (default 2)")
    parser.add_argument("--skip-oversubscribed", action="store_true", help="skip run 3 (workers' FFTs on all cores)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    powers = parse_powers(args.powers)
    config = channel.reference_config().replace(transmitter={"n_symbols": args.symbols})
    load_before = os.getloadavg()
    print(f"sweep of {len(powers)} powers {powers} dBm, {args.symbols} symbols/pol, reference link with DBP; "
          f"{os.cpu_count()} cores, load average {load_before[0]:.2f}", flush=True)
    reference, first = _in_process(config, powers)
    runs = [first]
    print(f"  in-process: {first['wall_s']:.1f} s", flush=True)
    for fft in ["1"] + ([] if args.skip_oversubscribed else [str(os.cpu_count())]):
        trs, run = _on_dask(config, powers, args.workers, fft)
        run["identical_to_in_process"] = _identical(reference, trs)
        run["speedup"] = first["wall_s"] / run["wall_s"]
        runs.append(run)
        print(f"  {run['run']} (FFT threads per worker {run['fft_threads']}): {run['wall_s']:.1f} s "
              f"(cluster start {run['startup_s']:.1f} s + sweep {run['sweep_s']:.1f} s), speed-up "
              f"{run['speedup']:.2f}x, identical results: {run['identical_to_in_process']}", flush=True)
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} (1 min), {load_after[1]:.2f} (5 min)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"powers_dbm": powers, "n_symbols": args.symbols, "workers": args.workers,
                                    "cpu_count": os.cpu_count(), "platform": platform.platform(),
                                    "load_average_before": load_before, "load_average_after": load_after,
                                    "runs": runs}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
