"""Learned DBP with k steps per span on the reference link against DBP-k at the same launch power.

Reads the cached reference-link transmissions (training: seed 101, 2^19 symbols; test: seed 202, 2^16 symbols, with
DBP-1/2, xi optimized, the nonlinear step at the midpoint) from ``--cache`` (read only), trains an LDBP
(:mod:`eqnn.models.ldbp`) on the first ``--train-blocks`` training blocks, and evaluates the untrained (DBP-initialized)
and the trained model on the test transmission next to CDC and DBP-k, on the same symbols (``eqnn.training.evaluate``).
Prints SNR, Q and RMpS per method::

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 nice -n 15 python benchmarks/ldbp_reference.py --power 0
"""

from __future__ import annotations

import argparse
import glob
import json
import time

import numpy as np

import channel
from eqnn.complexity import dbp_complexity
from eqnn.data import DataConfig
from eqnn.data_field import identity_normalization, make_field_blocks
from eqnn.models import LDBPConfig, build_model
from eqnn.models.ldbp import prepare
from eqnn.training import Equalizer, TrainingConfig, evaluate, train_model


def _cached(cache: str, seed: int, power: float, with_dbp: bool) -> channel.Transmission:
    for f in sorted(glob.glob(f"{cache}/transmission-*.npz")):
        with np.load(f, allow_pickle=False) as z:
            meta = json.loads(str(z["meta_json"]))
            tx = meta["config"]["transmitter"] if "config" in meta else meta["transmitter"]
            has_dbp = "rx_dbp_1" in z.files
        if tx["seed"] == seed and tx["launch_power_dbm"] == power and (has_dbp or not with_dbp):
            return channel.Transmission.load(f)
    raise SystemExit(f"no cached transmission of seed {seed} at {power} dBm in {cache}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="/work/main/results/cache")
    ap.add_argument("--power", type=float, default=0.0)
    ap.add_argument("--steps-per-span", type=int, default=1)
    ap.add_argument("--taps", type=int, default=21)
    ap.add_argument("--output-taps", type=int, default=61)
    ap.add_argument("--power-taps", type=int, default=1)
    ap.add_argument("--position", default="0.5")
    ap.add_argument("--train-blocks", type=int, default=512, help="training blocks of 256 symbols (2048 = all)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()
    start = time.perf_counter()
    train_tr = _cached(args.cache, 101, args.power, False)
    test_tr = _cached(args.cache, 202, args.power, True)
    data = DataConfig()  # the reference study's evaluated symbols: taps and guard "auto"
    position = args.position if args.position == "optimize" else float(args.position)
    cfg = prepare(LDBPConfig(steps_per_span=args.steps_per_span, taps=args.taps, output_taps=args.output_taps,
                             power_taps=args.power_taps, nonlinear_position=position), [train_tr])
    print(f"prepared in {time.perf_counter() - start:.0f} s: xi {cfg.link.xi:.3f}, position "
          f"{cfg.link.nonlinear_position:.2f}", flush=True)
    train = make_field_blocks([train_tr], data, cfg)
    train = train.take(slice(0, args.train_blocks))
    resolved = data.resolved(train_tr.config)
    untrained = Equalizer(model=build_model(cfg, train.input_shape, 2), model_config=cfg, data_config=resolved,
                          normalization=identity_normalization(2))
    training = TrainingConfig(epochs=args.epochs, batch_size=16, learning_rate=args.lr, seed=1, patience=3,
                              validation_split=0.1)
    t0 = time.perf_counter()
    eq = train_model(cfg, train, training, data, progress=True, label="LDBP")
    print(f"trained {eq.info['epochs_run']} epochs on {len(train)} blocks in {time.perf_counter() - t0:.0f} s",
          flush=True)
    k = args.steps_per_span
    ev0 = evaluate(untrained, test_tr, references=False)
    ev = evaluate(eq, test_tr)
    rows = {"LDBP untrained (= DBP by LS-fitted FIRs)": (ev0.metrics[untrained.name], untrained.complexity().rmps),
            "LDBP trained": (ev.metrics[eq.name], eq.complexity().rmps),
            f"DBP-{k}": (ev.metrics[f"DBP-{k}"], dbp_complexity(test_tr.config, k).rmps),
            "CDC": (ev.metrics["CDC"], None)}
    print(f"\nreference link, {args.power:+.1f} dBm, test seed 202 ({ev.n_symbols} x-pol symbols); LDBP-{k}: "
          f"taps {args.taps}, output taps {args.output_taps}, power taps {args.power_taps}; trained on "
          f"{len(train)} x 256 symbols of seed 101")
    for name, (m, rmps) in rows.items():
        q = f"{m.q_db:6.2f}" if m.q_db is not None else f"~{m.q_db_from_snr:5.2f} (SNR-implied)"
        print(f"  {name:42s} SNR {m.snr_db:6.2f} dB  Q {q} dB  ({m.bit_errors} bit errors)  RMpS "
              f"{'-' if rmps is None else f'{rmps:,.1f}'}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
