"""Command-line interface: ``eqnn simulate | train | run | ...``.

Each subcommand is a ``_cmd_<name>(args)`` function registered in :func:`build_parser`. Every subcommand first
checks all of its input without TensorFlow (the command line, ``EQNN_FFT_WORKERS``/``EQNN_OPERATOR_CACHE_MB``, the
``--out`` folder, the configuration file), so that bad input fails at once with one line; only then do ``train``,
``run`` and ``compress`` start TensorFlow, quietly (:func:`eqnn.quiet.import_tensorflow`: its start-up lines are
shown with ``--verbose`` only). ``eqnn simulate`` never imports it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_CACHE = Path("results") / "cache"


class UsageError(ValueError):
    """Bad command-line input."""


def parse_powers(text: str) -> list[float]:
    """Launch powers from ``"start:stop:step"`` (stop included) or ``"p1,p2,..."`` (dBm)."""
    try:
        if ":" in text:
            parts = [float(v) for v in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if step <= 0 or stop < start:
                raise UsageError(f"--power {text!r}: need start <= stop and step > 0")
            n = int(np.floor((stop - start) / step + 1e-9)) + 1
            return [round(start + i * step, 6) for i in range(n)]
        items = [v.strip() for v in text.split(",")]
        if not text.strip() or any(not v for v in items):
            raise UsageError(f"--power {text!r}: an empty item; expected START:STOP:STEP (e.g. -2:6:1) or a list of "
                             "numbers separated by single commas (e.g. 0,2,4), in dBm")
        powers = [float(v) for v in items]
        if not all(np.isfinite(powers)):
            raise ValueError
        return powers
    except UsageError:
        raise
    except ValueError:
        raise UsageError(f"--power {text!r}: expected START:STOP:STEP (e.g. -2:6:1) or a list (e.g. 0,2,4), in dBm")


def _load_link(path: str | None):
    """The link of ``eqnn simulate``: the built-in reference link, a link TOML, or the ``[scenario]`` of a
    training/study TOML (``channel.load_config`` resolves its ``base`` and overrides as ``eqnn train`` and
    ``eqnn run`` do; the file's other keys are not used here)."""
    import channel

    if path is None:
        return channel.reference_config()
    return channel.load_config(path)


def _executor(args: argparse.Namespace):
    """The executor of ``--workers`` / ``--scheduler`` / ``DASK_SCHEDULER_ADDRESS`` (checked now, started on first
    use; in-process when none is given)."""
    from eqnn.execution import get_executor

    return get_executor(workers=args.workers, scheduler=args.scheduler)


def _check_environment() -> None:
    """``EQNN_FFT_WORKERS`` and ``EQNN_OPERATOR_CACHE_MB``, checked before any work (one-line error naming them)."""
    from channel import runtime

    runtime.settings()


def _check_out(out: str | Path | None) -> None:
    """``--out``: a folder, new or existing; an existing file (or anything but a folder) is refused before any work."""
    if out is None:
        return
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {str(out)!r} is an existing file: allowed a folder (new or existing)")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"--out {str(out)!r}: {str(parent)!r} is a file: allowed a folder path")
            break


def _check_cache_option(cache: str | Path | None) -> None:
    if cache in (None, "", False):
        return
    path = Path(cache)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--cache {str(cache)!r} is an existing file: allowed a folder (new or existing)")


def _start_tensorflow(args: argparse.Namespace) -> None:
    """Import TensorFlow with its start-up lines captured (shown with ``--verbose``; :mod:`eqnn.quiet`)."""
    from eqnn import quiet

    quiet.set_verbose(getattr(args, "verbose", False))
    quiet.import_tensorflow()


def _progress(args: argparse.Namespace) -> dict:
    """``progress`` (bars; off with --quiet) and ``verbose`` (per-epoch lines instead of bars) of a command."""
    return {"progress": not args.quiet, "verbose": bool(getattr(args, "verbose", False)) and not args.quiet}


def _cmd_simulate(args: argparse.Namespace) -> int:
    from eqnn.execution import sweep
    from eqnn.report import format_q_table, optimum_per_method, plot_q_vs_power, write_csv, write_json

    executor = _executor(args)
    config = _load_link(args.config)
    overrides = {}
    if args.symbols is not None:
        overrides["n_symbols"] = args.symbols
    if args.seed is not None:
        overrides["seed"] = args.seed
    if overrides:
        config = config.replace(transmitter=overrides)
    powers = parse_powers(args.power) if args.power else [config.transmitter.launch_power_dbm]
    links = [config.with_launch_power(p) for p in powers]  # validate every power before the first simulation
    out = Path(args.out or Path("results") / f"simulate-{config.name}")
    cache = None if args.no_cache else Path(args.cache)
    if cache is not None:  # a cache entry in the way (a folder, say) is reported before any simulation
        from channel.storage import cache_path, check_cache_entry

        for link in links:
            check_cache_entry(cache_path(cache, link))
    print(f"link '{config.name}': {config.link.n_spans} x {config.link.span_length_km:g} km, "
          f"{config.transmitter.modulation} {config.transmitter.symbol_rate_gbd:g} GBd, "
          f"{config.transmitter.n_symbols} symbols/pol, powers {powers} dBm")
    start = time.perf_counter()
    with executor:
        transmissions = sweep(executor, config, powers, cache_dir=cache, progress=not args.quiet, dbp=not args.no_dbp)
    from eqnn.references import dsp_complexity

    rmps = {name: c.rmps for name, c in dsp_complexity(config).items()}
    rows = []
    for tr in transmissions:
        p = tr.config.transmitter.launch_power_dbm
        for method, m in tr.metrics.items():
            k = int(method.split("-")[1]) if method.startswith("DBP-") else None
            rows.append({"launch_power_dbm": p, "method": method, "q_db": m.q_db,
                         "q_db_ci_low": m.q_db_ci[0], "q_db_ci_high": m.q_db_ci[1],
                         "q_db_from_snr": m.q_db_from_snr, "snr_db": m.snr_db, "ber": m.ber,
                         "bit_errors": m.bit_errors, "n_bits": m.n_bits, "gmi_bits": m.gmi_bits,
                         "evm_percent": m.evm_percent, **tr.dbp_settings(k),
                         "rmps": rmps.get(method),
                         "note": m.note})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    print(format_q_table(rows, methods, powers))
    best = optimum_per_method(rows, methods)
    for method in best:
        best[method]["rmps"] = rmps.get(method)
    write_json(out / "results.json", {"config": config.to_dict(), "powers_dbm": powers, "rows": rows,
                                      "optimum": best, "ase_only_snr_db": {
                                          str(tr.config.transmitter.launch_power_dbm): tr.info.get("ase_only_snr_db")
                                          for tr in transmissions}})
    write_csv(out / "results.csv", rows)
    plot_q_vs_power(rows, out / "q_vs_power.png",
                    title=f"{config.name}: {config.link.n_spans}x{config.link.span_length_km:g} km, "
                          f"{config.transmitter.modulation} {config.transmitter.symbol_rate_gbd:g} GBd")
    print("\noptimum per method (Q from BER where measured, else from SNR; real multiplications per symbol "
          "and polarization from eqnn.complexity):")
    for method, b in best.items():
        print(f"  {method:8s} {b['q_db']:6.2f} dB at {b['launch_power_dbm']:+.1f} dBm, {b['rmps']:8.1f} RMpS"
              f"{'' if b['measured'] else '  (Q implied by SNR: too few errors)'}")
    print(f"\nwrote {out / 'results.json'}, {out / 'results.csv'}, {out / 'q_vs_power.png'} "
          f"in {time.perf_counter() - start:.0f} s")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from eqnn.training.config import load_train_config

    executor = _executor(args)
    # the whole file (a training TOML, or a study file whose [compression] and [study] tables are ignored here) and
    # every option are validated before TensorFlow is imported
    config = load_train_config(args.config, study_tables="ignore")
    powers = parse_powers(args.power) if args.power else None
    if powers is not None:
        for p in powers:
            config.scenario.with_launch_power(p)
    out = Path(args.out or Path("results") / f"train-{config.name}")
    cache = False if args.no_cache else (Path(args.cache) if args.cache else None)
    _check_cache_option(args.cache)
    _start_tensorflow(args)
    from eqnn.training.run import run_training

    with executor:
        run_training(config, out, powers=powers, cache_dir=cache, resume=not args.restart,
                     dbp=False if args.no_dbp else None, executor=executor, **_progress(args))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from eqnn.study import load_study

    executor = _executor(args)
    _check_cache_option(args.cache)
    # every section of the study file is validated before anything runs (the cluster starts on first use) and before
    # TensorFlow is imported ([compression] against eqnn.compression.catalog)
    config = load_study(args.study)
    _start_tensorflow(args)
    from eqnn.study import run_study

    with executor:
        run_study(config, out_dir=args.out, cache_dir=args.cache, executor=executor, source=args.study,
                  **_progress(args))
    return 0


def _cmd_compress(args: argparse.Namespace) -> int:
    executor = _executor(args)
    try:
        power = None if args.power is None else float(args.power)
    except ValueError:
        raise UsageError(f"--power {args.power!r}: expected one launch power in dBm, e.g. -2") from None
    _check_cache_option(args.cache)
    from eqnn.studies.compress_cli import compress_inputs

    # the source, the [compression] table, --calls, and --model/--power of a TOML source, before TensorFlow
    compress_inputs(args.source, calls=args.calls, config_path=args.config, model=args.model, power_dbm=power)
    _start_tensorflow(args)
    from eqnn.compress_run import compress_command

    with executor:
        compress_command(args.source, calls=args.calls, out=args.out, power_dbm=power, model=args.model,
                         config_path=args.config, cache_dir=False if args.no_cache else args.cache,
                         dbp=not args.no_dbp, executor=executor, **_progress(args))
    return 0


def _join_negative_values(argv: list[str]) -> list[str]:
    """Let ``--power -2:6:1`` through: argparse would take the negative value for an option."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--power" and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            out.append(f"--power={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _add_execution_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "where the work runs (default: in this process; Dask needed otherwise: pip install \"eqnn[distributed]\")")
    group.add_argument("--workers", type=int, metavar="N",
                       help="start a local Dask cluster of N worker processes (1 to 256) and spread the independent "
                       "work over it (one task per launch power, per training, per search point); the dashboard "
                       "address is printed")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="use a running Dask cluster: its scheduler address, e.g. tcp://host:8786 (default: "
                       "$DASK_SCHEDULER_ADDRESS if set); its workers must see the results and cache folders")


def _version() -> str:
    from eqnn import __version__

    return __version__


def _add_verbose_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up and log lines, and one line per training epoch instead of a "
                        "progress bar per model")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eqnn", description="Neural-network equalization of coherent optical fiber links: simulate links, "
        "train and compress NN equalizers, and compare them with CDC and digital back-propagation.")
    parser.add_argument("--version", action="version", version=f"eqnn {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sim = sub.add_parser(
        "simulate", help="simulate a link over launch powers; Q/SNR after CDC and DBP",
        description="Simulate the link of CONFIG (TOML; default: the built-in reference link) at each launch "
        "power, print a table of Q-factor and SNR after CDC and each DBP variant, and write results.json, "
        "results.csv and q_vs_power.png to --out. Simulations are cached by config hash in --cache.")
    sim.add_argument("config", nargs="?",
                     help="link TOML (see experiments/reference.toml), or a training/study TOML (its "
                          "[scenario]); default: built-in reference")
    sim.add_argument("--power", help="launch powers in dBm: START:STOP:STEP (stop included) or a list a,b,c; "
                     "default: the config's launch_power_dbm")
    sim.add_argument("--symbols", type=int, help="symbols per polarization (overrides the config)")
    sim.add_argument("--seed", type=int, help="seed of symbols and noise (overrides the config)")
    sim.add_argument("--out", help="output folder (default: results/simulate-<name>)")
    sim.add_argument("--cache", default=str(DEFAULT_CACHE), help=f"cache folder (default: {DEFAULT_CACHE})")
    sim.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    sim.add_argument("--no-dbp", action="store_true", help="skip digital back-propagation")
    sim.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_execution_options(sim)
    sim.set_defaults(func=_cmd_simulate)

    tr = sub.add_parser(
        "train", help="train NN equalizers on simulated links or measured data; Q versus launch power with CDC "
        "and DBP",
        description="For each launch power of CONFIG (TOML, see experiments/train_quick.toml): simulate a training "
        "and a test transmission from independent seeds (or, with a [dataset] table, read them from measured-data "
        "files: experiments/measured_example.toml), train the configured NN equalizers, evaluate them and "
        "CDC/DBP on the same test symbols, print the table and write results.json, results.csv, "
        "q_vs_power.png and the trained models to --out. An interrupted run reuses finished models.")
    tr.add_argument("config", help="training TOML (see experiments/train_quick.toml)")
    tr.add_argument("--power", help="launch powers in dBm (overrides powers_dbm): START:STOP:STEP or a,b,c")
    tr.add_argument("--out", help="output folder (default: results/train-<name>)")
    tr.add_argument("--cache", help="transmission cache folder (default: the config's cache_dir; \"\" = <out>/cache)")
    tr.add_argument("--no-cache", action="store_true", help="neither read nor write the transmission cache")
    tr.add_argument("--no-dbp", action="store_true", help="skip DBP in the comparison")
    tr.add_argument("--restart", action="store_true", help="retrain models even if finished ones are saved")
    tr.add_argument("--quiet", action="store_true", help="no progress output")
    _add_verbose_option(tr)
    _add_execution_options(tr)
    tr.set_defaults(func=_cmd_train)

    run = sub.add_parser(
        "run", help="reproduce a whole study: simulate, train, compress, benchmark against CDC/DBP, write a report",
        description="Run the study of STUDY (TOML, see experiments/quickstart.toml; format in "
        "docs/config_reference.md): "
        "(1) sweep the launch powers with CDC and each DBP variant, (2) train the NN equalizers, (3) compress the "
        "chosen models with a Bayesian search at their optimal launch power, (4) write report.md (the link, a table "
        "of RMpS, BoP, Q at the optimal launch power and gain over CDC per method, both plots), q_vs_power.png, "
        "q_vs_rmps.png, results.json and CSVs to the results folder. Every stage is cached: a repeated or "
        "interrupted run continues from what is done. The whole study file is checked before anything runs.")
    run.add_argument("study", help="study TOML (experiments/quickstart.toml, reference_study.toml, wdm.toml)")
    run.add_argument("--out", help="results folder (default: the study's [study] out_dir, else results/<name>)")
    run.add_argument("--cache", help="simulation cache folder (default: the study's cache_dir; \"\" = <out>/cache)")
    run.add_argument("--quiet", action="store_true",
                     help="no progress bars or per-epoch lines (the one line per stage and the summary remain)")
    _add_verbose_option(run)
    _add_execution_options(run)
    run.set_defaults(func=_cmd_run)

    comp = sub.add_parser(
        "compress", help="compress trained NN equalizers: Bayesian search over pruning, clustering, quantization",
        description="Search the prune -> cluster -> quantize hyperparameters of a trained equalizer (a folder "
        "models/<name>@<power> written by 'eqnn train') or of every model of a training TOML with a [compression] "
        "table (trained or reused in OUT/train, compressed at its best test power), minimizing RMpS subject to "
        "Q >= target (or a weighted objective; format in docs/config_reference.md). Writes per model the "
        "evaluations "
        "(CSV/JSON), the best model, compression.json and a Q-versus-RMpS plot with CDC, DBP and the uncompressed "
        "model marked, and prints a summary table. An interrupted search resumes where it stopped.")
    comp.add_argument("source", help="saved equalizer folder, or training TOML with a [compression] table")
    comp.add_argument("--calls", type=int, help="evaluations of the search (overrides compression.n_calls)")
    comp.add_argument("--out", help="output folder (default: results/compress-<name>)")
    comp.add_argument("--power", help="launch power (dBm) to compress at (default: each model's best test Q)")
    comp.add_argument("--model", help="compress only this model of the TOML")
    comp.add_argument("--config", help="TOML whose [compression] table configures the search of an equalizer folder")
    comp.add_argument("--cache", help="transmission cache folder (default: the TOML's cache_dir, \"\" = <out>/cache; "
                      "results/cache for an equalizer folder)")
    comp.add_argument("--no-cache", action="store_true", help="neither read nor write the transmission cache")
    comp.add_argument("--no-dbp", action="store_true", help="no DBP references")
    comp.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_verbose_option(comp)
    _add_execution_options(comp)
    comp.set_defaults(func=_cmd_compress)
    return parser


def expected_errors() -> tuple[type, ...]:
    """The errors a user can cause or meet (bad input, a damaged or locked file, a diverged simulation): reported by
    :func:`main` as one line ``eqnn <command>: error: ...`` with exit code 2, never as a traceback. Anything else is
    a bug and keeps its traceback."""
    import channel
    from channel.fiber import PropagationError
    from eqnn.execution import ExecutionError
    from eqnn.search import SearchLockedError

    return (UsageError, channel.ConfigError, ExecutionError, channel.CorruptFileError, SearchLockedError,
            PropagationError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        _check_environment()
        _check_out(getattr(args, "out", None))
        return args.func(args)
    except expected_errors() as exc:
        print(f"eqnn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished results are cached and reused by the next run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
