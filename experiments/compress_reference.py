"""Compress the reference NN equalizers (the MLP and the biLSTM of experiments/train_reference.toml) at their
optimal launch power: per model a 40-evaluation Bayesian search over pruning (magnitude or structured, sparsity
0-0.95), weight clustering (4-64 clusters) and post-training quantization (3-12 bits), each step fine-tuned on
the training windows, minimizing RMpS subject to Q >= Q_uncompressed - 0.1 dB on the independent test block.

Prerequisite: eqnn train experiments/train_reference.toml          (writes results/train-reference)
Run:          python experiments/compress_reference.py              (hours on 2 cores; resumes when rerun)
Options:      --calls N, --models MLP biLSTM, --train-dir DIR, --out DIR, --cache DIR,
              --config FILE (a TOML whose [compression] table replaces the settings below)

Writes, per model, <out>/<name>@<power>/ (the files of `eqnn compress`: evaluations.csv/jsonl, result.json,
compression.json, q_vs_rmps.png, best/), and <out>/summary.json, summary.csv and table.md (the markdown table
for benchmarks/README.md: uncompressed and best compressed model next to CDC and DBP, same test symbols).
This is a thin wrapper over eqnn.compress_run.compress_saved_equalizer (what `eqnn compress <model folder>` runs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from channel.storage import write_text_atomic
from eqnn.compress_run import (
    CompressionSearchConfig,
    compress_saved_equalizer,
    format_summary,
    load_compression_config,
    summary_rows,
)
from eqnn.report import write_csv, write_json

CONFIG = CompressionSearchConfig(
    n_calls=40, n_initial_points=10, objective="constrained", max_q_loss_db=0.1,
    sparsity=(0.0, 0.95), pruning_methods=("magnitude", "structured"), schedule=("polynomial",),
    clusters=(4, 64), cluster_init=("linear",), weight_bits=(3, 12), quantize_mode=("ptq",),
    fine_tune_epochs=2, fine_tune_batch_size=512, fine_tune_learning_rate=1e-4, fine_tune_windows=32768, seed=0)


def model_folder(train_dir: Path, results: dict, name: str) -> tuple[Path, float]:
    """The saved model of ``name`` at its optimal launch power (best test Q of the training study)."""
    if name not in results["optimum"]:
        raise SystemExit(f"no model {name!r} in {train_dir / 'results.json'} (models: {sorted(results['optimum'])})")
    power = results["optimum"][name]["launch_power_dbm"]
    entry = next(m for m in results["models"] if m["model"] == name
                 and (m["tag"] == "combined" or m["trained_on_powers_dbm"] == [power]))
    return train_dir / "models" / f"{name}@{entry['tag']}", power


def markdown(rows: list[dict]) -> str:
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = ["| Launch power (dBm) | Method | Q (dB) | RMpS | BoP | Weights (bit) | Compression |",
             "|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['launch_power_dbm']:+.1f} | {r['method']} | {r['q_db']:.2f} | {num(r['rmps'], '.1f')} | "
                     f"{num(r['bop'], '.3g')} | {num(r['size_bits'], '.0f')} | {r['params'] or '-'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-dir", default="results/train-reference", help="output of eqnn train")
    parser.add_argument("--out", default="results/compress-reference")
    parser.add_argument("--models", nargs="+", default=["MLP", "biLSTM"])
    parser.add_argument("--calls", type=int, help="evaluations per model (default 40)")
    parser.add_argument("--config", help="TOML whose [compression] table replaces the built-in settings")
    parser.add_argument("--cache", default="results/cache", help="simulation cache of the training run")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    train_dir, out = Path(args.train_dir), Path(args.out)
    config = (load_compression_config(args.config) if args.config else CONFIG).with_calls(args.calls)
    results_path = train_dir / "results.json"
    if not results_path.is_file():
        raise SystemExit(f"{results_path} not found: run `eqnn train experiments/train_reference.toml` first")
    results = json.loads(results_path.read_text())
    targets = [model_folder(train_dir, results, name) for name in args.models]  # every model checked first
    studies = []
    for folder, power in targets:
        print(f"compressing {folder.name} ({config.n_calls} evaluations) into {out / folder.name}", flush=True)
        studies.append(compress_saved_equalizer(folder, config, out / folder.name, power_dbm=power,
                                                cache_dir=args.cache, progress=not args.quiet))
    rows = summary_rows(studies)
    write_json(out / "summary.json", {"rows": rows, "studies": [s.to_dict() for s in studies]})
    write_csv(out / "summary.csv", rows)
    write_text_atomic(out / "table.md", markdown(rows))
    print(format_summary(rows))
    print(f"\n{markdown(rows)}\nwrote {out / 'table.md'}, {out / 'summary.json'}, {out / 'summary.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
