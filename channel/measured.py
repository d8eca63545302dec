"""Measured datasets: transmitted and received symbols (and optionally the received waveform) read from a file and
turned into a :class:`channel.Transmission`, so that everything downstream of the simulator works unchanged.

File formats (detected from the content, not the suffix); loading never runs code:

- NumPy ``.npz`` (``numpy.load(allow_pickle=False)``; an object array is refused before it is read),
- MATLAB ``.mat`` up to v7 (``scipy.io.loadmat``; cells, structs, objects and sparse matrices are refused),
- HDF5, which includes MATLAB v7.3 ``.mat`` (``h5py``; references, groups and strings are refused).

Arrays (names given by the caller, e.g. the ``[dataset]`` table of a training TOML):

- ``tx_symbols``: the known transmitted symbols, complex, shape ``(2, N)`` or ``(N, 2)`` (x and y polarization;
  ``N > 2``); points of the square QAM constellation of the modulation at any common real scale (unit energy,
  or integer levels such as ``+-1 +-3j``). Mapped to symbol indices by a nearest-point decision after a fitted
  scale; a symbol farther than :data:`TX_TOLERANCE` from its point is an error (wrong modulation or array).
- ``rx_symbols``: the received symbols at one sample per symbol, aligned with ``tx_symbols`` (same layout and
  ``N``), after the receiver's DSP up to CDC (and whatever else the measurement applied), at any scale and phase:
  one complex gain per polarization is removed against the transmitted symbols
  (:func:`channel.receiver.normalize`, as the simulator does), giving :attr:`Transmission.rx_cdc`.
- ``rx_waveform`` (optional; needed by DBP and learned DBP): the received field before CDC at ``sps`` samples
  per symbol, shape ``(2, N sps)`` or ``(N sps, 2)``, symbol ``k`` on sample ``k sps``. Units sqrt(W); with
  ``rescale_waveform`` (default) it is scaled so that its mean total power (both polarizations) is the launch
  power, as the simulated receiver's field is after the last amplifier (then any unit will do).

Complex values are stored natively (NumPy, MATLAB v7 and earlier) or as a compound of two real fields named
``real``/``imag`` (or ``r``/``i``): the layout MATLAB v7.3 and h5py write. MATLAB v7.3 stores a MATLAB
``2 x N`` array as HDF5 ``(N, 2)``: both orientations are accepted, the axis of length 2 is the polarization.

- :func:`dataset_length`: check the arrays' presence, dtypes, shapes and lengths from the file's headers (cheap).
- :class:`MeasuredPart`: a symbol range ``[start, stop)`` of one file; :func:`load_part` makes its Transmission.
- :func:`save_dataset`: write a Transmission (simulated or not) in this format (``.npz``, ``.mat`` or ``.h5``).
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .config import ConfigError, LinkConfig
from .metrics import evaluate_symbols, hard_decision
from .receiver import normalize
from .transmitter import qam_constellation

__all__ = ["DatasetError", "MeasuredPart", "TX_TOLERANCE", "dataset_length", "load_part", "read_array",
           "save_dataset"]

#: largest distance of a (scaled) transmitted symbol from its constellation point, in units of the unit-energy
#: constellation (the closest points of 256QAM are 0.153 apart)
TX_TOLERANCE = 1e-3
_MAT_NUMERIC = {"double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"}
_PAIR_FIELDS = (("real", "imag"), ("r", "i"))


class DatasetError(ConfigError):
    """A measured dataset file that cannot be used as asked; the message is one line naming the array and file."""


def _kind(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK"):
        return "npz"
    import h5py

    if h5py.is_hdf5(str(path)):
        return "hdf5"
    return "mat"


def _where(role: str, name: str, path: Path) -> str:
    return f"dataset.{role} = {name!r} in {path}"


def _pair_fields(dtype: np.dtype) -> Optional[tuple[str, str]]:
    names = dtype.names or ()
    for pair in _PAIR_FIELDS:
        if len(names) == 2 and tuple(n.lower() for n in names) == pair:
            return names[0], names[1]
    return None


def _check_dtype(role: str, name: str, path: Path, dtype: np.dtype, matlab_class: Optional[str] = None) -> None:
    where = _where(role, name, path)
    if dtype.hasobject or (matlab_class is not None and matlab_class not in _MAT_NUMERIC):
        what = f"MATLAB class {matlab_class!r}" if matlab_class and matlab_class not in _MAT_NUMERIC else "objects"
        raise DatasetError(f"{where}: holds {what} (pickled or referenced data is never loaded): allowed a "
                           "complex numeric array")
    if dtype.names is not None:
        if _pair_fields(dtype) is None:
            raise DatasetError(f"{where}: compound dtype with fields {list(dtype.names)}: allowed complex, or a "
                               "compound of two real fields 'real' and 'imag'")
        return
    if dtype.kind not in "c":
        raise DatasetError(f"{where}: dtype {dtype} is not complex: allowed complex (or a compound of 'real' and "
                           "'imag')")


def _length(role: str, name: str, path: Path, shape: tuple) -> int:
    if len(shape) != 2 or 2 not in shape or shape == (2, 2):
        raise DatasetError(f"{_where(role, name, path)}: shape {tuple(shape)}: allowed (2, N) or (N, 2) with N > 2 "
                           "(x and y polarization)")
    return int(shape[1] if shape[0] == 2 else shape[0])


def _headers(path: Path, names: dict[str, str]) -> dict[str, tuple[tuple, np.dtype, Optional[str]]]:
    """{role: (shape, dtype, MATLAB class or None)} of the arrays ``names`` ({role: array name}) from the file's
    headers, without reading the data."""
    kind = _kind(path)
    out = {}
    if kind == "npz":
        try:
            with zipfile.ZipFile(path) as z:
                members = set(z.namelist())
                for role, name in names.items():
                    if f"{name}.npy" not in members:
                        raise DatasetError(f"{_where(role, name, path)}: no such array (the file holds "
                                           f"{sorted(m[:-4] for m in members if m.endswith('.npy'))})")
                    with z.open(f"{name}.npy") as f:
                        version = np.lib.format.read_magic(f)
                        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                else np.lib.format.read_array_header_2_0)
                        shape, _, dtype = read(f)
                    out[role] = (shape, dtype, None)
        except DatasetError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise DatasetError(f"dataset file {path}: cannot be read as .npz ({type(exc).__name__}: {exc})") from None
        return out
    if kind == "hdf5":
        import h5py

        try:
            with h5py.File(path, "r") as f:
                for role, name in names.items():
                    item = f.get(name)
                    if item is None:
                        raise DatasetError(f"{_where(role, name, path)}: no such dataset (the file holds "
                                           f"{sorted(f.keys())})")
                    if not isinstance(item, h5py.Dataset):
                        raise DatasetError(f"{_where(role, name, path)}: a group (MATLAB struct or cell), not an "
                                           "array: allowed a complex numeric array")
                    cls = item.attrs.get("MATLAB_class")
                    cls = cls.decode() if isinstance(cls, bytes) else (str(cls) if cls is not None else None)
                    out[role] = (item.shape, item.dtype, cls)
        except OSError as exc:
            raise DatasetError(f"dataset file {path}: cannot be read as HDF5 ({exc})") from None
        return out
    from scipy import io

    try:
        listed = {n: (tuple(s), c) for n, s, c in io.whosmat(str(path))}
    except Exception as exc:  # scipy's MatReadError and whatever a damaged file raises
        raise DatasetError(f"dataset file {path}: not a .npz, HDF5 or MATLAB file ({type(exc).__name__}: "
                           f"{exc})") from None
    for role, name in names.items():
        if name not in listed:
            raise DatasetError(f"{_where(role, name, path)}: no such variable (the file holds {sorted(listed)})")
        shape, cls = listed[name]
        out[role] = (shape, np.dtype(np.complex128), cls)  # complexity is known only once read (read_array)
    return out


def dataset_length(path: str | Path, tx_symbols: str, rx_symbols: str, rx_waveform: Optional[str] = None,
                   samples_per_symbol: int = 2) -> int:
    """The number of symbols per polarization ``N`` of a dataset file, after checking (from the headers) that
    each named array exists, is complex numeric (no objects) and has a dual-polarization shape, that
    ``tx_symbols`` and ``rx_symbols`` have the same ``N`` and ``rx_waveform`` (if given) ``N sps`` samples.
    Raises :class:`DatasetError` (one line naming the array and the file)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file {path}: not found" if not path.exists() else
                           f"dataset file {path}: not a regular file")
    names = {"tx_symbols": tx_symbols, "rx_symbols": rx_symbols}
    if rx_waveform is not None:
        names["rx_waveform"] = rx_waveform
    lengths = {}
    for role, (shape, dtype, cls) in _headers(path, names).items():
        _check_dtype(role, names[role], path, dtype, cls)
        lengths[role] = _length(role, names[role], path, shape)
    n = lengths["tx_symbols"]
    if lengths["rx_symbols"] != n:
        raise DatasetError(f"{_where('rx_symbols', rx_symbols, path)}: {lengths['rx_symbols']} symbols per "
                           f"polarization, but tx_symbols {tx_symbols!r} has {n}: allowed equal lengths")
    if rx_waveform is not None and lengths["rx_waveform"] != n * samples_per_symbol:
        raise DatasetError(f"{_where('rx_waveform', rx_waveform, path)}: {lengths['rx_waveform']} samples per "
                           f"polarization: allowed {n} symbols x samples_per_symbol {samples_per_symbol} = "
                           f"{n * samples_per_symbol}")
    return n


def _as_dual_complex(role: str, name: str, path: Path, array: np.ndarray) -> np.ndarray:
    """complex128 (2, N) of an array of an accepted layout; non-finite values are refused."""
    _check_dtype(role, name, path, array.dtype)
    _length(role, name, path, array.shape)
    fields = _pair_fields(array.dtype)
    if fields is not None:
        array = array[fields[0]].astype(np.float64) + 1j * array[fields[1]].astype(np.float64)
    array = np.asarray(array, dtype=np.complex128)
    if array.shape[0] != 2:
        array = array.T
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise DatasetError(f"{_where(role, name, path)}: {bad} value(s) are not finite (NaN or inf)")
    return np.ascontiguousarray(array)


def read_array(path: str | Path, role: str, name: str) -> np.ndarray:
    """complex128 ``(2, N)``: the array ``name`` (playing ``role``: tx_symbols, rx_symbols or rx_waveform) of a
    dataset file in any accepted layout (module docstring)."""
    path = Path(path)
    kind = _kind(path)
    _headers(path, {role: name})  # presence and object checks before any data is read
    if kind == "npz":
        with np.load(path, allow_pickle=False) as data:
            array = data[name]
    elif kind == "hdf5":
        import h5py

        with h5py.File(path, "r") as f:
            array = f[name][()]
    else:
        from scipy import io

        array = io.loadmat(str(path), variable_names=[name], mat_dtype=False)[name]
    return _as_dual_complex(role, name, path, np.asarray(array))


def symbol_indices(tx: np.ndarray, modulation: str, where: str) -> np.ndarray:
    """int64 indices of the constellation points of ``tx`` (complex (2, n), any common real scale)."""
    points = qam_constellation(modulation)[0]
    rms = math.sqrt(float(np.mean(np.abs(tx) ** 2)))
    if rms == 0:
        raise DatasetError(f"{where}: all zero: allowed {modulation} constellation points")
    scaled = tx / rms
    for _ in range(2):  # decide, refit the real scale on the decided points, decide again
        indices = hard_decision(scaled, modulation)
        ref = points[indices]
        scale = float(np.sum((np.conj(ref) * tx).real) / np.sum(np.abs(ref) ** 2))
        scaled = tx / scale
    indices = hard_decision(scaled, modulation)
    error = float(np.max(np.abs(scaled - points[indices])))
    if error > TX_TOLERANCE:
        raise DatasetError(f"{where}: not {modulation} constellation points (a symbol is {error:.3g} from its point "
                           f"after scaling; allowed {TX_TOLERANCE:g}): check the modulation and the array")
    return indices


@dataclass(frozen=True)
class MeasuredPart:
    """Symbols ``[start, stop)`` (per polarization) of one dataset file.

    Attributes:
        path: the file (absolute, or relative to the working directory).
        tx_symbols, rx_symbols: array names; rx_waveform: array name or None (module docstring).
        start, stop: the symbol range, 0 <= start < stop <= N.
        rescale_waveform: scale the waveform to the launch power (module docstring).
    """

    path: str
    tx_symbols: str
    rx_symbols: str
    rx_waveform: Optional[str]
    start: int
    stop: int
    rescale_waveform: bool = True

    @property
    def n_symbols(self) -> int:
        return self.stop - self.start

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MeasuredPart":
        return cls(**data)


def load_part(part: MeasuredPart, link: LinkConfig, dbp: bool = False) -> "Transmission":  # noqa: F821
    """The :class:`channel.Transmission` of ``part``: ``tx_indices`` from the transmitted symbols, ``rx_cdc`` the
    received symbols with one complex gain per polarization removed, ``rx_field`` the waveform part (or an empty
    ``(2, 0)`` array), CDC metrics, and (``dbp`` and a waveform) the DBP variants of ``link.receiver``.

    ``link``: the link the data came from; its ``transmitter.n_symbols`` must be ``part.n_symbols`` and its
    modulation, symbol rate, launch power and ``receiver.dbp_samples_per_symbol`` (the waveform's samples per
    symbol) those of the measurement.
    """
    from .link import Transmission, _add_dbp

    if link.transmitter.n_symbols != part.n_symbols:
        raise ValueError(f"link has {link.transmitter.n_symbols} symbols, the part {part.n_symbols}")
    path, sps = Path(part.path), link.receiver.dbp_samples_per_symbol
    n = dataset_length(path, part.tx_symbols, part.rx_symbols, part.rx_waveform, sps)
    if not 0 <= part.start < part.stop <= n:
        raise DatasetError(f"dataset file {path}: symbols [{part.start}, {part.stop}) asked, the file has {n}")
    window = slice(part.start, part.stop)
    modulation = link.transmitter.modulation
    tx = read_array(path, "tx_symbols", part.tx_symbols)[:, window]
    tx_indices = symbol_indices(tx, modulation, _where("tx_symbols", part.tx_symbols, path))
    rx = read_array(path, "rx_symbols", part.rx_symbols)[:, window]
    rx_cdc = normalize(rx, qam_constellation(modulation)[0][tx_indices])
    if part.rx_waveform is None:
        field = np.zeros((2, 0), dtype=np.complex128)
    else:
        field = read_array(path, "rx_waveform", part.rx_waveform)[:, part.start * sps:part.stop * sps]
        if part.rescale_waveform:
            power = float(np.sum(np.mean(np.abs(field) ** 2, axis=-1)))
            target = 1e-3 * 10 ** (link.transmitter.launch_power_dbm / 10)
            field = field * math.sqrt(target / power) if power > 0 else field
        field = np.ascontiguousarray(field)
    result = Transmission(config=link, tx_indices=tx_indices, rx_cdc=rx_cdc, rx_field=field)
    result.metrics["CDC"] = evaluate_symbols(rx_cdc, tx_indices, modulation)
    if dbp and part.rx_waveform is not None:
        _add_dbp(result, link.receiver.dbp_steps_per_span)
    digest = hashlib.sha256()
    for array in (tx_indices, rx_cdc, field):
        digest.update(np.ascontiguousarray(array).tobytes())
    result.info = {"ase_only_snr_db": None, "measured": part.to_dict(), "measured_digest": digest.hexdigest()[:32]}
    return result


def save_dataset(transmission, path: str | Path, *, tx_symbols: str = "tx_symbols", rx_symbols: str = "rx_symbols",
                 rx_waveform: Optional[str] = "rx_waveform") -> Path:
    """Write ``transmission`` (a :class:`channel.Transmission`) as a dataset file that :func:`load_part` reads:
    complex128 ``(2, N)`` arrays ``tx_symbols`` (unit-energy constellation points), ``rx_symbols``
    (:attr:`Transmission.rx_cdc`) and, unless ``rx_waveform`` is None or the transmission has no field,
    ``rx_waveform`` (:attr:`Transmission.rx_field`, sqrt(W), ``receiver.dbp_samples_per_symbol`` samples per
    symbol). The format follows the suffix: ``.npz``, ``.mat`` (MATLAB v5, ``scipy.io.savemat``) or ``.h5`` /
    ``.hdf5``. The TOML's ``[dataset]`` table gives what the file does not hold: modulation, symbol rate,
    launch power (``transmission.config.transmitter``). Returns ``path``."""
    path = Path(path)
    arrays = {tx_symbols: transmission.tx_symbols, rx_symbols: np.asarray(transmission.rx_cdc)}
    if rx_waveform is not None and np.asarray(transmission.rx_field).size:
        arrays[rx_waveform] = np.asarray(transmission.rx_field)
    arrays = {k: np.ascontiguousarray(v, dtype=np.complex128) for k, v in arrays.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    elif suffix == ".mat":
        from scipy import io

        io.savemat(str(path), arrays)
    elif suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "w") as f:
            for k, v in arrays.items():
                f.create_dataset(k, data=v)
    else:
        raise ValueError(f"dataset path {path}: allowed suffixes .npz, .mat, .h5, .hdf5")
    return path
