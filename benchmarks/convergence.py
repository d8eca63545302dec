"""Convergence study of the forward SSFM: effective SNR after CDC and DBP versus the simulation
oversampling (samples per symbol) and the step plan (fixed steps per span, or adaptive phase bound).

Reference link: ``channel.reference_config()`` (single-channel DP-64QAM, 30 GBd, RRC 0.1,
20 x 50 km SSMF, NF 4.5 dB). Every run uses the same seed, i.e. the same transmitted symbols, and
the same ASE realization in every frequency bin they share (see :class:`CommonNoiseAmplifier`), so
differences between rows are the numerics, not the statistics.

Per run: forward propagation (precision, sps, steps under study) -> low-pass to 2 samples/symbol ->
CDC, and DBP with 1, 2 and 16 steps/span at xi = 1 (fixed, so that no xi-optimization noise enters),
optionally DBP-1/DBP-2 with xi optimized (``channel.optimize_xi``: first half of the block).
Effective SNR: ``channel.metrics.effective_snr_db`` after removing one complex gain per polarization.

Usage::

    python benchmarks/convergence.py                       # full study (about 30-60 min on 2 cores)
    python benchmarks/convergence.py --quick               # smoke test (about a minute)
    python benchmarks/convergence.py --powers=-2,4 --symbols 32768 --jobs 2
    python benchmarks/convergence.py --report-only         # re-print the table of results/convergence.json
    python benchmarks/convergence.py --powers=6 --sps 2,4,8 --steps 10,25,50,100,200 --top-sps-steps 100 \\
        --adaptive 5e-3,2e-3 --xi-opt-steps "" --noiseless-runs "" --no-complex64 --no-cross-check \\
        --noise-sps 8 --out benchmarks/results/convergence_p6.json                # the +6 dBm extension
    python benchmarks/convergence.py --report-only --merge benchmarks/results/convergence_p6.json

Writes ``benchmarks/results/convergence.json`` (after every run, so a long study can be polled and
resumed with ``--resume``) and prints Markdown tables and the chosen defaults.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import channel
from channel.amplifier import ase_noise_power, ase_only_snr_db, span_gain
from channel.dbp import dbp_symbols, optimize_xi
from channel.fiber import FiberParameters, SplitStepFourier, step_lengths
from channel.metrics import effective_snr_db
from channel.receiver import matched_filter_and_sample, normalize, select_channel
from channel.transmitter import STREAM_ASE, rng_stream

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "convergence.json"
TOLERANCE_DB = 0.1
# The default is used across power sweeps: a setting's cost is its forward steps x sps summed over these
# launch powers (dBm; adaptive plans take more steps at higher power), computed from the step plans.
SWEEP_POWERS = tuple(range(-2, 7))
CURRENT_DEFAULT = (4, "fixed", 50.0)
# Stream key of the benchmark's own ASE draws (distinct from the package's (seed, STREAM_ASE, span)).
NOISE_STREAM = (STREAM_ASE, 1000)


class CommonNoiseAmplifier:
    """EDFA hook (gain + ASE) whose noise is the same in every frequency bin for every oversampling.

    The package's :class:`channel.amplifier.Amplifier` draws ``n_symbols * samples_per_symbol``
    numbers per span, so runs at different samples per symbol get different in-band noise. Here the
    noise of span ``s`` is one fixed array over the frequency grid ``k * Rs / n_symbols``,
    ``k in [-n_symbols*max_sps/2, n_symbols*max_sps/2)``; a run at ``sps <= max_sps`` uses the bins of
    its band. The per-bin variance is the package's (``n * P_ase``, P_ase = (NF G - 1) h nu Fs / 2),
    so in the time domain every shared bin carries the identical noise amplitude at every sps.
    """

    def __init__(self, config: channel.LinkConfig, max_sps: int):
        tx = config.transmitter
        self.gain = span_gain(config)
        self.noiseless = config.link.noiseless
        self.seed = tx.seed
        self.n_total = tx.n_symbols * max_sps
        self.n = tx.n_symbols * tx.samples_per_symbol
        if self.n > self.n_total:
            raise ValueError(f"samples_per_symbol {tx.samples_per_symbol} > max_sps {max_sps}")
        p_ase = ase_noise_power(config.link.noise_figure_db, self.gain, config.fiber.carrier_frequency,
                                tx.sample_rate)
        self.scale = math.sqrt(self.n * p_ase / 2)
        k = np.rint(np.fft.fftfreq(self.n, d=1.0 / self.n)).astype(np.int64)
        self.index = k + self.n_total // 2

    def __call__(self, spectrum: np.ndarray, span: int) -> np.ndarray:
        spectrum *= spectrum.real.dtype.type(math.sqrt(self.gain))
        if self.noiseless:
            return spectrum
        rng = rng_stream(self.seed, *NOISE_STREAM, span)
        z = rng.standard_normal((2, 2, self.n_total))  # (re/im, pol, bin in natural order)
        noise = self.scale * (z[0][:, self.index] + 1j * z[1][:, self.index])
        spectrum += noise.astype(spectrum.dtype, copy=False)
        return spectrum


def make_config(base: channel.LinkConfig, power: float, sps: int, mode: str, value: float,
                precision: str, noiseless: bool = False, n_symbols: int = 2**16) -> channel.LinkConfig:
    prop = {"precision": precision, "step_mode": mode}
    if mode == "fixed":
        prop["steps_per_span"] = int(value)
    else:
        prop["max_nonlinear_phase_rad"] = float(value)
    return base.with_launch_power(power).replace(
        transmitter={"samples_per_symbol": int(sps), "n_symbols": int(n_symbols)},
        link={"noiseless": bool(noiseless)}, propagation=prop,
        receiver={"dbp_samples_per_symbol": 2, "dbp_xi": 1.0})


def run_one(task: dict) -> dict:
    """One forward propagation and its receivers. ``task``: power, sps, mode, value, precision, noiseless."""
    cfg = make_config(channel.reference_config(), task["power"], task["sps"], task["mode"], task["value"],
                      task["precision"], task["noiseless"], task["n_symbols"])
    tx = channel.transmit(cfg.transmitter, cfg.propagation.precision)
    steps = step_lengths(cfg)
    solver = SplitStepFourier(tx.field.shape[-1], cfg.transmitter.sample_rate,
                              FiberParameters.from_config(cfg.fiber), steps, cfg.propagation.precision)
    amp = CommonNoiseAmplifier(cfg, task["max_sps"])
    t0 = time.perf_counter()
    rx_full = solver.propagate(tx.field, cfg.link.n_spans, after_span=amp)
    t_fwd = time.perf_counter() - t0
    rx = select_channel(rx_full, cfg)
    del rx_full
    sym = tx.symbols
    cdc = normalize(matched_filter_and_sample(rx, cfg, 2, cdc=True), sym)
    out = dict(task)
    out.update(n_steps_per_span=int(len(steps)), forward_time_s=t_fwd,
               cost_units=int(len(steps)) * int(task["sps"]),
               snr_cdc=effective_snr_db(cdc, sym), snr_dbp={}, snr_dbp_xiopt={}, xi_opt={},
               ase_only_snr_db=None if task["noiseless"] else ase_only_snr_db(cfg))
    t0 = time.perf_counter()
    for k in task["dbp_steps"]:
        out["snr_dbp"][str(k)] = effective_snr_db(dbp_symbols(rx, cfg, k, 1.0, sym), sym)
    for k in task["xi_opt_steps"]:
        xi = optimize_xi(rx, cfg, k, sym)
        out["xi_opt"][str(k)] = xi
        out["snr_dbp_xiopt"][str(k)] = effective_snr_db(dbp_symbols(rx, cfg, k, xi, sym), sym)
    out["receiver_time_s"] = time.perf_counter() - t0
    return out


def _init_worker(workers: int) -> None:
    os.environ["EQNN_FFT_WORKERS"] = str(workers)


def task_key(t: dict) -> str:
    return (f"p={t['power']:+g} sps={t['sps']} {t['mode']}={t['value']:g} {t['precision']}"
            f"{' noiseless' if t['noiseless'] else ''} n={t['n_symbols']}")


def build_grid(args) -> list[dict]:
    common = dict(n_symbols=args.symbols, max_sps=max(args.sps + [args.noise_sps or 0]), dbp_steps=args.dbp_steps,
                  xi_opt_steps=args.xi_opt_steps, noiseless=False, precision="complex128")
    tasks = []
    for power in args.powers:
        for sps in args.sps:
            for n in args.steps:
                if sps == max(args.sps) and args.top_sps_steps and n not in args.top_sps_steps:
                    continue
                tasks.append(dict(common, power=power, sps=sps, mode="fixed", value=float(n)))
            if sps in args.adaptive_sps:
                for phase in args.adaptive:
                    tasks.append(dict(common, power=power, sps=sps, mode="adaptive", value=float(phase)))
    for sps, n in args.noiseless_runs:
        tasks.append(dict(common, power=max(args.powers), sps=sps, mode="fixed", value=float(n), noiseless=True,
                          xi_opt_steps=[]))
    return tasks


def expected_cost(t: dict) -> float:
    cfg = make_config(channel.reference_config(), t["power"], t["sps"], t["mode"], t["value"], t["precision"],
                      n_symbols=64)
    return len(step_lengths(cfg)) * t["sps"]


def run_tasks(tasks: list[dict], results: dict, out_path: Path, meta: dict, jobs: int) -> None:
    todo = [t for t in tasks if task_key(t) not in results]
    todo.sort(key=expected_cost, reverse=True)  # longest first: better load balance
    print(f"{len(todo)} runs to do ({len(tasks) - len(todo)} already in {out_path})", flush=True)
    if not todo:
        return
    start = time.perf_counter()

    def record(r: dict) -> None:
        results[task_key(r)] = r
        save(out_path, meta, results)
        dbp = " ".join(f"DBP-{k} {v:6.2f}" for k, v in r["snr_dbp"].items())
        print(f"[{time.perf_counter() - start:7.0f} s] {task_key(r):45s} steps/span {r['n_steps_per_span']:4d} "
              f"fwd {r['forward_time_s']:6.1f} s  CDC {r['snr_cdc']:6.2f}  {dbp}", flush=True)

    if jobs <= 1:
        for t in todo:
            record(run_one(t))
    else:
        import multiprocessing as mp
        ctx = mp.get_context("spawn")
        with ctx.Pool(jobs, initializer=_init_worker, initargs=(max(1, (os.cpu_count() or 1) // jobs),)) as pool:
            for r in pool.imap_unordered(run_one, todo):
                record(r)


def save(path: Path, meta: dict, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"meta": meta, "runs": list(results.values())}, indent=1, sort_keys=True))
    tmp.replace(path)


def load(path: Path) -> tuple[dict, dict]:
    if not path.is_file():
        return {}, {}
    data = json.loads(path.read_text())
    return data.get("meta", {}), {task_key(r): r for r in data.get("runs", [])}


# ----------------------------------------------------------------------------------------------- report

def _setting(r: dict) -> tuple:
    return (r["sps"], r["mode"], r["value"])


def _setting_name(s: tuple) -> str:
    sps, mode, value = s
    return f"sps {sps}, {int(value)} steps/span" if mode == "fixed" else f"sps {sps}, adaptive {value:g} rad"


def _metrics(r: dict) -> dict[str, float]:
    m = {"CDC": r["snr_cdc"]}
    m.update({f"DBP-{k}": v for k, v in r["snr_dbp"].items()})
    return m


def sweep_cost(setting: tuple) -> int:
    """Forward steps per span x sps, summed over SWEEP_POWERS."""
    sps, mode, value = setting
    return sum(len(step_lengths(make_config(channel.reference_config(), p, sps, mode, value, "complex128",
                                            n_symbols=64))) * sps for p in SWEEP_POWERS)


def analyse(results: dict, precision: str = "complex128", dbp_sps: int = 2) -> dict:
    """Per power, the reference is the finest fixed-step run (largest sps, then most steps). Per setting
    run at every power: the max |delta| over powers and over the CDC and DBP (xi = 1) SNRs. The chosen
    default is the cheapest setting (:func:`sweep_cost`) within TOLERANCE_DB whose forward sps exceeds the DBP's
    (a forward run on the DBP's own grid aliases its nonlinear products and is inverted by the DBP
    almost exactly: its DBP SNRs are biased upwards whatever the step count)."""
    runs = [r for r in results.values() if not r["noiseless"] and r["precision"] == precision]
    if not runs:
        return {}
    powers = sorted({r["power"] for r in runs})
    by = {(_setting(r), r["power"]): r for r in runs}
    refs = {}
    for p in powers:
        fixed = [r for r in runs if r["mode"] == "fixed" and r["power"] == p]
        top = max(r["sps"] for r in fixed)
        refs[p] = (top, "fixed", max(r["value"] for r in fixed if r["sps"] == top))
    settings = sorted({_setting(r) for r in runs}, key=lambda s: (s[0], s[1], s[2]))
    rows = []
    for s in settings:
        if not all((s, p) in by for p in powers):
            continue
        deltas, cost, time_s = {}, 0, 0.0
        for p in powers:
            r, ref = by[(s, p)], by[(refs[p], p)]
            for name, v in _metrics(r).items():
                deltas[f"{name}@{p:+g}"] = v - _metrics(ref)[name]
            cost += r["cost_units"]
            time_s += r["forward_time_s"]
        worst = max(deltas, key=lambda k: abs(deltas[k]))
        rows.append({"setting": s, "name": _setting_name(s), "max_abs_delta_db": abs(deltas[worst]),
                     "worst": worst, "worst_delta_db": deltas[worst], "cost_units": cost,
                     "sweep_cost": sweep_cost(s),
                     "forward_time_s": time_s, "deltas": deltas, "eligible": s[0] > dbp_sps})
    ok = [row for row in rows if row["max_abs_delta_db"] < TOLERANCE_DB and row["eligible"]]
    chosen = min(ok, key=lambda row: (row["sweep_cost"], row["max_abs_delta_db"])) if ok else None
    return {"powers": powers, "references": refs, "rows": rows, "chosen": chosen}


def format_tables(results: dict, meta: dict) -> str:
    lines = []
    runs = [r for r in results.values() if not r["noiseless"]]
    if not runs:
        return "no results"
    an = analyse(results)
    powers = an["powers"]
    dbp_keys = sorted({k for r in runs for k in r["snr_dbp"]}, key=int)
    xi_keys = sorted({k for r in runs for k in r["snr_dbp_xiopt"]}, key=int)
    default_setting = CURRENT_DEFAULT
    for p in powers:
        rp = sorted([r for r in runs if r["power"] == p],
                    key=lambda r: (r["precision"] != "complex128", r["sps"], r["mode"], r["value"]))
        ref = next((r for r in rp if _setting(r) == an["references"][p] and r["precision"] == "complex128"), None)
        default = next((r for r in rp if _setting(r) == default_setting and r["precision"] == "complex128"), None)
        ase = rp[0]["ase_only_snr_db"]
        lines.append(f"\n#### Launch power {p:+g} dBm (ASE-only SNR {ase:.2f} dB); SNR in dB"
                     f"{'' if ref is None else '; delta = difference to ' + _setting_name(an['references'][p])}\n")
        head = ["sps", "steps", "steps/span", "prec.", "CDC"] + [f"DBP-{k}" for k in dbp_keys] + \
            [f"DBP-{k} xi-opt (xi)" for k in xi_keys] + ["max abs delta", "cost / (sps 4, 50 steps)", "fwd wall time*"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for r in rp:
            steps = f"{int(r['value'])} fixed" if r["mode"] == "fixed" else f"adaptive {r['value']:g} rad"
            vals = [r["snr_cdc"]] + [r["snr_dbp"].get(k, math.nan) for k in dbp_keys]
            cells = [str(r["sps"]), steps, str(r["n_steps_per_span"]), r["precision"].replace("complex", "c")]
            cells += [f"{v:.2f}" for v in vals]
            cells += [f"{r['snr_dbp_xiopt'][k]:.2f} ({r['xi_opt'][k]:.2f})" if k in r["snr_dbp_xiopt"] else "-"
                      for k in xi_keys]
            if ref is not None:
                refv = [ref["snr_cdc"]] + [ref["snr_dbp"].get(k, math.nan) for k in dbp_keys]
                cells.append(f"{max(abs(a - b) for a, b in zip(vals, refv)):.3f}")
            else:
                cells.append("-")
            cells.append(f"{r['cost_units'] / default['cost_units']:.2f}" if default else "-")
            cells.append(f"{r['forward_time_s']:.0f} s")
            lines.append("| " + " | ".join(cells) + " |")
    noiseless = sorted([r for r in results.values() if r["noiseless"]], key=lambda r: (r["sps"], r["value"]))
    if noiseless:
        lines.append(f"\n#### Noiseless forward at {noiseless[0]['power']:+g} dBm: SNR after DBP (xi = 1, 2 sps) "
                     "shows how far the DBP inverts the forward model\n")
        head = ["fwd sps", "fwd steps/span", "CDC"] + [f"DBP-{k}" for k in dbp_keys]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for r in noiseless:
            lines.append("| " + " | ".join([str(r["sps"]), str(r["n_steps_per_span"]), f"{r['snr_cdc']:.2f}"]
                                          + [f"{r['snr_dbp'].get(k, math.nan):.2f}" for k in dbp_keys]) + " |")
    pw = ", ".join(f"{p:+g} dBm" for p in an["powers"])
    lines.append(f"\n#### Max |delta| to the finest setting at each power ({pw}; CDC and DBP at xi = 1), "
                 f"by cost of a sweep {SWEEP_POWERS[0]:+d}..{SWEEP_POWERS[-1]:+d} dBm in 1 dB steps "
                 f"(forward steps x sps, relative to the current default {_setting_name(CURRENT_DEFAULT)})\n")
    lines.append("| setting | max abs delta (dB) | worst (signed delta) | relative sweep cost | "
                 "fwd wall time* (s, summed over the measured powers) |")
    lines.append("|---|---|---|---|---|")
    ref_cost = sweep_cost(CURRENT_DEFAULT)
    for row in sorted(an["rows"], key=lambda row: (row["sweep_cost"], row["max_abs_delta_db"])):
        mark = " **chosen**" if an["chosen"] and row["setting"] == an["chosen"]["setting"] else ""
        ok = "" if row["max_abs_delta_db"] < TOLERANCE_DB else " (fails)"
        if not row["eligible"]:
            ok += " (forward grid = DBP grid)"
        lines.append(f"| {row['name']}{mark} | {row['max_abs_delta_db']:.3f}{ok} | {row['worst']} "
                     f"({row['worst_delta_db']:+.3f}) | "
                     f"{row['sweep_cost'] / ref_cost:.3f} | {row['forward_time_s']:.0f} |")
    if an["chosen"]:
        lines.append(f"\nChosen default: {an['chosen']['name']} "
                     f"(max |delta| {an['chosen']['max_abs_delta_db']:.3f} dB, worst {an['chosen']['worst']}).")
    # precision check
    c64 = [r for r in results.values() if r["precision"] == "complex64" and not r["noiseless"]]
    if c64:
        lines.append("\n#### complex64 versus complex128 (same setting, same seed)\n")
        lines.append("| power | setting | CDC delta | " + " | ".join(f"DBP-{k} delta" for k in dbp_keys)
                     + " |")
        lines.append("|---|---|---|" + "---|" * len(dbp_keys))
        for r in sorted(c64, key=lambda r: (r["power"], _setting(r))):
            twin = results.get(task_key(dict(r, precision="complex128")))
            if twin is None:
                continue
            d = [r["snr_cdc"] - twin["snr_cdc"]] + [r["snr_dbp"][k] - twin["snr_dbp"][k] for k in dbp_keys]
            lines.append(f"| {r['power']:+g} | {_setting_name(_setting(r))} | "
                         + " | ".join(f"{x:+.4f}" for x in d) + " |")
    lines.append("\n*Wall times were measured while other jobs shared the 2 cores (load varied over the run): "
                 "they are not comparable between rows; the cost columns (steps x sps) are. Same-run time "
                 "ratios are in benchmarks/ssfm_speed.py.")
    cross = meta.get("cross_check")
    if cross:
        lines.append(f"\nCross-check with the package's own amplifier (`channel.simulate`, {cross['setting']}): "
                     + ", ".join(f"{p} dBm: CDC {v['package']:.2f} dB vs {v['benchmark']:.2f} dB here"
                                 for p, v in cross["powers"].items()))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main

def _floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x.strip()]


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def _pairs(s: str) -> list[tuple[int, int]]:
    out = []
    for item in s.split(","):
        if item.strip():
            a, b = item.split(":")
            out.append((int(a), int(b)))
    return out


def machine_info() -> dict:
    try:
        commit = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    import scipy
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "machine": platform.machine(), "git_commit": commit}


def cross_check(args, setting: tuple) -> dict:
    """CDC SNR with the package's own Amplifier (``channel.simulate``) at one setting: the benchmark's
    common-noise amplifier must give the same noise level (up to the noise realization)."""
    sps, mode, value = setting
    out = {"setting": _setting_name(setting), "powers": {}}
    for p in args.powers:
        cfg = make_config(channel.reference_config(), p, sps, mode, value, "complex128", n_symbols=args.symbols)
        tr = channel.simulate(cfg, dbp=False)
        out["powers"][f"{p:+g}"] = {"package": tr.metrics["CDC"].snr_db}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", type=int, default=2**15, help="symbols per polarization (default 2**15)")
    ap.add_argument("--powers", type=_floats, default=[-2.0, 4.0], help="launch powers in dBm, e.g. -2,4")
    ap.add_argument("--sps", type=_ints, default=[2, 4, 8], help="forward samples per symbol")
    ap.add_argument("--steps", type=_ints, default=[5, 10, 25, 50, 100, 200], help="fixed steps per span")
    ap.add_argument("--top-sps-steps", type=_ints, default=[50, 100, 200],
                    help="fixed steps run at the largest sps (empty: all of --steps)")
    ap.add_argument("--adaptive", type=_floats, default=[5e-3, 2e-3, 1e-3, 5e-4],
                    help="adaptive max_nonlinear_phase_rad values (max_step_km 10)")
    ap.add_argument("--adaptive-sps", type=_ints, default=[4], help="sps at which adaptive plans are run")
    ap.add_argument("--dbp-steps", type=_ints, default=[1, 2, 16], help="DBP steps per span at xi = 1")
    ap.add_argument("--xi-opt-steps", type=_ints, default=[1, 2], help="DBP steps per span with xi optimized")
    ap.add_argument("--noiseless-runs", type=_pairs, default=[(2, 16), (4, 16), (8, 16), (2, 100)],
                    help="sps:steps of noiseless forward runs at the highest power (DBP-inversion check)")
    ap.add_argument("--no-complex64", action="store_true", help="skip the complex64 check of the chosen default")
    ap.add_argument("--no-cross-check", action="store_true", help="skip the channel.simulate cross-check")
    ap.add_argument("--noise-sps", type=int, default=None,
                    help="oversampling of the common ASE grid (default: the largest --sps; use 8 to share the "
                         "default study's noise realization)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel processes (FFT threads are split among them)")
    ap.add_argument("--quick", action="store_true", help="small smoke test (2**12 symbols, few settings)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--resume", action="store_true", help="keep the runs already in --out")
    ap.add_argument("--report-only", action="store_true", help="print the tables of --out and exit")
    ap.add_argument("--merge", type=Path, nargs="*", default=[],
                    help="with --report-only: also tabulate the runs of these result files (same noise grid)")
    args = ap.parse_args(argv)
    if args.quick:
        args.symbols = 2**12
        args.sps, args.steps, args.top_sps_steps = [2, 4], [10, 50], [10, 50]
        args.adaptive, args.adaptive_sps = [1e-3], [4]
        args.xi_opt_steps, args.noiseless_runs = [1], [(2, 16), (4, 16)]
        if args.out == DEFAULT_OUT:
            args.out = DEFAULT_OUT.with_name("convergence_quick.json")

    meta, results = load(args.out)
    if args.report_only:
        merged = dict(results)
        for extra in args.merge:
            merged.update(load(extra)[1])
        print(format_tables(merged, meta))
        return 0
    if not args.resume:
        meta, results = {}, {}
    meta.update(machine_info())
    meta.setdefault("commands", []).append(" ".join([Path(sys.argv[0]).name] + sys.argv[1:]))
    meta.update(n_symbols=args.symbols,
                seed=channel.reference_config().transmitter.seed, link=channel.reference_config().to_dict(),
                tolerance_db=TOLERANCE_DB)
    t_start = time.perf_counter()
    run_tasks(build_grid(args), results, args.out, meta, args.jobs)
    an = analyse(results)
    if an.get("chosen") and not args.no_complex64:
        sps, mode, value = an["chosen"]["setting"]
        base = dict(n_symbols=args.symbols, max_sps=max(args.sps + [args.noise_sps or 0]), dbp_steps=args.dbp_steps,
                    xi_opt_steps=[], noiseless=False, precision="complex64", sps=sps, mode=mode, value=value)
        extra = [dict(base, power=p) for p in args.powers]
        if CURRENT_DEFAULT != (sps, mode, value) and 4 in args.sps and 50 in args.steps:
            extra += [dict(base, power=p, sps=4, mode="fixed", value=50.0) for p in args.powers]
        run_tasks(extra, results, args.out, meta, args.jobs)
    if an.get("chosen") and not args.no_cross_check and "cross_check" not in meta:
        cc = cross_check(args, an["chosen"]["setting"])
        for p in args.powers:
            key = task_key(dict(power=p, sps=an["chosen"]["setting"][0], mode=an["chosen"]["setting"][1],
                                value=an["chosen"]["setting"][2], precision="complex128", noiseless=False,
                                n_symbols=args.symbols))
            cc["powers"][f"{p:+g}"]["benchmark"] = results[key]["snr_cdc"]
        meta["cross_check"] = cc
    meta["total_wall_time_s"] = meta.get("total_wall_time_s", 0) + time.perf_counter() - t_start
    save(args.out, meta, results)
    print(format_tables(results, meta))
    print(f"\nwrote {args.out}  (total wall time this invocation {time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
