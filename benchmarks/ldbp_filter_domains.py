"""Learned DBP with its filters in the time domain, by overlap-save in the frequency domain, or each in the cheaper
of the two ("auto"): RMpS of the same trained weights, the SNR on the test transmission (the same in every
domain: the filters compute the same output), and the time of inference and of one training step on this machine
(benchmarks/README.md section 3d).

Run:  python benchmarks/ldbp_filter_domains.py results/reference-ldbp-long-training/models/LDBP-1-t41@+1p00dBm \
          --study experiments/reference_ldbp_long_training.toml --power 1
      (a model folder per argument; without --study, no SNR)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DOMAINS = ("time", "frequency", "auto")


def _in_domain(eq, domain: str):
    """``eq`` rebuilt with every filter in ``domain``, the same weights."""
    from eqnn.models import build_model

    cfg = dataclasses.replace(eq.model_config, filter_domain=domain)
    model = build_model(cfg, (cfg.input_samples(cfg.block_length), 4), int(eq.model.output_shape[-1]))
    model.set_weights(eq.model.get_weights())
    return dataclasses.replace(eq, model=model, model_config=cfg)


def _step_seconds(eq, batch: int, repeats: int) -> float:
    """Median seconds of one Adam step (MSE) on ``batch`` random training blocks of the model's block length."""
    import numpy as np
    import tensorflow as tf

    cfg = eq.model_config
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, cfg.input_samples(cfg.block_length), 4)).astype(np.float32))
    y = tf.constant(rng.normal(size=(batch, cfg.block_length, int(eq.model.output_shape[-1]))).astype(np.float32))
    from eqnn.keras2 import keras

    opt = keras.optimizers.Adam(1e-6)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(eq.model(x, training=True) - y))
        grads = tape.gradient(loss, eq.model.trainable_variables)
        opt.apply_gradients(zip(grads, eq.model.trainable_variables))
        return loss

    step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="saved LDBP equalizer folders")
    p.add_argument("--study", help="the training TOML they were trained by (link, seeds, test symbols)")
    p.add_argument("--power", type=float, help="their launch power (dBm), with --study")
    p.add_argument("--cache", default="results/cache")
    p.add_argument("--batch", type=int, default=16, help="training blocks per step (default 16)")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    if (a.study is None) != (a.power is None):
        p.error("--study and --power go together")

    import channel
    from eqnn.quiet import import_tensorflow
    from eqnn.training import evaluate, load_equalizer

    import_tensorflow()
    test = None
    if a.study:
        from eqnn.training.config import load_train_config

        test = channel.simulate(load_train_config(a.study).test_link(a.power), cache_dir=a.cache, dbp=False,
                                progress=False)
    print(f"{'model':28s} {'domain':9s} {'FFT sizes (steps, output)':26s} {'RMpS':>7s} {'SNR (dB)':>9s} "
          f"{'inference (s)':>13s} {'train step (s)':>14s}")
    for path in a.models:
        base = load_equalizer(path)
        for domain in DOMAINS:
            eq = _in_domain(base, domain)
            sizes = sorted({layer.fft_size for layer in eq.model.layers if hasattr(layer, "fft_size")
                            and layer.name.startswith("fir")})
            sizes = f"{','.join(map(str, sizes))}; {eq.model.get_layer('output').fft_size}"
            snr, infer = "", ""
            if test is not None:
                evaluate(eq, test, references=False)  # warm-up (graph tracing)
                t0 = time.perf_counter()
                m = evaluate(eq, test, references=False).metrics[eq.name]
                infer, snr = f"{time.perf_counter() - t0:13.2f}", f"{m.snr_db:9.3f}"
            step = _step_seconds(eq, a.batch, a.repeats)
            print(f"{Path(path).name:28s} {domain:9s} {sizes:26s} {eq.complexity().rmps:7,.0f} {snr:>9s} "
                  f"{infer:>13s} {step:14.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
