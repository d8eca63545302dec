"""Training on measured data: the ``[dataset]`` table of a training TOML (:class:`DatasetConfig`).

With a ``[dataset]`` table, ``eqnn train``, ``eqnn compress`` and ``eqnn run`` read the training and test
transmissions from files (:mod:`channel.measured`: arrays, layouts and units) instead of simulating them; the
``[scenario]`` still describes the link (spans, fibre: what DBP, learned DBP and the cost counts need), with the
modulation, symbol rate, launch power, block length and ``receiver.dbp_samples_per_symbol`` of the data.

Train and test data come either from different files (``test_path``) or from disjoint parts of the same files
(``train`` and ``test``, each ``[start, stop)``: two floats are fractions of the file's symbols, two integers
symbol indices; overlapping parts are refused). One file per launch power: ``path`` and ``launch_power_dbm`` are
lists of the same length (or one value each).

- :class:`DatasetConfig`: the table, validated on construction (keys only, no file read).
- :meth:`DatasetConfig.parts`: the files checked from their headers (:func:`channel.measured.dataset_length`) and
  the symbol ranges resolved: ``{"train": [MeasuredPart per power], "test": [...]}``.
- :func:`save_dataset`: write a transmission in this format (:func:`channel.measured.save_dataset`).
- :func:`export_simulation`: the training and test transmissions of a (simulated) training TOML written as dataset
  files, one pair per launch power, with the ``[dataset]`` table that reads them back::

      python -m eqnn.measured experiments/train_quick.toml results/measured_quick [--format npz|mat|h5]

  (then ``experiments/measured_example.toml`` trains on them as if they were measured).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from channel import ConfigError
from channel.config import MODULATIONS, unknown_keys_error
from channel.measured import DatasetError, MeasuredPart, dataset_length, load_part, save_dataset
from channel.validation import check_bool, check_choice, check_int, check_number

__all__ = ["DatasetConfig", "DatasetError", "MeasuredPart", "export_simulation", "load_part", "save_dataset"]


def _as_tuple(key: str, value: Any, kind: str) -> tuple:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ConfigError(f"{key} = {value!r}: must be a {kind} or a non-empty list of them (one per launch power)")
    return tuple(items)


def _check_name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} = {value!r}: must be the non-empty name of an array in the file")
    return value


def _check_range(key: str, value: Any) -> tuple:
    """``[start, stop)``: two floats in [0, 1] (fractions) or two integers >= 0 (symbol indices), start < stop."""
    allowed = "two fractions [a, b] with 0 <= a < b <= 1 (floats), or a symbol range [start, stop) (integers)"
    if not isinstance(value, (list, tuple)) or len(value) != 2 or any(isinstance(v, bool) for v in value):
        raise ConfigError(f"{key} = {value!r}: allowed {allowed}")
    a, b = value
    if all(isinstance(v, int) for v in value):
        if a < 0 or a >= b:
            raise ConfigError(f"{key} = {list(value)}: allowed {allowed}")
        return int(a), int(b)
    if all(isinstance(v, float) for v in value):
        if not (0.0 <= a < b <= 1.0):
            raise ConfigError(f"{key} = {list(value)}: allowed {allowed}")
        return float(a), float(b)
    raise ConfigError(f"{key} = {value!r}: allowed {allowed} (not a mix)")


def _symbols(rng: tuple, n: int) -> tuple[int, int]:
    a, b = rng
    return (int(round(a * n)), int(round(b * n))) if isinstance(a, float) else (a, b)


@dataclass(frozen=True)
class DatasetConfig:
    """Measured training and test data (``[dataset]``), read instead of simulated (:mod:`eqnn.measured`).

    Attributes:
        path: the dataset file (.npz, MATLAB .mat (v7.3 too) or HDF5; relative to the TOML's folder), or a list
            of files, one per launch power; required. Arrays and layouts: :mod:`channel.measured`.
        launch_power_dbm: the launch power (dBm, [-30, 30]) of each file of ``path`` (one value or a list of the
            same length, distinct); required. ``powers_dbm`` defaults to it (and, if given, must equal it).
        tx_symbols: name of the transmitted-symbol array, complex (2, N) or (N, 2); required.
        rx_symbols: name of the received-symbol array (1 sample per symbol, after CDC), complex, same shape;
            required.
        rx_waveform: name of the received waveform (before CDC, ``samples_per_symbol`` samples per symbol,
            complex (2, N sps) or (N sps, 2)); optional, needed by DBP (``dbp = true``, then the default) and
            learned-DBP models.
        modulation: "QPSK", "16QAM", "64QAM" or "256QAM"; required (replaces ``scenario.transmitter.modulation``).
        symbol_rate_gbd: symbol rate in GBd, (0, 1000]; required (replaces the scenario's).
        samples_per_symbol: samples per symbol of ``rx_waveform``, integer in [2, 16] (replaces
            ``scenario.receiver.dbp_samples_per_symbol``; default 2).
        rescale_waveform: scale the waveform so that its mean power (both polarizations) is the launch power
            (default true: the file's unit does not matter); false: the file holds sqrt(W).
        test_path: test files (one per launch power, as ``path``); empty (default): the test data are the
            ``test`` part of the ``path`` files.
        train: the part of each ``path`` file to train on: ``[a, b]`` floats (fractions of its symbols) or
            ``[start, stop]`` integers (symbols ``start`` to ``stop - 1``); default the whole file with
            ``test_path``, required without.
        test: the part of each test file (``test_path``, else ``path``) to test on; same forms and defaults.
            Parts of the same file must not overlap.
    """

    path: tuple[str, ...] = ()
    launch_power_dbm: tuple[float, ...] = ()
    tx_symbols: str = ""
    rx_symbols: str = ""
    modulation: str = ""
    symbol_rate_gbd: float = 0.0
    rx_waveform: Optional[str] = None
    samples_per_symbol: int = 2
    rescale_waveform: bool = True
    test_path: tuple[str, ...] = ()
    train: Optional[tuple] = None
    test: Optional[tuple] = None

    def __post_init__(self) -> None:
        paths = _as_tuple("dataset.path", self.path, "file path")
        for p in paths:
            if not isinstance(p, str) or not p:
                raise ConfigError(f"dataset.path = {self.path!r}: must be a file path or a list of them")
        object.__setattr__(self, "path", paths)
        powers = tuple(check_number("dataset.launch_power_dbm", p, -30, 30)
                       for p in _as_tuple("dataset.launch_power_dbm", self.launch_power_dbm, "number"))
        if len(powers) != len(paths):
            raise ConfigError(f"dataset.launch_power_dbm = {list(powers)}: one launch power per file of dataset.path "
                              f"({len(paths)} file(s))")
        if len(set(powers)) != len(powers):
            raise ConfigError(f"dataset.launch_power_dbm = {list(powers)}: values must be distinct (one file per "
                              "launch power)")
        object.__setattr__(self, "launch_power_dbm", powers)
        _check_name("dataset.tx_symbols", self.tx_symbols)
        _check_name("dataset.rx_symbols", self.rx_symbols)
        if self.rx_waveform is not None:
            _check_name("dataset.rx_waveform", self.rx_waveform)
        check_choice("dataset.modulation", self.modulation, MODULATIONS)
        object.__setattr__(self, "symbol_rate_gbd", check_number("dataset.symbol_rate_gbd", self.symbol_rate_gbd,
                                                                 0, 1000, low_open=True))
        check_int("dataset.samples_per_symbol", self.samples_per_symbol, 2, 16)
        check_bool("dataset.rescale_waveform", self.rescale_waveform)
        tests = self.test_path
        tests = () if isinstance(tests, (list, tuple)) and not tests else _as_tuple("dataset.test_path", tests, "path")
        for p in tests:
            if not isinstance(p, str) or not p:
                raise ConfigError(f"dataset.test_path = {self.test_path!r}: must be a file path or a list of them")
        if tests and len(tests) != len(paths):
            raise ConfigError(f"dataset.test_path: {len(tests)} file(s): allowed one per file of dataset.path "
                              f"({len(paths)})")
        object.__setattr__(self, "test_path", tests)
        for key in ("train", "test"):
            value = getattr(self, key)
            if value is None:
                if not tests:
                    raise ConfigError(f"dataset.{key} is required without dataset.test_path: the part of each file "
                                      "to use, e.g. train = [0.0, 0.8], test = [0.8, 1.0]")
                value = (0.0, 1.0)
            object.__setattr__(self, key, _check_range(f"dataset.{key}", value))

    def with_base(self, base_dir: Union[str, Path, None]) -> "DatasetConfig":
        """The same with every relative path resolved against ``base_dir`` (the TOML's folder; None: the
        working directory), so that the config means the same files from anywhere."""
        base = Path(base_dir) if base_dir is not None else Path.cwd()

        def resolve(p: str) -> str:
            return str(Path(p) if Path(p).is_absolute() else (base / p).resolve())

        return dataclasses.replace(self, path=tuple(map(resolve, self.path)),
                                   test_path=tuple(map(resolve, self.test_path)))

    def _length(self, path: str) -> int:
        return dataset_length(path, self.tx_symbols, self.rx_symbols, self.rx_waveform, self.samples_per_symbol)

    def parts(self) -> dict[str, list[MeasuredPart]]:
        """``{"train": [...], "test": [...]}``: one :class:`MeasuredPart` per launch power (order of
        ``launch_power_dbm``), after checking every file from its headers; :class:`DatasetError` or
        :class:`channel.ConfigError` (one line) when an array is missing or malformed, a part does not fit in
        its file, or train and test parts of one file overlap."""
        out: dict[str, list[MeasuredPart]] = {"train": [], "test": []}
        lengths: dict[str, int] = {}
        for i, train_file in enumerate(self.path):
            test_file = self.test_path[i] if self.test_path else train_file
            ranges = {}
            for which, file, rng in (("train", train_file, self.train), ("test", test_file, self.test)):
                if file not in lengths:
                    lengths[file] = self._length(file)
                n = lengths[file]
                start, stop = _symbols(rng, n)
                if stop > n or stop <= start:
                    raise ConfigError(f"dataset.{which} = {list(rng)}: symbols [{start}, {stop}) of {file}, which "
                                      f"has {n} symbols per polarization")
                ranges[which] = (start, stop)
                out[which].append(MeasuredPart(path=file, tx_symbols=self.tx_symbols, rx_symbols=self.rx_symbols,
                                               rx_waveform=self.rx_waveform, start=start, stop=stop,
                                               rescale_waveform=self.rescale_waveform))
            if Path(test_file) == Path(train_file):
                (a, b), (c, d) = ranges["train"], ranges["test"]
                if a < d and c < b:
                    raise ConfigError(f"dataset.train = {list(self.train)} and dataset.test = {list(self.test)} "
                                      f"overlap in {train_file} (symbols [{max(a, c)}, {min(b, d)})): allowed "
                                      "disjoint parts")
        return out

    def to_dict(self) -> dict:
        data = {"path": list(self.path), "launch_power_dbm": list(self.launch_power_dbm),
                "tx_symbols": self.tx_symbols, "rx_symbols": self.rx_symbols, "modulation": self.modulation,
                "symbol_rate_gbd": self.symbol_rate_gbd, "samples_per_symbol": self.samples_per_symbol,
                "rescale_waveform": self.rescale_waveform, "test_path": list(self.test_path),
                "train": list(self.train), "test": list(self.test)}
        if self.rx_waveform is not None:
            data["rx_waveform"] = self.rx_waveform
        return data

    @classmethod
    def from_dict(cls, data: Any, base_dir: Union[str, Path, None] = None) -> "DatasetConfig":
        """Build from the ``[dataset]`` table; relative paths resolved against ``base_dir`` (:meth:`with_base`)."""
        unknown_keys_error(data, cls, "dataset")
        for key in ("path", "launch_power_dbm", "tx_symbols", "rx_symbols", "modulation", "symbol_rate_gbd"):
            if key not in data:
                raise ConfigError(f"dataset.{key} is required (the [dataset] table: path, launch_power_dbm, "
                                  "tx_symbols, rx_symbols, modulation, symbol_rate_gbd)")
        return cls(**data).with_base(base_dir)


def export_simulation(config, folder: Union[str, Path], fmt: str = "npz", waveform: bool = True,
                      progress: bool = False) -> dict:
    """Simulate (or take from the cache) the training and test transmissions of ``config`` (a training TOML path or
    a :class:`eqnn.training.TrainRunConfig` without a dataset) at each launch power and write them to
    ``<folder>/train_<P>dBm.<fmt>`` and ``test_<P>dBm.<fmt>`` (:func:`save_dataset`, arrays ``tx_symbols``,
    ``rx_symbols`` and, with ``waveform``, ``rx_waveform`` in sqrt(W)). Returns the ``[dataset]`` table that reads
    them (absolute paths; ``rescale_waveform = false``): training on it gives what training on the simulation
    gives, DBP included."""
    from .training.config import TrainRunConfig, cache_folder, load_train_config

    if not isinstance(config, TrainRunConfig):
        config = load_train_config(config, study_tables="ignore")
    if config.dataset is not None:
        raise ConfigError("export_simulation: the config already reads a [dataset]; give a simulated one")
    if fmt not in ("npz", "mat", "h5"):
        raise ConfigError(f"format = {fmt!r}: allowed 'npz', 'mat', 'h5'")
    folder = Path(folder)
    cache = cache_folder(config.cache_dir, folder)
    table: dict[str, Any] = {"path": [], "test_path": [], "launch_power_dbm": list(config.powers_dbm),
                             "tx_symbols": "tx_symbols", "rx_symbols": "rx_symbols",
                             "modulation": config.scenario.transmitter.modulation,
                             "symbol_rate_gbd": config.scenario.transmitter.symbol_rate_gbd}
    if waveform:
        table["rx_waveform"] = "rx_waveform"
        table["samples_per_symbol"] = config.scenario.receiver.dbp_samples_per_symbol
        table["rescale_waveform"] = False  # the simulated field is in sqrt(W) already
    for p in config.powers_dbm:
        for which, key in (("train", "path"), ("test", "test_path")):
            tr = config.transmission(which, p, cache_dir=cache, dbp=False, progress=progress)
            path = save_dataset(tr, folder / f"{which}_{p:g}dBm.{fmt}", rx_waveform="rx_waveform" if waveform else None)
            table[key].append(str(path.resolve()))
    return table


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eqnn.measured", description=(
        "Write the training and test transmissions of a training TOML as measured-dataset files (one pair per "
        "launch power) and print the [dataset] table that reads them."))
    parser.add_argument("config", help="a training (or study) TOML without [dataset]")
    parser.add_argument("folder", help="output folder")
    parser.add_argument("--format", default="npz", choices=("npz", "mat", "h5"), help="file format (default npz)")
    parser.add_argument("--no-waveform", action="store_true", help="leave out the received waveform")
    args = parser.parse_args(argv)
    try:
        table = export_simulation(args.config, args.folder, args.format, waveform=not args.no_waveform, progress=True)
    except ConfigError as exc:
        print(f"python -m eqnn.measured: error: {exc}", file=sys.stderr)
        return 2
    def toml(value: Any) -> str:
        if isinstance(value, list):
            return "[" + ", ".join(map(toml, value)) + "]"
        if isinstance(value, bool):
            return "true" if value else "false"
        return f'"{value}"' if isinstance(value, str) else repr(value)

    print("[dataset]")
    for key, value in table.items():
        print(f"{key} = {toml(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
