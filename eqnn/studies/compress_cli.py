"""``eqnn compress``: compress a saved equalizer folder, or every model of a training TOML with a ``[compression]``
table (trained or reused first), and print/write the summary table.

- :func:`compress_command`: the command; :func:`compress_inputs`: its inputs checked, without TensorFlow (the
  command line calls it before TensorFlow starts).
- :func:`compress_saved_equalizer`: a folder written by ``eqnn train`` (its transmissions simulated again).
- :func:`summary_rows` / :func:`format_summary`: the summary table.

The studies themselves are :func:`eqnn.studies.compression.compress_equalizer` /
:func:`eqnn.studies.compression.compress_trained` (imported when a study runs: importing this module does not import
TensorFlow).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, Union

import channel
from channel import ConfigError, LinkConfig, Transmission
from channel.config import read_toml
from channel.measured import MeasuredPart, load_part

from ..records import same_power
from ..references import reference_points
from ..report import write_csv, write_json
from ..training import Equalizer, TrainRunConfig, load_equalizer
from ..training.equalizer import read_equalizer_meta
from ..training.run import cache_folder, train_stage
from .compression_config import CompressionSearchConfig, load_compression_config

if TYPE_CHECKING:
    from .compression import CompressionStudy

__all__ = ["compress_command", "compress_inputs", "compress_saved_equalizer", "format_summary", "summary_rows"]

DEFAULT_CACHE = Path("results") / "cache"


def _links_of(equalizer: Equalizer, folder: Path) -> tuple[list[LinkConfig], list[LinkConfig]]:
    """Training and test links of a saved equalizer: recorded by ``eqnn train`` in its info, else rebuilt from the
    ``results.json`` of the training run that holds ``folder`` (``<run>/models/<name>@<power>``)."""
    info = equalizer.info
    if info.get("train_links") and info.get("test_links"):
        return ([LinkConfig.from_dict(d) for d in info["train_links"]],
                [LinkConfig.from_dict(d) for d in info["test_links"]])
    results = folder.resolve().parent.parent / "results.json"
    powers = info.get("trained_on_powers_dbm")
    if not results.is_file() or not powers:
        raise ConfigError(f"{folder}: the equalizer does not record its training and test links and "
                          f"{results} is missing: compress from the training TOML instead")
    try:
        table = json.loads(results.read_text())["config"]
    except (ValueError, KeyError, TypeError) as exc:
        raise channel.CorruptFileError(f"{results}: damaged (no training config: {type(exc).__name__}: {exc}); "
                                       "compress from the training TOML instead") from exc
    config = TrainRunConfig.from_dict(table)
    return [config.train_link(p) for p in powers], [config.test_link(p) for p in powers]


def _measured_parts(equalizer: Equalizer) -> Optional[tuple[list[MeasuredPart], list[MeasuredPart]]]:
    """The dataset parts (training, test) a model trained on measured data records (``eqnn train``), or None
    (simulated data)."""
    info = equalizer.info
    if not info.get("train_parts"):
        return None
    return ([MeasuredPart.from_dict(d) for d in info["train_parts"]],
            [MeasuredPart.from_dict(d) for d in info["test_parts"]])


def _pick_test_link(links: list[LinkConfig], power_dbm: Optional[float], where: str) -> LinkConfig:
    powers = [link.transmitter.launch_power_dbm for link in links]
    if power_dbm is None:
        if len(links) == 1:
            return links[0]
        raise ConfigError(f"{where} was tested at {powers} dBm: choose one with --power")
    for link in links:
        if same_power(link.transmitter.launch_power_dbm, power_dbm):
            return link
    raise ConfigError(f"--power {power_dbm:g}: {where} was tested at {powers} dBm only")


def _simulate(link: LinkConfig, cache_dir, dbp: bool, progress: bool) -> Transmission:
    return channel.simulate(link, cache_dir=cache_dir, dbp=dbp, progress=progress)


def compress_saved_equalizer(source: Union[str, Path, Equalizer], config: CompressionSearchConfig,
                             out: Union[str, Path], power_dbm: Optional[float] = None,
                             cache_dir: Union[str, Path, None] = DEFAULT_CACHE, dbp: bool = True,
                             progress: bool = True, folder: Union[str, Path, None] = None,
                             executor=None) -> CompressionStudy:
    """Compress an equalizer saved by ``eqnn train`` (folder ``models/<name>@<power>``): its training and test
    transmissions are simulated again (cached), or read again from the measured dataset files it records, the training
    windows made with its stored normalization.
    ``power_dbm`` picks the test power of a model trained on several ("combined"). ``folder``: where the saved
    model is (when ``source`` is an already loaded Equalizer). ``executor``: see :func:`compress_equalizer`."""
    if isinstance(source, Equalizer) and folder is None:
        raise ValueError("compress_saved_equalizer(Equalizer, ...) needs folder= (where it was saved)")
    from .compression import compress_equalizer

    equalizer = source if isinstance(source, Equalizer) else load_equalizer(source)
    where = Path(folder if folder is not None else source)
    train_links, test_links = _links_of(equalizer, where)
    test_link = _pick_test_link(test_links, power_dbm, str(where))
    config.search_space(equalizer.model)  # model-dependent checks before any simulation
    measured = _measured_parts(equalizer)
    if measured is not None:  # trained on measured data: the same parts of the same files
        train_parts, test_parts = measured
        test_part = test_parts[test_links.index(test_link)]
        train_trs = [load_part(part, link) for part, link in zip(train_parts, train_links)]
        test_tr = load_part(test_part, test_link, dbp=dbp)
    else:
        train_trs = [_simulate(link, cache_dir, False, progress) for link in train_links]
        test_tr = _simulate(test_link, cache_dir, dbp, progress)
    windows = equalizer.training_set(train_trs)  # windows, or blocks of a sequence model
    return compress_equalizer(equalizer, windows, test_tr, config, out,
                              references=reference_points(test_tr, equalizer), progress=progress, executor=executor)


def _load_toml(path: Path) -> tuple[TrainRunConfig, CompressionSearchConfig]:
    data = read_toml(path, "compression study")
    compress_table = data.pop("compression", {})
    data.pop("study", None)  # `eqnn run` study files share this format
    train = TrainRunConfig.from_dict(data, base_dir=path.parent)
    return train, CompressionSearchConfig.from_dict(compress_table)


def compress_inputs(source: Union[str, Path], *, calls: Optional[int] = None,
                    config_path: Union[str, Path, None] = None, model: Optional[str] = None,
                    power_dbm: Optional[float] = None) -> tuple[Optional[TrainRunConfig], CompressionSearchConfig]:
    """The inputs of ``eqnn compress`` (:func:`compress_command`) checked without TensorFlow: ``(None, config)`` for
    a saved equalizer folder (its ``equalizer.json`` readable and complete, its weight files present; the
    ``[compression]`` table of ``config_path``, else the defaults), ``(training config, config)`` for a training or
    study TOML (every table but ``[study]``, and ``model`` / ``power_dbm`` against its models and powers); ``calls``
    replaces ``n_calls``. Errors are :class:`ConfigError`."""
    source = Path(source)
    if source.is_dir():
        if not (source / "equalizer.json").is_file():
            raise ConfigError(f"{source} is not a saved equalizer folder (no equalizer.json)")
        read_equalizer_meta(source)
        config = load_compression_config(config_path) if config_path else CompressionSearchConfig()
        return None, config.with_calls(calls)
    if source.is_file():
        if config_path is not None:
            raise ConfigError("--config applies to an equalizer folder; a TOML source carries its own [compression]")
        train, config = _load_toml(source)
        config = config.with_calls(calls)
        names = [m.name for m in train.models]
        if model is not None and model not in names:
            raise ConfigError(f"--model {model!r}: allowed {', '.join(names)} (the [[models]] names)")
        if power_dbm is not None and not any(same_power(power_dbm, p) for p in train.powers_dbm):
            raise ConfigError(f"--power {power_dbm:g}: allowed one of powers_dbm {list(train.powers_dbm)}")
        return train, config
    raise ConfigError(f"{source} does not exist: give a saved equalizer folder or a training TOML")


def _from_toml(train: TrainRunConfig, config: CompressionSearchConfig, out: Path, power_dbm, model, cache_dir, dbp,
               progress, executor=None, verbose: bool = False) -> list[CompressionStudy]:
    from .compression import compress_trained

    names = [m.name for m in train.models]  # --model and --power were checked by compress_inputs
    if power_dbm is not None:  # the TOML's own value of that power
        power_dbm = next(p for p in train.powers_dbm if same_power(power_dbm, p))
    powers = [power_dbm] if power_dbm is not None and train.mode == "per_power" else None
    cache = cache_folder(train.cache_dir, out, cache_dir)
    training = train_stage(train, out / "train", powers=powers, cache_dir=False if cache is None else cache,
                           progress=progress, executor=executor, verbose=verbose)
    studies = []
    for name in [model] if model else names:
        p = power_dbm if power_dbm is not None else training.optimum[name].launch_power_dbm
        folder = out / f"{name}@{training.model(name, p).tag}"
        print(f"compressing {name} at {p:+.2f} dBm: {config.n_calls} evaluations in {folder}", flush=True)
        studies.append(compress_trained(training, name, p, config, folder, cache, dbp=dbp, progress=progress,
                                        executor=executor))
    return studies


def summary_rows(studies: Sequence[CompressionStudy]) -> list[dict]:
    """Per study: the uncompressed model, the best compressed one and each reference (once per launch power)."""
    rows, seen = [], set()
    for study in studies:
        u, b, p = study.uncompressed, study.best, study.launch_power_dbm
        rows.append({"launch_power_dbm": p, "method": study.name, "q_db": u["q_db"], "rmps": u["rmps"],
                     "bop": u["bop"], "nabs": u["nabs"], "size_bits": u["size_bits"], "params": ""})
        if b is not None:
            rows.append({"launch_power_dbm": p, "method": f"{study.name} compressed", "q_db": b["q_db"],
                         "rmps": b["rmps"], "bop": b["bop"], "nabs": b["nabs"], "size_bits": b["size_bits"],
                         "params": ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                             for k, v in b["params"].items())})
        for method, (rmps, q) in study.references.items():
            if (p, method, rmps, q) in seen:  # the same reference of another model at the same power
                continue
            seen.add((p, method, rmps, q))
            cost = study.dsp_costs.get(method, {})
            rows.append({"launch_power_dbm": p, "method": method, "q_db": q, "rmps": rmps, "bop": cost.get("bop"),
                         "nabs": cost.get("nabs"), "size_bits": None, "params": ""})
    return rows


def format_summary(rows: Sequence[Mapping]) -> str:
    """The summary table printed by ``eqnn compress``."""
    def num(v, fmt):
        return f"{'-':>{fmt.split('.')[0]}}" if v is None else format(v, fmt)

    lines = [f"{'P (dBm)':>8}  {'method':24s} {'Q (dB)':>7} {'RMpS':>10} {'BoP':>12} {'size (bit)':>11}  params"]
    for r in rows:
        lines.append(f"{r['launch_power_dbm']:+8.2f}  {r['method']:24s} {r['q_db']:7.2f} {num(r['rmps'], '10.1f')} "
                     f"{num(r['bop'], '12.4g')} {num(r['size_bits'], '11.0f')}  {r['params']}")
    return "\n".join(lines)


def compress_command(source: Union[str, Path], *, calls: Optional[int] = None, out: Union[str, Path, None] = None,
                     power_dbm: Optional[float] = None, model: Optional[str] = None,
                     config_path: Union[str, Path, None] = None, cache_dir: Union[str, Path, None, bool] = None,
                     dbp: bool = True, progress: bool = True, executor=None, verbose: bool = False
                     ) -> list[CompressionStudy]:
    """``eqnn compress``: ``source`` is a saved equalizer folder (settings from the ``[compression]`` table of
    ``config_path``, else the defaults) or a training TOML with a ``[compression]`` table (models trained or reused
    in ``<out>/train``, each compressed at its best test power, or ``power_dbm``; ``model``: only that one).
    ``calls`` overrides ``n_calls``. ``cache_dir``: simulation cache (None: the TOML's ``cache_dir``, whose ``""``
    is ``<out>/cache`` (:func:`eqnn.training.run.cache_folder`), results/cache for a folder; False: none).
    ``verbose``: one line per training epoch instead of a progress bar per model. ``executor``: where the training
    and the search evaluations run
    (:mod:`eqnn.execution`; None: here). Every input is checked before any training. Writes ``summary.json`` and
    ``summary.csv`` to ``out`` (default ``results/compress-<name>``) and prints the summary table."""
    source = Path(source)
    start = time.perf_counter()
    train, config = compress_inputs(source, calls=calls, config_path=config_path, model=model, power_dbm=power_dbm)
    if train is None:
        out = Path(out or Path("results") / f"compress-{source.name}")
        equalizer = load_equalizer(source)
        if model is not None and model != equalizer.name:
            raise ConfigError(f"--model {model!r}: the equalizer in {source} is {equalizer.name!r}")
        cache = None if cache_dir is False else (cache_dir or DEFAULT_CACHE)
        studies = [compress_saved_equalizer(equalizer, config, out, power_dbm, cache, dbp, progress, folder=source,
                                            executor=executor)]
    else:
        out = Path(out or Path("results") / f"compress-{train.name}")
        studies = _from_toml(train, config, out, power_dbm, model, cache_dir, dbp, progress, executor, verbose)
    rows = summary_rows(studies)
    write_json(out / "summary.json", {"rows": rows, "studies": [s.to_dict() for s in studies]})
    write_csv(out / "summary.csv", rows)
    print(format_summary(rows))
    print(f"\nwrote {out / 'summary.json'}, {out / 'summary.csv'} and the studies in {out} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    return studies
