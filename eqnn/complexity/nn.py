"""NN equalizer cost: :func:`model_complexity` (the formulas, from the actual weights) and
:func:`count_multiplications_reference` (a NumPy inference counting every operation), both dispatching each layer
to its :class:`eqnn.layers.LayerType` (``tally`` and ``reference``). The rules are in :mod:`eqnn.complexity`.

``eqnn.layers`` (which imports tf_keras) is imported on the first call, so ``import eqnn.complexity`` stays free of
TensorFlow for the DSP formulas.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .counting import MAX_POW2_TERMS, ComplexityError, Counter, Tally, check_bits, check_count, kernel_stats
from .results import LayerComplexity, ModelComplexity, ReferenceCount


def _layers():
    from .. import layers

    return layers


def _keras():
    import tf_keras

    return tf_keras


def _check_model(model) -> None:
    keras = _keras()
    if not isinstance(model, keras.Model):
        from ..keras2 import not_tf_keras_message
        raise ComplexityError(not_tf_keras_message(model))
    if not model.built:
        raise ComplexityError("model: the model is not built; give it an input shape, e.g. keras.Input((2N+1, 4))")


def _flatten_layers(model) -> list:
    keras = _keras()
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_flatten_layers(layer))
        else:
            out.append(layer)
    return out


def _check_supported(layer):
    """The :class:`~eqnn.layers.LayerType` that costs ``layer``, or :class:`ComplexityError`."""
    module = type(layer).__module__
    name = type(layer).__name__
    if "tensorflow_model_optimization" in module:
        raise ComplexityError(
            f"layer {layer.name!r} is a TFMOT wrapper ({name}): strip it first "
            "(tfmot.sparsity.keras.strip_pruning, tfmot.clustering.keras.strip_clustering; for quantization, "
            "copy the quantized weights into the plain model with set_weights and pass weight_bits)")
    layers = _layers()
    layer_type = layers.find_layer_type(layer)
    if layer_type is not None and layer_type.tally is not None and layer_type.reference is not None:
        if layer_type.check is None or layer_type.check(layer) is not False:
            return layer_type
    costed = [t for t in layers.LAYER_TYPES.values() if t.tally is not None and t.reference is not None]
    free = [n for t in costed for n in t.free_names]
    raise ComplexityError(
        f"layer {layer.name!r} of type {name} is not supported; supported: "
        f"{', '.join(t.name for t in costed if not t.free_names)} and the arithmetic-free {', '.join(free)}")


def _symbols_per_window(model, symbols_per_window) -> int:
    if symbols_per_window is not None:
        return check_count("symbols_per_window", symbols_per_window, 1)
    shape = model.output_shape
    if isinstance(shape, list) or any(d is None for d in shape[1:]):
        raise ComplexityError(f"model output shape {shape}: cannot infer symbols_per_window; pass it")
    n_out = int(np.prod(shape[1:]))
    if n_out % 2:
        raise ComplexityError(f"model has {n_out} real outputs, not a whole number of complex symbols: pass "
                              "symbols_per_window")
    return n_out // 2


def with_time_steps(model, time_steps: int):
    """``model`` itself if its input has ``time_steps`` time slots, else a copy over a fixed input of
    ``(time_steps, features)`` holding the same weights (for a model built over a variable time axis, e.g. a
    sequence equalizer costed on one inference block)."""
    keras = _keras()
    steps = check_count("time_steps", time_steps, 1)
    shape = model.input_shape
    if isinstance(shape, list) or len(shape) != 3:
        raise ComplexityError(f"time_steps: the model input {shape} is not (time, features)")
    if shape[1] == steps:
        return model
    if shape[1] is not None:
        raise ComplexityError(f"time_steps = {steps}: the model input has a fixed time axis of {shape[1]}")
    name = model.layers[0].name if type(model.layers[0]).__name__ == "InputLayer" else None
    fixed = keras.models.clone_model(model, input_tensors=keras.Input(shape=(steps,) + tuple(shape[2:]),
                                                                      dtype=model.inputs[0].dtype, name=name))
    fixed.set_weights(model.get_weights())
    return fixed


def _check_pow2_terms(pow2_terms, weight_bits) -> Optional[int]:
    if pow2_terms is None:
        return None
    terms = check_count("pow2_terms", pow2_terms, 1, MAX_POW2_TERMS)
    if weight_bits is None:
        raise ComplexityError(f"pow2_terms = {terms} needs weight_bits (the bits of the power-of-two grid)")
    return terms


def model_complexity(model, weight_bits: Optional[int] = None, activation_bits: Optional[int] = None,
                     activation_multiplications: int = 0,
                     symbols_per_window: Optional[int] = None, time_steps: Optional[int] = None,
                     pow2_terms: Optional[int] = None) -> ModelComplexity:
    """RMpS, BoP and NABS of a tf_keras equalizer, per layer and in total, from its actual weights.

    Args:
        model: a built tf_keras model of Dense, LSTM, GRU, Bidirectional(LSTM / GRU), Conv1D, Activation and
            arithmetic-free layers (TFMOT wrappers stripped), with a fixed input window ``(2N+1, 4)``.
        weight_bits: b_w, integer in [2, 32], or None (unquantized float, counted as 32).
        activation_bits: b_a, integer in [2, 32], or None (unquantized float, counted as 32).
        activation_multiplications: real multiplications per evaluation of a non-ReLU, non-linear activation
            (sigmoid, tanh, ...), integer >= 0; default 0 (look-up table).
        symbols_per_window: recovered single-polarization symbols per inference; default real outputs / 2.
        time_steps: cost one inference over this many time slots (a model built over a variable time axis, e.g. a
            sequence equalizer on one inference block; see :func:`with_time_steps`); None: the model's input.
        pow2_terms: None (weights on the uniform grid), or ``k`` in [1, 8]: the weights are on the power-of-two grid
            of ``weight_bits`` bits (:func:`eqnn.compress.quantize` with ``grid="pow2"``, ``pow2_terms=k``: sums of
            at most ``k`` signed powers of two), so a product by a weight of ``k' <= k`` terms is ``k'`` shifts and
            ``k' - 1`` additions: BoP ``(k' - 1)(b_w + b_a)`` instead of ``b_w b_a`` (NABS ``2 k' - 1`` as on any
            grid; RMpS unchanged). Needs ``weight_bits``.

    Returns: :class:`ModelComplexity`; every formula is in the module docstring.

    Raises: :class:`ComplexityError` for a non-tf_keras model, an unsupported layer or a bad argument.
    """
    _check_model(model)
    if time_steps is not None:
        model = with_time_steps(model, time_steps)
    bw = check_bits("weight_bits", weight_bits)
    ba = check_bits("activation_bits", activation_bits)
    act_mult = check_count("activation_multiplications", activation_multiplications, 0)
    terms = _check_pow2_terms(pow2_terms, weight_bits)
    layers = _flatten_layers(model)
    types = [_check_supported(layer) for layer in layers]
    spw = _symbols_per_window(model, symbols_per_window)
    results = []
    for layer, layer_type in zip(layers, types):
        tally = Tally(bw=bw, ba=ba, act_mult=act_mult, pow2_terms=terms)
        kernels = tuple(layer_type.tally(tally, layer))
        n_w, n_nz, n_d = kernel_stats(*kernels) if kernels else (0, 0, 0)
        results.append(LayerComplexity(
            name=layer.name, type=type(layer).__name__, rmps=tally.multiplications / spw,
            additions=tally.additions / spw, bop=tally.bop / spw, nabs=tally.nabs / spw,
            multiplications_per_window=tally.multiplications, additions_per_window=tally.additions,
            bop_per_window=tally.bop, nabs_per_window=tally.nabs, activations_per_window=tally.activations,
            n_weights=n_w, n_nonzero=n_nz, n_distinct=n_d))
    tot = {key: sum(getattr(r, key) for r in results)
           for key in ("multiplications_per_window", "additions_per_window", "bop_per_window", "nabs_per_window",
                       "activations_per_window", "n_weights", "n_nonzero", "n_distinct")}
    return ModelComplexity(
        rmps=tot["multiplications_per_window"] / spw, additions=tot["additions_per_window"] / spw,
        bop=tot["bop_per_window"] / spw, nabs=tot["nabs_per_window"] / spw, symbols_per_window=spw,
        weight_bits=bw, activation_bits=ba, quantized=not (weight_bits is None and activation_bits is None),
        activation_multiplications=act_mult, layers=tuple(results), **tot)


def _chain(model) -> list:
    """The layers of a model whose graph is a chain (each layer consumes the previous one's output)."""
    keras = _keras()
    if isinstance(model, keras.Sequential):
        out = []
        for layer in model.layers:
            out.extend(_chain(layer) if isinstance(layer, keras.Model) else [layer])
        return out
    layers = model.layers
    for prev, layer in zip(layers[:-1], layers[1:]):
        if getattr(layer, "input", None) is not getattr(prev, "output", None):
            raise ComplexityError("count_multiplications_reference supports models whose layers form a chain "
                                  f"(layer {layer.name!r} does not take the output of {prev.name!r})")
    out = []
    for layer in layers:
        out.extend(_chain(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def count_multiplications_reference(model, window, activation_multiplications: int = 0,
                                    shift_add_bits: Optional[int] = None,
                                    pow2_terms: Optional[int] = None) -> ReferenceCount:
    """Run the model on one window in NumPy (float64), counting every operation it performs.

    Matrix-vector products follow the rule of the module docstring literally: for each input, a table of its
    products with each distinct non-zero weight is filled (one multiplication each), and each output sums the
    looked-up products of its non-zero weights and its non-zero bias (one addition per term after the first).
    LSTM steps, Bidirectional merges and Conv1D positions are performed one by one; each evaluation of a non-free
    activation adds ``activation_multiplications``.

    Args:
        model: as for :func:`model_complexity`, with layers forming a chain.
        window: one input window, shape ``model.input_shape[1:]`` (or with a leading batch axis of 1); a variable
            (None) axis of the model takes the window's length (e.g. one inference block of a sequence model).
        activation_multiplications: cost of one non-free activation evaluation, integer >= 0.
        shift_add_bits: None, or ``b_w``: every product of a Dense, LSTM or GRU input by
            a weight is performed as shifts and adds of the input by the canonical signed digits of the weight's
            integer on its ``b_w``-bit grid (the uniform grid, or with ``pow2_terms`` the power-of-two grid), then
            scaled by the tensor's scale (not counted), and the shifts and their additions are counted in
            ``shifts`` and ``shift_additions`` (for a model of Dense layers with free activations, ``shifts +
            shift_additions + additions`` is the NABS per window of :func:`model_complexity`).
        pow2_terms: the terms of the power-of-two grid (with ``shift_add_bits``), or None.

    Returns: :class:`ReferenceCount` (output and counts of this one window).
    """
    _check_model(model)
    act_mult = check_count("activation_multiplications", activation_multiplications, 0)
    layers = _chain(model)
    types = [_check_supported(layer) for layer in layers]
    expected = tuple(model.input_shape[1:])
    x = np.asarray(window, dtype=np.float64)
    if x.ndim == len(expected) + 1 and x.shape[0] == 1:
        x = x[0]
    if len(x.shape) != len(expected) or any(e is not None and e != d for d, e in zip(x.shape, expected)):
        raise ComplexityError(f"window: shape {x.shape} does not match the model input {expected}")
    terms = _check_pow2_terms(pow2_terms, shift_add_bits)
    counter = Counter(None if shift_add_bits is None else check_bits("shift_add_bits", shift_add_bits), terms)
    for layer, layer_type in zip(layers, types):
        x = layer_type.reference(counter, layer, x)
    return ReferenceCount(output=x, multiplications=counter.multiplications + act_mult * counter.activations,
                          additions=counter.additions, activations=counter.activations, shifts=counter.shifts,
                          shift_additions=counter.shift_additions)

