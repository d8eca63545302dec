"""Result files a person can open: JSON, CSV and PNG plots, all written atomically."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from channel.storage import write_bytes_atomic, write_text_atomic


def _clean(value):
    """JSON-safe: non-finite floats become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


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


def plot_q_vs_power(rows: Iterable[Mapping], path: str | Path, title: str = "") -> Path:
    """Q-factor versus launch power, one line per method.

    ``rows``: dicts with ``method``, ``launch_power_dbm``, ``q_db`` (None where not measurable) and
    ``q_db_from_snr``. Filled markers: Q from counted errors; hollow markers: Q implied by the SNR
    (too few errors to count), so a reader never mistakes an estimate for a measurement.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_method: dict[str, list] = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, (method, items) in enumerate(by_method.items()):
        items = sorted(items, key=lambda r: r["launch_power_dbm"])
        color = f"C{i}"
        p = [r["launch_power_dbm"] for r in items]
        q = [r["q_db"] if r["q_db"] is not None else r["q_db_from_snr"] for r in items]
        ax.plot(p, q, "-", color=color, label=method)
        measured = [(a, b) for a, b, r in zip(p, q, items) if r["q_db"] is not None]
        implied = [(a, b) for a, b, r in zip(p, q, items) if r["q_db"] is None]
        if measured:
            ax.plot(*zip(*measured), "o", color=color)
        if implied:
            ax.plot(*zip(*implied), "o", mfc="none", color=color)
    ax.set_xlabel("launch power per channel (dBm)")
    ax.set_ylabel("Q-factor (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(title="hollow: Q from SNR", fontsize="small", title_fontsize="x-small")
    if title:
        ax.set_title(title, fontsize="medium")
    return save_figure(fig, path)


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Lay out ``fig``, write it as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
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
            r = next((r for r in rows if r["method"] == m and r["launch_power_dbm"] == p), None)
            if r is None:
                cells.append(f"{'-':>22} {'-':>6}")
                continue
            q = (f"{r['q_db']:.2f} [{r['q_db_ci_low']:.2f},{r['q_db_ci_high']:.2f}]" if r["q_db"] is not None
                 else f"~{r['q_db_from_snr']:.2f} (SNR, {r['bit_errors']} err)")
            cells.append(f"{q:>22} {r['snr_db']:6.2f}")
        lines.append(f"{p:8.2f} | " + " | ".join(cells))
    lines.append(footer)
    return "\n".join(lines)
