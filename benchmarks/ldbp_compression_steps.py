"""Each compression step alone on a trained learned DBP: what PTQ, clustering and tap pruning (no fine-tuning) cost
in SNR and Q on the test transmission (benchmarks/README.md section 3d).

Run:  python benchmarks/ldbp_compression_steps.py results/reference-ldbp-study/train/models/LDBP-1@+1p00dBm \
          --study experiments/reference_ldbp_study.toml --power 1
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="saved LDBP equalizer folder")
    p.add_argument("--study", required=True, help="the study TOML it was trained by (link, seeds, test symbols)")
    p.add_argument("--power", type=float, required=True, help="its launch power (dBm)")
    p.add_argument("--cache", default="results/cache")
    p.add_argument("--bits", type=int, nargs="+", default=[16, 12, 10, 8])
    p.add_argument("--clusters", type=int, nargs="+", default=[256, 64, 32])
    p.add_argument("--sparsities", type=float, nargs="+", default=[0.05, 0.2])
    a = p.parse_args(argv)

    import channel
    from eqnn import compress as C
    from eqnn.quiet import import_tensorflow
    from eqnn.studies.compression import _q_metrics
    from eqnn.study import load_study
    from eqnn.training import load_equalizer

    import_tensorflow()
    eq = load_equalizer(a.model)
    test = channel.simulate(load_study(a.study).train.test_link(a.power), cache_dir=a.cache, dbp=False,
                            progress=False)
    base = None
    print(f"{'step':42s} {'SNR (dB)':>9s} {'dSNR':>7s} {'Q (dB)':>7s}  RMpS")
    steps = [("uncompressed", eq.model)]
    steps += [(f"PTQ {b} bits", C.quantize(eq.model, b)) for b in a.bits]
    steps += [(f"clustering, {k} values per tensor", C.cluster(eq.model, k, init="linear")) for k in a.clusters]
    steps += [(f"tap pruning (magnitude) {s:.0%}, no fine-tuning", C.prune(eq.model, s, method="magnitude"))
              for s in a.sparsities]
    for label, model in steps:
        r = _q_metrics(dataclasses.replace(eq, model=model), test)
        base = r["snr_db"] if base is None else base
        rmps = dataclasses.replace(eq, model=model).complexity().rmps
        print(f"{label:42s} {r['snr_db']:9.2f} {r['snr_db'] - base:+7.2f} {r['q_db']:7.2f}  {rmps:,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
