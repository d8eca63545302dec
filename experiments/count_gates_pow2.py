"""Counting figures of LSTM gate sparsity and power-of-two weights (no training): a biLSTM(16) over a 41 x 4 window
(flatten -> Dense 2) with random weights (seed 0); RMpS, BoP and NABS per symbol after each compression.

Run: PYTHONPATH=. python experiments/count_gates_pow2.py
"""
import tf_keras as keras

import eqnn  # noqa: F401
from eqnn import compress
from eqnn.complexity import model_complexity

keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((41, 4)),
                          keras.layers.Bidirectional(keras.layers.LSTM(16, return_sequences=True)),
                          keras.layers.Flatten(), keras.layers.Dense(2)])

def row(name, m, bits=None, abits=None, terms=None):
    c = model_complexity(m, bits, abits, pow2_terms=terms)
    print(f"{name:38s} RMpS {c.rmps:9.0f}  BoP {c.bop:12.0f}  NABS {c.nabs:9.0f}  "
          f"activations/window {c.activations_per_window}")

row("float", model)
for s in (0.25, 0.5, 0.75):
    row(f"gates level=gates s={s}", compress.prune(model, s, method="gates"))
row("gates level=neurons s=0.5", compress.prune(model, 0.5, method="gates", options={"level": "neurons"}))
row("magnitude s=0.5", compress.prune(model, 0.5, method="magnitude"))
row("uniform 6-bit w, 8-bit a", compress.quantize(model, 6), 6, 8)
for k in (1, 2, 3):
    row(f"pow2 6-bit k={k}, 8-bit a", compress.quantize(model, 6, grid="pow2", pow2_terms=k), 6, 8, k)
g = compress.prune(model, 0.5, method="gates")
row("gates s=0.5 + pow2 6-bit k=2, 8-bit a", compress.quantize(g, 6, grid="pow2", pow2_terms=2), 6, 8, 2)
