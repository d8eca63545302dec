"""DBP at its best for its cost (issue 13, item 1): today's symmetric DBP versus the optimized position of the
nonlinear step and filtered DBP, on the same received fields.

For each launch power the reference link's transmission (``experiments/reference.toml``, 2^16 symbols, seed 202 by
default) is taken from the simulation cache (``--cache``, read only; the cache of ``eqnn simulate`` holds it for
``dbp_steps_per_span = [1, 2]``) or simulated without DBP; then, for DBP-1 and DBP-2 on the stored received field
(2 samples per symbol), with every parameter marked "opt" searched on the first half of the block
(:meth:`channel.DigitalBackPropagation.optimize`) and the metrics taken on the whole block:

- ``midpoint``: today's DBP (nonlinear step at the middle of each step, xi optimized),
- ``position``: xi and the position p of the nonlinear step (fraction from the step's high-power end) optimized,
- ``filtered``: filtered DBP (Gaussian FIR of ``--filter-taps`` taps on the power) with xi, p and its bandwidth B
  optimized (Du & Lowery optimize both the filter and the position).

Prints, per power and at each method's optimal launch power (the highest SNR among the powers), the effective SNR,
Q from counted errors with its 95 % confidence interval (or the SNR-implied Q, labelled, when fewer than 20 bit
errors were counted), the parameters found and RMpS (:func:`eqnn.complexity.dbp_complexity`); writes the same as
JSON (``--out``).

    python benchmarks/dbp_position.py --cache /work/main/results/cache      # -1, 0, +1 dBm
    python benchmarks/dbp_position.py --quick                                # smoke run, 2^12 symbols, 2 spans
    python benchmarks/dbp_position.py --report-only a.json b.json            # merged tables of earlier runs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import channel
from channel import storage
from channel.dbp import DigitalBackPropagation
from channel.metrics import evaluate_symbols
from eqnn.complexity import dbp_complexity

ROOT = Path(__file__).resolve().parent.parent


def received_transmission(config: channel.LinkConfig, caches: list[Path]) -> channel.Transmission:
    """The transmission of ``config`` from the first cache that holds it (read only), else simulated (no DBP)."""
    for cache in caches:
        tr = storage.load_cached(cache, config, channel.Transmission)
        if tr is not None:
            return tr
    return channel.simulate(config, dbp=False)


def variants(taps: int) -> dict[str, dict]:
    """Method name -> (power filter taps, keyword arguments of :meth:`DigitalBackPropagation.optimize`)."""
    return {"midpoint": {"taps": 1, "search": {"xi": "optimize", "nonlinear_position": 0.5}},
            "position": {"taps": 1, "search": {"xi": "optimize", "nonlinear_position": "optimize"}},
            "filtered": {"taps": taps, "search": {"xi": "optimize", "nonlinear_position": "optimize",
                                                  "power_filter_bandwidth": "optimize"}}}


def format_q(m: channel.Metrics) -> str:
    """Q from counted errors with its 95 % CI; with fewer than 20 errors the SNR-implied Q, labelled, and the CI
    that the few counted errors give."""
    if m.q_db is not None:
        return f"{m.q_db:.2f} [{m.q_db_ci[0]:.2f}, {m.q_db_ci[1]:.2f}]"
    low, high = m.q_db_ci
    ci = f"[{low:.2f}, {'inf' if high is None else f'{high:.2f}'}]"
    return f"~{m.q_db_from_snr:.2f} (SNR-implied; {m.bit_errors} errors, CI {ci})"


def _cached_note(row: dict) -> str:
    if "equals_cached_dbp" not in row:
        return ""
    return "  [bit-identical to the cached DBP]" if row["equals_cached_dbp"] else "  [DIFFERS from the cached DBP]"


def run(args: argparse.Namespace) -> dict:
    base = channel.load_config(ROOT / "experiments" / "reference.toml").with_seed(args.seed)
    base = base.replace(transmitter={"n_symbols": args.symbols})
    if args.quick:
        base = base.replace(link={"n_spans": 2})
    caches = [Path(c) for c in args.cache]
    rows = []
    for power in args.powers:
        cfg = base.with_launch_power(power)
        start = time.perf_counter()
        tr = received_transmission(cfg, caches)
        cdc = tr.metrics["CDC"]
        rows.append({"launch_power_dbm": power, "method": "CDC", "steps_per_span": 0, "snr_db": cdc.snr_db,
                     "q": format_q(cdc), "metrics": cdc.to_dict()})
        for k in args.steps:
            for name, variant in variants(args.filter_taps).items():
                dbp = DigitalBackPropagation.from_link(cfg.replace(receiver={"dbp_power_filter_taps": variant["taps"]}))
                t0 = time.perf_counter()
                settings = dbp.optimize(tr.rx_field, k, tr.tx_symbols, **variant["search"])
                rx = dbp.symbols(tr.rx_field, k, settings.xi, tr.tx_symbols, settings.nonlinear_position,
                                 settings.power_filter_bandwidth)
                m = evaluate_symbols(rx, tr.tx_indices, cfg.transmitter.modulation)
                rmps = dbp_complexity(cfg, k, power_filter_taps=variant["taps"]).rmps
                rows.append({"launch_power_dbm": power, "method": f"DBP-{k} {name}", "steps_per_span": k,
                             "xi": settings.xi, "nonlinear_position": settings.nonlinear_position,
                             "power_filter_taps": variant["taps"],
                             "power_filter_bandwidth": settings.power_filter_bandwidth, "rmps": rmps,
                             "snr_db": m.snr_db, "q": format_q(m), "metrics": m.to_dict(),
                             "search_s": time.perf_counter() - t0})
                if name == "midpoint" and k in tr.rx_dbp:  # today's DBP as stored by the simulator: the same bits
                    rows[-1]["equals_cached_dbp"] = bool((rx == tr.rx_dbp[k]).all())
                bandwidth = settings.power_filter_bandwidth
                print(f"{power:+.0f} dBm  DBP-{k} {name:8s}  SNR {m.snr_db:6.2f} dB  Q {format_q(m):28s} "
                      f"xi {settings.xi:.3f}  p {settings.nonlinear_position:.3f}  "
                      f"B {'-' if bandwidth is None else f'{bandwidth:.3f}'}  RMpS {rmps:,.1f}  "
                      f"({time.perf_counter() - t0:.0f} s){_cached_note(rows[-1])}", flush=True)
        print(f"{power:+.0f} dBm done in {time.perf_counter() - start:.0f} s", flush=True)
    return {"config": base.to_dict(), "powers_dbm": list(args.powers), "filter_taps": args.filter_taps, "rows": rows}


def report(result: dict) -> str:
    rows = result["rows"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = ["| P (dBm) | method | xi | p | B (Rs) | SNR (dB) | Q (dB) [95% CI] | RMpS |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["method"] == "CDC":
            continue
        b = "-" if r["power_filter_bandwidth"] is None else f"{r['power_filter_bandwidth']:.2f}"
        lines.append(f"| {r['launch_power_dbm']:+g} | {r['method']} | {r['xi']:.3f} | {r['nonlinear_position']:.3f} | "
                     f"{b} | {r['snr_db']:.2f} | {r['q']} | {r['rmps']:,.1f} |")
    lines += ["", "At each method's optimal launch power (highest SNR among the powers; * = at the edge of the range):",
              "| method | P (dBm) | SNR (dB) | Q (dB) [95% CI] | RMpS | SNR gain over the midpoint DBP, same k |",
              "|---|---|---|---|---|---|"]
    best, powers = {}, {}
    for method in methods:
        candidates = [r for r in rows if r["method"] == method]
        best[method] = max(candidates, key=lambda r: r["snr_db"])
        powers[method] = [r["launch_power_dbm"] for r in candidates]
    for method, r in best.items():
        tried = powers[method]
        edge = "*" if r["launch_power_dbm"] in (min(tried), max(tried)) and len(tried) > 1 else ""
        ref = best.get(f"DBP-{r['steps_per_span']} midpoint") if r["steps_per_span"] else None
        gain = "" if ref is None or ref is r else f"{r['snr_db'] - ref['snr_db']:+.2f} dB"
        rmps = f"{r['rmps']:,.1f}" if "rmps" in r else ""
        lines.append(f"| {method} | {r['launch_power_dbm']:+g}{edge} | {r['snr_db']:.2f} | {r['q']} | {rmps} "
                     f"| {gain} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--powers", type=float, nargs="+", default=[-1.0, 0.0, 1.0], help="launch powers in dBm")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2], help="DBP steps per span")
    parser.add_argument("--symbols", type=int, default=2**16, help="symbols per polarization")
    parser.add_argument("--seed", type=int, default=202)
    parser.add_argument("--filter-taps", type=int, default=3, help="taps of the power filter of filtered DBP")
    parser.add_argument("--cache", nargs="*", default=["results/cache"],
                        help="simulation caches to read the transmissions from (never written)")
    parser.add_argument("--out", default="benchmarks/results/dbp_position.json")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2^12 symbols, 2 spans, 0 dBm")
    parser.add_argument("--report-only", nargs="+", metavar="JSON",
                        help="print the tables of earlier runs (their --out files) merged, without computing")
    args = parser.parse_args(argv)
    if args.report_only:
        results = [json.loads(Path(f).read_text()) for f in args.report_only]
        rows = sorted((r for res in results for r in res["rows"]), key=lambda r: r["launch_power_dbm"])
        for r in rows:
            r["q"] = format_q(channel.Metrics.from_dict(r["metrics"]))
        powers = sorted({p for res in results for p in res["powers_dbm"]})
        print(report({"rows": rows, "powers_dbm": powers}))
        return 0
    if args.quick:
        args.symbols, args.powers, args.cache = 2**12, [0.0], []
    result = run(args)
    text = report(result)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**result, "table": text}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
