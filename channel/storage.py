"""Saving and loading transmissions: atomic .npz files with an integrity checksum, and a cache keyed
by the configuration's hash.

- Files are written to a temporary file in the target folder and renamed into place, so a reader
  never sees a half-written file.
- Every file holds a SHA-256 of all its arrays; a truncated or altered file raises
  :class:`CorruptFileError` on load.
- Loading uses ``allow_pickle=False``: nothing in a file can run code. Metadata is JSON text.
- The cache key (:func:`cache_path`) ignores the runtime settings (:mod:`channel.runtime`: FFT threads, operator
  memory, and the FFT library ``EQNN_FFT_BACKEND``): they change the results only by rounding (the FFT backends
  agree to ~1e-15 relative, tests/test_fft_backends.py), so an entry computed with scipy.fft is reused by a run
  on FFTW and the other way round; the two are equal to 1e-12, not bit for bit.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .config import LinkConfig
from .metrics import Metrics

FORMAT_VERSION = 1
# Bump when a change of the simulator changes its output: old cache entries are then not reused.
# tests/test_simulator_digest.py pins a digest of a tiny link's output to these versions and fails when the output
# changes without a bump.
SIMULATOR_VERSION = 2  # 2: ASE drawn per frequency bin in |f| order (same noise at any oversampling)
# Bump when a change affects WDM links only (n_channels > 1): single-channel cache entries stay valid.
WDM_VERSION = 2  # 2: per-channel symbol streams keyed by the offset from the centre, channel filter, walk-off
#: permissions asked for written files; the process umask applies (0o644 under the usual umask 0o022)
FILE_MODE = 0o666


class CorruptFileError(IOError):
    """A stored file is truncated, altered, or not a file of this package."""


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    The file gets the permissions of any new file of the process (:data:`FILE_MODE` less the umask in force
    now): the temporary file is created with that mode by ``os.open`` (``tempfile.mkstemp`` would make it 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _create_temporary(path: Path) -> tuple[int, str]:
    """A new file ``.<name>.<random>.tmp`` next to ``path``, opened for writing (exclusive create, mode
    :data:`FILE_MODE` less the umask); returns ``(fd, its path)``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(path.parent, f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, FILE_MODE), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name next to {path}")


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically; see :func:`write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` atomically to ``path`` (.npz) with a checksum entry."""
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload["__checksum__"] = np.array(_checksum(payload))
    buffer = io.BytesIO()
    np.savez(buffer, **payload)
    return write_bytes_atomic(path, buffer.getvalue())


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Read and verify a file written by :func:`save_arrays` (no pickles)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError) as exc:
        raise CorruptFileError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    stored = arrays.pop("__checksum__", None)
    if stored is None or str(stored) != _checksum(arrays):
        raise CorruptFileError(f"{path}: checksum mismatch (file truncated or altered)")
    return arrays


def save_transmission(tr: Any, path: str | Path) -> Path:
    meta = {"format_version": FORMAT_VERSION, "simulator_version": SIMULATOR_VERSION,
            "config": tr.config.to_dict(), "dbp_xi": {str(k): v for k, v in tr.dbp_xi.items()},
            "dbp_nonlinear_position": {str(k): v for k, v in tr.dbp_nonlinear_position.items()},
            "dbp_power_filter_bandwidth": {str(k): v for k, v in tr.dbp_power_filter_bandwidth.items()},
            "metrics": {k: m.to_dict() for k, m in tr.metrics.items()}, "info": tr.info}
    arrays = {"meta_json": np.array(json.dumps(meta)), "tx_indices": tr.tx_indices,
              "rx_cdc": tr.rx_cdc, "rx_field": tr.rx_field}
    for k, v in tr.rx_dbp.items():
        arrays[f"rx_dbp_{k}"] = v
    return save_arrays(path, arrays)


def load_transmission(path: str | Path, cls: type) -> Any:
    arrays = load_arrays(path)
    try:
        meta = json.loads(str(arrays["meta_json"]))
        if meta.get("format_version") != FORMAT_VERSION:
            raise CorruptFileError(f"{path}: format version {meta.get('format_version')} "
                                   f"is not {FORMAT_VERSION}")
        config = LinkConfig.from_dict(meta["config"])
        rx_dbp = {int(k[len("rx_dbp_"):]): v for k, v in arrays.items() if k.startswith("rx_dbp_")}
        # files written before the position existed: DBP had the symmetric step (0.5) and no power filter
        positions = meta.get("dbp_nonlinear_position", {str(k): 0.5 for k in meta["dbp_xi"]})
        return cls(config=config, tx_indices=arrays["tx_indices"], rx_cdc=arrays["rx_cdc"],
                   rx_field=arrays["rx_field"], rx_dbp=rx_dbp,
                   dbp_xi={int(k): float(v) for k, v in meta["dbp_xi"].items()},
                   dbp_nonlinear_position={int(k): float(v) for k, v in positions.items()},
                   dbp_power_filter_bandwidth={int(k): float(v)
                                               for k, v in meta.get("dbp_power_filter_bandwidth", {}).items()},
                   metrics={k: Metrics.from_dict(v) for k, v in meta["metrics"].items()}, info=meta["info"])
    except KeyError as exc:
        raise CorruptFileError(f"{path}: missing entry {exc}") from exc


def cache_path(cache_dir: str | Path, config: LinkConfig) -> Path:
    """``<cache_dir>/transmission-<digest>.npz``; the digest covers the config and simulator version
    (and, for WDM links, :data:`WDM_VERSION`)."""
    key = f"{config.to_json()}|sim{SIMULATOR_VERSION}"
    if config.transmitter.n_channels > 1:
        key += f"|wdm{WDM_VERSION}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return Path(cache_dir) / f"transmission-{digest}.npz"


def check_cache_entry(path: str | Path) -> Path:
    """``path`` (a cache entry, :func:`cache_path`) if it can be read and written: absent or a regular file in a
    folder; else :class:`CorruptFileError` in one line saying what is in the way."""
    path = Path(path)
    if path.parent.exists() and not path.parent.is_dir():
        raise CorruptFileError(f"cache folder {str(path.parent)!r} is a file: allowed a folder (give another "
                               "--cache, or remove the file)")
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise CorruptFileError(f"cache entry {str(path)!r} is {kind}: allowed a transmission file (remove it; "
                               "it is simulated again)")
    return path


def load_cached(cache_dir: str | Path, config: LinkConfig, cls: type) -> Any:
    """The cached transmission of ``config``, or None (also, with a warning, if the file is corrupt).

    A cache folder that is a file, or an entry that is a folder (or anything but a file), cannot be read nor
    replaced: :class:`CorruptFileError` in one line naming it, before any simulation (:func:`check_cache_entry`)."""
    path = cache_path(cache_dir, config)
    check_cache_entry(path)
    if not path.exists():
        return None
    try:
        tr = load_transmission(path, cls)
    except CorruptFileError as exc:
        warnings.warn(f"ignoring corrupt cache file: {exc}", stacklevel=2)
        return None
    if tr.config != config:
        warnings.warn(f"ignoring cache file {path}: it holds another configuration", stacklevel=2)
        return None
    return tr
