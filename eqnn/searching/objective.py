"""The scalar the optimizer minimizes: :class:`Objective` (constrained or weighted)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Mapping

from .files import COSTS, MODES
from .space import _is_real

# --------------------------------------------------------------------------------------------- objective


def _finite(name: str, value, what: str) -> float:
    if not _is_real(value) or not math.isfinite(float(value)):
        raise ValueError(f"{what}: {name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Objective:
    """How ``evaluate``'s Q (dB) and RMpS become the scalar that the optimizer minimizes (see the module doc).

    ``mode``: "constrained" (minimize RMpS subject to ``q_db >= q_target``; ``q_target`` required) or "weighted"
    (``weight`` * log10 RMpS/R0 - (1 - ``weight``) * Q gain / ``q_scale``). ``rmps_reference`` (R0) normalizes
    RMpS: required for "constrained", where it is the cost ceiling (the uncompressed model's RMpS); None means 1
    in "weighted", where it only shifts y. ``q_scale`` (dB) normalizes Q differences.

    ``cost``: the metric that plays the part of RMpS in both modes, one of :data:`COSTS`: "rmps" (default), "bop"
    (bit operations per symbol: rewards fewer weight and activation bits) or "nabs" (additions and bit shifts per
    symbol); ``metrics[cost]`` must then be a finite number > 0, and ``rmps_reference`` is in its unit (e.g. the
    uncompressed model's BoP). The Pareto front and the plots stay in RMpS.
    """

    mode: str = "constrained"
    q_target: float | None = None
    weight: float = 0.5
    rmps_reference: float | None = None
    q_scale: float = 1.0
    cost: str = "rmps"

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"Objective: unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.cost not in COSTS:
            raise ValueError(f"Objective: cost = {self.cost!r}; allowed {', '.join(map(repr, COSTS))}")
        if self.q_target is not None:
            object.__setattr__(self, "q_target", _finite("q_target", self.q_target, "Objective"))
        elif self.mode == "constrained":
            raise ValueError("Objective: mode 'constrained' needs q_target (the minimum Q-factor in dB)")
        weight = _finite("weight", self.weight, "Objective")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"Objective: weight must be in [0, 1], got {weight}")
        object.__setattr__(self, "weight", weight)
        if self.rmps_reference is None:
            if self.mode == "constrained":
                raise ValueError(
                    "Objective: mode 'constrained' needs rmps_reference (the RMpS ceiling: the RMpS of the "
                    "uncompressed model)"
                )
        else:
            ref = _finite("rmps_reference", self.rmps_reference, "Objective")
            if ref <= 0:
                raise ValueError(f"Objective: rmps_reference must be > 0, got {ref}")
            object.__setattr__(self, "rmps_reference", ref)
        q_scale = _finite("q_scale", self.q_scale, "Objective")
        if q_scale <= 0:
            raise ValueError(f"Objective: q_scale must be > 0 dB, got {q_scale}")
        object.__setattr__(self, "q_scale", q_scale)

    @classmethod
    def constrained(cls, q_target: float, rmps_reference: float, *, q_scale: float = 1.0, cost: str = "rmps"):
        """Minimize RMpS (or ``cost``) subject to Q >= ``q_target`` dB; ``rmps_reference``: e.g. the uncompressed
        model's RMpS (its ``cost``)."""
        return cls("constrained", q_target=q_target, rmps_reference=rmps_reference, q_scale=q_scale, cost=cost)

    @classmethod
    def weighted(
        cls,
        weight: float = 0.5,
        *,
        rmps_reference: float | None = None,
        q_scale: float = 1.0,
        q_target: float | None = None,
        cost: str = "rmps",
    ):
        """Minimize ``weight`` * log10(RMpS/R0) - (1 - ``weight``) * (Q - q_ref) / ``q_scale`` (RMpS or ``cost``)."""
        return cls("weighted", q_target=q_target, weight=weight, rmps_reference=rmps_reference, q_scale=q_scale,
                   cost=cost)

    def spec(self) -> dict:
        """The objective's part of a study's spec; ``cost`` only when it is not "rmps" (so the spec of an RMpS
        study is the one it always was, and its folder resumes)."""
        spec = dataclasses.asdict(self)
        if self.cost == "rmps":
            del spec["cost"]
        return spec

    def feasible(self, metrics: Mapping) -> bool | None:
        """``q_db >= q_target``, or None without a ``q_target``."""
        if self.q_target is None:
            return None
        return bool(float(metrics["q_db"]) >= self.q_target)

    def value(self, metrics: Mapping) -> float:
        """The scalar to minimize for ``metrics`` (``q_db``, ``rmps`` or the ``cost``), see the module
        documentation."""
        ref = self.rmps_reference if self.rmps_reference is not None else 1.0
        q = _finite("q_db", metrics.get("q_db"), "Objective.value")
        rmps = _finite(self.cost, metrics.get(self.cost), "Objective.value")
        if rmps <= 0:
            raise ValueError(f"Objective.value: {self.cost} must be > 0, got {rmps}")
        u = math.log10(rmps / float(ref))
        if self.mode == "constrained":
            if q >= self.q_target:
                v = min(u, 0.0)
                return v / (1.0 + abs(v))
            shortfall = (self.q_target - q) / self.q_scale
            return shortfall / (1.0 + shortfall)
        q_ref = self.q_target if self.q_target is not None else 0.0
        return self.weight * u - (1.0 - self.weight) * (q - q_ref) / self.q_scale
