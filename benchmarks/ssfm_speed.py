"""Speed and agreement of the package's Manakov SSFM versus a peer tool and a plain reference.

Same input field (``channel.transmit`` of the reference link), same noiseless link (ideal gain
amplifiers: ASE off so outputs can be compared sample by sample), same number of equal steps:

- ``channel``: :func:`channel.propagate_link` (symmetric SSFM with merged half linear steps: one FFT
  pair per polarization and step), with 1 and with 2 scipy.fft threads (``EQNN_FFT_WORKERS``).
- ``OptiCommPy``: ``optic.models.channels.manakovSSF`` (fixed step ``hz``, ``nlprMethod=False``,
  ``amp="ideal"``; its nonlinear step iterates a trapezoid rule until the field changes < ``tol``).
  Not a project dependency: install it in a scratch venv (see benchmarks/README.md).
- ``plain numpy``: a textbook symmetric SSFM written below with numpy.fft, L(h/2) N(h) L(h/2) with
  the half linear steps not merged (two FFT pairs per step), same nonlinear step as the package.

Reported, all measured in the same run: wall time per step and the ratio to ``channel`` (1 thread),
the relative L2 difference ``||a - b|| / ||b||`` of each output to the package's complex128 output
with the same steps and to a fine reference (package, complex128, ``--ref-factor`` times more steps),
and the peak of traced memory allocations (tracemalloc, one span) relative to the field size.
BLAS is limited to one thread (threadpoolctl) for every method; numpy.fft (peer, plain) is single-threaded.

Usage (with the venv that holds OptiCommPy; without it the peer is skipped)::

    benchmarks/peers/venv/bin/python benchmarks/ssfm_speed.py            # 2**15 symbols x 4 sps, 20 spans
    benchmarks/peers/venv/bin/python benchmarks/ssfm_speed.py --quick    # 2 spans, smoke test
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

import channel
from channel.fiber import MANAKOV_FACTOR, angular_frequencies, dispersion_exponent, effective_length

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "ssfm_speed.json"
PRECISIONS = ("complex128", "complex64")


def make_config(args, precision: str) -> channel.LinkConfig:
    return channel.reference_config().with_launch_power(args.power).replace(
        transmitter={"n_symbols": args.symbols, "samples_per_symbol": args.sps},
        link={"n_spans": args.spans, "noiseless": True},
        propagation={"step_mode": "fixed", "steps_per_span": args.steps, "precision": precision})


# -------------------------------------------------------------------------------------------- methods

def run_channel(cfg: channel.LinkConfig, field: np.ndarray, workers: int) -> np.ndarray:
    os.environ["EQNN_FFT_WORKERS"] = str(workers)  # read when the solver is built
    return channel.propagate_link(cfg, field)


def run_plain(cfg: channel.LinkConfig, field: np.ndarray) -> np.ndarray:
    """Textbook symmetric SSFM, numpy.fft, non-merged half linear steps; ideal gain after each span."""
    dtype = np.dtype(cfg.propagation.precision)
    f = cfg.fiber
    n = field.shape[-1]
    h = cfg.link.span_length / cfg.propagation.steps_per_span
    omega = angular_frequencies(n, cfg.transmitter.sample_rate)
    half = np.exp((dispersion_exponent(omega, f.beta2, f.beta3) - f.alpha / 2) * h / 2).astype(dtype)
    nl = np.finfo(dtype).dtype.type(MANAKOV_FACTOR * f.gamma * effective_length(f.alpha, h))
    gain = np.finfo(dtype).dtype.type(math.sqrt(channel.span_gain(cfg)))
    x = np.array(field, dtype=dtype)
    for _ in range(cfg.link.n_spans):
        for _ in range(cfg.propagation.steps_per_span):
            x = np.fft.ifft(np.fft.fft(x, axis=-1) * half, axis=-1)
            p = np.sum(x.real**2 + x.imag**2, axis=0)
            x = x * np.exp(1j * nl * p).astype(dtype)
            x = np.fft.ifft(np.fft.fft(x, axis=-1) * half, axis=-1)
        x *= gain
    return x


def run_opticommpy(cfg: channel.LinkConfig, field: np.ndarray) -> np.ndarray:
    """optic.models.channels.manakovSSF on the same field: input/output shape (n, 2) = (x, y) columns."""
    from optic.models.channels import manakovSSF
    from optic.utils import parameters

    p = parameters()
    p.Ltotal = cfg.link.n_spans * cfg.link.span_length_km
    p.Lspan = cfg.link.span_length_km
    p.hz = cfg.link.span_length_km / cfg.propagation.steps_per_span
    p.alpha = cfg.fiber.attenuation_db_km
    p.D = cfg.fiber.dispersion_ps_nm_km
    p.gamma = cfg.fiber.gamma_per_w_km
    p.Fc = cfg.fiber.carrier_frequency
    p.Fs = cfg.transmitter.sample_rate
    p.prec = np.dtype(cfg.propagation.precision).type
    p.amp = "ideal"
    p.nlprMethod = False
    p.prgsBar = False
    dtype = np.dtype(cfg.propagation.precision)
    out = manakovSSF(np.ascontiguousarray(np.asarray(field, dtype=dtype).T), p)
    return np.ascontiguousarray(out.T)


def opticommpy_version() -> str | None:
    try:
        from importlib.metadata import version

        import optic.models.channels  # noqa: F401
        return version("OptiCommPy")
    except Exception:  # noqa: BLE001 - any import failure means the peer is unavailable
        return None


# ------------------------------------------------------------------------------------------- measures

def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.complex128)
    b = np.asarray(b, dtype=np.complex128)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def timed(fn, *a):
    gc.collect()
    t0 = time.perf_counter()
    out = fn(*a)
    return out, time.perf_counter() - t0


def peak_memory(fn, *a) -> float:
    """Peak traced allocation (bytes) during fn(*a) above what was allocated before."""
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    fn(*a)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return float(peak - base)


def convention_check(args, field: np.ndarray, have_peer: bool) -> dict:
    """One span: is the peer's output the package's output of the same field (same convention), or the
    conjugate of the package's output of conj(field) (opposite convention)?"""
    if not have_peer:
        return {}
    cfg = make_config(argparse.Namespace(**dict(vars(args), spans=1)), "complex128")
    ours = run_channel(cfg, field, 1)
    ours_conj = np.conj(run_channel(cfg, np.conj(field), 1))
    peer = run_opticommpy(cfg, field)
    return {"same_convention_rel_l2": rel_l2(peer, ours), "conjugate_convention_rel_l2": rel_l2(peer, ours_conj)}


# ----------------------------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=2**15, help="symbols per polarization (default 2**15)")
    ap.add_argument("--sps", type=int, default=4, help="samples per symbol (default 4)")
    ap.add_argument("--spans", type=int, default=20, help="spans of 50 km (default 20)")
    ap.add_argument("--steps", type=int, default=50, help="equal steps per span (default 50)")
    ap.add_argument("--power", type=float, default=4.0, help="launch power in dBm (default +4)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved timed repetitions (default 5)")
    ap.add_argument("--time-spans", type=int, default=2, help="spans of the timed runs (default 2)")
    ap.add_argument("--ref-factor", type=int, default=4, help="fine reference: this many times more steps")
    ap.add_argument("--no-peer", action="store_true", help="skip OptiCommPy")
    ap.add_argument("--no-plain", action="store_true", help="skip the plain numpy SSFM")
    ap.add_argument("--quick", action="store_true", help="2 spans, 2**13 symbols: smoke test")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.quick:
        args.spans, args.symbols, args.ref_factor, args.time_spans, args.repeats = 2, 2**13, 4, 1, 2
        if args.out == DEFAULT_OUT:
            args.out = DEFAULT_OUT.with_name("ssfm_speed_quick.json")

    peer_version = None if args.no_peer else opticommpy_version()
    have_peer = peer_version is not None
    if not args.no_peer and not have_peer:
        print("OptiCommPy is not importable in this interpreter: peer skipped. Install it in a scratch venv:\n"
              "  python -m venv --system-site-packages benchmarks/peers/venv\n"
              "  benchmarks/peers/venv/bin/pip install OptiCommPy\n"
              "and run this script with benchmarks/peers/venv/bin/python.", file=sys.stderr)

    tx = channel.transmit(make_config(args, "complex128").transmitter)
    field = tx.field  # complex128 (2, n)
    n = field.shape[-1]
    steps_total = args.spans * args.steps
    import scipy
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "opticommpy": peer_version, "samples_per_polarization": n, "symbols": args.symbols, "sps": args.sps,
            "spans": args.spans, "steps_per_span": args.steps, "launch_power_dbm": args.power,
            "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:])}
    print(f"field: 2 x {n} samples, {args.spans} spans x {args.steps} steps = {steps_total} steps, "
          f"{args.power:+g} dBm, noiseless; OptiCommPy {peer_version or 'not available'}", flush=True)

    # warm-up (numba JIT of the peer's nonlinear phase, FFT plans)
    small = argparse.Namespace(**dict(vars(args), spans=1, steps=2))
    for prec in PRECISIONS:
        cfg_small = make_config(small, prec)
        run_channel(cfg_small, field, 1)
        if have_peer:
            run_opticommpy(cfg_small, field)

    conv = convention_check(args, field, have_peer)
    if conv:
        print(f"convention check (1 span): peer vs package same field {conv['same_convention_rel_l2']:.2e}, "
              f"vs conj(package(conj field)) {conv['conjugate_convention_rel_l2']:.2e}", flush=True)

    methods = [("channel, 1 thread", lambda c, f: run_channel(c, f, 1)),
               ("channel, 2 threads", lambda c, f: run_channel(c, f, 2))]
    if have_peer:
        methods.append(("OptiCommPy manakovSSF", run_opticommpy))
    if not args.no_plain:
        methods.append(("plain numpy (non-merged)", run_plain))
    # the thread count does not change the package's arithmetic: one full-link run serves both rows
    agreement_runs = [m for m in methods if m[0] != "channel, 1 thread"]

    # A. agreement on the full link (one run of each method and precision)
    print(f"A. agreement, full link; fine reference: package complex128, {args.steps * args.ref_factor} "
          "steps/span ...", flush=True)
    ref_cfg = make_config(argparse.Namespace(**dict(vars(args), steps=args.steps * args.ref_factor)), "complex128")
    reference, t_ref = timed(run_channel, ref_cfg, field, 2)
    outputs, full_times = {}, {}
    for prec in PRECISIONS:
        cfg = make_config(args, prec)
        for name, fn in agreement_runs:
            outputs[(name, prec)], full_times[(name, prec)] = timed(fn, cfg, field)
            print(f"  {prec:10s} {name:28s} {full_times[(name, prec)]:7.1f} s", flush=True)
        outputs[("channel, 1 thread", prec)] = outputs[("channel, 2 threads", prec)]
    base = outputs[("channel, 1 thread", "complex128")]

    # B. timing: a short link, every method in turn, repeated; min and median per method
    t_args = argparse.Namespace(**dict(vars(args), spans=args.time_spans))
    t_steps = args.time_spans * args.steps
    times = {(m, p): [] for m, _ in methods for p in PRECISIONS}
    print(f"B. timing: {args.time_spans} spans ({t_steps} steps), {args.repeats} interleaved repeats", flush=True)
    for rep in range(args.repeats):
        for prec in PRECISIONS:  # round robin, so drifts of the machine's load hit every method alike
            cfg = make_config(t_args, prec)
            for name, fn in methods:
                _, dt = timed(fn, cfg, field)
                times[(name, prec)].append(dt)
        print(f"  repeat {rep + 1}: " + ", ".join(f"{m[:10]} {p[7:]} {1e3 * times[(m, p)][-1] / t_steps:.1f}"
                                                 for p in PRECISIONS for m, _ in methods) + " ms/step", flush=True)

    # C. memory: one span, traced allocations
    rows = []
    field_bytes = field.nbytes
    for prec in PRECISIONS:
        cfg1 = make_config(argparse.Namespace(**dict(vars(args), spans=1)), prec)
        base_min = min(times[("channel, 1 thread", prec)])
        base_med = float(np.median(times[("channel, 1 thread", prec)]))
        for name, fn in methods:
            t_min, t_med = min(times[(name, prec)]), float(np.median(times[(name, prec)]))
            mem = peak_memory(fn, cfg1, field)
            out = outputs[(name, prec)]
            rows.append({"method": name, "precision": prec,
                         "ms_per_step_min": 1e3 * t_min / t_steps, "ms_per_step_median": 1e3 * t_med / t_steps,
                         "ratio_min": t_min / base_min, "ratio_median": t_med / base_med,
                         "ratio_min_to_channel_1thread_complex128":
                             t_min / min(times[("channel, 1 thread", "complex128")]),
                         "all_times_s": times[(name, prec)],
                         "full_link_time_s": full_times.get((name, prec)),
                         "rel_l2_to_channel_complex128": rel_l2(out, base),
                         "rel_l2_to_fine_reference": rel_l2(out, reference),
                         "peak_traced_memory_mb": mem / 2**20,
                         "peak_memory_in_fields": mem / field_bytes})
    result = {"meta": dict(meta, time_spans=args.time_spans, repeats=args.repeats), "convention_check": conv,
              "rows": rows,
              "reference": {"steps_per_span": args.steps * args.ref_factor, "time_s": t_ref,
                            "rel_l2_channel_c128_to_reference": rel_l2(base, reference)}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))

    print(f"\n{meta['date']}, {meta['cpus']} cores; field 2 x {n} samples ({args.symbols} symbols x {args.sps} sps), "
          f"{args.power:+g} dBm, noiseless, {args.steps} steps/span. Agreement: {args.spans} x 50 km. "
          f"Timing: {args.time_spans} spans, min and median of {args.repeats} interleaved runs. "
          "Memory: peak traced allocations (tracemalloc) over one span, in MB and in units of the complex128 "
          "input field.\n")
    print("| method | precision | ms/step (min) | time / channel 1 thread, same precision (min; median) | "
          "rel. L2 diff to channel c128 | rel. L2 diff to fine ref. "
          f"({args.steps * args.ref_factor} steps/span) | peak traced memory MB (x field) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['precision']} | {r['ms_per_step_min']:.1f} | "
              f"{r['ratio_min']:.2f}; {r['ratio_median']:.2f} | {r['rel_l2_to_channel_complex128']:.1e} | "
              f"{r['rel_l2_to_fine_reference']:.1e} | {r['peak_traced_memory_mb']:.0f} "
              f"({r['peak_memory_in_fields']:.1f}) |")
    if conv:
        print(f"\nConvention (1 span, complex128): ||peer(x) - channel(x)|| / ||channel(x)|| = "
              f"{conv['same_convention_rel_l2']:.2e}; ||peer(x) - conj(channel(conj x))|| / ... = "
              f"{conv['conjugate_convention_rel_l2']:.2e}")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    # The peer's convergence test calls scipy.linalg.norm (BLAS); multi-threaded BLAS on a loaded 2-core
    # machine oversubscribes and made it 2-3x slower still. Every method runs with BLAS at one thread
    # (the package's FFT threads are set separately by EQNN_FFT_WORKERS).
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        sys.exit(main())
