"""Execution on Dask (eqnn.execution): a study on two local worker processes gives the in-process numbers, a
search survives a killed worker and a crash of its own, shared objects travel once, bad options are refused early.

Dask is part of the dev extra: these tests run (never skip) in CI. Every cluster listens on 127.0.0.1 only.
"""

import faulthandler
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from tiny_configs import TINY_LINK_TAIL, TINY_TRAINING

import channel.link
from eqnn import search as searching
from eqnn.cli import main
from eqnn.execution import ENV_SCHEDULER, DaskExecutor, ExecutionError, InProcess, check_options, get_executor

SPACE = [searching.Real("x", 0.0, 1.0), searching.Real("y", 0.0, 1.0)]
OBJECTIVE = searching.Objective.weighted(0.5, rmps_reference=100.0)
# a hung cluster ends the test run (faulthandler: tracebacks, exit 1) instead of blocking CI: the limit is re-armed for
# the cluster's start, for each test and for its close (it was once one limit for the whole module, and on a loaded
# 2-core machine the module's six cluster tests together took longer than it: the run ended with no failure shown)
HARD_LIMIT_S = 240

# the tiny training study, 64QAM on a noisy link at low powers: bit errors to count (Q measured, not from the SNR)
STUDY = 'name = "tiny"\npowers_dbm = [-8.0, -6.0]\ncache_dir = ""\n' + TINY_TRAINING.replace(
    "span_length_km = 40.0", "span_length_km = 40.0\nnoise_figure_db = 20.0").replace('"16QAM"', '"64QAM"') + """
[compression]
n_calls = 3
n_initial_points = 3
pruning_methods = ["magnitude"]
fine_tune_epochs = 1
fine_tune_windows = 512

[study]
dsp_powers_dbm = [-10.0]
"""

SMALL_LINK = """
name = "small"
[transmitter]
modulation = "16QAM"
n_symbols = 1024
seed = 3
""" + TINY_LINK_TAIL


def toy_evaluate(log_dir: str, params: dict) -> dict:
    """A quick objective run on the workers: one file per call (pid and params) shows which calls ran twice."""
    path = os.path.join(log_dir, f"{os.getpid()}-{time.monotonic_ns()}")
    with open(path + ".tmp", "w") as f:
        json.dump(params, f)
    os.replace(path + ".tmp", path + ".json")  # whole files only, for the test that reads them meanwhile
    time.sleep(0.5)
    x, y = params["x"], params["y"]
    return {"q_db": 10.0 - (x - 0.3) ** 2 - (y - 0.6) ** 2, "rmps": 100.0 * (1.0 + x)}


def _records(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / searching.RECORDS_FILE).read_text().splitlines()]


def _started(calls) -> list[tuple[int, int, dict]]:
    """(pid, start time in ns of the system's monotonic clock, params) of every evaluation toy_evaluate started."""
    return [(*map(int, p.stem.split("-")), json.loads(p.read_text())) for p in sorted(calls.glob("*.json"))]


def _recorded_so_far(folder) -> set[str]:
    """Params of the records written so far (a line being written is skipped)."""
    path = folder / searching.RECORDS_FILE
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    return {_key(json.loads(line)["params"]) for line in lines if line.endswith("\n")}


def _key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 worker processes (1 thread each) on 127.0.0.1 with a dashboard on a free port."""
    lines: list[str] = []
    executor = DaskExecutor(workers=2, dashboard="127.0.0.1:0", log=lines.append)
    faulthandler.dump_traceback_later(HARD_LIMIT_S, exit=True)
    try:
        executor.client()
        faulthandler.cancel_dump_traceback_later()
        yield executor, lines
    finally:
        faulthandler.dump_traceback_later(HARD_LIMIT_S, exit=True)
        executor.close()
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def _hard_limit_per_test():
    """Each test of this module ends the run if it hangs for HARD_LIMIT_S (a slow module does not)."""
    faulthandler.dump_traceback_later(HARD_LIMIT_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def test_cluster_start_prints_the_dashboard(cluster):
    executor, lines = cluster
    assert len(lines) == 1 and "local Dask cluster of 2 worker process(es), 1 thread each" in lines[0]
    assert "dashboard: http://127.0.0.1:" in lines[0]
    assert executor.slots == 2 and executor.remote


def test_tiny_study_on_two_workers_gives_the_in_process_numbers(cluster, tmp_path):
    """DSP sweep, training and compression search as tasks: every number equals the in-process run's."""
    from eqnn.study import run_study

    executor, _ = cluster
    path = tmp_path / "tiny.toml"
    path.write_text(STUDY)
    local = run_study(path, tmp_path / "local", progress=False)
    remote = run_study(path, tmp_path / "dask", progress=False, executor=executor)
    assert remote["methods"] == local["methods"]
    assert [m["method"] for m in local["methods"]] == ["CDC", "DBP-1", "MLP", "MLP compressed"]
    assert remote["q_vs_power"] == local["q_vs_power"]  # CDC, DBP-1 and MLP at every power, bit for bit
    assert len(local["q_vs_power"]) == 3 * 2 + 2 + 1 and all(r["bit_errors"] > 20 for r in local["q_vs_power"])
    # the compression search: the 3 points of the initial design, whatever order the 2 workers finish them in
    a, b = (sorted((_key(r["params"]), r["metrics"], r["objective"]) for r in _records(out / "compress" / "MLP"))
            for out in (tmp_path / "local", tmp_path / "dask"))
    assert a == b and len(a) == 3
    assert all(r["parallel"] == 2 for r in _records(tmp_path / "dask" / "compress" / "MLP"))
    assert [{k: v for k, v in p.items() if k != "call"} for p in remote["pareto"]] == \
        [{k: v for k, v in p.items() if k != "call"} for p in local["pareto"]]
    # the trained models saved by the workers are the in-process ones, weight for weight
    from eqnn.train import load_equalizer

    for name in ("MLP@-8p00dBm", "MLP@-6p00dBm"):
        mine, theirs = (load_equalizer(tmp_path / out / "train" / "models" / name).model.get_weights()
                        for out in ("local", "dask"))
        assert len(mine) == len(theirs) == 4 and all((a == b).all() for a, b in zip(mine, theirs))


def test_training_of_several_models_as_model_x_power_tasks(cluster, tmp_path):
    """With two models, eqnn train runs one task per (model, launch power) on the workers (transmissions from the
    shared cache, then one evaluation per power): the same weights and numbers as in-process, and a per-model
    training override reaches its model."""
    from eqnn.train import load_equalizer
    from eqnn.training.run import train_stage

    executor, _ = cluster
    path = tmp_path / "two.toml"
    path.write_text('name = "two"\npowers_dbm = [-8.0, -6.0]\ncache_dir = ""\ndbp = false\n' + TINY_TRAINING +
                    '[[models]]\ntype = "mlp"\nname = "MLP-2"\nunits = [4, 4]\ntraining = {epochs = 3}\n')
    local = train_stage(path, tmp_path / "local", progress=False)
    remote = train_stage(path, tmp_path / "dask", progress=False, executor=executor)
    assert [m.name for m in remote.models] == [m.name for m in local.models] == ["MLP", "MLP-2"] * 2
    assert [r.to_dict() for r in remote.rows] == [r.to_dict() for r in local.rows]
    for name in ("MLP@-8p00dBm", "MLP-2@-6p00dBm"):
        mine, theirs = (load_equalizer(tmp_path / out / "models" / name) for out in ("local", "dask"))
        assert all((a == b).all() for a, b in zip(mine.model.get_weights(), theirs.model.get_weights()))
    assert load_equalizer(tmp_path / "dask" / "models" / "MLP-2@-6p00dBm").info["epochs_run"] == 3
    assert load_equalizer(tmp_path / "dask" / "models" / "MLP@-6p00dBm").info["epochs_run"] == 2


def test_simulate_command_on_a_running_scheduler(cluster, tmp_path, capsys):
    """`eqnn simulate --scheduler ADDRESS`: one task per power on the running cluster, the in-process numbers."""
    executor, _ = cluster
    link = tmp_path / "small.toml"
    link.write_text(SMALL_LINK)
    address = executor.client().scheduler.address
    base = ["simulate", str(link), "--power", "-2,0,2", "--no-cache", "--quiet"]
    assert main(base + ["--out", str(tmp_path / "local")]) == 0
    assert main(base + ["--out", str(tmp_path / "dask"), "--scheduler", address]) == 0
    assert f"connected to the Dask scheduler at {address} (2 workers)" in capsys.readouterr().out
    rows = [json.loads((tmp_path / out / "results.json").read_text())["rows"] for out in ("local", "dask")]
    assert rows[0] == rows[1] and len(rows[0]) == 3 * 2


def test_batched_search_resumes_after_a_crash_without_repeating_an_evaluation(tmp_path):
    """In-process, 2 points at a time: the initial design is the sequential search's; after a crash, the records
    stay as they were and the rerun completes them, no recorded point evaluated again."""
    folder = tmp_path / "batched"
    seen: list[dict] = []

    def crashing(params):
        seen.append(params)
        if len(seen) == 6:
            raise RuntimeError("the evaluation crashed")
        return {"q_db": 9.0 - params["x"], "rmps": 50 + params["y"]}

    kwargs = dict(objective=OBJECTIVE, n_initial_points=3, seed=4, progress=False)
    with pytest.raises(RuntimeError, match="crashed"):
        searching.search(crashing, SPACE, n_calls=8, folder=folder, batch_size=2, **kwargs)
    before = (folder / searching.RECORDS_FILE).read_bytes()
    assert len(_records(folder)) == 5  # the 6th evaluation failed: it is not recorded, the search stopped
    recorded = {_key(r["params"]) for r in _records(folder)}
    n_seen = len(seen)
    result = searching.search(crashing, SPACE, n_calls=8, folder=folder, batch_size=2, **kwargs)
    records = _records(folder)
    assert len(seen) - n_seen == 3 and not recorded & {_key(p) for p in seen[n_seen:]}
    assert (folder / searching.RECORDS_FILE).read_bytes().startswith(before)
    assert [r["call"] for r in records] == list(range(8)) and len(result.evaluations) == 8
    assert len({_key(r["params"]) for r in records}) == 8 and all(r["parallel"] == 2 for r in records)
    sequential = searching.search(crashing, SPACE, n_calls=3, folder=tmp_path / "seq", executor=InProcess(), **kwargs)
    assert [r["params"] for r in records[:3]] == [e.params for e in sequential.evaluations]


def test_shared_objects_are_sent_once_and_passed_to_every_task(tmp_path):
    class Recording(InProcess):
        def __init__(self):
            self.shared, self.submitted = [], []

        def share(self, obj):
            self.shared.append(obj)
            return obj

        def submit(self, fn, *args, **kwargs):
            self.submitted.append(args)
            return super().submit(fn, *args, **kwargs)

    big = {"windows": list(range(1000))}
    executor = Recording()
    searching.search(lambda data, params: {"q_db": len(data["windows"]) / 100 - params["x"], "rmps": 10.0},
                     SPACE, n_calls=4, objective=OBJECTIVE, folder=tmp_path / "s", n_initial_points=2,
                     progress=False, executor=executor, shared=(big,), batch_size=2)
    assert executor.shared == [big]
    assert len(executor.submitted) == 4 and all(args[1] is big for args in executor.submitted)


def test_worker_killed_in_the_middle_of_a_search(cluster, tmp_path):
    """SIGKILL one worker process while it evaluates a point: Dask runs that task again on a worker, and the
    search ends with exactly n_calls records, each point recorded once."""
    executor, _ = cluster
    folder, calls = tmp_path / "search", tmp_path / "calls"
    calls.mkdir()
    killed: dict = {}

    def kill_a_running_evaluation():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            recorded = _recorded_so_far(folder)
            # an evaluation started less than 0.3 s ago is still in its 0.5 s sleep: killed in the middle
            young = [(pid, params) for pid, start, params in _started(calls)
                     if _key(params) not in recorded and time.monotonic_ns() - start < 0.3e9]
            if len(recorded) >= 2 and young:
                os.kill(young[0][0], signal.SIGKILL)
                killed.update(pid=young[0][0], params=young[0][1])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_running_evaluation, daemon=True)
    killer.start()
    result = searching.search(toy_evaluate, SPACE, n_calls=8, objective=OBJECTIVE, folder=folder, n_initial_points=3,
                              seed=0, progress=False, executor=executor, shared=(str(calls),))
    killer.join(timeout=5)
    assert killed, "no worker was killed"
    records = _records(folder)
    assert [r["call"] for r in records] == list(range(8)) and len(result.evaluations) == 8
    keys = [_key(r["params"]) for r in records]
    assert len(set(keys)) == 8  # no point recorded twice
    started = [_key(params) for _, _, params in _started(calls)]
    assert set(started) == set(keys)  # every started evaluation was recorded: none lost
    assert started.count(_key(killed["params"])) == 2 and keys.count(_key(killed["params"])) == 1
    # 9 or more: a result still held by the killed worker (not yet fetched) is computed again too
    assert len(started) >= 9
    # the nanny restarts the killed worker; its preload (eqnn.worker_setup) starts TensorFlow first, which takes
    # seconds on a busy machine: wait for it (bounded), then require both workers back
    deadline = time.monotonic() + 90
    while executor.slots < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert executor.slots == 2


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], r"--workers 0: allowed an integer in \[1, 256\]"),
    (["--workers", "300"], r"--workers 300: allowed an integer in \[1, 256\]"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], "--workers and --scheduler exclude each other"),
])
def test_bad_execution_options_are_refused_before_any_work(argv, message, tmp_path, monkeypatch, capsys):
    def no_propagation(*a, **k):
        raise AssertionError("started simulating despite bad options")

    monkeypatch.setattr(channel.link, "propagate_link", no_propagation)
    link = tmp_path / "small.toml"
    link.write_text(SMALL_LINK)
    for command in (["simulate", str(link)], ["run", str(tmp_path / "missing.toml")],
                    ["compress", str(tmp_path / "missing")], ["train", str(tmp_path / "missing.toml")]):
        assert main(command + argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"eqnn {command[0]}: error:"), err
        assert __import__("re").search(message, err), err
    assert not (tmp_path / "results").exists()


def test_missing_dask_and_the_scheduler_variable(monkeypatch, tmp_path, capsys):
    assert check_options(env={ENV_SCHEDULER: "tcp://127.0.0.1:8786"}) == (None, "tcp://127.0.0.1:8786")
    assert check_options(workers=2, env={ENV_SCHEDULER: "tcp://127.0.0.1:8786"}) == (2, None)  # the option wins
    assert isinstance(get_executor(env={ENV_SCHEDULER: "  "}), InProcess)
    lazy = get_executor(env={ENV_SCHEDULER: "tcp://127.0.0.1:9"})  # nothing contacted before first use
    assert isinstance(lazy, DaskExecutor) and lazy.scheduler == "tcp://127.0.0.1:9"
    with pytest.raises(ExecutionError, match=f"{ENV_SCHEDULER} 'a b': expected a scheduler address"):
        check_options(env={ENV_SCHEDULER: "a b"})
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if Dask were not installed
    for kwargs, what in (({"workers": 2}, "--workers 2"), ({"scheduler": "tcp://h:1"}, "--scheduler tcp://h:1"),
                         ({"env": {ENV_SCHEDULER: "tcp://h:1"}}, f"{ENV_SCHEDULER} tcp://h:1")):
        with pytest.raises(ExecutionError, match=f"{what} needs Dask, which is not installed: pip install"):
            check_options(**kwargs)
    monkeypatch.setenv(ENV_SCHEDULER, "tcp://127.0.0.1:9")
    assert main(["simulate", str(tmp_path / "x.toml")]) == 2
    assert 'needs Dask, which is not installed: pip install "eqnn[distributed]"' in capsys.readouterr().err


def test_in_process_default_imports_nothing_of_dask():
    code = ("import sys; from eqnn.execution import get_executor, sweep; import eqnn.cli, eqnn.search\n"
            "ex = get_executor(); assert ex.map(abs, [-1, 2]) == [1, 2] and ex.slots == 1\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')], 'dask imported'")
    env = {k: v for k, v in os.environ.items() if k != ENV_SCHEDULER}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


# --- the workers of a local cluster run their FFTs on their own threads, not on every core -------------------------

def _fft_threads() -> int:
    """On a worker: the scipy.fft threads the simulation would use there (the stepper's default)."""
    import channel.fiber

    return channel.fiber.fft_workers()


def test_local_cluster_workers_use_their_own_threads_for_ffts(monkeypatch):
    """A 2-worker local cluster of 1 thread per worker: each worker's FFTs use 1 thread (before the fix every worker
    used all cores, so the workers together oversubscribed the machine)."""
    monkeypatch.delenv("EQNN_FFT_WORKERS", raising=False)
    executor = DaskExecutor(workers=2, dashboard=None, log=lambda line: None)
    faulthandler.dump_traceback_later(HARD_LIMIT_S, exit=True)
    try:
        client = executor.client()
        threads = client.nthreads()
        assert len(threads) == 2
        futures = {address: client.submit(_fft_threads, pure=False, workers=[address], allow_other_workers=False)
                   for address in threads}
        assert {address: f.result() for address, f in futures.items()} == threads
        assert set(threads.values()) == {1}
    finally:
        executor.close()
        faulthandler.cancel_dump_traceback_later()


def test_worker_environment_passes_the_threads_unless_the_user_set_them():
    from eqnn.execution import worker_environment

    fftw = {"EQNN_FFT_BACKEND": "fftw"}  # a backend named by the user: the workers inherit it
    assert worker_environment(1, env=fftw) == {"EQNN_FFT_WORKERS": "1"}
    assert worker_environment(3, env={"EQNN_FFT_WORKERS": " ", **fftw}) == {"EQNN_FFT_WORKERS": "3"}
    assert worker_environment(1, env={"EQNN_FFT_WORKERS": "4", **fftw}) == {}  # the workers inherit the user's choice


def test_worker_environment_passes_the_clients_auto_fft_backend():
    """With EQNN_FFT_BACKEND unset or "auto" the workers get the client's resolved choice: a worker measuring on
    its own on a loaded machine could choose another library, whose fields differ in their last bits."""
    from channel import fft_backends
    from eqnn.execution import worker_environment

    for env in ({"EQNN_FFT_WORKERS": "4"}, {"EQNN_FFT_WORKERS": "4", "EQNN_FFT_BACKEND": "auto"}):
        assert worker_environment(1, env=env) == {"EQNN_FFT_BACKEND": fft_backends.resolve("auto")}


def test_worker_environment_passes_verbose_mode():
    from eqnn import quiet
    from eqnn.execution import worker_environment

    try:
        quiet.set_verbose(True)
        env = {"EQNN_FFT_WORKERS": "4", "EQNN_FFT_BACKEND": "scipy"}
        assert worker_environment(1, env=env) == {"EQNN_VERBOSE": "1"}
    finally:
        quiet.set_verbose(False)
    assert "EQNN_VERBOSE" not in worker_environment(1, env={})


WORKER_IMPORTS_TF = """
from eqnn.execution import DaskExecutor

def task():
    import tensorflow as tf  # at a module's top in training and compression: unquieted without the preload
    tf.config.list_physical_devices()
    return tf.__version__

with DaskExecutor(workers=1, dashboard=None, log=lambda s: None) as ex:
    print("version", ex.submit(task).result())
"""


def test_workers_start_tensorflow_quietly():
    """A task that imports TensorFlow in a worker process writes none of its start-up lines to the terminal."""
    done = subprocess.run([sys.executable, "-c", WORKER_IMPORTS_TF], capture_output=True, text=True,
                          timeout=HARD_LIMIT_S, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "version" in done.stdout
    noise = [ln for ln in done.stderr.splitlines() if "absl::InitializeLog" in ln or "cudart_stub" in ln
             or "cuInit" in ln or "oneDNN" in ln]
    assert not noise, noise
