"""Recurrent layers: one implementation for every registered cell (LSTM here, GRU in :mod:`.gru`) and its
Bidirectional wrapper.

A :class:`RecurrentCell` states one RNN layer class: its number of gates (the blocks of ``units`` columns of its
kernel, recurrent kernel and bias), the formulas of ``steps`` time steps (``tally``) and its counting reference
(``states``: the hidden states of one window). :func:`register_recurrent_cell` registers the layer type of the
RNN layer and of ``Bidirectional`` around it, with the same complexity, structured-pruning, QAT and TFMOT hooks.

LSTM (``n_i`` inputs, ``n_h`` units, keras gate order i, f, c, o): per time step ``z = [x_t, h_{t-1}] [W; U] + b``
(``4 n_h`` outputs), ``c_t = f c_{t-1} + i g``, ``h_t = o tanh(c_t)``. Cost per window of ``T`` steps, unpruned:
``T n_h (4 n_i + 4 n_h + 3)`` real multiplications (see :mod:`eqnn.complexity`). An RNN is counted over all ``T``
steps whether it returns the sequence or only its final state. Bidirectional: the forward and the backward RNN
over the whole window plus the merge ("concat" free; "sum", "mul", "ave" ``n_h`` operations per output position).

A gate whose pre-activation weights are all zero is a constant (:func:`constant_gate_values`), counted as such
(:func:`lstm_tally`). Structured pruning removes units: unit ``u`` owns the columns ``g n_h + u`` (g = 0 .. gates -
1) of ``W``, ``U`` and ``b`` (every row of a 2-D bias) and the row ``u`` of ``U``. In a Bidirectional each direction
keeps its own units ("concat") or the forward and backward unit ``j`` are kept together (the other merges pair
them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import tf_keras as keras

from ..complexity.counting import (
    ComplexityError,
    activation_value,
    constant_digits,
    matvec,
    ref_matvec,
)
from ..complexity.counting import input_shape as _input_shape
from .registry import LayerType, register_layer_type

MERGE_MODES = ("concat", "sum", "mul", "ave")


@dataclass(frozen=True)
class RecurrentCell:
    """One RNN layer class for :func:`register_recurrent_cell`.

    Attributes:
        name: the layer type name ("LSTM"); the Bidirectional type is named "Bidirectional(<name>)".
        layer_class: the tf_keras RNN layer class (subclasses are costed too; structured pruning and QAT take the
            class itself only).
        gates: blocks of ``units`` columns in the kernel, recurrent kernel and bias (LSTM 4, GRU 3).
        tally: ``tally(tally, rnn, steps) -> kernels``: the formulas of ``steps`` time steps.
        states: ``states(counter, rnn, x) -> (T, units)``: the hidden states over the window ``x`` in processing
            order (reversed input if ``go_backwards``), every operation counted.
        check: ``check(rnn)``: raise :class:`ComplexityError` for a variant the formulas do not cover.
    """

    name: str
    layer_class: type
    gates: int
    tally: Callable
    states: Callable
    check: Optional[Callable] = None


# ----------------------------------------------------------------------------------------------- LSTM

LSTM_GATES = ("i", "f", "c", "o")  # keras order of the gate column blocks


def constant_gate_values(lstm) -> np.ndarray:
    """The constant gates of an LSTM, shape ``(4, n_h)`` (keras gate order i, f, c, o): ``act(b)`` where the gate's
    pre-activation column of the kernel and the recurrent kernel is all zero (its pre-activation is its bias alone,
    ``act`` the recurrent activation, or the activation for the candidate ``c``), NaN where the gate depends on the
    input. Values in float64."""
    n = int(lstm.units)
    W = np.vstack([lstm.cell.kernel.numpy(), lstm.cell.recurrent_kernel.numpy()])
    bias = lstm.cell.bias.numpy().astype(np.float64) if lstm.cell.use_bias else np.zeros(4 * n)
    constant = ~np.any(W != 0, axis=0).reshape(4, n)
    values = np.full((4, n), np.nan)
    for k in range(4):
        fn = lstm.activation if k == 2 else lstm.recurrent_activation
        values[k] = np.where(constant[k], activation_value(fn, bias[k * n:(k + 1) * n]), np.nan)
    return values


def _const(value: float) -> Optional[float]:
    return None if np.isnan(value) else float(value)


def _product_rule(a: Optional[float], b: Optional[float]):
    """The product of two factors (a float: a constant; None: a variable): ``(kind, constant)``, kind "const" (no
    operation; the product is the constant), "same_a" / "same_b" (a factor is exactly 1: the product is the other
    factor, no operation), "by_const" (a variable times the constant), "var" (two variables)."""
    if a is not None and b is not None:
        return "const", a * b
    if a == 0.0 or b == 0.0:
        return "const", 0.0
    if a == 1.0:
        return "same_b", None
    if b == 1.0:
        return "same_a", None
    if a is not None or b is not None:
        return "by_const", a if a is not None else b
    return "var", None


def _lstm_unit_plan(i, f, g, o, cell_activation) -> dict:
    """The operations of one LSTM unit per step, given its constant gates (None: variable), see
    :func:`lstm_tally`: ``var`` (variable products), ``const`` (list of the constants multiplying a variable),
    ``adds``, ``gate_acts`` (non-constant i, f, o), ``cand_act`` (non-constant g: 0 or 1), ``cell_act`` (tanh(c)
    evaluated: 0 or 1); ``cell_activation(c)``: the activation of a constant cell state, in float64."""
    plan = {"var": 0, "const": [], "adds": 0}

    def product(a, b):
        kind, value = _product_rule(a, b)
        if kind == "const":
            return value
        if kind == "by_const":
            plan["const"].append(value)
        elif kind == "var":
            plan["var"] += 1
        return None if kind in ("by_const", "var") else (a if kind == "same_a" else b)

    fc = product(f, None)          # c_{t-1} is a variable (the zero initial state is not exploited)
    ig = product(i, g)
    if fc == 0.0:
        c = ig
    elif ig == 0.0:
        c = fc
    elif fc is not None and ig is not None:
        c = fc + ig
    else:
        plan["adds"] += 1
        c = None
    plan["cell_act"] = int(c is None and o != 0.0)   # tanh(c) of a constant c, or unused (o = 0): not evaluated
    product(o, None if c is None else float(cell_activation(c)))
    plan["gate_acts"] = sum(v is None for v in (i, f, o))
    plan["cand_act"] = int(g is None)
    return plan


def lstm_tally(tally, lstm, steps: int) -> tuple:
    """Count ``steps`` LSTM steps on ``tally``; returns (kernel, recurrent kernel).

    A constant gate (:func:`constant_gate_values`: all its kernel and recurrent-kernel weights zero) costs no
    product and no addition in the matrix-vector product (zero weights are free) and no activation evaluation
    (its value ``act(b)`` is computed once, offline). Its elementwise product ``f c_{t-1}``, ``i g`` or
    ``o tanh(c_t)`` is a product of a variable by a constant (one multiplication; BoP ``b_w b_a``, NABS
    ``2 k - 1`` with ``k`` the CSD digits of the constant at ``b_w`` bits) instead of a product of two variables;
    it is no operation where the constant is exactly 0 (the term vanishes, with its addition) or exactly 1 (the
    other factor passes), and ``i g`` of two constant gates is a constant (no product). ``c_t`` is a constant only
    where ``f = 0`` and ``i g`` is a constant; then ``tanh(c_t)`` is not evaluated, nor where ``o = 0``. The
    constant values are those of float64 (a sigmoid is never exactly 0 or 1 below |b| of about 37). Not exploited:
    the zero initial state, and a unit whose four gates are constant (its states are then data-independent
    sequences that could be precomputed; their products in the next matrix-vector products are still counted).
    """
    kernel = lstm.cell.kernel.numpy()
    recurrent = lstm.cell.recurrent_kernel.numpy()
    bias = lstm.cell.bias.numpy() if lstm.cell.use_bias else None
    W = np.vstack([kernel, recurrent])
    csd = np.vstack([tally.digits(kernel), tally.digits(recurrent)])
    matvec(tally, W, csd, bias, steps)
    values = constant_gate_values(lstm)
    var, const, adds, gate_acts, cand_acts, cell_acts = 0, [], 0, 0, 0, 0
    for u in range(int(lstm.units)):
        plan = _lstm_unit_plan(*(_const(v) for v in values[:, u]),
                               lambda c: activation_value(lstm.activation, c))
        var += plan["var"]
        const += plan["const"]
        adds += plan["adds"]
        gate_acts += plan["gate_acts"]
        cand_acts += plan["cand_act"]
        cell_acts += plan["cell_act"]
    tally.var_products(steps * var)                          # f*c, i*g, o*act(c) of variable factors
    if const:
        tally.const_products(len(const), np.array([constant_digits(v, tally.bw) for v in const]), steps)
    tally.adds(steps * adds, 2 * tally.ba + 1)               # c = f*c + i*g
    tally.activate(lstm.recurrent_activation, steps * gate_acts)
    tally.activate(lstm.activation, steps * (cand_acts + cell_acts))   # g and act(c)
    return kernel, recurrent


def _ref_product(counter, a: tuple, b: tuple) -> tuple:
    """``a * b`` of two ``(value, constant?)`` factors, performed (and counted) as :func:`_product_rule` says."""
    kind, value = _product_rule(a[0] if a[1] else None, b[0] if b[1] else None)
    if kind == "const":
        return value, True
    if kind == "same_a":
        return a
    if kind == "same_b":
        return b
    return counter.mul(a[0], b[0]), False


def lstm_reference(counter, lstm, x: np.ndarray) -> np.ndarray:
    """Returns the hidden states in processing order, shape (T, n_h) (reversed input if go_backwards).

    Constant gates (:func:`constant_gate_values`) take their value computed once (not counted); every elementwise
    operation follows the rules of :func:`lstm_tally` on ``(value, constant?)`` factors."""
    kernel, recurrent = lstm.cell.kernel.numpy(), lstm.cell.recurrent_kernel.numpy()
    W = np.vstack([kernel, recurrent])
    integers = None
    if counter.shift_add:
        integers = np.vstack([counter.integers(kernel), counter.integers(recurrent)])
    bias = lstm.cell.bias.numpy() if lstm.cell.use_bias else None
    n = int(lstm.units)
    values = constant_gate_values(lstm)
    seq = x[::-1] if lstm.go_backwards else x
    h, c = np.zeros(n), [(0.0, False)] * n
    outputs = []
    for x_t in seq:
        z = ref_matvec(counter, np.concatenate([x_t, h]), W, bias, integers)
        gates = []
        for k in range(4):
            fn = lstm.activation if k == 2 else lstm.recurrent_activation
            zk, vk = z[k * n:(k + 1) * n], values[k]
            variable = np.isnan(vk)
            act = np.array(vk)
            act[variable] = counter.activation(fn, zk[variable])
            gates.append([(float(a), not v) for a, v in zip(act, variable)])
        i, f, g, o = gates
        h = np.zeros(n)
        for u in range(n):
            fc = _ref_product(counter, f[u], c[u])
            ig = _ref_product(counter, i[u], g[u])
            if fc == (0.0, True):
                cu = ig
            elif ig == (0.0, True):
                cu = fc
            elif fc[1] and ig[1]:
                cu = (fc[0] + ig[0], True)
            else:
                cu = (counter.add(fc[0], ig[0]), False)
            # c_{t-1} is treated as a variable at the next step unless it is a constant of this rule (f = 0)
            c[u] = cu if (cu[1] and f[u] == (0.0, True)) else (cu[0], False)
            if o[u] == (0.0, True):
                h[u] = 0.0
                continue
            if cu[1]:
                tc = (float(activation_value(lstm.activation, cu[0])), True)
            else:
                tc = (float(counter.activation(lstm.activation, np.array([cu[0]]))[0]), False)
            h[u] = _ref_product(counter, o[u], tc)[0]
        outputs.append(h)
    return np.array(outputs)


# ----------------------------------------------------------------------------------------------- any cell

_CELLS: dict[type, RecurrentCell] = {}


def cell_of(rnn) -> RecurrentCell:
    """The registered :class:`RecurrentCell` of an RNN layer (most recently registered class first)."""
    for cls, cell in reversed(list(_CELLS.items())):
        if isinstance(rnn, cls):
            return cell
    raise ComplexityError(f"layer {rnn.name!r}: {type(rnn).__name__} is not a registered recurrent cell "
                          f"({', '.join(c.name for c in _CELLS.values())})")


def _rnn_check(layer) -> None:
    cell = cell_of(layer)
    if cell.check is not None:
        cell.check(layer)


def _rnn_tally(tally, layer) -> tuple:
    return tuple(cell_of(layer).tally(tally, layer, int(_input_shape(layer)[1])))


def _rnn_reference(counter, layer, x):
    seq = cell_of(layer).states(counter, layer, x)
    return seq if layer.return_sequences else seq[-1]


def _bidirectional_check(layer) -> None:
    if layer.merge_mode not in MERGE_MODES:
        raise ComplexityError(f"layer {layer.name!r}: merge_mode = {layer.merge_mode!r}; allowed "
                              f"{', '.join(map(repr, MERGE_MODES))}")
    _rnn_check(layer.forward_layer)
    _rnn_check(layer.backward_layer)


def _bidirectional_tally(tally, layer) -> tuple:
    steps = int(_input_shape(layer)[1])
    kernels = tuple(cell_of(layer.forward_layer).tally(tally, layer.forward_layer, steps)) + \
        tuple(cell_of(layer.backward_layer).tally(tally, layer.backward_layer, steps))
    positions = steps if layer.return_sequences else 1
    n = positions * int(layer.forward_layer.units)
    if layer.merge_mode == "sum":
        tally.adds(n, tally.ba + 1)
    elif layer.merge_mode == "mul":
        tally.var_products(n)
    elif layer.merge_mode == "ave":
        tally.adds(n, tally.ba + 1)
        tally.const_products(n, np.ones(n, np.int64))
    return kernels


def _bidirectional_reference(counter, layer, x):
    fwd = cell_of(layer.forward_layer).states(counter, layer.forward_layer, x)
    bwd = cell_of(layer.backward_layer).states(counter, layer.backward_layer, x)
    if layer.return_sequences:
        a, b = fwd, bwd[::-1]
    else:
        a, b = fwd[-1], bwd[-1]
    if layer.merge_mode == "concat":
        return np.concatenate([a, b], axis=-1)
    fa, fb = a.ravel(), b.ravel()
    if layer.merge_mode == "sum":
        merged = [counter.add(u, v) for u, v in zip(fa, fb)]
    elif layer.merge_mode == "mul":
        merged = [counter.mul(u, v) for u, v in zip(fa, fb)]
    else:  # ave
        merged = [counter.mul(counter.add(u, v), 0.5) for u, v in zip(fa, fb)]
    return np.array(merged).reshape(a.shape)


# ----------------------------------------------------------------------------------------------- structured pruning

def _unit_cols(units: int, gates: int, keep: np.ndarray) -> np.ndarray:
    return np.concatenate([g * units + keep for g in range(gates)])


def rnn_in_norms(layer, weights: list) -> np.ndarray:
    """Squared L2 norm of each kernel row ``(n_in, gates n_h)``: the weights reading each input feature."""
    return np.sum(weights[0] ** 2, axis=1)


def rnn_out_norms(layer, weights: list) -> np.ndarray:
    """Per unit: squared L2 norm of its gate columns of the kernel, recurrent kernel and bias (every bias row)."""
    u, gates = int(layer.units), cell_of(layer).gates
    total = np.sum(weights[0] ** 2, axis=0) + np.sum(weights[1] ** 2, axis=0)
    if len(weights) > 2:
        bias = weights[2]
        total = total + np.sum(bias.reshape(-1, bias.shape[-1]) ** 2, axis=0)
    return total.reshape(gates, u).sum(axis=0)


def rnn_slice_in(layer, weights: list, keep: np.ndarray) -> list:
    return [weights[0][keep]] + weights[1:]


def rnn_slice_out(layer, weights: list, keep: np.ndarray) -> list:
    cols = _unit_cols(int(layer.units), cell_of(layer).gates, keep)
    out = [weights[0][:, cols], weights[1][keep][:, cols]]
    return out + ([weights[2][..., cols]] if len(weights) > 2 else [])


def _rnn_resize(layer, n_keep: int) -> dict:
    config = layer.get_config()
    config["units"] = n_keep
    return config


def _halves(weights: list) -> tuple[list, list]:
    half = len(weights) // 2
    return weights[:half], weights[half:]


def _bi_in_norms(layer, weights: list) -> np.ndarray:
    f, b = _halves(weights)
    return rnn_in_norms(layer.forward_layer, f) + rnn_in_norms(layer.backward_layer, b)


def _bi_out_norms(layer, weights: list) -> np.ndarray:
    f, b = _halves(weights)
    return np.concatenate([rnn_out_norms(layer.forward_layer, f), rnn_out_norms(layer.backward_layer, b)])


def _bi_slice_in(layer, weights: list, keep: np.ndarray) -> list:
    f, b = _halves(weights)
    return rnn_slice_in(layer.forward_layer, f, keep) + rnn_slice_in(layer.backward_layer, b, keep)


def _bi_slice_out(layer, weights: list, keep: tuple) -> list:
    f, b = _halves(weights)
    return rnn_slice_out(layer.forward_layer, f, keep[0]) + rnn_slice_out(layer.backward_layer, b, keep[1])


def _bi_resize(layer, n_keep: int) -> dict:
    config = layer.get_config()
    config["layer"]["config"]["units"] = n_keep
    if config.get("backward_layer"):
        config["backward_layer"]["config"]["units"] = n_keep
    return config


def _bi_choose_keep(layer, scores: np.ndarray, n_keep: int, top) -> tuple:
    """(forward kept units, backward kept units): independent with "concat", else unit j of both together."""
    units = layer.forward_layer.units
    if layer.merge_mode == "concat":
        return top(scores[:units]), top(scores[units:])
    both = top(scores[:units] + scores[units:]) if scores.size == 2 * units else top(scores)
    return both, both


def _bi_kept_features(layer, keep: tuple) -> np.ndarray:
    """The output features of the kept units at one time step ("concat": forward ``j``, backward ``units + j``);
    a following ``Flatten`` repeats them at every step."""
    units = layer.forward_layer.units
    return np.concatenate([keep[0], units + keep[1]]) if layer.merge_mode == "concat" else keep[0]


def _bi_kernels(layer) -> list:
    weights = []
    for rnn in (layer.forward_layer, layer.backward_layer):
        cell = rnn.cell
        weights += [w for w in (getattr(cell, "kernel", None), getattr(cell, "recurrent_kernel", None))
                    if w is not None]
    return weights


# ----------------------------------------------------------------------------------------------- registration

def register_recurrent_cell(cell: RecurrentCell) -> tuple[LayerType, LayerType]:
    """Register the layer types ``cell.name`` (the RNN layer) and ``Bidirectional(<cell.name>)``."""
    if not isinstance(cell, RecurrentCell):
        raise TypeError("register_recurrent_cell takes a RecurrentCell")
    _CELLS.pop(cell.layer_class, None)
    _CELLS[cell.layer_class] = cell

    def exact(layer) -> bool:
        return type(layer) is cell.layer_class

    def exact_pair(layer) -> bool:
        return exact(layer.forward_layer) and exact(layer.backward_layer)

    def bidirectional(layer) -> bool:
        return isinstance(layer, keras.layers.Bidirectional) and isinstance(layer.forward_layer, cell.layer_class)

    single = register_layer_type(LayerType(
        name=cell.name, matches=lambda layer: isinstance(layer, cell.layer_class), check=_rnn_check,
        tally=_rnn_tally, reference=_rnn_reference, structure="units", structured=exact,
        units=lambda layer: layer.units, resize=_rnn_resize, in_norms=rnn_in_norms, out_norms=rnn_out_norms,
        slice_in=rnn_slice_in, slice_out=rnn_slice_out, qat=exact, recurrent=lambda layer: [layer]))
    pair = register_layer_type(LayerType(
        name=f"Bidirectional({cell.name})", matches=bidirectional, check=_bidirectional_check,
        tally=_bidirectional_tally, reference=_bidirectional_reference, structure="units", structured=exact_pair,
        units=lambda layer: layer.forward_layer.units, resize=_bi_resize, in_norms=_bi_in_norms,
        out_norms=_bi_out_norms, slice_in=_bi_slice_in, slice_out=_bi_slice_out, choose_keep=_bi_choose_keep,
        kept_features=_bi_kept_features, qat=exact_pair,
        recurrent=lambda layer: [layer.forward_layer, layer.backward_layer],
        prune_parts=lambda layer: [layer.forward_layer, layer.backward_layer], prunable_weights=_bi_kernels,
        kind=lambda layer: f"Bidirectional({type(layer.forward_layer).__name__})"))
    return single, pair


LSTM_CELL = RecurrentCell(name="LSTM", layer_class=keras.layers.LSTM, gates=4, tally=lstm_tally,
                          states=lstm_reference)
LSTM, BIDIRECTIONAL_LSTM = register_recurrent_cell(LSTM_CELL)
