"""Post-training pruning by Optimal Brain Compression ("obc"; Frantar & Alistarh, NeurIPS 2022): the exact Optimal
Brain Surgeon (OBS) update, layer by layer, on a few calibration windows, without retraining.

A kernel is a set of rows ``w`` (one per output feature: a Dense neuron, a Conv1D filter, a gate column of an LSTM /
GRU) that all read the same inputs ``x`` (``d`` features). Pruning a row minimizes the layer-output error on the
calibration inputs ``X`` (``(n, d)``), ``||X w - X w'||^2 = (w - w')^T H (w - w') / 2`` with the Hessian
``H = 2 X^T X + lambda mean(diag(2 X^T X)) I`` (dampening ``lambda``, as the authors' code). Greedily, per row, the
weight ``q`` of least saliency ``w_q^2 / [H^-1]_qq`` among the remaining ones is removed, the remaining weights are
compensated, ``w <- w - w_q / [H^-1]_qq H^-1[:, q]`` (so ``w_q`` becomes 0), and the inverse Hessian of the remaining
weights is updated by the rank-1 removal ``H^-1 <- H^-1 - H^-1[:, q] H^-1[q, :] / [H^-1]_qq``; until
``d - max(round(d (1 - s)), 1)`` weights of the row are zero (the per-tensor rule of magnitude pruning, per row).

What ``x`` is per layer: a Dense layer's input (every time step of a 3-D input is a sample); a Conv1D's input
unfolded into patches (im2col: ``x[o] = (x_pad[o s + k d, c])_{k, c}``, ``d = K C_in``); for an LSTM or GRU
(``reset_after=True``) the kernel reads the input sequence and the recurrent kernel the hidden states ``h_{t-1}``
(the states of the layer with its input kernel already pruned; per direction of a Bidirectional). The layers are
pruned in model order, each on the inputs that the model pruned so far gives it (sequential, as OBC's code). Biases
are not changed. The result is exact OBS per row: at equal sparsity its error on the calibration set is at most
that of the same greedy order without compensation, and in practice well below magnitude pruning's when inputs
are correlated (tests/test_pruning_obc.py).

Options: ``calibration_samples`` (at most this many calibration windows, a seeded subsample; default 1024),
``damping`` (``lambda`` >= 0, default 0.01). Calibration data: ``prune(..., calibration=...)`` or the fine-tuning
windows. With ``fine_tune``, the pruned model is then fine-tuned with its zeros kept (no TFMOT).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import tf_keras as keras

from ...layers import recurrent_layers
from ...layers.conv1d import conv_geometry
from ..calibration import Calibration
from ..common import _check_int, copy_model, kernel_entries
from ..fine_tune import FineTune, _fit, _ProjectStructure
from .registry import PruningMethod, register_pruning_method

OPTIONS = {"calibration_samples": 1024, "damping": 0.01}
_BATCH = 256  # windows per forward pass while collecting layer inputs
_CHUNK_ELEMENTS = 2 ** 23  # rows * d * d of one batch of inverse Hessians (64 MiB in float64)


def check_obc_options(options: Mapping[str, Any]) -> dict:
    """The options with their defaults; a one-line error naming the key for a bad one."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"obc pruning options are {sorted(OPTIONS)}, got unknown {unknown}")
    out = {**OPTIONS, **options}
    out["calibration_samples"] = _check_int(out["calibration_samples"], "prune_options.calibration_samples", 1)
    damping = out["damping"]
    if isinstance(damping, bool) or not isinstance(damping, numbers.Real) or not math.isfinite(damping) \
            or damping < 0:
        raise ValueError(f"prune_options.damping = {damping!r}: allowed a finite number >= 0")
    out["damping"] = float(damping)
    return out


# ----------------------------------------------------------------------------------------------- the OBS step

def hessian(x: np.ndarray, damping: float) -> np.ndarray:
    """``H = 2 X^T X + damping mean(diag(2 X^T X)) I`` of inputs ``x`` ``(n, d)`` (float64); an input never seen
    (zero column, and no dampening to cover it) gets ``H_qq = 1`` as in the authors' code."""
    x = np.asarray(x, np.float64).reshape(-1, np.shape(x)[-1])
    h = 2.0 * x.T @ x
    diag = np.diag(h).copy()
    mean = float(diag.mean()) if diag.size else 0.0
    h[np.diag_indices_from(h)] += damping * mean
    dead = np.diag(h) <= 0.0
    h[dead, dead] = 1.0
    return h


def obs_prune_rows(w: np.ndarray, h: np.ndarray, n_prune: int) -> np.ndarray:
    """Prune ``n_prune`` weights of every row of ``w`` ``(rows, d)`` greedily by OBS with Hessian ``h`` ``(d, d)``;
    returns the new rows (float64), each with exactly ``n_prune`` more zeros where it had non-zeros.

    Weights already zero count as removed first (the inverse Hessian is reduced by them, their saliency is 0)."""
    w = np.array(w, np.float64)
    rows, d = w.shape
    if n_prune <= 0 or rows == 0:
        return w
    hinv0 = np.linalg.inv(h)
    hinv0 = (hinv0 + hinv0.T) / 2.0
    chunk = max(1, _CHUNK_ELEMENTS // (d * d))
    ar = np.arange(d)
    for start in range(0, rows, chunk):
        block = w[start:start + chunk]
        r = len(block)
        rr = np.arange(r)
        hinv = np.broadcast_to(hinv0, (r, d, d)).copy()
        removed = np.zeros((r, d), dtype=bool)
        for _ in range(n_prune):
            diag = hinv[:, ar, ar]
            safe = np.where(removed | (diag <= 0.0), 1.0, diag)
            score = np.where(removed, np.inf, block ** 2 / safe)
            q = np.argmin(score, axis=1)
            col = hinv[rr, :, q]  # (r, d): H^-1[:, q]
            dq = safe[rr, q]
            block -= (block[rr, q] / dq)[:, None] * col
            hinv -= col[:, :, None] * col[:, None, :] / dq[:, None, None]
            block[rr, q] = 0.0
            removed[rr, q] = True
        block[removed] = 0.0
        w[start:start + chunk] = block
    return w


def prune_rows(w: np.ndarray, x: np.ndarray, sparsity: float, damping: float) -> np.ndarray:
    """OBC on rows ``w`` ``(rows, d)`` reading inputs ``x`` ``(n, d)``: every row gets ``d - max(round(d (1 - s)),
    1)`` zeros. Sparsity 0 returns ``w`` unchanged."""
    d = w.shape[1]
    n_prune = d - max(int(round(d * (1.0 - sparsity))), 1)
    if n_prune <= 0:
        return np.array(w, copy=True)
    return obs_prune_rows(w, hessian(x, damping), n_prune).astype(w.dtype)


# ----------------------------------------------------------------------------------------------- per layer type

def im2col(layer: keras.layers.Conv1D, x: np.ndarray) -> np.ndarray:
    """The Conv1D input ``x`` ``(n, L, C)`` unfolded into patches ``(n, L_out, K C)``, ordered as the kernel
    ``(K, C, F)`` reshaped to ``(K C, F)``; then ``patches @ kernel.reshape(K C, F)`` is the convolution."""
    n, length, channels = x.shape
    left, padded, out_len, s, d = conv_geometry(layer, length)
    xp = np.zeros((n, padded, channels), x.dtype)
    xp[:, left:left + length] = x
    k = int(layer.kernel_size[0])
    index = np.arange(out_len)[:, None] * s + np.arange(k)[None, :] * d  # (L_out, K)
    return xp[:, index, :].reshape(n, out_len, k * channels)


def _rnn_cells(layer) -> list:
    """The LSTM / GRU (reset_after) layers inside ``layer`` that OBC prunes, else []."""
    rnns = recurrent_layers(layer)
    ok = all(isinstance(r, keras.layers.LSTM) or (isinstance(r, keras.layers.GRU) and r.cell.reset_after)
             for r in rnns)
    return rnns if rnns and ok else []


def _obc_prunable(layer) -> bool:
    if not kernel_entries(layer):
        return False
    if type(layer) is keras.layers.Dense:
        return True
    if type(layer) is keras.layers.Conv1D:
        return layer.groups == 1 and layer.data_format == "channels_last"
    return bool(_rnn_cells(layer))


def _obc_layers(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if _obc_prunable(layer)]


def _hidden_states(rnn, x: np.ndarray) -> np.ndarray:
    """``h_{t-1}`` of every step but the first (``h_0 = 0`` adds nothing to H) of RNN layer ``rnn`` on the input
    sequences ``x`` ``(n, T, d)``, in processing order: ``(n (T - 1), units)``."""
    config = rnn.get_config()
    config.update(return_sequences=True, return_state=False, stateful=False)
    fresh = type(rnn).from_config(config)
    fresh.build((None, *x.shape[1:]))
    fresh.set_weights(rnn.get_weights())
    states = [np.asarray(fresh(x[i:i + _BATCH], training=False)) for i in range(0, len(x), _BATCH)]
    return np.concatenate(states)[:, :-1].reshape(-1, int(rnn.units))


def _prune_layer(layer, x: np.ndarray, sparsity: float, damping: float) -> None:
    """Prune the kernels of ``layer`` in place, ``x`` its calibration inputs (as the layer receives them)."""
    if type(layer) is keras.layers.Dense:
        kernel = layer.kernel.numpy()
        layer.kernel.assign(prune_rows(kernel.T, x.reshape(-1, kernel.shape[0]), sparsity, damping).T)
    elif type(layer) is keras.layers.Conv1D:
        kernel = layer.kernel.numpy()  # (K, C, F)
        flat = kernel.reshape(-1, kernel.shape[-1])
        patches = im2col(layer, x).reshape(-1, flat.shape[0])
        layer.kernel.assign(prune_rows(flat.T, patches, sparsity, damping).T.reshape(kernel.shape))
    else:
        seq = x.reshape(-1, x.shape[-1])
        for rnn in _rnn_cells(layer):
            cell = rnn.cell
            cell.kernel.assign(prune_rows(cell.kernel.numpy().T, seq, sparsity, damping).T)
            if x.ndim == 3 and x.shape[1] > 1:  # hidden states with the pruned input kernel
                states = _hidden_states(rnn, x)
                cell.recurrent_kernel.assign(prune_rows(cell.recurrent_kernel.numpy().T, states, sparsity,
                                                        damping).T)
            else:  # one step: the recurrent kernel only ever reads h_0 = 0; its magnitude order decides
                u = cell.recurrent_kernel.numpy()
                cell.recurrent_kernel.assign(prune_rows(u.T, np.zeros((1, u.shape[0])), sparsity, 1.0).T)


def _layer_inputs(model: keras.Model, layer, x: np.ndarray) -> np.ndarray:
    """What ``layer`` of ``model`` receives for the model inputs ``x``."""
    probe = keras.Model(model.inputs, layer.input)
    return np.concatenate([np.asarray(probe(x[i:i + _BATCH], training=False))
                           for i in range(0, len(x), _BATCH)]).astype(np.float64)


def _prune_obc(model: keras.Model, targets: Mapping[str, float], *, schedule: str, scope: str,
               fine_tune: FineTune | None, options: Mapping[str, Any],
               calibration: Calibration | None) -> tuple[keras.Model, dict]:
    if scope != "layer":
        raise ValueError("obc pruning supports scope='layer' only")
    seed = fine_tune.seed if fine_tune is not None else 0
    data = calibration.subsample(options["calibration_samples"], seed)
    pruned = copy_model(model)
    for layer in pruned.layers:
        s = targets.get(layer.name, 0.0)
        if s > 0.0:
            _prune_layer(layer, _layer_inputs(pruned, layer, data.x), s, options["damping"])
    info: dict[str, Any] = {"calibration_samples": len(data), "damping": options["damping"],
                            "fine_tuned": fine_tune is not None}
    if fine_tune is not None:
        kernels = [var for name in targets for _, var in kernel_entries(pruned.get_layer(name))]
        keep = _ProjectStructure(kernels)
        info["history"] = _fit(pruned, fine_tune, [keep])
        keep.project()
    info["achieved_sparsity"] = {key: float(np.mean(var.numpy() == 0.0)) for name, s in targets.items() if s > 0
                                 for key, var in kernel_entries(pruned.get_layer(name))}
    return pruned, info


OBC = register_pruning_method(PruningMethod(
    "obc", _obc_layers, _prune_obc,
    "Optimal Brain Compression: exact OBS pruning per output row on calibration windows (Dense, Conv1D, LSTM, GRU)",
    structured=False, supports_global_scope=False, check_options=check_obc_options,
    option_names=tuple(OPTIONS), needs_calibration=lambda options: True))
