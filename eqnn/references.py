"""The DSP references every NN is compared with: the cost of CDC and of each DBP variant, and their Q on the symbols
an equalizer is evaluated on.

- :func:`dsp_complexity`: the one place that counts CDC and DBP-k of a link (at the DBP oversampling, as
  ``eqnn simulate``, ``eqnn train``, ``eqnn compress`` and ``eqnn run`` all report them).
- :func:`dsp_costs`: the same as plain dicts (RMpS, BoP, NABS, bits) for the variants of a transmission.
- :func:`reference_points`: ``{"CDC": (rmps, q_db), "DBP-k": ...}`` of a test transmission.
"""

from __future__ import annotations

from typing import Iterable, Optional

from channel import LinkConfig, Transmission, evaluate_symbols

from .complexity import cdc_complexity, dbp_complexity
from .data import window_centres

__all__ = ["dsp_complexity", "dsp_costs", "reference_points"]


def dsp_complexity(link: LinkConfig, steps_per_span: Optional[Iterable[int]] = None) -> dict:
    """``{"CDC": Complexity, "DBP-k": Complexity, ...}`` of ``link`` at its DBP oversampling
    (``receiver.dbp_samples_per_symbol``).

    Args:
        link: the link (its receiver gives the oversampling and, by default, the DBP variants).
        steps_per_span: the DBP variants k to count; None: ``link.receiver.dbp_steps_per_span``.
    """
    sps = link.receiver.dbp_samples_per_symbol
    steps = link.receiver.dbp_steps_per_span if steps_per_span is None else steps_per_span
    out = {"CDC": cdc_complexity(link, samples_per_symbol=sps)}
    out.update({f"DBP-{k}": dbp_complexity(link, k, samples_per_symbol=sps) for k in steps})
    return out


def dsp_costs(test_transmission: Transmission) -> dict[str, dict]:
    """RMpS, BoP and NABS of CDC and of each DBP variant of ``test_transmission`` (at the DBP oversampling, as
    ``eqnn simulate`` reports them)."""
    costs = dsp_complexity(test_transmission.config, sorted(test_transmission.rx_dbp))
    return {c.name: {"rmps": c.rmps, "bop": c.bop, "nabs": c.nabs, "bits": c.bits} for c in costs.values()}


def reference_points(test_transmission: Transmission, equalizer=None) -> dict[str, tuple[float, float]]:
    """``{"CDC": (rmps, q_db), "DBP-k": ...}`` of the test transmission: RMpS from :mod:`eqnn.complexity` (at the
    DBP oversampling, as ``eqnn simulate`` reports), Q the best available (from BER, else from SNR).

    Q is that of ``test_transmission.metrics`` (the whole block), or, with ``equalizer`` (an
    :class:`eqnn.train.Equalizer`), measured on the symbols the equalizer is evaluated on (its window centres and
    target polarizations), as :func:`eqnn.train.evaluate`.
    """
    if not isinstance(test_transmission, Transmission):
        raise TypeError(f"test_transmission must be a channel.Transmission, got {type(test_transmission).__name__}")
    rmps = {method: cost["rmps"] for method, cost in dsp_costs(test_transmission).items()}
    if equalizer is None:
        metrics = test_transmission.metrics
    else:
        dc = equalizer.data_config
        pols = list(dc.polarizations)
        centres = window_centres(test_transmission.rx_cdc.shape[-1], int(dc.taps), int(dc.guard_symbols))
        tx = test_transmission.tx_indices[pols][:, centres]
        received = {"CDC": test_transmission.rx_cdc, **{f"DBP-{k}": v for k, v in test_transmission.rx_dbp.items()}}
        metrics = {m: evaluate_symbols(rx[pols][:, centres], tx, test_transmission.modulation)
                   for m, rx in received.items()}
    return {m: (float(rmps[m]), float(metrics[m].q_db_best)) for m in rmps if m in metrics}
