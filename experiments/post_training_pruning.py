"""One-shot (no fine-tuning) post-training compression of a trained equalizer: Q on the independent test block
after magnitude pruning vs Optimal Brain Compression ("obc") at equal sparsity, and after plain rounding ("ptq")
vs Optimal Brain Quantization ("obq") at equal bits; 1024 calibration windows from the training transmission.

Prerequisite: a finished training stage with its simulation cache (default: /work/refrun, the reference study).
Run:  python experiments/post_training_pruning.py [--root DIR] [--model MLP] [--power -2]

Measured (2026-12-01, the reference study's MLP 3 x 100 tanh at -2 dBm, 36,600 RMpS, Q 9.40 dB; CDC 9.01 dB;
65,360 test symbols, one shot, no fine-tuning):

    sparsity   magnitude Q (dB)   obc Q (dB)        weight bits   ptq Q (dB)   obq Q (dB)
    0.5        8.89               9.30              3             7.74         8.67
    0.7        8.67               9.00              4             9.07         9.25
    0.8        8.53               8.89
    0.9        8.84               8.80
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

import channel
from eqnn import complexity as cx
from eqnn import compress as C
from eqnn.studies.compress_cli import _load_toml
from eqnn.studies.compression import _q_metrics
from eqnn.training.equalizer import load_equalizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default="/work/refrun")
    parser.add_argument("--study", default="experiments/reference_study.toml")
    parser.add_argument("--model", default="MLP")
    parser.add_argument("--power", type=float, default=-2.0)
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.7, 0.8, 0.9])
    parser.add_argument("--bits", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--calibration", type=int, default=1024)
    args = parser.parse_args()
    root = Path(args.root)
    train, _ = _load_toml(root / args.study)
    tag = f"{args.power:.2f}".replace(".", "p")
    folder = root / "results" / train.name / "train" / "models" / f"{args.model}@{tag}dBm"
    eq = load_equalizer(folder)
    cache = root / train.cache_dir if not Path(train.cache_dir).is_absolute() else Path(train.cache_dir)
    train_tr = channel.simulate(train.train_link(args.power), cache_dir=cache, dbp=False, progress=True)
    test_tr = channel.simulate(train.test_link(args.power), cache_dir=cache, dbp=train.dbp, progress=True)
    windows = eq.training_set([train_tr])
    index = np.sort(np.random.default_rng(0).choice(len(windows), args.calibration, replace=False))
    calibration = C.Calibration(windows.x[index], windows.y[index])
    rows = [{"method": "uncompressed", "q_db": _q_metrics(eq, test_tr)["q_db"],
             "rmps": cx.model_complexity(eq.model).rmps}]
    print(rows[-1], flush=True)
    for s in args.sparsities:
        for method, kw in (("magnitude", {}), ("obc", {"calibration": calibration})):
            start = time.perf_counter()
            model = C.prune(eq.model, s, method=method, **kw)
            rows.append({"method": method, "sparsity": s, "seconds": time.perf_counter() - start,
                         "q_db": _q_metrics(dataclasses.replace(eq, model=model), test_tr)["q_db"],
                         "rmps": cx.model_complexity(model).rmps})
            print(rows[-1], flush=True)
    for bits in args.bits:
        for mode, kw in (("ptq", {}), ("obq", {"calibration": calibration})):
            start = time.perf_counter()
            model = C.quantize(eq.model, bits, mode=mode, **kw)
            rows.append({"method": mode, "weight_bits": bits, "seconds": time.perf_counter() - start,
                         "q_db": _q_metrics(dataclasses.replace(eq, model=model, weight_bits=bits), test_tr)["q_db"]})
            print(rows[-1], flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
