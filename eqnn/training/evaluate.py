"""Evaluation of NN equalizers on a test transmission, next to CDC and DBP on the very same symbols.

- :func:`evaluate`: BER, Q and effective SNR of the equalized test symbols (same window centres, same
  polarizations for every method).
- :class:`Evaluation`: the metrics of one test transmission; :meth:`Evaluation.q_rows` as
  :class:`eqnn.records.QRow` records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

from channel import Metrics, Transmission, evaluate_symbols
from channel.receiver import complex_gain, normalize

from ..data import DataConfig, Normalization
from ..keras2 import keras  # tf_keras, imported on first use
from ..models import check_keras_model
from ..records import QRow
from .equalizer import Equalizer

__all__ = ["BareModel", "Evaluation", "evaluate"]


@dataclass
class Evaluation:
    """Metrics of one test transmission, every method on the same symbols.

    Attributes:
        launch_power_dbm: of the transmission.  seed: its transmitter seed.
        polarizations: "x" or "x,y": the polarizations evaluated (the NN's targets).
        n_symbols: symbols evaluated per polarization (the window centres).
        centre_range: (first, last) block index of the evaluated symbols.
        metrics: {method: channel.Metrics}: the NN(s) first, then "CDC" and "DBP-k".
        nn_gain: {NN name: complex gain removed per polarization, as [re, im]}.
    """

    launch_power_dbm: float
    seed: int
    polarizations: str
    n_symbols: int
    centre_range: tuple[int, int]
    metrics: dict[str, Metrics]
    nn_gain: dict[str, list] = field(default_factory=dict)

    def q_rows(self) -> list[QRow]:
        """One :class:`eqnn.records.QRow` per method, in the order of ``metrics``."""
        return [QRow.from_metrics(self.launch_power_dbm, method, m, self.polarizations, self.n_symbols)
                for method, m in self.metrics.items()]

    def rows(self) -> list[dict]:
        """One flat dict per method (the columns of results.csv, without RMpS)."""
        return [r.to_dict(with_rmps=False) for r in self.q_rows()]

    def to_dict(self) -> dict:
        return {"launch_power_dbm": self.launch_power_dbm, "seed": self.seed, "polarizations": self.polarizations,
                "n_symbols": self.n_symbols, "centre_range": list(self.centre_range),
                "metrics": {k: m.to_dict() for k, m in self.metrics.items()}, "nn_gain": self.nn_gain}


def evaluate(model: Union[Equalizer, keras.Model, Sequence[Equalizer]], transmission: Transmission,
             data_config: Optional[DataConfig] = None, normalization: Optional[Normalization] = None,
             name: str = "NN", batch_size: int = 8192, gain_normalize: bool = True,
             references: bool = True) -> Evaluation:
    """Equalize the test ``transmission`` and compare with CDC and DBP on the same symbols.

    Args:
        model: an :class:`Equalizer` (or a list of them, evaluated on the same symbols: they must use
            the same taps/guard/polarizations), or a bare ``tf_keras.Model`` together with
            ``data_config`` and ``normalization`` (the ones it was trained with).
        transmission: the test transmission (a seed not used for training).
        name: method label of a bare model.
        gain_normalize: remove one least-squares complex gain per polarization from the NN output
            against the transmitted symbols (data-aided, as ``channel`` does for CDC and DBP). An
            MSE-trained output is shrunk towards 0 by the noise; without this, hard decisions on the
            unit-energy grid would be biased.
        references: also report "CDC" and every "DBP-k" present in ``transmission.rx_dbp``.

    Returns: an :class:`Evaluation`; every method is evaluated on the transmitted symbols of the window
    centres (``channel.evaluate_symbols``), x polarization only unless the data has both.
    """
    if isinstance(model, Equalizer):
        items = [model]
    elif isinstance(model, (list, tuple)):
        items = list(model)
        if not items or not all(isinstance(m, Equalizer) for m in items):
            raise TypeError("a list given as model must hold Equalizer objects")
    else:
        check_keras_model(model)
        if data_config is None or normalization is None:
            raise ValueError("evaluate(bare tf_keras model, ...) needs data_config and normalization")
        resolved = data_config.resolved(transmission.config)
        items = [Equalizer(model=model, model_config=_bare_config(name), data_config=resolved,
                           normalization=normalization)]
    if not isinstance(transmission, Transmission):
        raise TypeError(f"transmission must be a channel.Transmission, got {type(transmission).__name__}")
    geometry = {(e.data_config.taps, e.data_config.guard_symbols, e.data_config.both_polarizations) for e in items}
    if len(geometry) != 1:
        raise ValueError(f"equalizers evaluated together must share taps, guard and polarizations, got {geometry}")
    names = [e.name for e in items]
    if len(set(names)) != len(names):
        raise ValueError(f"equalizer names must be distinct, got {names}")

    pols = list(items[0].data_config.polarizations)
    metrics: dict[str, Metrics] = {}
    gains: dict[str, list] = {}
    centres = None
    for eq in items:
        # windows or overlapping blocks (a sequence model): the same centres for every item (same taps/guard)
        y, centres = eq.predict_transmission(transmission, batch_size)
        bad = int(np.count_nonzero(~np.isfinite(y)))
        if bad:
            raise ValueError(f"equalizer {eq.name!r} gave {bad} non-finite outputs (NaN/inf) of {y.size} on the test "
                             f"transmission: its weights or its input are not usable")
        tx_sym = transmission.tx_symbols[pols][:, centres]
        if gain_normalize:
            g = complex_gain(y, tx_sym)
            gains[eq.name] = [[float(v.real), float(v.imag)] for v in g]
            y = normalize(y, tx_sym)
        metrics[eq.name] = evaluate_symbols(y, transmission.tx_indices[pols][:, centres], transmission.modulation)
    tx_idx = transmission.tx_indices[pols][:, centres]
    if references:
        metrics["CDC"] = evaluate_symbols(transmission.rx_cdc[pols][:, centres], tx_idx, transmission.modulation)
        for k in sorted(transmission.rx_dbp):
            metrics[f"DBP-{k}"] = evaluate_symbols(transmission.rx_dbp[k][pols][:, centres], tx_idx,
                                                   transmission.modulation)
    return Evaluation(launch_power_dbm=transmission.config.transmitter.launch_power_dbm,
                      seed=transmission.config.transmitter.seed, polarizations=",".join("xy"[p] for p in pols),
                      n_symbols=int(centres.size), centre_range=(int(centres[0]), int(centres[-1])),
                      metrics=metrics, nn_gain=gains)


@dataclass(frozen=True)
class BareModel:
    """The architecture record of a bare ``tf_keras`` model evaluated without its config: a label only (the
    model may be of any family; nothing here claims which).

    Attributes:
        name: the method label of the model in the evaluation.
        type: "keras": not one of the :mod:`eqnn.models` families.
    """

    name: str = "NN"
    type: str = "keras"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"evaluate(name={self.name!r}): the label of a bare model must be a non-empty string")


def _bare_config(name: str) -> BareModel:
    return BareModel(name=name)
