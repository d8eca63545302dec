"""Training and inference speed of the NN equalizers (symbols per second), and the wall time to converge.

Part ``speed`` (default): for every model family registered in ``eqnn.models.FAMILIES`` (mlp, lstm, bilstm,
cnn_bilstm, and any other family present when it runs, e.g. gru/bigru or a sequence family), at the reference
sizes (41-symbol windows x 4 features; MLP 3 x 100, LSTM-64, biLSTM-32, CNN(32 filters, kernel 11)+biLSTM-32,
(bi)GRU-32, other families at their config defaults), on synthetic windows: ``eqnn.training.fit`` (the tf.data
pipeline) for a few epochs, with and without ``jit_compile`` (XLA), at each batch size and TensorFlow thread count
(``tf.config.threading``; each thread count runs in its own process, since it must be set before TensorFlow
starts). Training speed = symbols / median epoch time over the epochs after the first (the first one traces and
compiles); inference speed = symbols / time of the second ``model.predict`` over the same windows. A model whose
output is a sequence ((batch, L, n_out)) counts L symbols per sample. A family that cannot be built or trained is
skipped with a printed note.

Part ``converge`` (``--converge``): the reference link (experiments/train_reference.toml's scenario) at
``--power`` dBm, an independent training (seed 101) and test (seed 202) transmission (cached in
``--cache-dir``), 41-symbol windows, residual targets; for each recipe (a ``TrainingConfig`` variant, optionally
more data or other target normalization), the MLP 3 x 100 is trained and after every epoch the Q of the held-out
test transmission is measured (x polarization, gain-normalized like ``eqnn.training.evaluate``). Reports the
converged Q (the best over the epochs), the Q at the epoch early stopping restores (best validation loss), the
epoch and the training wall time (evaluation excluded) to reach within 0.1 dB of the converged Q, and CDC on the
same symbols.

Usage::

    python benchmarks/training_speed.py                       # speed: all families, jit off/on, batch 1000/4096
    python benchmarks/training_speed.py --threads 1,2         # also per thread count (one process each)
    python benchmarks/training_speed.py --converge            # + time to converge (a few minutes on 2 cores)
    python benchmarks/training_speed.py --parts converge --recipes baseline,cosine,wd0.1,bs256,data2x
    python benchmarks/training_speed.py --quick               # smoke run (tiny sizes; XLA for the MLP only)

Writes ``benchmarks/results/training_speed.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "training_speed.json"
ROOT = Path(__file__).resolve().parent.parent

# Reference sizes per family (the literature's, see docs); a family not listed is built with its config defaults.
REFERENCE_SIZES = {
    "mlp": {"units": (100, 100, 100)},
    "lstm": {"units": 64},
    "bilstm": {"units": 32},
    "cnn_bilstm": {"filters": 32, "kernel_size": 11, "units": 32},
    "gru": {"units": 32},
    "bigru": {"units": 32},
}
WINDOW = 41
# Windows per epoch per family in the speed part (about 1-5 s per epoch on 2 cores); others: RECURRENT_WINDOWS.
SPEED_WINDOWS = {"mlp": 2**16}
RECURRENT_WINDOWS = 2**13
# XLA makes the recurrent families 20-60x slower to train on the CPU (measured; it compiles the LSTM's loop
# itself instead of TensorFlow's fused kernel): their jit-on runs use this many windows and the first batch size.
JIT_SLOW_WINDOWS = 2048

# Recipes of the converge part: TrainingConfig overrides, and "data" (DataConfig overrides) / "symbols_factor"
# (training symbols x factor). The baseline is experiments/train_reference.toml's [training] before this work.
BASELINE = {"epochs": 40, "batch_size": 1000, "learning_rate": 1e-3, "validation_split": 0.1, "patience": 20,
            "lr_patience": 8, "min_learning_rate": 1e-5, "seed": 0}
RECIPES = {
    "baseline": {},
    "jit": {"jit_compile": True},
    "constant": {"lr_schedule": "constant", "lr_patience": 0},
    "cosine": {"lr_schedule": "cosine", "lr_patience": 0},
    "cosine-warmup": {"lr_schedule": "cosine", "lr_patience": 0, "warmup_epochs": 2},
    "wd0.01": {"weight_decay": 0.01},
    "wd0.1": {"weight_decay": 0.1},
    "bs256": {"batch_size": 256},
    "bs4096": {"batch_size": 4096, "learning_rate": 4e-3, "warmup_epochs": 2},
    "lr3e-3": {"learning_rate": 3e-3},
    "data2x": {"symbols_factor": 2},
    "data4x": {"symbols_factor": 4},
    "no-target-norm": {"data": {"normalize_targets": False}},
}


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def reference_config(family):
    """The family's config at the reference size (the sizes a config does not have are dropped)."""
    fields = {f.name for f in dataclasses.fields(family.config)}
    sizes = {k: v for k, v in REFERENCE_SIZES.get(family.type, {}).items() if k in fields}
    return family.config(**sizes)


def _input_length(config) -> int:
    for name in ("block_length", "block_symbols", "length", "window"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return WINDOW


class EpochTimes:
    """Keras callback factory: wall time of each epoch."""

    def __new__(cls):
        import tf_keras as keras

        class _Times(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times, self._t = [], 0.0

            def on_epoch_begin(self, epoch, logs=None):
                self._t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(time.perf_counter() - self._t)

        return _Times()


def speed_part(args) -> list[dict]:
    """All (family, jit, batch size) runs in this process, at the thread count already set."""
    import tf_keras as keras

    from eqnn.models import FAMILIES, check_input, count_parameters
    from eqnn.training import TrainingConfig, fit

    rows = []
    families = [f for name, f in FAMILIES.items() if not args.models or name in args.models]
    for family in families:
        try:
            config = reference_config(family)
            length = _input_length(config)
            check_input(config, length)
            keras.utils.set_random_seed(0)
            probe = family.build(config, (length, 4), 2)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports and goes on
            print(f"  skip {family.type}: cannot build at the reference size ({type(exc).__name__}: {exc})")
            continue
        out_shape = tuple(length if d is None else d for d in probe.output_shape[1:])  # variable time axis -> L
        symbols_per_sample = out_shape[0] if len(out_shape) == 2 else 1
        n = args.windows or SPEED_WINDOWS.get(family.type, RECURRENT_WINDOWS)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, length, 4)).astype(np.float32)
        y = rng.standard_normal((n, *out_shape)).astype(np.float32)
        for jit in args.jit:
            if jit and args.quick and family.type != "mlp":
                continue
            slow = jit and family.type != "mlp" and not args.windows
            for batch in (args.batch_sizes[:1] if slow else args.batch_sizes):
                n_run = min(n, JIT_SLOW_WINDOWS) if slow else n
                xr, yr = x[:n_run], y[:n_run]
                data = type("Synthetic", (), {"x": xr, "y": yr})()
                label = f"{family.type} jit={'on' if jit else 'off'} batch={batch}"
                try:
                    keras.utils.set_random_seed(0)
                    model = family.build(config, (length, 4), 2)
                    times = EpochTimes()
                    tcfg = TrainingConfig(epochs=args.epochs, batch_size=batch, validation_split=0.0,
                                          patience=args.epochs, jit_compile=jit, seed=0)
                    fit(model, data, tcfg, progress=False, callbacks=[times])
                    steady = times.times[1:] or times.times
                    epoch_s = statistics.median(steady)
                    model.predict(xr, batch_size=args.predict_batch_size, verbose=0)
                    t0 = time.perf_counter()
                    model.predict(xr, batch_size=args.predict_batch_size, verbose=0)
                    infer_s = time.perf_counter() - t0
                except Exception as exc:  # noqa: BLE001
                    print(f"  skip {label}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                    rows.append({"family": family.type, "jit_compile": jit, "batch_size": batch,
                                 "error": f"{type(exc).__name__}: {exc}"[:500]})
                    continue
                symbols = n_run * symbols_per_sample
                row = {"family": family.type, "config": {k: v for k, v in dataclasses.asdict(config).items()},
                       "parameters": int(count_parameters(model)), "input_length": length,
                       "symbols_per_sample": symbols_per_sample, "windows": n_run, "jit_compile": jit,
                       "batch_size": batch, "epochs": args.epochs,
                       "first_epoch_s": round(times.times[0], 3), "epoch_s": round(epoch_s, 3),
                       "train_symbols_per_s": round(symbols / epoch_s), "predict_s": round(infer_s, 3),
                       "predict_batch_size": args.predict_batch_size,
                       "infer_symbols_per_s": round(symbols / infer_s), "load_average": load_average()}
                rows.append(row)
                print(f"  {label:38s} train {row['train_symbols_per_s']:>10,d} sym/s (epoch {epoch_s:.2f} s, "
                      f"first {times.times[0]:.2f} s)  infer {row['infer_symbols_per_s']:>11,d} sym/s  "
                      f"load {row['load_average']}", flush=True)
                keras.backend.clear_session()
    return rows


def _threads_run(args, threads: int) -> list[dict]:
    """The speed part in a fresh process with ``threads`` intra-op threads (0 = TensorFlow's default)."""
    cmd = [sys.executable, __file__, "--parts", "speed", "--threads-child", str(threads),
           "--epochs", str(args.epochs), "--batch-sizes", ",".join(map(str, args.batch_sizes)),
           "--jit", ",".join("on" if j else "off" for j in args.jit), "--predict-batch-size",
           str(args.predict_batch_size)]
    if args.models:
        cmd += ["--models", ",".join(args.models)]
    if args.windows:
        cmd += ["--windows", str(args.windows)]
    if args.quick:
        cmd.append("--quick")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if not line.startswith("{"):
            print(line)
    if proc.returncode:
        print(proc.stderr[-3000:])
        raise SystemExit(f"thread count {threads}: child failed ({proc.returncode})")
    return json.loads(proc.stdout.splitlines()[-1])["rows"]


def set_threads(threads: int) -> None:
    import tensorflow as tf

    if threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


# ---------------------------------------------------------------------------------------------- converge part

def _simulate(args, symbols: int, seed: int):
    import channel
    from eqnn.training import load_train_config

    scenario = load_train_config(ROOT / "experiments" / "train_reference.toml").scenario
    link = scenario.replace(transmitter={"n_symbols": symbols}).with_seed(seed).with_launch_power(args.power)
    return channel.simulate(link, cache_dir=args.cache_dir, dbp=False)


def converge_part(args) -> dict:
    import tf_keras as keras

    from channel import evaluate_symbols
    from channel.receiver import normalize
    from eqnn.data import DataConfig, make_datasets
    from eqnn.models import MLPConfig, build_model
    from eqnn.training import TrainingConfig, fit

    t0 = time.perf_counter()
    test = _simulate(args, args.test_symbols, 202)
    sims = {}
    print(f"converge: reference link at {args.power:+g} dBm, {args.train_symbols} training / {args.test_symbols} "
          f"test symbols; MLP {args.mlp_units}; recipes {', '.join(args.recipes)}", flush=True)
    results = {}
    for name in args.recipes:
        recipe = dict(RECIPES[name])
        factor = recipe.pop("symbols_factor", 1)
        data_over = recipe.pop("data", {})
        n_train = args.train_symbols * factor
        if n_train not in sims:
            sims[n_train] = _simulate(args, n_train, 101)
        data_config = DataConfig(taps=WINDOW // 2, **data_over)
        train_set, test_set = make_datasets(sims[n_train], test, data_config)
        tx = test.tx_symbols[[0]][:, test_set.centres]
        cdc_q = evaluate_symbols(test.rx_cdc[[0]][:, test_set.centres], test_set.tx_indices,
                                 test.modulation).q_db_best
        settings = {**BASELINE, "epochs": args.epochs, **recipe}
        if settings.get("lr_schedule", "plateau") != "plateau":
            settings["lr_patience"] = 0
        tcfg = TrainingConfig(**settings)

        class QPerEpoch(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.rows, self._t, self.train_s = [], 0.0, 0.0

            def on_epoch_begin(self, epoch, logs=None):
                self._t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.train_s += time.perf_counter() - self._t
                out = self.model.predict(test_set.x, batch_size=8192, verbose=0)
                sym = normalize(test_set.outputs_to_symbols(out), tx)
                q = evaluate_symbols(sym, test_set.tx_indices, test.modulation).q_db_best
                self.rows.append({"epoch": epoch + 1, "train_s": round(self.train_s, 2), "q_db": round(q, 3),
                                  "val_loss": float((logs or {}).get("val_loss", float("nan"))),
                                  "lr": float(keras.backend.get_value(self.model.optimizer.learning_rate))})

        keras.utils.set_random_seed(tcfg.seed)
        model = build_model(MLPConfig(units=tuple(args.mlp_units)), train_set.input_shape, train_set.n_outputs)
        probe = QPerEpoch()
        summary = fit(model, train_set, tcfg, progress=False, callbacks=[probe])
        qs = [r["q_db"] for r in probe.rows]
        q_conv = max(qs)
        first = next(r for r in probe.rows if r["q_db"] >= q_conv - 0.1)
        restored = probe.rows[summary["best_epoch"] - 1]["q_db"] if summary["best_epoch"] else None
        results[name] = {"recipe": RECIPES[name], "training": tcfg.to_dict(), "train_symbols": n_train,
                         "n_train_windows": summary["n_train_windows"], "cdc_q_db": round(cdc_q, 3),
                         "q_converged_db": q_conv, "gain_db": round(q_conv - cdc_q, 3),
                         "q_restored_db": restored, "best_val_epoch": summary["best_epoch"],
                         "epoch_of_best_q": int(np.argmax(qs)) + 1, "epochs_run": summary["epochs_run"],
                         "epoch_within_0p1_db": first["epoch"], "time_within_0p1_db_s": first["train_s"],
                         "train_s": probe.train_s, "per_epoch": probe.rows, "load_average": load_average()}
        r = results[name]
        print(f"  {name:15s} CDC {cdc_q:.2f}  Q conv {q_conv:.2f} ({r['gain_db']:+.2f} dB vs CDC, epoch "
              f"{r['epoch_of_best_q']})  restored {restored}  (best val epoch {summary['best_epoch']} of "
              f"{summary['epochs_run']})  within 0.1 dB at epoch {first['epoch']} / {first['train_s']:.1f} s  "
              f"load {r['load_average']}", flush=True)
    return {"power_dbm": args.power, "train_symbols": args.train_symbols, "test_symbols": args.test_symbols,
            "mlp_units": list(args.mlp_units), "wall_s": round(time.perf_counter() - t0, 1), "recipes": results}


def print_speed_table(rows: list[dict]) -> None:
    print("\n| family | params | threads | jit | batch | train sym/s | infer sym/s | first epoch s | load |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['family']} | - | {r.get('threads', '-')} | {r['jit_compile']} | {r['batch_size']} | "
                  f"error | - | - | - |")
            continue
        print(f"| {r['family']} | {r['parameters']:,} | {r.get('threads', '-')} | "
              f"{'on' if r['jit_compile'] else 'off'} | {r['batch_size']} | {r['train_symbols_per_s']:,} | "
              f"{r['infer_symbols_per_s']:,} | {r['first_epoch_s']} | {r['load_average']} |")


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", default="speed", help="speed, converge or speed,converge")
    p.add_argument("--converge", action="store_true", help="also run the converge part")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, XLA for the MLP only")
    p.add_argument("--models", default="", help="families to run (default: all registered)")
    p.add_argument("--batch-sizes", default="1000,4096")
    p.add_argument("--jit", default="off,on", help="off, on or off,on")
    p.add_argument("--threads", default="0", help="TensorFlow thread counts, one process each; 0 = default")
    p.add_argument("--threads-child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=3, help="epochs per speed run (the first is not timed)")
    p.add_argument("--windows", type=int, default=0, help="windows per speed run (default: per family)")
    p.add_argument("--predict-batch-size", type=int, default=8192)
    p.add_argument("--power", type=float, default=-1.0, help="converge: launch power (dBm)")
    p.add_argument("--train-symbols", type=int, default=2**16)
    p.add_argument("--test-symbols", type=int, default=2**15)
    p.add_argument("--converge-epochs", type=int, default=40)
    p.add_argument("--mlp-units", default="100,100,100")
    p.add_argument("--recipes", default="baseline,jit")
    p.add_argument("--cache-dir", default="results/cache")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    parts = {s.strip() for s in args.parts.split(",") if s.strip()} | ({"converge"} if args.converge else set())
    args.models = [m for m in args.models.split(",") if m]
    args.batch_sizes = _ints(args.batch_sizes)
    args.jit = [v.strip() == "on" for v in args.jit.split(",") if v.strip()]
    args.mlp_units = _ints(args.mlp_units)
    args.recipes = [r for r in args.recipes.split(",") if r]
    unknown = set(args.recipes) - set(RECIPES)
    if unknown:
        raise SystemExit(f"unknown recipe(s) {sorted(unknown)}: allowed {', '.join(RECIPES)}")
    if args.quick:  # jit only for the MLP (XLA compiles of recurrent models alone take 15-40 s)
        args.epochs = 2
        args.batch_sizes = args.batch_sizes[:1]
        args.windows = args.windows or 1024
        args.train_symbols, args.test_symbols, args.converge_epochs = 2**12, 2**12, 3
        args.mlp_units = [16, 16]
    args.epochs = max(1, args.epochs)

    if args.threads_child is not None:  # child: one thread count, rows as the last line of JSON
        set_threads(args.threads_child)
        rows = speed_part(args)
        for r in rows:
            r["threads"] = args.threads_child
        print(json.dumps({"rows": rows}))
        return

    import tensorflow as tf

    result = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": platform.machine(),
              "cpus": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__,
              "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "load_average_start": load_average()}
    if "speed" in parts:
        threads = _ints(args.threads)
        print(f"speed: families {args.models or 'all'}, jit {args.jit}, batches {args.batch_sizes}, threads "
              f"{threads}, {args.epochs} epochs; load {load_average()}", flush=True)
        rows = []
        if threads == [0]:
            rows = speed_part(args)
            for r in rows:
                r["threads"] = 0
        else:
            for t in threads:
                rows += _threads_run(args, t)
        result["speed"] = rows
        print_speed_table(rows)
    if "converge" in parts:
        args.epochs = args.converge_epochs
        result["converge"] = converge_part(args)
    result["load_average_end"] = load_average()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
