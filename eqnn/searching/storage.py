"""The durable records of a search folder: the header, one JSON line per evaluation, the lock, :func:`load`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

from .files import LOCK_FILE, RECORDS_FILE, SEARCH_FILE, SearchLockedError, SearchMismatchError
from .objective import Objective
from .results import Evaluation, SearchResult
from .space import Dimension, _dimension_from_spec, _is_real, check_space

# --------------------------------------------------------------------------------------------- storage


def _spec_hash(spec: Mapping) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _jsonable(value):
    """Metrics as JSON: numpy scalars become Python scalars, arrays lists, anything else its str() (non-finite
    floats are kept: a record may hold NaN). :func:`eqnn.report.jsonable` is the one conversion."""
    from eqnn.report import jsonable

    return jsonable(value, nan="keep", unknown="str")


def _clean_metrics(metrics, call: int) -> dict:
    if not isinstance(metrics, Mapping):
        raise TypeError(
            f"evaluate() must return a dict with q_db and rmps, got {type(metrics).__name__} at call {call}"
        )
    out = {str(k): _jsonable(v) for k, v in metrics.items()}
    for key in ("q_db", "rmps"):
        if key not in out:
            raise ValueError(f"evaluate() returned no {key!r} at call {call} (got keys {sorted(out)})")
        v = out[key]
        if not _is_real(v) or not math.isfinite(v):
            raise ValueError(
                f"evaluate() returned {key}={metrics[key]!r} at call {call}: it must be a finite number"
                + ("; report an estimate (e.g. Q from the SNR) where Q cannot be counted" if key == "q_db" else "")
            )
        out[key] = float(v)
    if out["rmps"] <= 0:
        raise ValueError(f"evaluate() returned rmps={out['rmps']} at call {call}: it must be > 0")
    return out


@contextlib.contextmanager
def _folder_lock(folder: Path):
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no protection against two concurrent runs
        yield
        return
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SearchLockedError(f"another search is running in {folder} (it holds {folder / LOCK_FILE})") from None
        yield
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _spec_differences(old: Mapping, new: Mapping) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k)]


def _read_records(path: Path, dims: Sequence[Dimension], spec_hash: str) -> tuple[list[dict], bool]:
    """Records of ``evaluations.jsonl`` and whether the file needs repair (torn last line / missing newline)."""
    if not path.exists():
        return [], False
    data = path.read_bytes()
    parts = data.split(b"\n")
    tail = parts.pop()  # after the last newline: b"" for a clean file, else an unterminated (maybe torn) line
    lines = [(i + 1, p) for i, p in enumerate(parts) if p.strip()]
    repair = bool(tail.strip())
    if tail.strip():
        lines.append((len(parts) + 1, tail))
    records = []
    for pos, (lineno, raw) in enumerate(lines):
        last = pos == len(lines) - 1
        try:
            rec = json.loads(raw.decode("utf-8"))
            if not isinstance(rec, dict):
                raise ValueError("not an object")
        except (UnicodeDecodeError, ValueError):
            if last:  # a write cut short by a kill: the evaluation it held is not committed
                warnings.warn(f"{path}: ignoring the torn last line {lineno} (a run was killed while writing it)")
                repair = True
                break
            raise ValueError(f"{path}: line {lineno} is not valid JSON; the file is damaged") from None
        _check_record(rec, len(records), dims, spec_hash, f"{path}: line {lineno}")
        records.append(rec)
    return records, repair


def _check_record(rec: Mapping, expected_call: int, dims: Sequence[Dimension], spec_hash: str, where: str) -> None:
    for key in ("call", "params", "metrics", "objective"):
        if key not in rec:
            raise ValueError(f"{where}: record has no {key!r}")
    if rec.get("spec_hash", spec_hash) != spec_hash:
        raise SearchMismatchError(f"{where}: record belongs to another study (spec_hash {rec.get('spec_hash')})")
    if rec["call"] != expected_call:
        raise ValueError(f"{where}: expected call {expected_call}, found call {rec['call']!r} (records must be dense)")
    params = rec["params"]
    names = [d.name for d in dims]
    if not isinstance(params, dict) or sorted(params) != sorted(names):
        raise SearchMismatchError(f"{where}: params {params!r} do not match the space {names}")
    for d in dims:
        if not d.contains(params[d.name]):
            raise SearchMismatchError(f"{where}: {d.name}={params[d.name]!r} is outside the space ({d.spec()})")
    _clean_metrics(rec["metrics"], rec["call"])


def _record_bytes(rec: Mapping) -> bytes:
    return (json.dumps(rec, allow_nan=False) + "\n").encode("utf-8")


def _evaluation(rec: Mapping) -> Evaluation:
    return Evaluation(
        call=int(rec["call"]),
        params=dict(rec["params"]),
        metrics=dict(rec["metrics"]),
        objective=float(rec["objective"]),
        feasible=rec.get("feasible"),
        seconds=float(rec.get("seconds", float("nan"))),
        finished=str(rec.get("finished", "")),
    )


def load(folder: str | Path) -> SearchResult:
    """The study recorded in ``folder`` (``search.json`` + ``evaluations.jsonl``), without running anything."""
    folder = Path(folder)
    header_path = folder / SEARCH_FILE
    if not header_path.exists():
        raise FileNotFoundError(f"{header_path} not found: {folder} holds no search")
    header = json.loads(header_path.read_text())
    spec = header["spec"]
    dims = check_space([_dimension_from_spec(s) for s in spec["space"]])
    objective = Objective(**spec["objective"])
    records, _ = _read_records(folder / RECORDS_FILE, dims, header["spec_hash"])
    return SearchResult(
        evaluations=[_evaluation(r) for r in records],
        space=dims,
        objective=objective,
        spec=spec,
        spec_hash=header["spec_hash"],
        folder=folder,
    )
