"""The registry of layer types: everything complexity counting and compression need to know about one layer type.

A :class:`LayerType` says, for the layers it ``matches``:

- **complexity** (:mod:`eqnn.complexity`): ``tally(tally, layer) -> kernels`` counts the operations of one window
  with the formulas of :mod:`eqnn.complexity` on a :class:`eqnn.complexity.counting.Tally` and returns the
  multiplicative weight arrays it counted; ``reference(counter, layer, x) -> y`` performs the layer on one window
  ``x`` (float64, no batch axis) counting every operation on a :class:`~eqnn.complexity.counting.Counter`;
  ``check(layer)`` raises :class:`~eqnn.complexity.counting.ComplexityError` for a variant it cannot cost (or
  returns False: "not supported"). ``tally=None``: the type cannot be costed. ``free_names``: arithmetic-free class
  names (listed in errors).
- **structured pruning** (:mod:`eqnn.compression.pruning.structured`): ``structure`` is ``"units"`` (its output
  units / filters can be removed; then ``units``, ``resize``, ``in_norms``, ``out_norms``, ``slice_in``,
  ``slice_out`` are given, and ``structured(layer)`` tells whether this very layer qualifies), ``"pass"`` (no
  weights, acts on each feature separately), ``"flatten"``, ``"per_feature"`` (weights indexed by the input
  feature, e.g. BatchNormalization: only ``slice_in``), or ``"none"`` (a chain containing it cannot be pruned
  structurally). ``in_norms(layer, weights)``: squared L2 norm of the weights reading each input feature;
  ``out_norms``: of each unit's incoming weights and bias; ``slice_in(layer, weights, keep)`` /
  ``slice_out(layer, weights, keep)``: the weights with only the kept input features / output units;
  ``choose_keep(layer, scores, n_keep, top)`` and ``kept_features(layer, keep)`` (default: ``top(scores)`` and
  ``keep``) for layers whose units are not their output features one to one (Bidirectional).
- **quantization and TFMOT** (:mod:`eqnn.compression`): ``qat(layer)``: the k-bit QAT config can annotate it;
  ``recurrent(layer)``: its RNN layers (their ``cell.kernel``, ``cell.recurrent_kernel`` are quantized and their
  fused kernel is switched off); ``prune_parts(layer)``: the layers TFMOT's prune registry must support for
  magnitude pruning (default ``[layer]``); ``prunable_weights(layer)``: if given, magnitude pruning wraps the layer
  in a subclass implementing TFMOT's ``PrunableLayer`` with these weights; ``kind(layer)``: the type shown in
  reports; ``weight_names``: names of its multiplicative weights besides the kernels (``kernel``,
  ``recurrent_kernel``, ...), which pruning, clustering and quantization then treat as kernels (learned DBP's
  phase ``scale`` and ``power_filter``).

Lookup (:func:`find_layer_type`) tries the most recently registered type first, so a new module can refine a
built-in type. Adding a layer type (e.g. SimpleRNN) is one module calling :func:`register_layer_type`; remove it with
:func:`unregister_layer_type`. This module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

STRUCTURES = ("units", "pass", "flatten", "per_feature", "none")


def _no_cells(layer) -> list:
    return []


@dataclass(frozen=True)
class LayerType:
    """One layer type; see the module docstring for every hook."""

    name: str
    matches: Callable[[Any], bool]
    tally: Optional[Callable] = None
    reference: Optional[Callable] = None
    check: Optional[Callable] = None
    free_names: tuple = ()
    structure: str = "none"
    structured: Optional[Callable[[Any], bool]] = None
    units: Optional[Callable[[Any], int]] = None
    resize: Optional[Callable[[Any, int], dict]] = None
    in_norms: Optional[Callable] = None
    out_norms: Optional[Callable] = None
    slice_in: Optional[Callable] = None
    slice_out: Optional[Callable] = None
    choose_keep: Optional[Callable] = None
    kept_features: Optional[Callable] = None
    qat: Optional[Callable[[Any], bool]] = None
    recurrent: Callable[[Any], list] = _no_cells
    prune_parts: Optional[Callable[[Any], list]] = None
    prunable_weights: Optional[Callable[[Any], list]] = None
    kind: Optional[Callable[[Any], str]] = None
    weight_names: tuple = ()

    def __post_init__(self):
        if self.structure not in STRUCTURES:
            raise ValueError(f"LayerType {self.name!r}: structure = {self.structure!r}; allowed {STRUCTURES}")
        if self.structure == "units" and None in (self.units, self.resize, self.in_norms, self.out_norms,
                                                  self.slice_in, self.slice_out):
            raise ValueError(f"LayerType {self.name!r}: structure 'units' needs units, resize, in_norms, out_norms, "
                             "slice_in and slice_out")


LAYER_TYPES: dict[str, LayerType] = {}


def register_layer_type(layer_type: LayerType) -> LayerType:
    """Add (or replace, by name) a layer type; it is tried before the ones registered earlier."""
    if not isinstance(layer_type, LayerType):
        raise TypeError("register_layer_type takes a LayerType")
    LAYER_TYPES.pop(layer_type.name, None)
    LAYER_TYPES[layer_type.name] = layer_type
    return layer_type


def unregister_layer_type(name: str) -> None:
    """Remove a layer type (a test that registers a toy type cleans up with this)."""
    LAYER_TYPES.pop(name, None)


def find_layer_type(layer) -> Optional[LayerType]:
    """The most recently registered type that matches ``layer``, or None."""
    for layer_type in reversed(list(LAYER_TYPES.values())):
        if layer_type.matches(layer):
            return layer_type
    return None


def layer_kind(layer) -> str:
    """The type of ``layer`` as reports show it (e.g. ``"Bidirectional(LSTM)"``)."""
    layer_type = find_layer_type(layer)
    if layer_type is not None and layer_type.kind is not None:
        return layer_type.kind(layer)
    return type(layer).__name__


def recurrent_layers(layer) -> list:
    """The RNN layers inside ``layer`` (itself for an LSTM, both directions for a Bidirectional), else []."""
    layer_type = find_layer_type(layer)
    return list(layer_type.recurrent(layer)) if layer_type is not None else []


def structure_of(layer) -> str:
    """The structured-pruning role of ``layer`` (:data:`STRUCTURES`); "units" only if this layer qualifies."""
    layer_type = find_layer_type(layer)
    if layer_type is None:
        return "none"
    if layer_type.structure == "units" and layer_type.structured is not None and not layer_type.structured(layer):
        return "none"
    return layer_type.structure


def slice_output_axis(layer, weights: list, keep) -> list:
    """``slice_out`` of a layer whose kernel's last axis and bias index its output units (Dense, Conv1D)."""
    return [weights[0][..., keep]] + ([weights[1][keep]] if len(weights) > 1 else [])


def resize_config_key(key: str):
    """A ``resize`` hook that sets config ``key`` (``"units"``, ``"filters"``) to the number of kept units."""
    def resize(layer, n_keep: int) -> dict:
        config = layer.get_config()
        config[key] = n_keep
        return config
    return resize
