"""GRU and Bidirectional(GRU), in tf_keras's default form ``reset_after=True`` (the cuDNN-compatible GRU).

Per time step, ``n_i`` inputs, ``n_h`` units, keras gate order z, r, h; kernel ``W`` ``(n_i, 3 n_h)``, recurrent
kernel ``U`` ``(n_h, 3 n_h)``, bias ``(2, 3 n_h)``: an input bias ``b^x`` and a separate recurrent bias ``b^h``::

    z   = sigmoid(x_t W_z + b^x_z + h_{t-1} U_z + b^h_z)          update gate
    r   = sigmoid(x_t W_r + b^x_r + h_{t-1} U_r + b^h_r)          reset gate
    hh  = tanh(x_t W_h + b^x_h + r * (h_{t-1} U_h + b^h_h))       candidate: r applied after the recurrent matmul
    h_t = z * h_{t-1} + (1 - z) * hh

(``sigmoid`` / ``tanh``: the layer's ``recurrent_activation`` / ``activation``.)

Cost of one step (see :mod:`eqnn.complexity`): the products of ``x_t`` with ``W`` and of ``h_{t-1}`` with ``U``
(per input, one per distinct non-zero weight of its row, shared by the three gates); the z and r columns each sum
their products of both and the constant ``b^x + b^h`` (one folded bias); the candidate sums ``x_t W_h + b^x_h``
and ``h_{t-1} U_h + b^h_h`` separately, multiplies the latter by ``r`` (``n_h`` variable products) and adds them
(``n_h`` additions); the update costs ``1 - z`` (``n_h`` additions), two variable products and one addition per
unit. Unpruned: ``T n_h (3 n_i + 3 n_h + 3)`` real multiplications per window of ``T`` steps (Liu et al., Opt.
Express 30(18), 2022: biGRU-32 over 41 symbols, 296,512 RMpS with the flattened readout). ``reset_after=False``
(the candidate ``(r * h_{t-1}) U_h``) is not costed.

Structured pruning, QAT and magnitude pruning are those of every recurrent cell (:mod:`.recurrent`) with 3 gates.
"""

from __future__ import annotations

import numpy as np
import tf_keras as keras

from ..complexity.counting import (
    ComplexityError,
    count_products,
    count_sums,
    ref_products,
    ref_sums,
)
from .recurrent import RecurrentCell, register_recurrent_cell


def _check(gru) -> None:
    if not gru.cell.reset_after:
        raise ComplexityError(f"layer {gru.name!r}: GRU with reset_after=False is not supported; use the default "
                              "reset_after=True")


def _parts(gru) -> tuple:
    """(W, U, folded z/r bias or None, candidate input bias or None, candidate recurrent bias or None)."""
    cell = gru.cell
    W, U = cell.kernel.numpy(), cell.recurrent_kernel.numpy()
    n = int(gru.units)
    if not cell.use_bias:
        return W, U, None, None, None
    b = cell.bias.numpy().astype(np.float64)
    return W, U, b[0, :2 * n] + b[1, :2 * n], b[0, 2 * n:], b[1, 2 * n:]


def gru_tally(tally, gru, steps: int) -> tuple:
    """Count ``steps`` GRU steps on ``tally``; returns (kernel, recurrent kernel)."""
    W, U, b_zr, bx_h, bh_h = _parts(gru)
    n = int(gru.units)
    count_products(tally, W, tally.digits(W), steps)
    count_products(tally, U, tally.digits(U), steps)
    count_sums(tally, np.vstack([W[:, :2 * n], U[:, :2 * n]]), b_zr, steps)   # z and r pre-activations
    count_sums(tally, W[:, 2 * n:], bx_h, steps)                               # x_t W_h + b^x_h
    count_sums(tally, U[:, 2 * n:], bh_h, steps)                               # h U_h + b^h_h
    tally.var_products(steps * n)                                              # r * (h U_h + b^h_h)
    tally.adds(steps * n, 2 * tally.ba + 1)                                    # x part + r * (...)
    tally.activate(gru.recurrent_activation, steps * 2 * n)                    # z, r
    tally.activate(gru.activation, steps * n)                                  # hh
    tally.adds(steps * n, tally.ba + 1)                                        # 1 - z
    tally.var_products(steps * 2 * n)                                          # z * h, (1 - z) * hh
    tally.adds(steps * n, 2 * tally.ba + 1)                                    # their sum
    return W, U


def gru_reference(counter, gru, x: np.ndarray) -> np.ndarray:
    """The hidden states in processing order, shape (T, n_h) (reversed input if go_backwards)."""
    W, U, b_zr, bx_h, bh_h = _parts(gru)
    n = int(gru.units)
    W_zr = np.vstack([W[:, :2 * n], U[:, :2 * n]])
    qW, qU = counter.integers(W), counter.integers(U)
    seq = x[::-1] if gru.go_backwards else x
    h = np.zeros(n)
    outputs = []
    for x_t in seq:
        tx, th = ref_products(counter, x_t, W, qW), ref_products(counter, h, U, qU)
        zr = ref_sums(counter, tx + th, W_zr, b_zr)
        xh = ref_sums(counter, tx, W[:, 2 * n:], bx_h)
        uh = ref_sums(counter, th, U[:, 2 * n:], bh_h)
        z = counter.activation(gru.recurrent_activation, zr[:n])
        r = counter.activation(gru.recurrent_activation, zr[n:])
        hh = counter.activation(gru.activation, np.array([counter.add(xh[u], counter.mul(r[u], uh[u]))
                                                          for u in range(n)]))
        h = np.array([counter.add(counter.mul(z[u], h[u]), counter.mul(counter.add(1.0, -z[u]), hh[u]))
                      for u in range(n)])
        outputs.append(h)
    return np.array(outputs)


GRU_CELL = RecurrentCell(name="GRU", layer_class=keras.layers.GRU, gates=3, tally=gru_tally, states=gru_reference,
                         check=_check)
GRU, BIDIRECTIONAL_GRU = register_recurrent_cell(GRU_CELL)
