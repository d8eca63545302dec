"""Optimal Brain Compression (Frantar & Alistarh, NeurIPS 2022): the exact Optimal Brain Surgeon (OBS) update, row
by row and layer by layer, on a few calibration windows, without retraining. Used by pruning ("obc",
:mod:`.pruning.obc`) and quantization (``quantize(..., mode="obq")``).

A kernel is a set of rows ``w`` (one per output feature: a Dense neuron, a Conv1D filter, a gate column of an LSTM /
GRU) that all read the same inputs ``x`` (``d`` features). Changing a row to ``w'`` changes the layer output on the
calibration inputs ``X`` (``(n, d)``) by ``||X w - X w'||^2 = (w - w')^T H (w - w') / 2``, with the Hessian
``H = 2 X^T X + lambda mean(diag(2 X^T X)) I`` (dampening ``lambda``, as the authors' code; an input that is never
non-zero, with nothing to dampen it, gets ``H_qq = 1``). Greedily, per row, one weight ``q`` at a time is fixed to a
value ``v_q`` (0 when pruning, its grid point when quantizing): the one of least error ``(w_q - v_q)^2 /
[H^-1]_qq`` among the free weights; the free weights are compensated, ``w <- w - (w_q - v_q) / [H^-1]_qq
H^-1[:, q]``, and ``q`` leaves the inverse Hessian of the free weights by the rank-1 removal ``H^-1 <- H^-1 -
H^-1[:, q] H^-1[q, :] / [H^-1]_qq``. After pruning, the free weights are the least-squares optimum on their support.

What ``x`` is per layer: a Dense layer's input (every time step of a 3-D input is a sample); a Conv1D's input
unfolded into patches (im2col: ``x[o] = (x_pad[o s + k d, c])_{k, c}``, ``d = K C_in``); for an LSTM or GRU
(``reset_after=True``) the kernel reads the input sequence and the recurrent kernel the hidden states ``h_{t-1}``
(of the layer with its input kernel already changed; per direction of a Bidirectional; a single step reads only
``h_0 = 0``, so there ``H = I``: plain magnitude order / rounding). The layers are processed in model order, each on
the inputs that the model changed so far gives it (sequential, as OBC's code). Biases are not changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import tf_keras as keras

from ..layers import recurrent_layers
from ..layers.conv1d import conv_geometry
from .common import kernel_entries

_BATCH = 256  # windows per forward pass while collecting layer inputs
_CHUNK_ELEMENTS = 2 ** 23  # rows * d * d of one batch of inverse Hessians (64 MiB in float64)

RowsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``rows_fn(w, x) -> w'``: new rows ``(rows, d)`` for rows ``w`` reading inputs ``x`` ``(n, d)``."""


def hessian(x: np.ndarray, damping: float) -> np.ndarray:
    """``H = 2 X^T X + damping mean(diag(2 X^T X)) I`` of inputs ``x`` ``(n, d)`` in float64; a diagonal entry
    still 0 (an input never seen, nothing to dampen it) is set to 1."""
    x = np.asarray(x, np.float64).reshape(-1, np.shape(x)[-1])
    h = 2.0 * x.T @ x
    mean = float(np.mean(np.diag(h))) if h.size else 0.0
    h[np.diag_indices_from(h)] += damping * mean
    dead = np.flatnonzero(np.diag(h) <= 0.0)
    h[dead, dead] = 1.0
    return h


def obs_rows(w: np.ndarray, h: np.ndarray, steps: int, target: Callable[[np.ndarray, np.ndarray], np.ndarray],
             first: np.ndarray | None = None) -> np.ndarray:
    """Fix ``steps`` weights of every row of ``w`` ``(rows, d)`` greedily by OBS with Hessian ``h`` ``(d, d)``
    (fewer where a row has fewer free weights left); returns the new rows (float64).

    ``target(values, rows) -> values``: the value each weight would be fixed to (0 when pruning, the grid point when
    quantizing; ``rows`` the row index of each value). ``first`` ``(rows, d)`` bool: weights fixed before the greedy
    ones, in index order, with the same compensation (e.g. the pruned zeros and the extreme weights that set the
    grid, while quantizing)."""
    w = np.array(w, np.float64)
    rows, d = w.shape
    if rows == 0 or (steps <= 0 and (first is None or not first.any())):
        return w
    hinv0 = np.linalg.inv(h)
    hinv0 = (hinv0 + hinv0.T) / 2.0
    chunk = max(1, _CHUNK_ELEMENTS // (d * d))
    ar = np.arange(d)
    for start in range(0, rows, chunk):
        block = w[start:start + chunk]
        r = len(block)
        rr = np.arange(r)
        row_of = np.broadcast_to((start + rr)[:, None], (r, d))
        hinv = np.broadcast_to(hinv0, (r, d, d)).copy()
        done = np.zeros((r, d), dtype=bool)
        assigned = np.zeros((r, d))  # the values the done weights are fixed to

        def fix(q: np.ndarray, active: np.ndarray, values: np.ndarray) -> None:
            """Fix weight ``q[i]`` of row ``i`` (where ``active``) to its value, compensating the free ones."""
            diag = hinv[rr, q, q]
            dq = np.where(active & (diag > 0.0), diag, 1.0)
            col = hinv[rr, :, q] * active[:, None]  # (r, d): H^-1[:, q]
            v = values[rr, q]
            block[:] -= (np.where(active, block[rr, q] - v, 0.0) / dq)[:, None] * col
            hinv[:] -= col[:, :, None] * col[:, None, :] / dq[:, None, None]
            assigned[rr[active], q[active]] = v[active]
            done[rr[active], q[active]] = True

        if first is not None:
            for q in np.flatnonzero(first[start:start + r].any(axis=0)):
                fix(np.full(r, q), first[start:start + r, q], target(block, row_of))
        for _ in range(steps):
            values = target(block, row_of)
            diag = hinv[:, ar, ar]
            safe = np.where(done | (diag <= 0.0), 1.0, diag)
            score = np.where(done, np.inf, (block - values) ** 2 / safe)
            q = np.argmin(score, axis=1)
            fix(q, ~done[rr, q], values)
        # the fixed weights exactly at their values (the later rank-1 updates leave rounding residue on them)
        w[start:start + chunk] = np.where(done, assigned, block)
    return w


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
    """The LSTM / GRU (reset_after) layers inside ``layer``, else []."""
    rnns = recurrent_layers(layer)
    ok = all(isinstance(r, keras.layers.LSTM) or (isinstance(r, keras.layers.GRU) and r.cell.reset_after)
             for r in rnns)
    return rnns if rnns and ok else []


def obs_supported(layer) -> bool:
    """Whether the OBS layer-wise formulation applies to ``layer`` (Dense, Conv1D, LSTM / GRU, Bidirectional)."""
    if not kernel_entries(layer):
        return False
    if type(layer) is keras.layers.Dense:
        return True
    if type(layer) is keras.layers.Conv1D:
        return layer.groups == 1 and layer.data_format == "channels_last"
    return bool(_rnn_cells(layer))


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


def _apply_rows(var, rows_fn: RowsFn, x: np.ndarray, shape2d: tuple[int, int]) -> None:
    kernel = var.numpy()
    rows = kernel.reshape(shape2d).T
    var.assign(rows_fn(rows, x).T.reshape(kernel.shape).astype(kernel.dtype))


def apply_layer(layer, x: np.ndarray, rows_fn: RowsFn) -> None:
    """Change the kernels of ``layer`` in place by ``rows_fn``, ``x`` its calibration inputs (as it receives them)."""
    if type(layer) is keras.layers.Dense:
        d = layer.kernel.shape[0]
        _apply_rows(layer.kernel, rows_fn, x.reshape(-1, d), (d, -1))
    elif type(layer) is keras.layers.Conv1D:
        shape = layer.kernel.shape  # (K, C, F)
        d = int(shape[0]) * int(shape[1])
        _apply_rows(layer.kernel, rows_fn, im2col(layer, x).reshape(-1, d), (d, -1))
    else:
        seq = x.reshape(-1, x.shape[-1])
        for rnn in _rnn_cells(layer):
            cell = rnn.cell
            _apply_rows(cell.kernel, rows_fn, seq, (seq.shape[1], -1))
            units = int(rnn.units)
            # the hidden states with the changed input kernel; one step reads only h_0 = 0 (then H = I)
            states = _hidden_states(rnn, x) if x.ndim == 3 and x.shape[1] > 1 else np.zeros((1, units))
            _apply_rows(cell.recurrent_kernel, rows_fn, states, (units, -1))


def layer_inputs(model: keras.Model, layer, x: np.ndarray) -> np.ndarray:
    """What ``layer`` of ``model`` receives for the model inputs ``x`` (float64)."""
    probe = keras.Model(model.inputs, layer.input)
    return np.concatenate([np.asarray(probe(x[i:i + _BATCH], training=False))
                           for i in range(0, len(x), _BATCH)]).astype(np.float64)


def obs_model(model: keras.Model, layers: Iterable[tuple[str, RowsFn]], x: np.ndarray) -> None:
    """Apply ``rows_fn`` to the kernels of each named layer of ``model`` in place, in model order, each on the
    inputs that ``model`` (changed so far) gives it for the calibration inputs ``x``."""
    todo = dict(layers)
    for layer in model.layers:
        if layer.name in todo:
            apply_layer(layer, layer_inputs(model, layer, x), todo[layer.name])
