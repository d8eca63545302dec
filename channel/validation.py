"""One set of validators for every configuration value of the toolkit.

Each function checks one value and returns it in its canonical Python type (``float``, ``int``, ``str``,
``bool``, a tuple for spans), or raises an error whose message names the dotted key, echoes the value
and states what is allowed, e.g.::

    compression.sparsity = 1.5 is out of range: allowed [0, 1)

The error class is :class:`ConfigError` (a ``ValueError``) unless a caller passes its own subclass with
``error=`` (the compression library raises ``ValueError``/``TypeError`` subclasses of its own).
``channel`` and ``eqnn`` both validate through this module; it imports nothing but numpy.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import fields
from typing import Any, Optional, Sequence

__all__ = ["ConfigError", "check_bool", "check_choice", "check_choices", "check_int", "check_number", "check_span",
           "check_table", "interval_text"]


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type, or out of range."""


def interval_text(low: Optional[float], high: Optional[float], low_open: bool = False, high_open: bool = False) -> str:
    """``[0, 1)``-style text of an interval; ``None`` bounds are infinite (and open)."""
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"


def _is_real(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(float(value))


def _is_integer(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral)


def check_number(key: str, value: Any, low: Optional[float] = None, high: Optional[float] = None, *,
                 low_open: bool = False, high_open: bool = False, error: type = ConfigError) -> float:
    """``value`` as a float if it is a finite real number in the interval; else raise ``error`` naming ``key``."""
    if not _is_real(value):
        raise error(f"{key} = {value!r}: must be a finite number in {interval_text(low, high, low_open, high_open)}")
    v = float(value)
    lo_ok = low is None or (v > low if low_open else v >= low)
    hi_ok = high is None or (v < high if high_open else v <= high)
    if not (lo_ok and hi_ok):
        raise error(f"{key} = {value!r} is out of range: allowed {interval_text(low, high, low_open, high_open)}")
    return v


def check_int(key: str, value: Any, low: Optional[int] = None, high: Optional[int] = None, *,
              error: type = ConfigError) -> int:
    """``value`` as an int if it is an integer (not a bool) in ``[low, high]``; else raise ``error``."""
    rng = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
    if not _is_integer(value):
        raise error(f"{key} = {value!r}: must be an integer in {rng}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise error(f"{key} = {value!r} is out of range: allowed integers in {rng}")
    return int(value)


def check_bool(key: str, value: Any, *, error: type = ConfigError) -> bool:
    """``value`` if it is ``True`` or ``False``; else raise ``error``."""
    if not isinstance(value, bool):
        raise error(f"{key} = {value!r}: must be true or false")
    return value


def check_choice(key: str, value: Any, choices: Sequence[str], *, error: type = ConfigError) -> str:
    """``value`` as a ``str`` if it is one of ``choices``; else raise ``error`` listing them."""
    if not isinstance(value, str) or value not in choices:
        raise error(f"{key} = {value!r}: allowed values are {', '.join(map(repr, choices))}")
    return str(value)  # np.str_ -> str


def check_choices(key: str, value: Any, choices: Sequence[str], *, error: type = ConfigError) -> tuple[str, ...]:
    """One choice or a non-empty list of distinct choices, as a tuple of ``str``."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or any(not isinstance(v, str) or v not in choices
                                                                 for v in items) or len(set(items)) != len(items):
        raise error(f"{key} = {value!r}: allowed one of {list(choices)} or a list of distinct ones")
    return tuple(str(v) for v in items)


def check_span(key: str, value: Any, low: float, high: Optional[float], *, integer: bool = False,
               high_open: bool = False, error: type = ConfigError):
    """A fixed value or a ``[low, high]`` range of values inside the allowed interval.

    Returns the value (``int``/``float``) when one value is given or both ends are equal, else the
    tuple ``(low, high)``.
    """
    allowed = (f"{'integers' if integer else 'numbers'} in {interval_text(low, high, False, high_open)}")
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not 1 <= len(items) <= 2:
        raise error(f"{key} = {value!r}: allowed one value or a range [low, high] of {allowed}")
    for v in items:
        ok = (_is_integer(v) if integer else _is_real(v)) and v >= low \
            and (high is None or (v < high if high_open else v <= high))
        if not ok:
            raise error(f"{key} = {value!r}: allowed {allowed} (one value or a range [low, high])")
    items = [int(v) if integer else float(v) for v in items]
    if len(items) == 2 and items[0] > items[1]:
        raise error(f"{key} = {value!r}: a range must be [low, high] with low <= high")
    return items[0] if len(items) == 1 or items[0] == items[1] else tuple(items)


def check_table(key: str, data: Any, cls: type, *, error: type = ConfigError) -> dict:
    """``data`` if it is a table whose keys are all fields of dataclass ``cls``; else raise ``error``."""
    if not isinstance(data, dict):
        raise error(f"[{key}] must be a table, got {data!r}")
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise error(f"unknown key(s) {sorted(unknown)} in [{key}]: allowed {', '.join(sorted(names))}")
    return data
