"""The search space: :class:`Integer`, :class:`Real` and :class:`Categorical` dimensions."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence, Union

import numpy as np

# --------------------------------------------------------------------------------------------- search space


def _check_name(kind: str, name) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{kind} dimension: name must be a non-empty string, got {name!r}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class Integer:
    """An integer in ``[low, high]`` (both included), drawn uniformly."""

    name: str
    low: int
    high: int

    def __post_init__(self):
        _check_name("Integer", self.name)
        if not (_is_int(self.low) and _is_int(self.high)):
            raise ValueError(f"Integer {self.name!r}: low and high must be integers, got {self.low!r}, {self.high!r}")
        object.__setattr__(self, "low", int(self.low))
        object.__setattr__(self, "high", int(self.high))
        if self.low >= self.high:
            raise ValueError(f"Integer {self.name!r}: low must be < high, got low={self.low}, high={self.high}")

    def spec(self) -> dict:
        return {"type": "Integer", "name": self.name, "low": self.low, "high": self.high}

    def _skopt(self):
        from skopt.space import Integer as SkInteger

        return SkInteger(self.low, self.high, name=self.name)

    def _to_param(self, x) -> int:
        return int(x)

    def _to_skopt(self, value) -> int:
        return int(value)

    def contains(self, value) -> bool:
        return _is_int(value) and self.low <= value <= self.high


@dataclass(frozen=True)
class Real:
    """A float in ``[low, high]``, drawn uniformly or log-uniformly (``prior="log-uniform"``, needs low > 0)."""

    name: str
    low: float
    high: float
    prior: str = "uniform"

    def __post_init__(self):
        _check_name("Real", self.name)
        if not (_is_real(self.low) and _is_real(self.high)):
            raise ValueError(f"Real {self.name!r}: low and high must be numbers, got {self.low!r}, {self.high!r}")
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"Real {self.name!r}: low and high must be finite, got {self.low}, {self.high}")
        if self.low >= self.high:
            raise ValueError(f"Real {self.name!r}: low must be < high, got low={self.low}, high={self.high}")
        if self.prior not in ("uniform", "log-uniform"):
            raise ValueError(f"Real {self.name!r}: prior must be 'uniform' or 'log-uniform', got {self.prior!r}")
        if self.prior == "log-uniform" and self.low <= 0:
            raise ValueError(f"Real {self.name!r}: a log-uniform prior needs low > 0, got low={self.low}")

    def spec(self) -> dict:
        return {"type": "Real", "name": self.name, "low": self.low, "high": self.high, "prior": self.prior}

    def _skopt(self):
        from skopt.space import Real as SkReal

        return SkReal(self.low, self.high, prior=self.prior, name=self.name)

    def _to_param(self, x) -> float:
        return float(x)

    def _to_skopt(self, value) -> float:
        return float(value)

    def contains(self, value) -> bool:
        return _is_real(value) and self.low <= value <= self.high


@dataclass(frozen=True)
class Categorical:
    """One of ``choices`` (JSON scalars: str, int, float, bool or None; distinct; order is irrelevant).

    skopt sees the indices of the choices, so mixed types (``[2, 4, "none"]``) come back unchanged.
    """

    name: str
    choices: tuple

    def __post_init__(self):
        _check_name("Categorical", self.name)
        if isinstance(self.choices, (str, bytes)) or not isinstance(self.choices, Iterable):
            raise ValueError(f"Categorical {self.name!r}: choices must be a list or tuple, got {self.choices!r}")
        choices = tuple(self.choices)
        if not choices:
            raise ValueError(f"Categorical {self.name!r}: choices must not be empty")
        clean = []
        for c in choices:
            if isinstance(c, np.generic):
                c = c.item()
            if not (c is None or isinstance(c, (str, bool, int, float))):
                raise ValueError(f"Categorical {self.name!r}: choices must be str, int, float, bool or None, got {c!r}")
            if isinstance(c, float) and not math.isfinite(c):
                raise ValueError(f"Categorical {self.name!r}: choice {c!r} is not finite")
            clean.append(c)
        keys = [_choice_key(c) for c in clean]
        if len(set(keys)) != len(keys):
            raise ValueError(f"Categorical {self.name!r}: choices must be distinct, got {list(clean)!r}")
        object.__setattr__(self, "choices", tuple(clean))

    def spec(self) -> dict:
        return {"type": "Categorical", "name": self.name, "choices": list(self.choices)}

    def _skopt(self):
        from skopt.space import Categorical as SkCategorical

        return SkCategorical(list(range(len(self.choices))), name=self.name)

    def _to_param(self, x):
        return self.choices[int(x)]

    def _to_skopt(self, value) -> int:
        key = _choice_key(value)
        for i, c in enumerate(self.choices):
            if _choice_key(c) == key:
                return i
        raise ValueError(f"Categorical {self.name!r}: {value!r} is not one of {list(self.choices)!r}")

    def contains(self, value) -> bool:
        return any(_choice_key(c) == _choice_key(value) for c in self.choices)


def _choice_key(value):
    """Equality that tells True from 1 and 1 from 1.0 (JSON keeps these types apart too)."""
    return (type(value).__name__, value)


Dimension = Union[Integer, Real, Categorical]


def _dimension_from_spec(spec: Mapping) -> Dimension:
    kind = spec.get("type")
    if kind == "Integer":
        return Integer(spec["name"], spec["low"], spec["high"])
    if kind == "Real":
        return Real(spec["name"], spec["low"], spec["high"], spec.get("prior", "uniform"))
    if kind == "Categorical":
        return Categorical(spec["name"], tuple(spec["choices"]))
    raise ValueError(f"unknown dimension type {kind!r} in {spec!r}")


def check_space(space: Sequence[Dimension]) -> tuple[Dimension, ...]:
    """Validate a search space (non-empty, typed dimensions, distinct names) and return it as a tuple."""
    if isinstance(space, (Integer, Real, Categorical)):
        raise ValueError("space must be a list of dimensions, got a single dimension; wrap it in a list")
    if space is None or isinstance(space, (str, bytes, Mapping)) or not isinstance(space, Iterable):
        raise ValueError(f"space must be a list of Integer/Real/Categorical dimensions, got {space!r}")
    dims = tuple(space)
    if not dims:
        raise ValueError("space is empty: give at least one Integer, Real or Categorical dimension")
    seen = set()
    for i, d in enumerate(dims):
        if not isinstance(d, (Integer, Real, Categorical)):
            raise ValueError(f"space[{i}] must be an Integer, Real or Categorical from eqnn.search, got {d!r}")
        if d.name in seen:
            raise ValueError(f"space: duplicate dimension name {d.name!r}")
        seen.add(d.name)
    return dims


def _to_params(dims: Sequence[Dimension], x) -> dict:
    return {d.name: d._to_param(v) for d, v in zip(dims, x)}


def _to_skopt_point(dims: Sequence[Dimension], params: Mapping) -> list:
    return [d._to_skopt(params[d.name]) for d in dims]
