"""The training stage behind ``eqnn train``: per launch power, simulate independent training and test
transmissions, train (or reuse) every model, evaluate it next to CDC and DBP, write the result files.

- :func:`train_stage`: the stage; returns a typed :class:`eqnn.records.TrainingResult`.
- :func:`run_training`: the same, returning the dict written to ``results.json`` (the public API of ``eqnn train``).
- :func:`cache_folder`: the one rule of where the simulation cache of a run is.
- :func:`format_table`: the printed Q table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from channel import Transmission

from ..data import check_independent, fit_normalization, resolve_guard, resolve_taps
from ..execution import InProcess
from ..models import custom_input_of, model_config_to_dict
from ..quiet import import_tensorflow
from ..records import QRow, TrainedModel, TrainingResult, best_per_method
from ..references import dsp_complexity
from ..report import format_q_table, jsonable, plot_q_vs_power, write_csv, write_json
from .config import TrainRunConfig, cache_folder, load_train_config
from .equalizer import Equalizer, blocks_of, load_equalizer, save_equalizer, training_set
from .evaluate import Evaluation, evaluate

__all__ = ["cache_folder", "format_table", "run_training", "train_stage"]


# the line fitting.EpochLog prints per epoch: "  <label> epoch <e>/<E>  loss ...  <seconds> s"
_EPOCH_LINE = re.compile(r"^\s*(?P<label>\S+) epoch (?P<epoch>\d+)/(?P<epochs>\d+)\s+(?P<rest>.*?)\s*$")


class _EpochBar(io.TextIOBase):
    """Standard output while one model trains: the per-epoch lines of :class:`eqnn.training.fitting.EpochLog`
    become one tqdm bar of the model (epochs done, the last losses); any other line is written through."""

    def __init__(self, label: str, epochs: int, stream):
        from tqdm.auto import tqdm

        super().__init__()
        self.stream, self.buffer_text = stream, ""
        self.bar = tqdm(total=epochs, desc=f"  {label}", unit="epoch", leave=True, file=sys.stderr,
                        dynamic_ncols=True)

    def write(self, text: str) -> int:
        self.buffer_text += text
        while "\n" in self.buffer_text:
            line, self.buffer_text = self.buffer_text.split("\n", 1)
            match = _EPOCH_LINE.match(line)
            if match is None:
                if line.strip():
                    self.bar.write(line, file=self.stream)
                continue
            self.bar.total = int(match["epochs"])
            self.bar.update(int(match["epoch"]) - self.bar.n)
            rest = re.sub(r"\s+\d+(\.\d+)? s$", "", match["rest"])  # the epoch's seconds: the bar shows the rate
            self.bar.set_postfix_str(re.sub(r"\s{2,}", ", ", rest), refresh=False)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        if self.buffer_text.strip():
            self.stream.write(self.buffer_text)
        self.bar.close()
        super().close()


@contextlib.contextmanager
def _epoch_display(label: str, epochs: int, progress: bool, verbose: bool):
    """How one model's training shows its epochs: nothing (``progress`` off), one line per epoch (``verbose``), or
    a progress bar of the model (the default); yields the ``progress`` argument of :func:`fitting.train_model`."""
    if not progress:
        yield False
        return
    if verbose:
        yield True
        return
    bar = _EpochBar(label, epochs, sys.stdout)
    try:
        with contextlib.redirect_stdout(bar):
            yield True
    finally:
        bar.close()


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _power_tag(p: float) -> str:
    return f"{p:+.2f}dBm".replace(".", "p")


def _transmission(config: TrainRunConfig, which: str, p: float, cache_dir: Optional[Path], dbp: bool,
                  progress: bool) -> Transmission:
    """The ``which`` ("train" or "test") transmission at ``p`` dBm: simulated (or from the cache), or read from
    the measured dataset (:meth:`TrainRunConfig.transmission`)."""
    start = time.perf_counter()
    tr = config.transmission(which, p, cache_dir=cache_dir, progress=progress, dbp=dbp)
    if progress:
        link = tr.config
        part = tr.info.get("measured")
        source = (f"symbols [{part['start']}, {part['stop']}) of {part['path']}" if part else
                  f"seed {link.transmitter.seed}")
        print(f"  {which:5s}: {link.transmitter.launch_power_dbm:+.2f} dBm, {source}, "
              f"{link.transmitter.n_symbols} symbols/pol, CDC Q {tr.metrics['CDC'].q_db_best:.2f} dB "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    return tr


def _train_pair(p: float, config: TrainRunConfig, cache: Optional[Path], progress: bool
                ) -> tuple[Transmission, Transmission]:
    """The training and the test transmission at launch power ``p`` (dBm): simulated or from the cache, or read
    from the measured dataset."""
    train_tr = _transmission(config, "train", p, cache, False, progress)
    test_tr = _transmission(config, "test", p, cache, config.dbp, progress)
    return train_tr, test_tr


def _data_key(train_trs: Sequence[Transmission]) -> list:
    """What identifies the training data of a model fingerprint: the link of each simulated transmission; for
    measured data also the digest of the symbols read (another part or another file of the same length)."""
    return [t.config.digest() if "measured_digest" not in t.info else [t.config.digest(), t.info["measured_digest"]]
            for t in train_trs]


def _train_models(config: TrainRunConfig, train_trs: list[Transmission], test_trs: list[Transmission], tag: str,
                  out: Path, resume: bool, progress: bool, verbose: bool = True, epoch_lines: bool = False,
                  only: Optional[Sequence[int]] = None) -> tuple[list[Equalizer], list[TrainedModel]]:
    """Train (or reuse, when ``resume`` and the saved fingerprint matches) every model on ``train_trs`` and save it
    in ``out/models/<name>@<tag>``; returns the equalizers and their records. ``verbose``: one line per model;
    ``progress``: a progress bar per model, or with ``epoch_lines`` one line per epoch. ``only``: the indices of
    the models of ``config.models`` to train (default: all)."""
    import_tensorflow()  # TensorFlow's start-up lines captured (eqnn.quiet), then the fitting module that needs it
    from . import fitting

    check_independent(train_trs, test_trs)
    normalization = fit_normalization(train_trs, config.data)
    sets: dict = {}  # windows (one set for every windowed model) or blocks per block length (sequence models)
    equalizers, records = [], []
    for mc in (config.models if only is None else [config.models[i] for i in only]):
        folder = out / "models" / f"{mc.name}@{tag}"
        training = config.training_for(mc.name)
        key = _fingerprint(model_config_to_dict(mc), config.data.to_dict(), training.to_dict(), _data_key(train_trs))
        eq = None
        if resume and (folder / "equalizer.json").is_file():
            try:
                loaded = load_equalizer(folder)
                if loaded.info.get("fingerprint") == key:
                    eq = loaded
                    if verbose:
                        print(f"  {mc.name} @ {tag}: reusing the trained model in {folder}", flush=True)
            except Exception as exc:  # a damaged folder is retrained
                if verbose:
                    print(f"  {mc.name} @ {tag}: cannot reuse {folder} ({exc}); retraining", flush=True)
        if eq is None:
            custom = custom_input_of(mc)
            if custom is not None:  # its own input (learned DBP: the received field), resolved from the training data
                mc = custom.prepare(mc, train_trs)
                kind = ("custom", model_config_to_dict(mc).__repr__())
            else:
                geometry = blocks_of(mc)
                kind = None if geometry is None else geometry.block_length
            if kind not in sets:
                sets[kind] = training_set(mc, train_trs, config.data, normalization)
            train_set = sets[kind]
            if verbose:
                print(f"  training {mc.name} @ {tag} on {len(train_set)} {'windows' if kind is None else 'blocks'} "
                      f"of {train_set.input_shape}", flush=True)
            label = f"{mc.name}@{tag}"
            with _epoch_display(label, training.epochs, progress, epoch_lines) as show:
                eq = fitting.train_model(mc, train_set, training, config.data, progress=show, label=label)
            eq.info["fingerprint"] = key
            # the links of its data, so that the data can be simulated again (eqnn compress <model folder>)
            eq.info["train_links"] = [t.config.to_dict() for t in train_trs]
            eq.info["test_links"] = [t.config.to_dict() for t in test_trs]
            if config.dataset is not None:  # measured: the parts of the files to read again
                eq.info["train_parts"] = [t.info["measured"] for t in train_trs]
                eq.info["test_parts"] = [t.info["measured"] for t in test_trs]
            save_equalizer(eq, folder)
        records.append(TrainedModel(
            name=mc.name, tag=tag, folder=str(folder), powers_dbm=tuple(eq.info.get("trained_on_powers_dbm", ())),
            rmps=eq.complexity().rmps, summary={k: v for k, v in eq.info.items() if k != "training"}))
        equalizers.append(eq)
    return equalizers, records


def _simulate_job(p: float, config: TrainRunConfig, cache: Path) -> None:
    """The training and test transmissions of launch power ``p`` into the cache (nothing returned: the workers of
    the next tasks read them from there)."""
    _train_pair(p, config, cache, progress=False)


def _model_job(pair: tuple[int, float], config: TrainRunConfig, out: Path, cache: Path, resume: bool) -> TrainedModel:
    """Model ``config.models[i]`` at launch power ``p`` (``pair = (i, p)``), trained (or reused) and saved."""
    i, p = pair
    train_tr, test_tr = _train_pair(p, config, cache, progress=False)
    return _train_models(config, [train_tr], [test_tr], _power_tag(p), out, resume, progress=False, verbose=False,
                         only=[i])[1][0]


def _evaluate_job(p: float, config: TrainRunConfig, out: Path, cache: Path) -> Evaluation:
    """Every saved model of launch power ``p`` (in the order of ``config.models``) on the test transmission."""
    _, test_tr = _train_pair(p, config, cache, progress=False)
    equalizers = [load_equalizer(out / "models" / f"{mc.name}@{_power_tag(p)}") for mc in config.models]
    return evaluate(equalizers, test_tr, batch_size=config.training.predict_batch_size)


def _power_job(p: float, config: TrainRunConfig, out: Path, cache: Optional[Path], resume: bool, progress: bool,
               verbose: bool = True, epoch_lines: bool = False) -> tuple[list[TrainedModel], Evaluation]:
    """Everything of launch power ``p`` in per_power mode, one independent piece of work: the two transmissions,
    every model trained (or reused) and saved, the evaluation; returns (trained models, evaluation)."""
    if verbose:
        print(f"launch power {p:+.2f} dBm", flush=True)
    train_tr, test_tr = _train_pair(p, config, cache, progress)
    equalizers, records = _train_models(config, [train_tr], [test_tr], _power_tag(p), out, resume, progress,
                                        verbose, epoch_lines)
    return records, evaluate(equalizers, test_tr, batch_size=config.training.predict_batch_size)


def _row_costs(rows: list[QRow], dsp_rmps: dict[str, float], models: Sequence[TrainedModel]) -> list[QRow]:
    """``rows`` with their RMpS: CDC/DBP-k from the link, each NN from the model used at the row's power."""
    out = []
    for r in rows:
        if r.method in dsp_rmps:
            rmps = dsp_rmps[r.method]
        else:
            rmps = next((m.rmps for m in models if m.name == r.method and m.covers(r.launch_power_dbm)), None)
        out.append(r.replace(rmps=rmps))
    return out


def _prepare(config: Union[str, Path, TrainRunConfig], powers, dbp) -> TrainRunConfig:
    if not isinstance(config, TrainRunConfig):
        config = load_train_config(config)
    if powers is not None:
        config = dataclasses.replace(config, powers_dbm=tuple(float(p) for p in powers))
    if dbp is not None:
        config = dataclasses.replace(config, dbp=bool(dbp))
    for p in config.powers_dbm:  # validate every power before any work
        config.scenario.with_launch_power(p)
    return config


def train_stage(config: Union[str, Path, TrainRunConfig], out_dir: Union[str, Path],
                powers: Optional[Sequence[float]] = None, cache_dir: Union[str, Path, None, bool] = None,
                progress: bool = True, resume: bool = True, dbp: Optional[bool] = None,
                executor=None, verbose: bool = False, tables: bool = True) -> TrainingResult:
    """Train and evaluate the configured NN equalizers at each launch power; write the result files.

    Arguments as :func:`run_training`; ``tables``: print the Q table and the optimum per method (``eqnn run``
    prints only its final table). Returns the typed :class:`eqnn.records.TrainingResult` (the other stages read it;
    ``results.json`` is its ``to_dict()``).
    """
    config = _prepare(config, powers, dbp)
    out = Path(out_dir)
    cache = cache_folder(config.cache_dir, out, cache_dir)
    link = config.scenario
    start = time.perf_counter()
    print(f"training study '{config.name}' on link '{link.name}': {link.link.n_spans} x "
          f"{link.link.span_length_km:g} km, {link.transmitter.modulation} {link.transmitter.symbol_rate_gbd:g} GBd, "
          f"{config.train_link(config.powers_dbm[0]).transmitter.n_symbols} training / "
          f"{config.test_link(config.powers_dbm[0]).transmitter.n_symbols} test symbols/pol"
          f"{' (measured)' if config.dataset is not None else ''}; powers {list(config.powers_dbm)} dBm; "
          f"mode {config.mode}; "
          f"taps N = {resolve_taps(config.data, link)}, guard {resolve_guard(config.data, link)}; "
          f"models {', '.join(m.name for m in config.models)}", flush=True)

    executor = executor or InProcess()
    remote = executor.remote
    where = out.resolve() if remote else out  # workers elsewhere: absolute paths on the shared filesystem
    cache_at = cache.resolve() if remote and cache is not None else cache
    evaluations: list[Evaluation] = []
    models: list[TrainedModel] = []

    if config.mode == "per_power" and remote and cache_at is not None and len(config.models) > 1:
        # finer tasks, so that the workers stay busy: the transmissions of every power, then one task per
        # (model, power) reading them from the shared cache, then one evaluation per power
        job = functools.partial(_simulate_job, config=config, cache=cache_at)
        executor.map(job, config.powers_dbm, desc="transmissions (launch powers)", progress=progress)
        pairs = [(i, p) for i in range(len(config.models)) for p in config.powers_dbm]
        job = functools.partial(_model_job, config=config, out=where, cache=cache_at, resume=resume)
        by_pair = dict(zip(pairs, executor.map(job, pairs, desc="training (models x launch powers)",
                                               progress=progress)))
        models = [by_pair[(i, p)] for p in config.powers_dbm for i in range(len(config.models))]
        job = functools.partial(_evaluate_job, config=config, out=where, cache=cache_at)
        evaluations = executor.map(job, config.powers_dbm, desc="evaluation (launch powers)", progress=progress)
    elif config.mode == "per_power":
        job = functools.partial(_power_job, config=config, out=where, cache=cache_at, resume=resume,
                                progress=progress and not remote, verbose=not remote, epoch_lines=verbose)
        for records, ev in executor.map(job, config.powers_dbm, desc="training (launch powers)", progress=progress):
            models += records
            evaluations.append(ev)
    else:
        job = functools.partial(_train_pair, config=config, cache=cache_at, progress=progress and not remote)
        pairs = executor.map(job, config.powers_dbm, desc="transmissions (launch powers)", progress=progress)
        equalizers, models = _train_models(config, [a for a, _ in pairs], [b for _, b in pairs], "combined", out,
                                           resume, progress, epoch_lines=verbose)
        for _, test_tr in pairs:
            evaluations.append(evaluate(equalizers, test_tr, batch_size=config.training.predict_batch_size))
    models = [m.moved_to(str(out / "models" / Path(m.folder).name)) for m in models]  # as this process names them

    # real multiplications per recovered symbol (eqnn.complexity): CDC and DBP-k from the link, each NN from its
    # trained weights (per launch power in per_power mode)
    dsp_rmps = {name: c.rmps for name, c in dsp_complexity(link).items()}
    rows = _row_costs([r for ev in evaluations for r in ev.q_rows()], dsp_rmps, models)
    result = TrainingResult(name=config.name, config=config, rows=tuple(rows),
                            optimum=best_per_method(rows, list(dict.fromkeys(r.method for r in rows))),
                            evaluations=tuple(evaluations), models=tuple(models),
                            wall_time_s=time.perf_counter() - start)
    _write(result, out, config, evaluations, tables)
    print(f"\nwrote {out / 'results.json'}, {out / 'results.csv'}, {out / 'q_vs_power.png'}, {out / 'models'} "
          f"in {time.perf_counter() - start:.0f} s", flush=True)
    return result


def _write(result: TrainingResult, out: Path, config: TrainRunConfig, evaluations: list[Evaluation],
           tables: bool = True) -> None:
    """``results.json``, ``results.csv``, ``q_vs_power.png`` and (``tables``) the printed tables."""
    link = config.scenario
    data = result.to_dict()
    rows, methods = data["rows"], result.methods
    write_json(out / "results.json", jsonable(data, nan="none"))
    write_csv(out / "results.csv", rows)
    plot_q_vs_power(rows, out / "q_vs_power.png",
                    title=f"{config.name}: {link.link.n_spans}x{link.link.span_length_km:g} km, "
                          f"{link.transmitter.modulation} {link.transmitter.symbol_rate_gbd:g} GBd, "
                          f"{evaluations[0].polarizations}-pol, N={resolve_taps(config.data, link)}")
    if not tables:
        return
    print(format_table(rows, methods, list(config.powers_dbm)))
    print("\noptimum per method (Q from BER where measured, else from SNR; real multiplications per recovered "
          "symbol from eqnn.complexity):")
    for method, b in result.optimum.items():
        print(f"  {method:12s} {b.q_db:6.2f} dB at {b.launch_power_dbm:+.2f} dBm, {b.rmps:10.1f} RMpS"
              f"{'' if b.measured else '  (Q implied by SNR: too few errors)'}")


def run_training(config: Union[str, Path, TrainRunConfig], out_dir: Union[str, Path],
                 powers: Optional[Sequence[float]] = None, cache_dir: Union[str, Path, None, bool] = None,
                 progress: bool = True, resume: bool = True, dbp: Optional[bool] = None, executor=None,
                 verbose: bool = False) -> dict:
    """Train and evaluate the configured NN equalizers at each launch power; write results.

    Args:
        config: a training TOML path or a :class:`TrainRunConfig`.
        out_dir: output folder: ``results.json``, ``results.csv``, ``q_vs_power.png`` and
            ``models/<name>@<power>/`` (saved :class:`Equalizer` folders).
        powers: launch powers (dBm) overriding ``config.powers_dbm``.
        cache_dir: simulation cache folder overriding ``config.cache_dir``; ``False`` disables caching
            (:func:`cache_folder`: a ``cache_dir`` of ``""`` is ``<out_dir>/cache``).
        progress: simulation progress and a progress bar per trained model (epochs, losses).
        verbose: with ``progress``, one line per training epoch instead of the bar.
        resume: reuse a saved model in ``out_dir/models`` whose configs and training data match
            (an interrupted run continues where it stopped).
        dbp: overrides ``config.dbp`` (compute DBP on the test transmissions).
        executor: where the independent work runs (:mod:`eqnn.execution`; None: here): in per_power mode one task
            per launch power (simulations, training, evaluation), in combined mode one simulation task per
            transmission, then the training here. Remote workers simulate into the cache and save the models in
            ``out_dir`` themselves (a filesystem they share with this process), and print nothing.

    Returns: the dict written to ``results.json``: ``rows`` (one per power and method: Q, SNR, BER...),
    ``models`` (training summaries), ``optimum`` (best power per method) and the config.
    """
    return train_stage(config, out_dir, powers=powers, cache_dir=cache_dir, progress=progress, resume=resume,
                       dbp=dbp, executor=executor, verbose=verbose).to_dict()


def format_table(rows: list[dict], methods: list[str], powers: list[float]) -> str:
    """Q [95 % CI] and SNR per launch power (rows) and method (columns)."""
    pol = rows[0]["polarizations"] if rows else "x"
    return format_q_table(rows, methods, powers, footer=(
        f"All methods on the same symbols ({pol}-polarization window centres of the test transmission). "
        "Q [95% CI] from counted bit errors; '~' = too few errors, Q implied by the SNR."))
