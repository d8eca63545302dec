"""Head-to-head of every registered pruning method (eqnn.compress.PRUNING_METHODS, whatever is registered when this
runs) on the reference link, each NN equalizer at its optimal launch power.

For each model, method and sparsity: prune with the SAME fine-tuning budget (the same windows, ``--epochs``
epochs in all: a method that trains in several phases splits them, one that trains from scratch gets them as its
whole training), then measure Q on the independent test block and the RMpS of the pruned model (eqnn.complexity,
from its actual weights), against the uncompressed model on the same symbols. Recorded per point: Q, dQ (Q loss
against the uncompressed model), RMpS and its reduction, achieved sparsity, epochs trained, wall time, or the
error if the method cannot prune this model at this setting.

Models (full size): the reference MLP (experiments/train_reference.toml), biLSTM (train_reference_bilstm.toml)
and sequence biLSTM (train_reference_sequence.toml) at -2 dBm, the optimum of both in benchmarks/README.md
section 4. They are trained (eqnn.training.run.train_stage, resumable) into ``<out>/train-<name>`` unless
``--model-dir NAME=DIR`` names a saved model trained by that config at that power (e.g.
``MLP=results/train-reference/models/MLP@-2p00dBm``); the simulations come from (and go to) ``--cache``.
``--quick``: a small MLP (2 x 16 tanh, 2^14 training symbols, 3 epochs) at sparsities 50 and 90 %, fine-tuning of
2 epochs on 4,096 windows: minutes on 2 cores, for checking the pipeline, not for conclusions.

Resumable: one JSON per (model, method, sparsity) in ``<out>/points/`` (written atomically; present = done).
Writes ``<out>/summary.json``, ``summary.csv`` and ``table.md``; prints the table.

Run:  python benchmarks/pruning_methods.py --out results/pruning-methods --cache results/cache      (full, hours)
      python benchmarks/pruning_methods.py --quick --out results/pruning-methods-quick --cache results/cache
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TRAIN_CONFIGS = {"MLP": "experiments/train_reference.toml", "biLSTM": "experiments/train_reference_bilstm.toml",
                 "sequence": "experiments/train_reference_sequence.toml"}
SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95)
QUICK_SPARSITIES = (0.5, 0.9)


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/pruning-methods")
    p.add_argument("--cache", default="results/cache", help="simulation cache (read and written)")
    p.add_argument("--models", nargs="+", help=f"of {list(TRAIN_CONFIGS)} (default: all; --quick: MLP)")
    p.add_argument("--model-dir", nargs="*", default=[], metavar="NAME=DIR",
                   help="the saved model NAME trained at --power by its training config (e.g. "
                        "MLP=results/train-reference/models/MLP@-2p00dBm); else it is trained into <out>")
    p.add_argument("--power", type=float, default=-2.0, help="launch power (dBm), the models' optimum")
    p.add_argument("--methods", nargs="+", help="default: every registered pruning method")
    p.add_argument("--sparsities", nargs="+", type=float)
    p.add_argument("--epochs", type=int, help="fine-tuning budget in epochs (default 4; --quick 2)")
    p.add_argument("--windows", type=int, help="fine-tuning windows (default 32768; --quick 4096)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    a.models = a.models or (["MLP"] if a.quick else list(TRAIN_CONFIGS))
    a.sparsities = a.sparsities or list(QUICK_SPARSITIES if a.quick else SPARSITIES)
    a.epochs = a.epochs or (2 if a.quick else 4)
    a.windows = a.windows or (4096 if a.quick else 32768)
    unknown = [m for m in a.models if m not in TRAIN_CONFIGS]
    if unknown:
        p.error(f"--models {unknown}: allowed {list(TRAIN_CONFIGS)}")
    if any(not 0.0 <= s < 1.0 for s in a.sparsities):
        p.error(f"--sparsities {a.sparsities}: each in [0, 1)")
    a.model_dirs = dict(item.split("=", 1) for item in a.model_dir)
    return a


def training_config(name: str, args):
    """The training run of model ``name`` (``--quick``: the small MLP)."""
    from eqnn.training.config import load_train_config

    config = load_train_config(ROOT / TRAIN_CONFIGS[name])
    models = tuple(m for m in config.models if m.name == name) or config.models[:1]
    config = dataclasses.replace(config, models=models, powers_dbm=(args.power,), dbp=False)
    if args.quick:
        config = dataclasses.replace(
            config, models=(dataclasses.replace(models[0], units=(16, 16)),), train_symbols=2**14,
            test_symbols=2**14, training=dataclasses.replace(config.training, epochs=3, patience=3))
    return config


def load_model(name: str, args, out: Path):
    """(equalizer, training windows, test transmission) of model ``name`` at ``args.power``."""
    import channel
    from eqnn.training import load_equalizer
    from eqnn.training.run import train_stage

    train = training_config(name, args)
    if name in args.model_dirs:
        equalizer = load_equalizer(args.model_dirs[name])
    else:
        result = train_stage(train, out / f"train-{name}", cache_dir=args.cache, progress=False, resume=True,
                             dbp=False, tables=False)
        equalizer = load_equalizer(result.model(train.models[0].name, args.power).folder)
    train_tr = channel.simulate(train.train_link(args.power), cache_dir=args.cache, dbp=False, progress=False)
    test_tr = channel.simulate(train.test_link(args.power), cache_dir=args.cache, dbp=False, progress=False)
    return equalizer, equalizer.training_set([train_tr]), test_tr


def measure(equalizer, model, test_tr) -> dict:
    from eqnn.compression import weight_stats
    from eqnn.studies.compression import _cost_metrics, _q_metrics
    from eqnn.training.equalizer import complexity_arguments

    q = _q_metrics(dataclasses.replace(equalizer, model=model), test_tr)
    cost = _cost_metrics(model, None, None, **complexity_arguments(equalizer.model_config,
                                                                  equalizer.data_config.n_outputs))
    total = weight_stats(model)["total"]
    return {"q_db": q["q_db"], "q_measured": q["q_measured"], "ber": q["ber"], "rmps": cost["rmps"],
            "n_weights": total["n_weights"], "n_nonzero": total["n_nonzero"], "sparsity_all": total["sparsity"]}


def run_point(equalizer, fine_tune, test_tr, method: str, sparsity: float, baseline: dict) -> dict:
    from eqnn import compress as C

    start = time.perf_counter()
    try:
        pruned = C.prune(equalizer.model, sparsity, method=method, schedule="polynomial", fine_tune=fine_tune)
    except (ValueError, TypeError, ArithmeticError) as exc:  # the method cannot prune this model / setting
        return {"failed": True, "error": f"{type(exc).__name__}: {exc}"[:400],
                "seconds": time.perf_counter() - start}
    seconds = time.perf_counter() - start
    info = C.compression_info(pruned)["steps"][-1]
    m = measure(equalizer, pruned, test_tr)
    achieved = info.get("achieved_sparsity") or {}
    return {"failed": False, **m, "dq_db": m["q_db"] - baseline["q_db"],
            "rmps_reduction": 1.0 - m["rmps"] / baseline["rmps"], "seconds": seconds,
            "epochs_trained": info.get("epochs_trained", fine_tune.epochs if info.get("fine_tuned") else 0),
            "kernel_sparsity": (sum(achieved.values()) / len(achieved)) if achieved else None,
            "units": info.get("units")}


def table(rows: list[dict]) -> str:
    def fmt(v, f):
        return "-" if v is None else format(v, f)

    lines = ["| Model | Method | Sparsity | Q (dB) | dQ (dB) | RMpS | RMpS saved | Epochs | Time (s) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("failed"):
            lines.append(f"| {r['model']} | {r['method']} | {r['sparsity']:.0%} | failed: {r['error'][:60]} "
                         "| | | | | |")
            continue
        lines.append(f"| {r['model']} | {r['method']} | {r['sparsity']:.0%} | {r['q_db']:.2f} | {r['dq_db']:+.2f} | "
                     f"{r['rmps']:,.0f} | {fmt(r.get('rmps_reduction'), '.1%')} | {r.get('epochs_trained', '-')} | "
                     f"{r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse(argv)
    from channel.storage import write_text_atomic
    from eqnn import compress as C
    from eqnn.quiet import import_tensorflow
    from eqnn.report import write_csv, write_json
    from eqnn.studies.compression_config import CompressionSearchConfig

    import_tensorflow()
    methods = args.methods or list(C.PRUNING_METHODS)
    bad = [m for m in methods if m not in C.PRUNING_METHODS]
    if bad:
        raise SystemExit(f"--methods {bad}: registered: {list(C.PRUNING_METHODS)}")
    out = Path(args.out)
    tune_config = CompressionSearchConfig(sparsity=(0.0, 0.95), pruning_methods="magnitude", clusters=False,
                                          weight_bits=False, fine_tune_epochs=args.epochs,
                                          fine_tune_batch_size=args.batch_size,
                                          fine_tune_learning_rate=args.learning_rate,
                                          fine_tune_windows=args.windows, n_calls=1, n_initial_points=1)
    rows = []
    for name in args.models:
        print(f"[{name}] training / loading at {args.power:+.1f} dBm", flush=True)
        equalizer, windows, test_tr = load_model(name, args, out)
        fine_tune = tune_config.fine_tune(windows)
        base_path = out / "points" / name / "uncompressed.json"
        if base_path.is_file():
            baseline = json.loads(base_path.read_text())
        else:
            from eqnn.references import reference_points

            baseline = measure(equalizer, equalizer.model, test_tr)
            baseline["references"] = {k: {"rmps": v[0], "q_db": v[1]}
                                      for k, v in reference_points(test_tr, equalizer).items()}
            write_json(base_path, baseline)
        for ref, v in baseline.get("references", {}).items():  # CDC (DBP where simulated), same symbols
            rows.append({"model": name, "method": ref, "sparsity": 0.0, "failed": False, "q_db": v["q_db"],
                         "dq_db": v["q_db"] - baseline["q_db"], "rmps": v["rmps"], "seconds": 0.0})
        rows.append({"model": name, "method": "uncompressed", "sparsity": 0.0, "failed": False,
                     **{k: v for k, v in baseline.items() if k != "references"},
                     "dq_db": 0.0, "rmps_reduction": 0.0, "epochs_trained": 0, "seconds": 0.0})
        for method in methods:
            for s in args.sparsities:
                path = out / "points" / name / f"{method}-s{round(s * 100):02d}.json"
                if path.is_file():
                    point = json.loads(path.read_text())
                else:
                    point = {"model": name, "method": method, "sparsity": s, "power_dbm": args.power,
                             "fine_tune": {"epochs": fine_tune.epochs, "windows": len(fine_tune.x),
                                           "batch_size": fine_tune.batch_size,
                                           "learning_rate": fine_tune.learning_rate},
                             **run_point(equalizer, fine_tune, test_tr, method, s, baseline)}
                    write_text_atomic(path, json.dumps(point, indent=2, default=float) + "\n")
                rows.append(point)
                state = "failed" if point["failed"] else f"Q {point['q_db']:.2f} dB ({point['dq_db']:+.2f})"
                print(f"  {method:20s} {s:.0%}: {state}, {point['seconds']:.1f} s", flush=True)
    flat = [{k: v for k, v in r.items() if k not in ("fine_tune", "units", "references")} for r in rows]
    write_json(out / "summary.json", {"power_dbm": args.power, "epochs": args.epochs, "windows": args.windows,
                                      "quick": args.quick, "rows": rows})
    write_csv(out / "summary.csv", flat)
    text = table(rows)
    write_text_atomic(out / "table.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
