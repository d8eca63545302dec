"""What the compression library offers, by name, without TensorFlow: the one source of the names and settings that
a configuration is checked against before any work (the ``[compression]`` table of a study or ``eqnn compress``,
:mod:`eqnn.studies.compression_config`).

- :data:`METHODS`: the pruning methods, ``{name: MethodSpec}`` in registration order (a search's categorical
  choices): their capability flags, the model types they prune, their options (names, defaults, types and ranges,
  :class:`OptionTable`) and what they need (fine-tuning, calibration data). The registry of
  :mod:`eqnn.compression.pruning` builds each built-in :class:`eqnn.compression.PruningMethod` from its spec here
  (:meth:`eqnn.compression.PruningMethod.from_catalog`, adding only the TensorFlow code: ``prunable`` and ``apply``)
  and refuses one that disagrees; a method registered from elsewhere is added here too, so both always hold the
  same methods.
- :data:`SCHEDULES`, :data:`CLUSTER_INITS`, :data:`QUANTIZE_MODES`, :data:`QUANTIZE_GRIDS`, :data:`IMPORTANCES`:
  the names of the pruning schedules, centroid initializations, quantization modes and grids, and filter
  importances; bit widths and scopes are :mod:`eqnn.limits`'.

An option table checks ``options`` (a dict) into the options completed with their defaults, or raises a one-line
``ValueError`` naming ``method.key``, the value and what is allowed, e.g. ``lottery_ticket.rounds = 0 is out of
range: allowed integers in [1, 100]``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
from collections.abc import Callable, Mapping
from typing import Any, Optional

from channel.validation import check_choice, check_int, check_number

from ..limits import FLOAT_BITS, MAX_BITS, MIN_BITS, SCOPES

__all__ = ["CLUSTER_INITS", "FLOAT_BITS", "IMPORTANCES", "MAX_BITS", "METHODS", "MIN_BITS", "MethodSpec", "Option",
           "OptionTable", "QUANTIZE_GRIDS", "QUANTIZE_MODES", "SCHEDULES", "SCOPES", "add_method", "remove_method"]

SCHEDULES = ("constant", "polynomial")
CLUSTER_INITS = ("kmeans++", "linear", "density", "random")
QUANTIZE_MODES = ("ptq", "qat", "obq")
QUANTIZE_GRIDS = ("uniform", "pow2")
IMPORTANCES = ("l1", "taylor")  # of a Conv1D filter ("filters" pruning)
CRITERIA = ("outgoing", "incoming")  # unit ranking of "structured" / "gradual_structured"
GATE_LEVELS = ("weights", "gates", "neurons")  # groups of "gates"
REWINDS = ("weights", "learning_rate")  # of "lottery_ticket"
ONE_CYCLE_RATES = ("one_cycle", "constant")  # learning rate of "one_cycle"
LDBP_MODES = ("magnitude", "edges")  # of "ldbp_taps"


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of a pruning method: its default and the values it allows: one of ``choices`` (strings), or a
    number (an integer if ``integer``; an integral float, e.g. from a search, is taken as one) in the interval
    from ``low`` to ``high`` (None: unbounded; ``*_open``: the bound excluded)."""

    default: Any
    choices: tuple[str, ...] = ()
    integer: bool = False
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False

    def check(self, key: str, value: Any) -> Any:
        """``value`` checked (as a ``str``, ``int`` or ``float``), or a ValueError naming ``key``."""
        if self.choices:
            return check_choice(key, value, list(self.choices), error=ValueError)
        if self.integer:
            if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and math.isfinite(value) \
                    and float(value).is_integer():
                value = int(value)
            return check_int(key, value, self.low, self.high, error=ValueError)
        return check_number(key, value, self.low, self.high, low_open=self.low_open, high_open=self.high_open,
                            error=ValueError)


@dataclasses.dataclass(frozen=True)
class OptionTable:
    """The options of pruning method ``method``, ``{key: Option}``; calling it checks a dict of options (unknown
    keys are errors) and returns it completed with the defaults, in this table's order."""

    method: str
    options: Mapping[str, Option] = dataclasses.field(default_factory=dict)

    def __call__(self, options: Mapping[str, Any]) -> dict:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"{self.method}: unknown option(s) {unknown}: allowed "
                             f"{', '.join(sorted(self.options)) or 'none'}")
        out = {key: option.default for key, option in self.options.items()}
        out.update(options)
        return {key: option.check(f"{self.method}.{key}", out[key]) for key, option in self.options.items()}

    def __hash__(self) -> int:
        return hash((self.method, tuple(self.options.items())))

    @property
    def defaults(self) -> dict:
        return {key: option.default for key, option in self.options.items()}


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """A pruning method as a configuration sees it: every field of a :class:`eqnn.compression.PruningMethod` but its
    TensorFlow code (``prunable``, ``apply``); that class documents each one. ``model_types``: the built-in model
    types (:data:`eqnn.models.MODEL_TYPES`, at their default sizes) in which the method finds layers to prune (()
    for a method registered from elsewhere: not stated)."""

    name: str
    description: str = ""
    structured: bool = False
    supports_global_scope: bool = False
    needs_fine_tune: bool = False
    check_options: Optional[Callable[[Mapping[str, Any]], dict]] = None
    option_names: tuple[str, ...] = ()
    check_fine_tune: Optional[Callable[[Mapping[str, Any], int], None]] = None
    needs_calibration: Optional[Callable[[Mapping[str, Any]], bool]] = None
    stands_for: tuple[str, ...] = ()
    model_types: tuple[str, ...] = ()

    @property
    def options(self) -> Optional[Mapping[str, Option]]:
        """The method's options ``{key: Option}`` if they are declared here (an :class:`OptionTable`), else None."""
        return self.check_options.options if isinstance(self.check_options, OptionTable) else None


# ----------------------------------------------------------------------------------------------- the methods

def _always(options: Mapping[str, Any]) -> bool:
    return True


def _taylor(options: Mapping[str, Any]) -> bool:
    return options["importance"] == "taylor"


def lottery_ticket_phases(options: Mapping[str, Any]) -> int:
    """Training phases of "lottery_ticket": ``rounds``, and the dense training first with ``rewind="weights"``."""
    return options["rounds"] + (1 if options["rewind"] == "weights" else 0)


def _lottery_ticket_budget(options: Mapping[str, Any], epochs: Optional[int]) -> None:
    """One fine-tuning epoch at least per training phase of "lottery_ticket"."""
    phases = lottery_ticket_phases(options)
    if epochs is not None and epochs < phases:
        raise ValueError(f"lottery_ticket: fine-tuning epochs = {epochs} is fewer than its {phases} training phases "
                         f"(rewind = {options['rewind']!r}, rounds = {options['rounds']}): allowed epochs >= {phases}")


_NEURAL = ("mlp", "lstm", "bilstm", "gru", "bigru", "cnn_bilstm", "sequence")
_CALIBRATION_SAMPLES = Option(1024, integer=True, low=1)


def _spec(name: str, description: str, model_types: tuple[str, ...], options: Mapping[str, Option],
          **flags) -> MethodSpec:
    return MethodSpec(name, description, check_options=OptionTable(name, dict(options)), option_names=tuple(options),
                      model_types=model_types, **flags)


_BUILTIN = (
    _spec("magnitude", "unstructured low-magnitude pruning of kernels and recurrent kernels (TFMOT "
          "prune_low_magnitude)", _NEURAL, {}, supports_global_scope=True),
    _spec("structured", "removes whole units (Dense neurons, Conv1D filters, LSTM units) with the smallest L2 norm; "
          "smaller model", _NEURAL, {"criterion": Option("outgoing", CRITERIA)}, structured=True),
    _spec("obc", "Optimal Brain Compression: exact OBS pruning per output row on calibration windows (Dense, Conv1D, "
          "LSTM, GRU)", _NEURAL,
          {"calibration_samples": _CALIBRATION_SAMPLES, "damping": Option(0.01, low=0.0)},
          needs_calibration=_always),
    _spec("filters", "removes whole Conv1D filters of least L1 norm or first-order Taylor importance (and the inputs "
          "reading them); smaller model", ("cnn_bilstm",),
          {"importance": Option("l1", IMPORTANCES), "calibration_samples": _CALIBRATION_SAMPLES},
          structured=True, needs_calibration=_taylor),
    _spec("gates", "structured sparsity of LSTM gates (Lobacheva et al. 2020): group lasso and group magnitude "
          "pruning of weights, gate pre-activations (constant gates) or neurons", ("lstm", "bilstm", "cnn_bilstm",
                                                                                   "sequence"),
          {"level": Option("gates", GATE_LEVELS), "penalty": Option(1e-4, low=0.0)}),
    _spec("lottery_ticket", "iterative magnitude pruning over rounds, rewinding the survivors to early weights "
          "(Frankle & Carbin) or the learning rate (linear decay, Zimmer et al.) before each retraining",
          _NEURAL + ("ldbp",),
          {"rewind": Option("learning_rate", REWINDS), "rounds": Option(2, integer=True, low=1, high=100),
           "rewind_at": Option(0.1, low=0.0, high=1.0, high_open=True)},
          needs_fine_tune=True, check_fine_tune=_lottery_ticket_budget),
    _spec("one_cycle", "unstructured magnitude pruning during one training run from a fresh initialization, on a "
          "one-cycle (logistic) sparsity schedule (Hubens et al. 2022)", _NEURAL + ("ldbp",),
          {"alpha": Option(14.0, low=0.0, high=100.0, low_open=True), "beta": Option(5.0, low=-100.0, high=100.0),
           "learning_rate": Option("one_cycle", ONE_CYCLE_RATES)}, needs_fine_tune=True),
    _spec("gradual_structured", "removes whole units (neurons, filters, LSTM units) gradually while training "
          "(masked, then removed); smaller model, no separate fine-tuning", _NEURAL,
          {"criterion": Option("outgoing", CRITERIA), "updates": Option(8, integer=True, low=1, high=1000),
           "ramp": Option(0.7, low=0.0, high=1.0, low_open=True)}, structured=True, needs_fine_tune=True),
    _spec("ldbp_taps", "learned DBP: the complex FIR taps of smallest magnitude set to zero (options mode='edges': "
          "the outermost taps removed)", ("ldbp",), {"mode": Option("magnitude", LDBP_MODES)},
          supports_global_scope=True, stands_for=("magnitude",)),
    _spec("ldbp_edges", "learned DBP: the outermost taps of each complex FIR removed (shorter filters)", ("ldbp",), {},
          structured=True, stands_for=("structured",)),
)

BUILTIN: Mapping[str, MethodSpec] = types.MappingProxyType({spec.name: spec for spec in _BUILTIN})
METHODS: dict[str, MethodSpec] = dict(BUILTIN)


def add_method(spec: MethodSpec) -> MethodSpec:
    """Add (or replace) a method in :data:`METHODS` (the registry does this when a method is registered); a built-in
    name must keep its spec (ValueError otherwise)."""
    if not isinstance(spec, MethodSpec):
        raise TypeError("add_method takes a MethodSpec")
    if spec.name in BUILTIN and spec != BUILTIN[spec.name]:
        raise ValueError(f"pruning method {spec.name!r} disagrees with its catalog entry "
                         f"(eqnn.compression.catalog.BUILTIN[{spec.name!r}]): build it with PruningMethod.from_catalog")
    METHODS[spec.name] = spec
    return spec


def remove_method(name: str) -> None:
    """Remove a method from :data:`METHODS` (when it is unregistered)."""
    METHODS.pop(name, None)
