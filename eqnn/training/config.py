"""The training TOML (``eqnn train``) as typed, validated configs: :class:`TrainRunConfig` and its tables.

Every key is optional unless noted and unknown keys are errors; an error names the dotted key, the value and what
is allowed (:mod:`channel.validation`). The format reference is generated from these classes into
``docs/config_reference.md`` (``python -m eqnn.docs``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import channel
from channel import ConfigError, LinkConfig
from channel.config import read_toml, scenario_from_table, unknown_keys_error
from channel.validation import check_bool, check_choice, check_int, check_number

from ..data import DataConfig, resolve_guard, resolve_taps, window_centres
from ..measured import DatasetConfig, MeasuredPart, load_part
from ..models import ModelConfig, custom_input_of, model_config_from_dict, model_config_to_dict
from ..models import check_input as check_model_input

__all__ = ["LR_SCHEDULES", "MODES", "MONITORS", "SeedsConfig", "TrainRunConfig", "TrainingConfig", "cache_folder",
           "load_train_config"]

MODES = ("per_power", "combined")
LR_SCHEDULES = ("plateau", "cosine", "constant")
MONITORS = ("loss", "q")


def _from_table(cls: type, data: Any, section: str):
    unknown_keys_error(data, cls, section)
    return cls(**data)


@dataclass(frozen=True)
class TrainingConfig:
    """How a model is fitted.

    Attributes:
        epochs: maximum number of epochs, [1, 100000].
        batch_size: mini-batch size, [1, 1048576].
        learning_rate: Adam learning rate, (0, 1].
        validation_split: fraction of the training windows (the last ones of each block, contiguous)
            held out for early stopping, [0, 0.5]; 0: early stopping watches the training loss.
        patience: epochs without improvement of the validation loss before stopping, [0, 100000].
        min_delta: minimum decrease of the validation loss that counts as improvement, [0, 1].
        seed: seed of weight initialization and shuffling (``keras.utils.set_random_seed``), >= 0.
        predict_batch_size: batch size of inference, [1, 1048576].
        shuffle: shuffle the training windows every epoch.
        lr_patience: if > 0, multiply the learning rate by ``lr_factor`` after this many epochs without
            improvement of the validation loss (ReduceLROnPlateau; also with ``monitor = "q"``), [0, 100000];
            0 = constant rate.
        lr_factor: learning-rate reduction factor, (0, 1).
        min_learning_rate: lower bound of the reduced learning rate, [0, learning_rate]; the final rate of
            the "cosine" schedule.
        lr_schedule: the learning rate over the epochs: "plateau" (``learning_rate``, reduced on plateaus when
            ``lr_patience`` > 0: the previous behaviour), "cosine" (cosine decay from ``learning_rate`` to
            ``min_learning_rate`` over ``epochs``, set at the start of each epoch) or "constant".
            ``lr_patience`` > 0 requires "plateau".
        warmup_epochs: linear warm-up: epoch ``e`` < ``warmup_epochs`` (0-based) runs at
            ``learning_rate * (e + 1) / (warmup_epochs + 1)``, then the schedule starts; [0, epochs - 1].
            Any schedule.
        weight_decay: decoupled weight decay (AdamW) of the kernels (biases excluded): each step multiplies
            every kernel by ``1 - weight_decay * lr``; [0, 1). 0 = plain Adam (the previous behaviour).
        jit_compile: compile the training and inference steps with XLA. Default false: on the 2-core CPU
            XLA trained every recurrent family 20-60x slower and the MLP about as fast (benchmarks/README.md
            section 8, ``benchmarks/training_speed.py``); reproducible with a seed either way.
        steps_per_execution: training batches run per call into the compiled step (fewer Python round trips,
            which matters for small models), [1, 10000]. Callbacks still run once per epoch.
        monitor: what early stopping and the restored best epoch watch on the validation split: "loss" (the
            MSE, the previous behaviour) or "q" (the Q-factor counted from the bit errors of the validation symbols
            after hard decision, gain-normalized as in evaluation; maximized). The learning-rate reduction
            (``lr_patience``) watches the loss in both cases: the Q of a validation split is too noisy for it. The
            MSE rewards moving points toward their targets even where it does not change a decision; the Q counts
            only the decisions, which is what the equalizer is judged on (an MLP trained long lowers the MSE and
            the Q at once: benchmarks/README.md section 4c). "q" needs ``validation_split`` > 0; ``min_delta`` is
            then in dB.

    Batch size and learning rate: a common rule scales the learning rate linearly with the batch size
    (``learning_rate * batch_size / 1000`` from the tuned 1e-3 at 1000; Goyal et al., 2017), with a few
    epochs of warm-up for large batches. It is not applied automatically; the training windows go through a
    ``tf.data`` pipeline (seeded shuffle every epoch, batch, prefetch), so same seed -> same weights.
    """

    epochs: int = 200
    batch_size: int = 1000
    learning_rate: float = 1e-3
    validation_split: float = 0.1
    patience: int = 15
    min_delta: float = 0.0
    seed: int = 0
    predict_batch_size: int = 8192
    shuffle: bool = True
    lr_patience: int = 0
    lr_factor: float = 0.5
    min_learning_rate: float = 1e-5
    lr_schedule: str = "plateau"
    warmup_epochs: int = 0
    weight_decay: float = 0.0
    jit_compile: bool = False
    steps_per_execution: int = 1
    monitor: str = "loss"

    def __post_init__(self) -> None:
        check_int("training.epochs", self.epochs, 1, 100_000)
        check_int("training.batch_size", self.batch_size, 1, 2**20)
        object.__setattr__(self, "learning_rate",
                           check_number("training.learning_rate", self.learning_rate, 0, 1, low_open=True))
        object.__setattr__(self, "validation_split",
                           check_number("training.validation_split", self.validation_split, 0, 0.5))
        check_int("training.patience", self.patience, 0, 100_000)
        object.__setattr__(self, "min_delta", check_number("training.min_delta", self.min_delta, 0, 1))
        check_int("training.seed", self.seed, 0, 2**32 - 1)
        check_int("training.predict_batch_size", self.predict_batch_size, 1, 2**20)
        check_bool("training.shuffle", self.shuffle)
        check_int("training.lr_patience", self.lr_patience, 0, 100_000)
        object.__setattr__(self, "lr_factor", check_number("training.lr_factor", self.lr_factor, 0, 1,
                                                           low_open=True, high_open=True))
        object.__setattr__(self, "min_learning_rate", check_number(
            "training.min_learning_rate", self.min_learning_rate, 0, self.learning_rate))
        check_choice("training.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if self.lr_patience > 0 and self.lr_schedule != "plateau":
            raise ConfigError(f"training.lr_patience = {self.lr_patience} with training.lr_schedule = "
                              f"{self.lr_schedule!r}: reduction on plateaus needs lr_schedule = 'plateau' "
                              "(or set lr_patience = 0)")
        check_int("training.warmup_epochs", self.warmup_epochs, 0, self.epochs - 1)
        object.__setattr__(self, "weight_decay", check_number("training.weight_decay", self.weight_decay, 0, 1,
                                                              high_open=True))
        check_bool("training.jit_compile", self.jit_compile)
        check_int("training.steps_per_execution", self.steps_per_execution, 1, 10_000)
        check_choice("training.monitor", self.monitor, MONITORS)
        if self.monitor == "q" and self.validation_split == 0:
            raise ConfigError("training.monitor = 'q' needs a validation split: set training.validation_split in "
                              "(0, 0.5]")

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        if self.monitor == "loss":  # omitted at its default: fingerprints of models trained before it stay valid
            del out["monitor"]
        return out


@dataclass(frozen=True)
class SeedsConfig:
    """Transmitter seeds (symbols and noise) of the training and the test transmissions; they must differ.

    Attributes:
        train: seed of the training transmissions, >= 0.
        test: seed of the test transmissions, >= 0, not ``train``.
    """

    train: int = 101
    test: int = 202

    def __post_init__(self) -> None:
        check_int("seeds.train", self.train, 0, 2**63 - 1)
        check_int("seeds.test", self.test, 0, 2**63 - 1)
        if self.train == self.test:
            raise ConfigError(f"seeds.train = seeds.test = {self.train}: training and test transmissions must use "
                              "different seeds (independent symbols and noise)")


@dataclass(frozen=True)
class TrainRunConfig:
    """A training study (``eqnn train``): a link, launch powers, data, models and training settings.

    Attributes:
        scenario: the link (``[scenario]``: the sections of a link TOML, optionally ``base = "<link TOML>"``
            relative to this file, whose values the other keys override).
        powers_dbm: launch powers (dBm), each in [-30, 30], distinct; required (with a ``[dataset]``: default
            its ``launch_power_dbm``, each one of them).
        mode: "per_power" (one model per launch power) or "combined" (one model trained on the concatenated
            data of all powers, evaluated at each).
        seeds: transmitter seeds of the training and the test transmissions (``[seeds]``).
        data: model inputs (``[data]``: :class:`eqnn.data.DataConfig`).
        training: how each model is fitted (``[training]``: :class:`TrainingConfig`).
        models: one ``[[models]]`` table per model (``type`` = mlp | lstm | bilstm | cnn_bilstm | sequence,
            ``name`` and the architecture of :mod:`eqnn.models`); or ``[models.<type>]`` tables. A model table
            may hold a ``training`` sub-table (e.g. ``training = {batch_size = 256}``) whose keys override
            ``[training]`` for that model only (a sequence model counts ``batch_size`` in blocks, an MLP in windows).
        model_training: the per-model overrides, ``((name, {key: value}), ...)``; :meth:`training_for` applies them.
        dbp: compute DBP on the test transmissions (the ``[scenario.receiver]`` variants); with a ``[dataset]``
            the default is whether it has ``rx_waveform`` (DBP needs the waveform).
        cache_dir: simulation cache folder (relative to the working directory); "" = the run's own
            ``<out>/cache`` (for ``eqnn train``, ``eqnn compress`` and ``eqnn run`` alike); ``--no-cache`` runs
            without a cache.
        name: label of the study (default output folders are named after it).
        train_symbols: symbols per polarization of each training transmission (default:
            ``scenario.transmitter.n_symbols``).
        test_symbols: symbols per polarization of each test transmission (default:
            ``scenario.transmitter.n_symbols``).
        dataset: measured data (``[dataset]``: :class:`eqnn.measured.DatasetConfig`) read instead of simulated
            transmissions; then ``powers_dbm`` defaults to ``dataset.launch_power_dbm`` (each must be one of them),
            ``dbp`` defaults to whether ``dataset.rx_waveform`` is given (DBP needs it), ``train_symbols`` and
            ``test_symbols`` are not allowed (the parts decide), the seeds only label the training and test data,
            and the scenario takes the dataset's modulation, symbol rate and samples per symbol.
    """

    scenario: LinkConfig = field(default_factory=channel.reference_config)
    powers_dbm: tuple[float, ...] = (0.0,)
    mode: str = "per_power"
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    models: tuple[ModelConfig, ...] = ()
    dbp: bool = True
    cache_dir: Optional[str] = "results/cache"
    name: str = "train"
    train_symbols: Optional[int] = None
    test_symbols: Optional[int] = None
    model_training: tuple[tuple[str, dict], ...] = ()
    dataset: Optional[DatasetConfig] = None

    def __post_init__(self) -> None:
        if not isinstance(self.scenario, LinkConfig):
            raise ConfigError(f"scenario: expected a channel.LinkConfig, got {type(self.scenario).__name__}")
        object.__setattr__(self, "_parts", None)
        if self.dataset is not None:
            self._adopt_dataset()
        powers = self.powers_dbm
        if isinstance(powers, (int, float)) and not isinstance(powers, bool):
            powers = (powers,)
        if not isinstance(powers, (list, tuple)) or not powers:
            raise ConfigError(f"powers_dbm = {self.powers_dbm!r}: must be a non-empty list of launch powers (dBm)")
        checked = []
        for p in powers:
            checked.append(check_number("powers_dbm[]", p, -30, 30))
        if len(set(checked)) != len(checked):
            raise ConfigError(f"powers_dbm = {list(powers)}: values must be distinct")
        object.__setattr__(self, "powers_dbm", tuple(checked))
        check_choice("mode", self.mode, MODES)
        for name, cls in (("seeds", SeedsConfig), ("data", DataConfig), ("training", TrainingConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name}: expected a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        models = tuple(self.models)
        if not models:
            raise ConfigError("models: at least one [[models]] table is required")
        for m in models:
            model_config_to_dict(m)  # type check
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ConfigError(f"models[].name = {names}: names must be distinct")
        reserved = {"CDC"} | {f"DBP-{k}" for k in self.scenario.receiver.dbp_steps_per_span}
        if set(names) & reserved:
            raise ConfigError(f"models[].name {sorted(set(names) & reserved)}: reserved for the reference methods")
        object.__setattr__(self, "models", models)
        check_bool("dbp", self.dbp)
        if self.cache_dir is not None and not isinstance(self.cache_dir, str):
            raise ConfigError(f"cache_dir = {self.cache_dir!r}: must be a path string")
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name = {self.name!r}: must be a non-empty string")
        for key in ("train_symbols", "test_symbols"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{key} = {value!r}: must be an integer (symbols per polarization)")
        taps = resolve_taps(self.data, self.scenario)
        guard = resolve_guard(self.data, self.scenario)
        for which in ("train", "test"):
            try:
                link = self._link(which, self.powers_dbm[0])  # validates seed and block length
            except ConfigError as exc:
                raise ConfigError(f"{which}_symbols / seeds.{which}: {exc}") from exc
            try:
                window_centres(link.transmitter.n_symbols, taps, guard)
            except ConfigError as exc:
                raise ConfigError(f"{which} data: {exc}") from exc
        for m in models:
            check_model_input(m, 2 * taps + 1)
            if self.dataset is not None and self.dataset.rx_waveform is None and custom_input_of(m) is not None:
                raise ConfigError(f"models[{names.index(m.name)}] ({m.name!r}, type {m.type!r}) reads the received "
                                  "waveform: dataset.rx_waveform is required")
        overrides = tuple((str(n), dict(v)) for n, v in (self.model_training.items() if isinstance(
            self.model_training, dict) else self.model_training))
        for n, v in overrides:
            if n not in names:
                raise ConfigError(f"model_training: no model named {n!r} (models: {names})")
            section = f"models[{names.index(n)}].training"
            try:
                _from_table(TrainingConfig, {**self.training.to_dict(), **v}, section)
            except ConfigError as exc:
                raise ConfigError(f"{section}: {exc}") from None
        object.__setattr__(self, "model_training", tuple((n, v) for n, v in overrides if v))

    def _adopt_dataset(self) -> None:
        """Checks of a ``[dataset]`` and the scenario it implies; the files checked from their headers."""
        ds = self.dataset
        if not isinstance(ds, DatasetConfig):
            raise ConfigError(f"dataset: expected an eqnn.measured.DatasetConfig, got {type(ds).__name__}")
        powers = self.powers_dbm if isinstance(self.powers_dbm, (list, tuple)) else (self.powers_dbm,)
        for p in powers:
            if not any(abs(float(p) - q) <= 1e-9 for q in ds.launch_power_dbm):
                raise ConfigError(f"powers_dbm = {list(powers)}: with a [dataset] each must be one of "
                                  f"dataset.launch_power_dbm {list(ds.launch_power_dbm)} (default: all of them)")
        for key in ("train_symbols", "test_symbols"):
            if getattr(self, key) is not None:
                raise ConfigError(f"{key} = {getattr(self, key)!r}: not allowed with a [dataset] (dataset.train and "
                                  "dataset.test choose the symbols)")
        if self.dbp is True and ds.rx_waveform is None:
            raise ConfigError("dbp = true needs dataset.rx_waveform (DBP runs on the received waveform): give it, "
                              "or set dbp = false")
        try:
            scenario = self.scenario.replace(
                transmitter={"modulation": ds.modulation, "symbol_rate_gbd": ds.symbol_rate_gbd},
                receiver={"dbp_samples_per_symbol": ds.samples_per_symbol})
        except ConfigError as exc:
            raise ConfigError(f"dataset (modulation, symbol_rate_gbd, samples_per_symbol) in [scenario]: {exc}"
                              ) from None
        object.__setattr__(self, "scenario", scenario)
        object.__setattr__(self, "_parts", ds.parts())

    def measured_part(self, which: str, power_dbm: float) -> Optional[MeasuredPart]:
        """The part of the dataset (``which`` = "train" or "test") at ``power_dbm``; None without a dataset."""
        if self.dataset is None:
            return None
        powers = self.dataset.launch_power_dbm
        i = min(range(len(powers)), key=lambda j: abs(powers[j] - power_dbm))
        if abs(powers[i] - power_dbm) > 1e-9:
            raise ConfigError(f"launch power {power_dbm:g} dBm: the dataset has {list(powers)} dBm only")
        return self._parts[which][i]

    def transmission(self, which: str, power_dbm: float, cache_dir=None, dbp: bool = False,
                     progress: bool = False) -> channel.Transmission:
        """The training (``which = "train"``) or test transmission at ``power_dbm``: simulated (cached in
        ``cache_dir``), or read from the dataset (:func:`channel.measured.load_part`; ``dbp``: with the DBP
        variants when the dataset has a waveform)."""
        link = self._link(which, power_dbm)
        part = self.measured_part(which, power_dbm)
        if part is not None:
            return load_part(part, link, dbp=dbp)
        return channel.simulate(link, cache_dir=cache_dir, progress=progress, dbp=dbp)

    def training_for(self, name: str) -> TrainingConfig:
        """``[training]`` with the overrides of model ``name`` (its ``training`` sub-table) applied."""
        for n, v in self.model_training:
            if n == name:
                return dataclasses.replace(self.training, **v)
        return self.training

    def _link(self, which: str, power_dbm: float) -> LinkConfig:
        n = self.train_symbols if which == "train" else self.test_symbols
        part = self.measured_part(which, power_dbm)
        if part is not None:
            n = part.n_symbols
            if not 64 <= n <= 2**24:
                raise ConfigError(f"dataset.{which} = {list(getattr(self.dataset, which))}: {n} symbols of "
                                  f"{part.path}: allowed 64 to {2**24} symbols per polarization (integers are "
                                  "symbol indices, floats fractions: [0.0, 0.8])")
        link = self.scenario if n is None else self.scenario.replace(transmitter={"n_symbols": n})
        seed = self.seeds.train if which == "train" else self.seeds.test
        return link.with_seed(seed).with_launch_power(power_dbm)

    def train_link(self, power_dbm: float) -> LinkConfig:
        """The link of the training transmission at ``power_dbm`` (seed and block length applied)."""
        return self._link("train", power_dbm)

    def test_link(self, power_dbm: float) -> LinkConfig:
        """The link of the test transmission at ``power_dbm``."""
        return self._link("test", power_dbm)

    def to_dict(self) -> dict:
        return {"name": self.name, "powers_dbm": list(self.powers_dbm), "mode": self.mode, "dbp": self.dbp,
                "cache_dir": self.cache_dir, "train_symbols": self.train_symbols, "test_symbols": self.test_symbols,
                "seeds": dataclasses.asdict(self.seeds),
                "scenario": self.scenario.to_dict(), "data": self.data.to_dict(),
                "training": self.training.to_dict(),
                "models": [{**model_config_to_dict(m), **({"training": dict(v)} if (v := dict(self.model_training).get(
                    m.name)) else {})} for m in self.models]} | (
                        {"dataset": self.dataset.to_dict()} if self.dataset is not None else {})

    @classmethod
    def from_dict(cls, data: dict, base_dir: Union[str, Path, None] = None) -> "TrainRunConfig":
        """Build from a parsed TOML table; ``base_dir`` resolves a relative ``scenario.base``."""
        if not isinstance(data, dict):
            raise ConfigError(f"training configuration must be a table, got {type(data).__name__}")
        allowed = {"name", "powers_dbm", "mode", "dbp", "cache_dir", "train_symbols", "test_symbols", "seeds",
                   "scenario", "data", "training", "models", "dataset"}
        unknown = set(data) - allowed
        if unknown:
            raise ConfigError(f"unknown top-level key(s) {sorted(unknown)}: allowed {', '.join(sorted(allowed))}")
        dataset = DatasetConfig.from_dict(data["dataset"], base_dir) if "dataset" in data else None
        if "powers_dbm" not in data and dataset is None:
            raise ConfigError("powers_dbm is required: a list of launch powers in dBm, e.g. powers_dbm = [0.0, 1.0]")
        kwargs: dict[str, Any] = {"powers_dbm": data.get("powers_dbm", dataset and list(dataset.launch_power_dbm)),
                                  "dataset": dataset}
        if dataset is not None:
            kwargs["dbp"] = dataset.rx_waveform is not None
        for key in ("name", "mode", "dbp", "train_symbols", "test_symbols"):
            if key in data:
                kwargs[key] = data[key]
        if "cache_dir" in data:
            kwargs["cache_dir"] = data["cache_dir"] or None
        kwargs["scenario"] = _scenario_from_table(data.get("scenario", {}), base_dir)
        kwargs["seeds"] = _from_table(SeedsConfig, data.get("seeds", {}), "seeds")
        kwargs["data"] = DataConfig.from_dict(data.get("data", {}))
        kwargs["training"] = _from_table(TrainingConfig, data.get("training", {}), "training")
        models = data.get("models", [])
        if isinstance(models, dict):  # [models.mlp] style: the table key is the type unless given
            models = [{"type": k, **v} if isinstance(v, dict) and "type" not in v else v for k, v in models.items()]
        if not isinstance(models, list):
            raise ConfigError("models must be an array of tables ([[models]]) or a table of tables ([models.<type>])")
        parsed, overrides = [], []
        for i, m in enumerate(models):
            if isinstance(m, dict) and "training" in m:
                m = dict(m)
                table = m.pop("training")
                if not isinstance(table, dict):
                    raise ConfigError(f"models[{i}].training = {table!r}: must be a table of [training] keys")
                overrides.append((m.get("name"), table))
            parsed.append(model_config_from_dict(m, f"models[{i}]"))
        kwargs["models"] = tuple(parsed)
        kwargs["model_training"] = tuple(overrides)
        return cls(**kwargs)


def _scenario_from_table(table: Any, base_dir: Union[str, Path, None]) -> LinkConfig:
    """The link of ``[scenario]``: :func:`channel.config.scenario_from_table` (shared with ``channel.load_config``)."""
    return scenario_from_table(table, base_dir)


STUDY_TABLES = ("compression", "study")


def load_train_config(path: Union[str, Path], *, study_tables: str = "error") -> TrainRunConfig:
    """Read a training TOML (format: :class:`TrainRunConfig`). Errors are :class:`channel.ConfigError`.

    ``study_tables``: what a study file's ``[compression]`` and ``[study]`` tables (``eqnn run``) do here: "error"
    (unknown keys, as any other) or "ignore" (``eqnn train`` on a study file: its training part is used).
    """
    path = Path(path)
    check_choice("study_tables", study_tables, ("error", "ignore"))
    data = read_toml(path, "training config")
    if study_tables == "ignore":
        for key in STUDY_TABLES:
            data.pop(key, None)
    return TrainRunConfig.from_dict(data, base_dir=path.parent)


def cache_folder(configured: Optional[str], out: Union[str, Path], override: Union[str, Path, None, bool] = None
                 ) -> Optional[Path]:
    """The simulation cache of a run writing to ``out``: the one rule of ``eqnn train``, ``eqnn compress`` and
    ``eqnn run``.

    Args:
        configured: the TOML's ``cache_dir``: a folder, or ``""``/None for the run's own ``<out>/cache``.
        out: the run's output folder.
        override: ``--cache`` (a folder, used as given), ``False`` (``--no-cache``: no cache at all), or
            None/``""`` (not given: ``configured`` decides).

    Returns: the cache folder, or None for no cache.
    """
    if override is False:
        return None
    if override not in (None, "") and override is not True:
        return Path(override)
    return Path(configured) if configured else Path(out) / "cache"
