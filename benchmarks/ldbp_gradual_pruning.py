"""Gradual pruning of a trained learned DBP by tap position: the step filters shortened from their edges in stages
(e.g. 41 -> 31 -> 21 -> 15 -> 13 taps), each stage fine-tuned on the training transmission before the next (a few
epochs at each of a decreasing sequence of learning rates, Adam restarted at each), then
optionally quantized; after every stage the SNR / Q on the test transmission and the RMpS with every filter in the
cheaper domain (``filter_domain = "auto"``: overlap-save from 9 taps) (benchmarks/README.md section 3d).

Why gradually: a dispersion FIR is an all-pass chirp; cutting it short at once loses the in-band response the
cascade of 20 steps relies on, while a few taps at a time are recovered by a few epochs of end-to-end training
(:func:`eqnn.compression.ldbp.fine_tune_ldbp`, as ``ldbp_edges`` with its polynomial schedule does inside the
compression search, here with more stages and more epochs than a search point can afford).

Every stage is saved (``<out>/taps-<N>/``, an equalizer folder) and its row written to ``<out>/rows.json``
atomically: a killed run resumes from its last finished stage.

Run:  python benchmarks/ldbp_gradual_pruning.py results/reference-ldbp-long-training/models/LDBP-1-t41@+1p00dBm \
          --study experiments/reference_ldbp_long_training.toml --power 1 --taps 31 21 15 13 11 \
          --schedule 2@1e-3 2@2.5e-4 1@6e-5
          --out results/ldbp-gradual-pruning/LDBP-1@+1
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


def _as_equalizer(eq, model):
    """``eq`` with ``model`` (possibly with shorter filters), rebuilt from its resized config in the auto domain."""
    from eqnn.models import build_model, resized_config

    cfg = dataclasses.replace(resized_config(eq.model_config, model), filter_domain="auto")
    built = build_model(cfg, (cfg.input_samples(cfg.block_length), 4), int(eq.model.output_shape[-1]))
    built.set_weights(model.get_weights())
    return dataclasses.replace(eq, model=built, model_config=cfg)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="saved LDBP equalizer folder (trained)")
    p.add_argument("--study", required=True, help="the training TOML it was trained by (link, seeds, symbols)")
    p.add_argument("--power", type=float, required=True, help="its launch power (dBm)")
    p.add_argument("--taps", type=int, nargs="+", required=True,
                   help="taps of every step filter after each stage, decreasing, odd (e.g. 31 21 15 13)")
    p.add_argument("--output-taps", type=int, default=None, help="shorten the output filter to this many taps "
                   "at the first stage (default: unchanged)")
    p.add_argument("--schedule", nargs="+", default=["2@1e-3", "2@2.5e-4", "1@6e-5"],
                   help="fine-tuning of each stage: EPOCHS@LEARNING_RATE, in order (default 2@1e-3 2@2.5e-4 1@6e-5)")
    p.add_argument("--batch", type=int, default=16, help="training blocks per step (default 16)")
    p.add_argument("--bits", type=int, nargs="*", default=[10, 8], help="PTQ of the last stage (default 10 8)")
    p.add_argument("--cache", default="results/cache")
    p.add_argument("--out", required=True, help="folder of the stages and rows.json (resumed)")
    a = p.parse_args(argv)
    taps = list(a.taps)
    if any(t < 1 or t % 2 == 0 for t in taps) or taps != sorted(taps, reverse=True):
        p.error(f"--taps {taps}: odd numbers >= 1, decreasing")
    try:
        schedule = [(int(e), float(r)) for e, r in (item.split("@") for item in a.schedule)]
    except ValueError:
        p.error(f"--schedule {a.schedule}: items EPOCHS@LEARNING_RATE, e.g. 2@1e-3")
    if any(e < 1 or not r > 0 for e, r in schedule) or a.batch < 1:
        p.error(f"--schedule {a.schedule}: epochs >= 1 and learning rates > 0; --batch {a.batch} >= 1")
    if a.output_taps is not None and (a.output_taps < 1 or a.output_taps % 2 == 0):
        p.error(f"--output-taps {a.output_taps}: an odd number >= 1")

    from eqnn.quiet import import_tensorflow
    from eqnn.report import write_json

    import_tensorflow()
    from tqdm import tqdm

    from eqnn import compress as C
    from eqnn.compression import FineTune
    from eqnn.compression.ldbp import fine_tune_ldbp, fir_layers
    from eqnn.compression.pruning.ldbp_taps import trim_edges
    from eqnn.studies.compression import _q_metrics
    from eqnn.training import load_equalizer
    from eqnn.training.config import load_train_config

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "rows.json"
    rows = json.loads(rows_path.read_text()) if rows_path.exists() else []
    study = load_train_config(a.study)
    test = study.transmission("test", a.power, cache_dir=a.cache, dbp=False, progress=False)
    source = load_equalizer(a.model)
    eq = _as_equalizer(source, source.model)
    fine_tune = None

    def measure(label, equalizer, seconds=0.0, history=None):
        r = _q_metrics(equalizer, test)
        cost = equalizer.complexity()
        steps = sorted({int(equalizer.model.get_layer(n).taps) for n in fir_layers(equalizer.model)
                        if n != "output"})
        row = {"stage": label, "step_taps": steps, "output_taps": int(equalizer.model.get_layer("output").taps),
               "snr_db": r["snr_db"], "q_db": r["q_db"], "q_measured": r.get("q_measured"),
               "bit_errors": r.get("bit_errors"), "rmps": cost.rmps, "weight_bits": equalizer.weight_bits,
               "fine_tune_seconds": round(seconds, 1), "val_loss": (history or {}).get("val_loss"),
               "schedule": a.schedule if history else None}
        print(f"{label:22s} taps {','.join(map(str, steps)):>6s} out {row['output_taps']:3d}"
              f"  SNR {row['snr_db']:6.2f} dB  Q {row['q_db']:6.2f} dB  RMpS {row['rmps']:8,.0f}"
              f"  ({seconds:.0f} s)", flush=True)
        return row

    done = {row["stage"] for row in rows}
    if "start" not in done:
        rows.append(measure("start", eq))
        write_json(rows_path, rows)
    for n in tqdm(taps, desc="stages", unit="stage", disable=None):
        label, folder = f"taps {n}", out / f"taps-{n}"
        if label in done and folder.exists():
            eq = load_equalizer(folder)
            continue
        if fine_tune is None:
            train = study.transmission("train", a.power, cache_dir=a.cache, dbp=False, progress=False)
            blocks = source.training_set([train])
            fine_tune = FineTune(x=blocks.x, y=blocks.y, batch_size=a.batch, validation_split=0.1, seed=0)
        model = eq.model
        trims = {name: (model.get_layer(name).taps - n) // 2 for name in fir_layers(model)
                 if name != "output" and model.get_layer(name).taps > n}
        if a.output_taps is not None and model.get_layer("output").taps > a.output_taps:
            trims["output"] = (model.get_layer("output").taps - a.output_taps) // 2
        model = trim_edges(model, trims)
        t0, history = time.perf_counter(), {}
        for epochs, rate in schedule:
            part = fine_tune_ldbp(model, dataclasses.replace(fine_tune, epochs=epochs, learning_rate=rate))
            for key, values in part.items():
                history.setdefault(key, []).extend(values)
        eq = _as_equalizer(source, model)
        row = measure(label, eq, time.perf_counter() - t0, history)
        eq.save(folder)
        rows = [r for r in rows if r["stage"] != label] + [row]
        write_json(rows_path, rows)
    for bits in a.bits:
        label = f"taps {taps[-1]}, PTQ {bits} bits"
        if label not in done:
            quantized = dataclasses.replace(eq, model=C.quantize(eq.model, bits), weight_bits=bits)
            rows.append(measure(label, quantized))
            write_json(rows_path, rows)
    print(f"wrote {rows_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
