"""Result files a person can open: JSON, CSV and PNG plots, all written atomically."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import numbers
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from channel.storage import write_bytes_atomic, write_text_atomic

from .records import same_power


def _clean(value):
    """JSON-safe: non-finite floats become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def jsonable(value: Any, *, nan: str = "keep", unknown: str = "keep") -> Any:
    """``value`` made of JSON types: the one conversion every writer of the toolkit uses.

    Dataclass instances become dicts, mappings dicts with ``str`` keys, tuples and arrays lists, numpy scalars
    Python scalars, paths strings.

    Args:
        value: what to convert (nested containers are converted recursively).
        nan: what becomes of a non-finite float: ``"keep"`` (left as is: :func:`write_json` writes null, a
            search record keeps it) or ``"none"`` (``None`` now, e.g. for ``json.dumps(allow_nan=False)``).
        unknown: any other object: ``"keep"`` (left as is) or ``"str"`` (its ``str()``).
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        v = float(value)
        return None if nan == "none" and not math.isfinite(v) else v
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), nan=nan, unknown=unknown)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, nan=nan, unknown=unknown) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, nan=nan, unknown=unknown) for v in value]
    if isinstance(value, Path):
        return str(value)
    return str(value) if unknown == "str" else value


def new_figure(figsize: tuple[float, float] = (6.4, 4.4)):
    """A figure and its axes that belong to no pyplot state: drawing them leaves the caller's matplotlib
    backend and open figures untouched (rendered by the Agg canvas in :func:`save_figure`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def write_json(path: str | Path, data) -> Path:
    """Write ``data`` as indented JSON (NaN/inf as null), atomically."""
    return write_text_atomic(path, json.dumps(_clean(data), indent=2, sort_keys=False) + "\n")


def write_csv(path: str | Path, rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> Path:
    """Write a list of flat dicts as CSV (columns: the union of keys in order of appearance), atomically."""
    if columns is None:
        columns = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _clean(v) for k, v in row.items()})
    return write_text_atomic(path, buffer.getvalue())


# one marker and line style per method of q_vs_power.png, so that curves on top of each other stay distinct
LINE_MARKERS = "osD^vP<>hX*"
LINE_STYLES = ("-", "--", "-.", ":")


def plot_q_vs_power(rows: Iterable[Mapping], path: str | Path, title: str = "") -> Path:
    """Q-factor versus launch power, one line per method, each with its own marker and line style.

    ``rows``: dicts with ``method``, ``launch_power_dbm``, ``q_db`` (None where not measurable) and
    ``q_db_from_snr``, optionally ``q_db_ci_low``/``q_db_ci_high`` (drawn as error bars: the 95 % interval of the Q
    counted from bit errors). Filled markers: Q from counted errors; hollow markers: Q implied by the SNR
    (too few errors to count), so a reader never mistakes an estimate for a measurement.
    """
    by_method: dict[str, list] = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    fig, ax = new_figure()
    for i, (method, items) in enumerate(by_method.items()):
        items = sorted(items, key=lambda r: r["launch_power_dbm"])
        color, marker = f"C{i % 10}", LINE_MARKERS[i % len(LINE_MARKERS)]
        style = LINE_STYLES[(i // 10 + i) % len(LINE_STYLES)] if len(by_method) > 1 else "-"
        p = [r["launch_power_dbm"] for r in items]
        q = [r["q_db"] if r["q_db"] is not None else r["q_db_from_snr"] for r in items]
        measured_at = [k for k, r in enumerate(items) if r["q_db"] is not None]
        implied_at = [k for k, r in enumerate(items) if r["q_db"] is None]
        # the line carries the filled markers of the counted Qs (so the legend shows the method's marker); hollow
        # markers on top for the Qs implied by the SNR
        ax.plot(p, q, style, color=color, marker=marker, ms=6, markevery=measured_at or implied_at,
                mfc=color if measured_at else "none", label=method)
        if implied_at and measured_at:
            ax.plot([p[k] for k in implied_at], [q[k] for k in implied_at], marker, color=color, ms=6, mfc="none",
                    ls="none")
        measured = [(p[k], q[k], items[k]) for k in measured_at]
        if measured:
            bars = [(a, b, r) for a, b, r in measured
                    if r.get("q_db_ci_low") is not None and r.get("q_db_ci_high") is not None]
            if bars:
                ax.errorbar([a for a, _, _ in bars], [b for _, b, _ in bars],
                            yerr=[[max(b - r["q_db_ci_low"], 0.0) for _, b, r in bars],
                                  [max(r["q_db_ci_high"] - b, 0.0) for _, b, r in bars]],
                            fmt="none", ecolor=color, elinewidth=1, capsize=2)
    ax.set_xlabel("launch power per channel (dBm)")
    ax.set_ylabel("Q-factor (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(title="hollow: Q from SNR; bars: 95 % CI", fontsize="small", title_fontsize="x-small")
    if title:
        ax.set_title(title, fontsize="medium")
    return save_figure(fig, path)


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Lay out ``fig`` (a :func:`new_figure`), write it as PNG atomically."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return write_bytes_atomic(path, buffer.getvalue())


def optimum_per_method(rows: Sequence[Mapping], methods: Sequence[str]) -> dict:
    """Best launch power per method: Q from BER where measured, else the Q implied by the SNR."""
    best = {}
    for method in methods:
        items = [r for r in rows if r["method"] == method]
        top = max(items, key=lambda r: r["q_db"] if r["q_db"] is not None else r["q_db_from_snr"])
        best[method] = {"launch_power_dbm": top["launch_power_dbm"],
                        "q_db": top["q_db"] if top["q_db"] is not None else top["q_db_from_snr"],
                        "measured": top["q_db"] is not None, "snr_db": top["snr_db"]}
    return best


Q_TABLE_FOOTER = "Q [95% CI] from counted bit errors; '~' = too few errors, Q implied by the SNR instead."


def format_q_table(rows: Sequence[Mapping], methods: Sequence[str], powers: Sequence[float],
                   footer: str = Q_TABLE_FOOTER) -> str:
    """Q [95 % CI] and SNR per launch power (rows) and method (columns), then ``footer``."""
    head = f"{'P (dBm)':>8} | " + " | ".join(f"{m + ' Q (dB)':>22} {'SNR':>6}" for m in methods)
    lines = [head, "-" * len(head)]
    for p in powers:
        cells = []
        for m in methods:
            r = next((r for r in rows if r["method"] == m and same_power(r["launch_power_dbm"], p)), None)
            if r is None:
                cells.append(f"{'-':>22} {'-':>6}")
                continue
            q = (f"{r['q_db']:.2f} [{r['q_db_ci_low']:.2f},{r['q_db_ci_high']:.2f}]" if r["q_db"] is not None
                 else f"~{r['q_db_from_snr']:.2f} (SNR, {r['bit_errors']} err)")
            cells.append(f"{q:>22} {r['snr_db']:6.2f}")
        lines.append(f"{p:8.2f} | " + " | ".join(cells))
    lines.append(footer)
    return "\n".join(lines)
