"""Bad input to the command line: one line on stderr, before any work, without TensorFlow where it is not needed;
TensorFlow's start-up lines kept off the terminal; `eqnn --version`; `eqnn train` on a study file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_configs import TINY_LINK_TAIL, TINY_TRAINING

import channel
import channel.link
from channel.storage import cache_path
from eqnn import quiet
from eqnn.cli import UsageError, main, parse_powers

ROOT = Path(__file__).resolve().parent.parent

STUDY = ('name = "tiny"\npowers_dbm = [0.0, 2.0]\ncache_dir = ""\n' + TINY_TRAINING
         + "[compression]\nn_calls = 3\nn_initial_points = 2\n[study]\ntitle = \"t\"\n")
LINK = 'name = "small"\n[transmitter]\nmodulation = "16QAM"\nn_symbols = 512\n' + TINY_LINK_TAIL


@pytest.fixture()
def no_work(monkeypatch):
    """Any simulation or training fails the test."""
    from eqnn.training import fitting

    monkeypatch.setattr(channel.link, "propagate_link", lambda *a, **k: pytest.fail("simulated despite bad input"))
    monkeypatch.setattr(fitting, "train_model", lambda *a, **k: pytest.fail("trained despite bad input"))


def _one_line_error(capsys, command: str, *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"eqnn {command}: error: "), err
    for needle in needles:
        assert needle in err, err
    return err


# --------------------------------------------------------------------------------------------- subprocess

_PROBE = """
import sys
from eqnn.cli import main
code = main(sys.argv[1:])
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'tf_keras', 'tensorflow_model_optimization'})
print(code, ','.join(heavy) or '-')
"""


@pytest.mark.parametrize("command, edit, needle", [
    ("run", ('modulation = "16QAM"', 'modulation = "8QAM"'), "transmitter.modulation = '8QAM'"),
    ("train", ("units = [8]", "units = [0]"), "units[] = 0 is out of range"),
    ("compress", ("epochs = 2", "epochs = 0"), "training.epochs = 0"),
])
def test_bad_config_fails_in_one_line_without_tensorflow(tmp_path, command, edit, needle):
    """The whole error is one line on stderr (no TensorFlow start-up line, no traceback), and TensorFlow was never
    imported on that path."""
    lines = _run_probe(tmp_path, command, edit)
    assert len(lines) == 1 and lines[0].startswith(f"eqnn {command}: error: ") and needle in lines[0], lines


def _run_probe(tmp_path, command: str, edit: tuple[str, str]) -> list[str]:
    """``eqnn <command>`` on STUDY with ``edit`` in a fresh interpreter: asserts exit code 2, TensorFlow (tf_keras,
    TFMOT) never imported and nothing written; returns the lines of stderr."""
    path = tmp_path / "bad.toml"
    assert edit[0] in STUDY
    path.write_text(STUDY.replace(*edit))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _PROBE, command, str(path), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.stdout.split() == ["2", "-"], proc.stdout + proc.stderr  # exit code 2, TensorFlow not imported
    assert not (tmp_path / "out").exists()
    return proc.stderr.splitlines()


_TABLE = "[compression]\nn_calls = 3\nn_initial_points = 2\n"


@pytest.mark.parametrize("command, table, error", [
    ("run", _TABLE + 'pruning_methods = ["magnitude", "prune"]\n',
     "compression.pruning_methods = ['magnitude', 'prune']: allowed one of ['magnitude', 'structured', 'obc', "
     "'filters', 'gates', 'lottery_ticket', 'one_cycle', 'gradual_structured', 'ldbp_taps', 'ldbp_edges'] or a "
     "list of distinct ones"),
    ("compress", _TABLE + 'pruning_methods = ["lottery_ticket"]\n[compression.prune_options.lottery_ticket]\n'
                          'rewind = "init"\n',
     "compression.prune_options.lottery_ticket.rewind = 'init': allowed values are 'weights', 'learning_rate'"),
    ("run", _TABLE + "sparsity = [0.0, 1.0]\n",
     "compression.sparsity = [0.0, 1.0]: allowed numbers in [0, 1) (one value or a range [low, high])"),
    ("compress", _TABLE.replace("n_initial_points = 2", "n_initial_points = 5"),
     "compression.n_initial_points = 5: more than compression.n_calls = 3; allowed integers in [1, n_calls] (the "
     "random points come before the Gaussian process, within the n_calls evaluations)"),
], ids=["unknown-method", "bad-option", "sparsity-range", "initial-points"])
def test_bad_compression_table_fails_in_one_line_without_tensorflow(tmp_path, command, table, error):
    """The [compression] table is checked against eqnn.compression.catalog, without TensorFlow: an unknown pruning
    method, a bad option of a method, a sparsity outside [0, 1), more initial points than calls."""
    assert _run_probe(tmp_path, command, (_TABLE, table)) == [f"eqnn {command}: error: {error}"]


def test_version_is_printed():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "eqnn", "--version"], capture_output=True, text=True, env=env,
                          timeout=120)
    import eqnn

    assert proc.returncode == 0 and proc.stdout.strip() == f"eqnn {eqnn.__version__}", proc.stdout + proc.stderr


# --------------------------------------------------------------------------------------------- TensorFlow start-up

def test_startup_noise_is_recognized_and_real_errors_are_not():
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796100067.560836    4170 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU "
        "will not be used.",
        "E0000 00:00:1796100072.945079    4170 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
        "Failed call to cuInit: UNKNOWN ERROR (303)",
        "2026-12-01 10:00:00.000000: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on.",
        "",
    ]
    for line in noise:
        assert quiet.is_startup_noise(line), line
    real = ["E0000 00:00:1796100072.945079    4170 op_kernel.cc:1830] OP_REQUIRES failed: out of memory",
            "Traceback (most recent call last):", "Segmentation fault"]
    for line in real:
        assert not quiet.is_startup_noise(line), line


def test_captured_stderr_is_restored_and_returned(capfd):
    with quiet._fd2_to_file() as lines:
        os.write(2, b"E0000 00:00:1.0    1 cuda_platform.cc:52] failed call to cuInit: CUDA error\n")
        os.write(2, b"a second line\n")
    assert lines == ["E0000 00:00:1.0    1 cuda_platform.cc:52] failed call to cuInit: CUDA error",
                     "a second line"]
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


# --------------------------------------------------------------------------------------------- each bad input

def test_non_utf8_toml(tmp_path, capsys, no_work):
    path = tmp_path / "binary.toml"
    path.write_bytes(b"name = \"x\"\n\xff\xfe\x00\x01")
    for command in ("run", "train", "simulate", "compress"):
        assert main([command, str(path), "--out", str(tmp_path / "o")]) == 2
        _one_line_error(capsys, command, str(path), "0xff", "not UTF-8")


def test_empty_toml(tmp_path, capsys, no_work):
    path = tmp_path / "empty.toml"
    path.write_text("# only a comment\n")
    for command in ("run", "train", "simulate", "compress"):
        assert main([command, str(path), "--out", str(tmp_path / "o")]) == 2
        _one_line_error(capsys, command, str(path), "is empty (no keys)")


def test_config_path_that_is_a_folder(tmp_path, capsys, no_work):
    for command in ("run", "train", "simulate"):
        assert main([command, str(tmp_path), "--out", str(tmp_path / "o")]) == 2
        _one_line_error(capsys, command, str(tmp_path), "is a folder: allowed a TOML file")


def test_out_an_existing_file(tmp_path, capsys, no_work):
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder")
    for command in ("run", "train", "simulate", "compress"):
        assert main([command, str(study), "--out", str(taken)]) == 2
        _one_line_error(capsys, command, f"--out '{taken}' is an existing file: allowed a folder")
    assert taken.read_text() == "not a folder"


@pytest.mark.parametrize("name, value, needle", [
    ("EQNN_FFT_WORKERS", "0", "EQNN_FFT_WORKERS = '0' is out of range: allowed integers in [1, "),
    ("EQNN_FFT_WORKERS", "abc", "EQNN_FFT_WORKERS = 'abc': must be an integer in [1, "),
    ("EQNN_OPERATOR_CACHE_MB", "-5", "EQNN_OPERATOR_CACHE_MB = '-5': allowed a number of MiB in [0, "),
])
def test_bad_runtime_variables(tmp_path, capsys, monkeypatch, no_work, name, value, needle):
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    monkeypatch.setenv(name, value)
    for command in ("run", "train", "simulate", "compress"):
        assert main([command, str(study), "--out", str(tmp_path / "o")]) == 2
        _one_line_error(capsys, command, needle)


def test_power_list_with_an_empty_item(capsys, no_work):
    for bad in ("1,,2", "1,", ",1", ",", "1,nan"):
        with pytest.raises(UsageError, match="--power"):
            parse_powers(bad)
    assert parse_powers("1, 2") == [1.0, 2.0]
    assert main(["simulate", "--power", "1,,2", "--no-cache"]) == 2
    _one_line_error(capsys, "simulate", "--power '1,,2': an empty item")


def test_cache_entry_that_is_a_folder(tmp_path, capsys, no_work):
    path = tmp_path / "link.toml"
    path.write_text(LINK)
    cache = tmp_path / "cache"
    cache_path(cache, channel.load_config(path)).mkdir(parents=True)
    assert main(["simulate", str(path), "--cache", str(cache), "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "simulate", "is a folder: allowed a transmission file")
    file_cache = tmp_path / "file-cache"
    file_cache.write_text("x")
    assert main(["simulate", str(path), "--cache", str(file_cache), "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "simulate", "is a file")


def test_cache_entry_that_is_a_folder_stops_a_study_before_any_work(tmp_path, capsys, no_work):
    from eqnn.study import load_study

    study = tmp_path / "s.toml"
    study.write_text(STUDY.replace("[compression]\nn_calls = 3\nn_initial_points = 2\n", ""))
    config = load_study(study)
    out = tmp_path / "out"
    cache_path(out / "cache", config.train.train_link(2.0)).mkdir(parents=True)
    assert main(["run", str(study), "--out", str(out), "--quiet"]) == 2
    _one_line_error(capsys, "run", "cache entry", "is a folder")


@pytest.mark.parametrize("content, needle", [
    (b"{", "not valid JSON"),
    (b"[]", "a JSON list, not an object"),
    (b"\xff\xfe", "not UTF-8 text"),
    (json.dumps({"format": "eqnn-equalizer", "version": 3}).encode(), "missing entries model, data"),
    (json.dumps({"format": "other", "version": 3}).encode(), "format 'other'"),
])
def test_corrupt_equalizer_json(tmp_path, capsys, no_work, content, needle):
    folder = tmp_path / "models" / "MLP@+0p00dBm"
    folder.mkdir(parents=True)
    (folder / "equalizer.json").write_bytes(content)
    assert main(["compress", str(folder), "--out", str(tmp_path / "o")]) == 2
    err = _one_line_error(capsys, "compress", str(folder / "equalizer.json"), needle)
    assert "Traceback" not in err


def test_n_initial_points_above_n_calls(tmp_path, capsys, no_work):
    from channel import ConfigError
    from eqnn.compress_run import CompressionSearchConfig
    from eqnn.study import load_study

    study = tmp_path / "s.toml"
    study.write_text(STUDY.replace("n_initial_points = 2", "n_initial_points = 5"))
    with pytest.raises(ConfigError, match=r"compression.n_initial_points = 5: more than compression.n_calls = 3"):
        load_study(study)
    for command in ("run", "compress"):
        assert main([command, str(study), "--out", str(tmp_path / "o")]) == 2
        _one_line_error(capsys, command, "compression.n_initial_points = 5: more than compression.n_calls = 3")
    # --calls below the table's n_initial_points
    ok = tmp_path / "ok.toml"
    ok.write_text(STUDY)
    assert main(["compress", str(ok), "--calls", "1", "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "compress", "--calls 1: fewer than compression.n_initial_points = 2")
    # built in Python, fewer calls than the default 10 initial points stay allowed (every call is an initial point)
    assert CompressionSearchConfig(n_calls=1).n_calls == 1


def test_train_accepts_a_study_file(tmp_path, monkeypatch, capsys):
    from eqnn.training import run as training_run
    from eqnn.training.config import load_train_config

    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    with pytest.raises(channel.ConfigError, match=r"unknown top-level key\(s\) \['compression', 'study'\]"):
        load_train_config(study)
    config = load_train_config(study, study_tables="ignore")
    assert config.name == "tiny" and [m.name for m in config.models] == ["MLP"]
    seen = {}
    monkeypatch.setattr(training_run, "run_training", lambda config, out, **kw: seen.update(config=config, out=out))
    assert main(["train", str(study), "--out", str(tmp_path / "o")]) == 0
    assert seen["config"] == config and Path(seen["out"]) == tmp_path / "o"


def test_training_progress_is_a_bar_per_model_unless_verbose(capsys):
    from eqnn.training.run import _epoch_display

    with _epoch_display("MLP@+0p00dBm", 3, progress=True, verbose=False) as show:
        assert show is True
        for e in (1, 2, 3):
            print(f"  MLP@+0p00dBm epoch {e}/3  loss 0.5  val_loss 0.6  lr 0.001  0.1 s", flush=True)
        print("another line")
    out, err = capsys.readouterr()
    assert "epoch" not in out and "another line" in out
    assert "MLP@+0p00dBm" in err and "3/3" in err and "val_loss 0.6" in err
    with _epoch_display("MLP", 3, progress=True, verbose=True) as show:
        assert show is True  # fitting prints its per-epoch lines as they are
    with _epoch_display("MLP", 3, progress=False, verbose=True) as show:
        assert show is False
