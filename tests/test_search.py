"""eqnn.search: Bayesian optimization that finds good points, records every evaluation durably, resumes after
an interruption or a SIGKILL without repeating or losing evaluations, and refuses mismatched or bad input."""

import csv
import fcntl
import json
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info

from eqnn.search import (
    Categorical,
    Evaluation,
    Integer,
    Objective,
    Real,
    SearchLockedError,
    SearchMismatchError,
    SearchResult,
    load,
    pareto_front,
    search,
)

REPO = Path(__file__).resolve().parents[1]

# The study that the resume tests run in-process, interrupted, and in a subprocess killed with SIGKILL.
STUDY = '''
import json, os, sys, time
from eqnn.search import Categorical, Integer, Objective, Real, search

SPACE = [Real("sparsity", 0.0, 0.95), Integer("bits", 2, 8), Categorical("method", ["magnitude", "random"])]
OBJECTIVE = Objective.constrained(9.0, rmps_reference=500.0)
# a cheap optimizer for tests whose point is bookkeeping, not search quality: EI maximized by sampling
FAST = {"acq_func": "EI", "optimizer_kwargs": {"acq_optimizer": "sampling", "acq_optimizer_kwargs": {"n_points": 300}}}
N_CALLS = 7


def toy(params):
    s, b = params["sparsity"], params["bits"]
    q = 12.0 - 10.0 * s**2 - 8.0 / b - (1.0 if params["method"] == "random" else 0.0)
    return {"q_db": q, "rmps": 1000.0 * (1.0 - s) * b / 8.0, "bop": 64.0 * b}


def run(folder, marker=None, sleep=0.0, evaluate=None, n_calls=N_CALLS, slow_marker=0, slow_sleep=0.0):
    """The study. With a marker file, every call of evaluate first appends its params there; the call that writes
    marker line number slow_marker sleeps slow_sleep seconds instead of sleep (a window to kill the process in)."""

    def logged(params):
        n = 0
        if marker:
            with open(marker, "a") as f:
                f.write(json.dumps(params, sort_keys=True) + "\\n")
                f.flush()
                os.fsync(f.fileno())
            with open(marker) as f:
                n = len(f.readlines())
        time.sleep(slow_sleep if n == slow_marker else sleep)
        return (evaluate or toy)(params)

    return search(logged, SPACE, n_calls=n_calls, n_initial_points=3, objective=OBJECTIVE, folder=folder, seed=5,
                  progress=False, **FAST)


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2], float(sys.argv[3]), slow_marker=int(sys.argv[4]), slow_sleep=float(sys.argv[5]))
'''


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    path = tmp_path_factory.mktemp("study") / "study.py"
    path.write_text(STUDY)
    ns = runpy.run_path(str(path), run_name="study")
    ns["script"] = path
    return ns


@pytest.fixture(scope="module")
def reference(study, tmp_path_factory):
    """The uninterrupted run (two calls longer than the study): what every resumed run must reproduce exactly."""
    result = study["run"](tmp_path_factory.mktemp("reference") / "search", n_calls=study["N_CALLS"] + 2)
    return [e.params for e in result.evaluations]


def read_records(folder):
    return [json.loads(line) for line in (Path(folder) / "evaluations.jsonl").read_text().splitlines()]


class Counter:
    def __init__(self, fn, fail_at=None):
        self.fn, self.fail_at, self.calls = fn, fail_at, []

    def __call__(self, params):
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            self.calls.append(params)
            raise KeyboardInterrupt
        self.calls.append(params)
        return self.fn(params)


# --------------------------------------------------------------------------------------------- search quality


def test_finds_the_cheapest_feasible_point_on_a_toy_problem(tmp_path):
    # Q >= 9 dB holds for sparsity <= sqrt(0.3) = 0.548 with "magnitude" pruning; RMpS = 1000 (1 - sparsity):
    # the optimum is RMpS 452 at the constraint; "random" pruning costs 2 dB and is never feasible past 0.32.
    space = [Real("sparsity", 0.0, 0.95), Categorical("method", ["random", "magnitude"])]

    def evaluate(p):
        assert type(p["sparsity"]) is float and type(p["method"]) is str
        q = 12.0 - 10.0 * p["sparsity"] ** 2 - (2.0 if p["method"] == "random" else 0.0)
        return {"q_db": q, "rmps": 1000.0 * (1.0 - p["sparsity"])}

    objective = Objective.constrained(9.0, rmps_reference=1000.0)  # the uncompressed model's RMpS
    result = search(evaluate, space, n_calls=14, n_initial_points=5, objective=objective, folder=tmp_path, seed=2,
                    progress=False)
    best = result.best
    assert best.feasible and best.params["method"] == "magnitude"
    assert best.rmps < 500.0  # within 11 % of the optimum (452)
    initial_best = min(result.evaluations[:5], key=lambda e: e.objective)
    assert best.objective < initial_best.objective  # the GP did better than its random start
    assert result.cheapest_feasible is best


def test_params_are_plain_python_values(tmp_path):
    space = [Integer("clusters", 2, 16), Real("lr", 1e-3, 1.0, prior="log-uniform"), Categorical("c", [2, "none", 4.5])]
    seen = []

    def evaluate(p):
        seen.append(p)
        assert type(p["clusters"]) is int and type(p["lr"]) is float
        assert p["c"] in (2, "none", 4.5) and type(p["c"]) in (int, str, float)
        return {"q_db": 8.0 + p["lr"], "rmps": 10.0 * p["clusters"]}

    search(evaluate, space, n_calls=4, n_initial_points=4, objective=Objective.weighted(0.5), folder=tmp_path,
           progress=False)
    assert len(seen) == 4


# --------------------------------------------------------------------------------------------- durability


def blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_every_evaluation_is_on_disk_before_the_next_one_starts(tmp_path, study):
    folder = tmp_path / "s"
    threads = blas_threads()

    def evaluate(p):
        assert blas_threads() == threads  # the one-BLAS-thread limit is for skopt only
        assert (folder / "search.json").exists()
        path = folder / "evaluations.jsonl"
        text = path.read_text() if path.exists() else ""
        assert text.count("\n") == len(seen) and (not text or text.endswith("\n"))
        seen.append(p)
        return study["toy"](p)

    seen = []
    result = search(evaluate, study["SPACE"], n_calls=5, n_initial_points=5, objective=study["OBJECTIVE"],
                    folder=folder, progress=False)
    records = read_records(folder)
    assert [r["call"] for r in records] == list(range(5))
    assert [r["params"] for r in records] == seen == [e.params for e in result.evaluations]
    rec = records[0]
    assert set(rec) >= {"call", "params", "metrics", "objective", "feasible", "seconds", "finished", "spec_hash"}
    assert rec["metrics"]["bop"] == 64.0 * rec["params"]["bits"]
    assert rec["objective"] == study["OBJECTIVE"].value(rec["metrics"])


def test_resume_after_keyboard_interrupt_repeats_and_loses_nothing(tmp_path, study, reference):
    folder = tmp_path / "s"
    first = Counter(study["toy"], fail_at=4)
    with pytest.raises(KeyboardInterrupt):
        study["run"](folder, evaluate=first)
    assert len(first.calls) == 5 and len(read_records(folder)) == 4  # the 5th call died: not recorded

    second = Counter(study["toy"])
    result = study["run"](folder, evaluate=second)
    assert len(second.calls) == study["N_CALLS"] - 4  # recorded evaluations are told, not evaluated again
    assert second.calls[0] == first.calls[4]  # the interrupted point is proposed again
    records = read_records(folder)
    assert [r["call"] for r in records] == list(range(study["N_CALLS"]))
    # bit-identical to the uninterrupted run (same seed, same history, single-threaded BLAS)
    assert [r["params"] for r in records] == reference[:-2] == [e.params for e in result.evaluations]

    # a finished study run again evaluates nothing; a larger n_calls extends it as if it had been asked at once
    again = Counter(study["toy"])
    assert len(study["run"](folder, evaluate=again).evaluations) == study["N_CALLS"] and not again.calls
    result = study["run"](folder, evaluate=again, n_calls=study["N_CALLS"] + 2)
    assert len(again.calls) == 2 and [e.params for e in result.evaluations] == reference


def test_resume_after_sigkill_in_a_subprocess(tmp_path, study, reference):
    folder, marker = tmp_path / "s", tmp_path / "marker.log"
    # every evaluation sleeps 0.05 s but the 5th one started, which sleeps 60 s: it is in flight at the kill
    command = [sys.executable, str(study["script"]), str(folder), str(marker), "0.05", "5", "60"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    records_path = folder / "evaluations.jsonl"
    deadline = time.monotonic() + 90
    try:
        while not (marker.exists() and marker.read_text().count("\n") >= 5):
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the 5th evaluation did not start in time"
            time.sleep(0.02)
        time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    before = [json.loads(line) for line in records_path.read_bytes().split(b"\n")[:-1]]
    k = len(before)
    markers_before = marker.read_text().splitlines()
    assert k == 4 and len(markers_before) == 5  # four evaluations recorded, the fifth killed in the middle

    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr

    records = read_records(folder)
    assert [r["call"] for r in records] == list(range(study["N_CALLS"]))  # exactly n_calls, distinct, dense
    assert records[:k] == before  # nothing recorded before the kill was lost or rewritten
    markers = [json.loads(line) for line in marker.read_text().splitlines()]
    params = [r["params"] for r in records]
    # evaluations finished before the kill were not run again; the one in flight at the kill was run again, on
    # the same point (the resumed optimizer proposes it again), and the study went on from there
    assert markers[:k] == params[:k]
    assert markers[k:] == [params[k]] + params[k:]
    assert len(markers) == study["N_CALLS"] + 1
    assert params == reference[:-2]  # the resumed process proposes exactly what an uninterrupted run does


def test_torn_last_line_is_dropped_and_the_file_repaired(tmp_path, study):
    folder = tmp_path / "s"
    run = dict(space=study["SPACE"], n_initial_points=7, objective=study["OBJECTIVE"], folder=folder, seed=2,
               progress=False)  # random points only: this test is about the file
    search(study["toy"], n_calls=3, **run)
    path = folder / "evaluations.jsonl"
    good = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b'{"call": 3, "params": {"sparsity": 0.1')  # killed in the middle of the write
    counter = Counter(study["toy"])
    with pytest.warns(UserWarning, match="torn"):
        search(counter, n_calls=5, **run)
    assert len(counter.calls) == 2
    data = path.read_bytes()
    assert data.startswith(good) and data.endswith(b"\n")
    assert [r["call"] for r in read_records(folder)] == list(range(5))

    # a complete last record that lost only its newline is kept, and the newline restored
    path.write_bytes(data[:-1])
    counter = Counter(study["toy"])
    search(counter, n_calls=6, **run)
    assert len(counter.calls) == 1
    assert [r["call"] for r in read_records(folder)] == list(range(6))

    # damage anywhere but at the end is an error, not something to skip silently
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2][:10]
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(ValueError, match="line 3"):
        search(study["toy"], n_calls=7, **run)


# --------------------------------------------------------------------------------------------- refusals


def test_a_folder_holding_another_search_is_refused(tmp_path, study):
    folder = tmp_path / "s"
    base = dict(n_calls=2, n_initial_points=2, folder=folder, progress=False)
    search(study["toy"], study["SPACE"], objective=study["OBJECTIVE"], **base)
    counter = Counter(study["toy"])
    other_space = [Real("sparsity", 0.0, 0.9), *study["SPACE"][1:]]
    with pytest.raises(SearchMismatchError, match="space"):
        search(counter, other_space, objective=study["OBJECTIVE"], **base)
    with pytest.raises(SearchMismatchError, match="objective"):
        search(counter, study["SPACE"], objective=Objective.constrained(9.5, rmps_reference=500.0), **base)
    with pytest.raises(SearchMismatchError, match="seed"):
        search(counter, study["SPACE"], objective=study["OBJECTIVE"], seed=1, **base)
    assert counter.calls == []

    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "evaluations.jsonl").write_text('{"call": 0}\n')
    with pytest.raises(SearchMismatchError, match="without search.json"):
        search(counter, study["SPACE"], objective=study["OBJECTIVE"], **{**base, "folder": stray})
    assert counter.calls == []


def test_a_second_process_on_the_same_folder_is_refused(tmp_path, study):
    folder = tmp_path / "s"
    folder.mkdir()
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        counter = Counter(study["toy"])
        with pytest.raises(SearchLockedError):
            search(counter, study["SPACE"], n_calls=2, objective=study["OBJECTIVE"], folder=folder, progress=False)
        assert counter.calls == []


@pytest.mark.parametrize(
    "change, match",
    [
        ({"n_calls": 0}, "n_calls"),
        ({"n_calls": 2.5}, "n_calls"),
        ({"space": []}, "space is empty"),
        ({"objective": "constrained"}, "Objective"),
        ({"n_initial_points": 0}, "n_initial_points"),
        ({"acq_func": "EIps"}, "acq_func"),
        ({"optimizer_kwargs": {"no_such_option": 1}}, "skopt.Optimizer rejects"),
        ({"optimizer_kwargs": {"random_state": 1}}, "random_state"),
        ({"references": {"CDC": (0.0, 7.0)}}, "CDC"),
    ],
)
def test_bad_input_is_rejected_before_any_evaluation(tmp_path, study, change, match):
    counter = Counter(study["toy"])
    args = dict(space=study["SPACE"], n_calls=3, objective=study["OBJECTIVE"], folder=tmp_path / "s", progress=False)
    args.update(change)
    with pytest.raises(ValueError, match=match):
        search(counter, **args)
    assert counter.calls == [] and not (tmp_path / "s").exists()


def test_bad_objective_configs():
    with pytest.raises(ValueError, match="unknown mode 'pareto'"):
        Objective("pareto", q_target=9.0)
    with pytest.raises(ValueError, match="needs q_target"):
        Objective("constrained", rmps_reference=1e3)
    with pytest.raises(ValueError, match="needs rmps_reference"):
        Objective("constrained", q_target=9.0)
    with pytest.raises(ValueError, match="weight"):
        Objective.weighted(1.5)
    with pytest.raises(ValueError, match="rmps_reference"):
        Objective.constrained(9.0, rmps_reference=0.0)
    with pytest.raises(ValueError, match="q_scale"):
        Objective.weighted(q_scale=-1.0)


def test_bad_dimensions_name_themselves():
    with pytest.raises(ValueError, match="'bits'.*low must be < high"):
        Integer("bits", 8, 8)
    with pytest.raises(ValueError, match="'bits'.*integers"):
        Integer("bits", 2.5, 8)
    with pytest.raises(ValueError, match="'sparsity'.*low must be < high"):
        Real("sparsity", 0.9, 0.1)
    with pytest.raises(ValueError, match="'lr'.*log-uniform"):
        Real("lr", 0.0, 1.0, prior="log-uniform")
    with pytest.raises(ValueError, match="'lr'.*prior"):
        Real("lr", 0.1, 1.0, prior="normal")
    with pytest.raises(ValueError, match="'method'.*empty"):
        Categorical("method", [])
    with pytest.raises(ValueError, match="'method'.*distinct"):
        Categorical("method", ["a", "a"])
    with pytest.raises(ValueError, match="name"):
        Integer("", 1, 2)
    with pytest.raises(ValueError, match="duplicate dimension name 'x'"):
        search(lambda p: {}, [Integer("x", 1, 2), Real("x", 0, 1)], n_calls=1,
               objective=Objective.weighted(), folder="unused")


def test_evaluate_must_return_finite_q_and_positive_rmps(tmp_path):
    space = [Real("x", 0.0, 1.0)]
    for metrics, match in [({"rmps": 1.0}, "no 'q_db'"), ({"q_db": float("inf"), "rmps": 1.0}, "finite"),
                           ({"q_db": 9.0, "rmps": 0.0}, "> 0")]:
        with pytest.raises(ValueError, match=match):
            search(lambda p, m=metrics: m, space, n_calls=1, objective=Objective.weighted(), folder=tmp_path / "s",
                   progress=False)
    assert not (tmp_path / "s" / "evaluations.jsonl").read_bytes()  # nothing bad was recorded


# --------------------------------------------------------------------------------------------- objective, Pareto


def test_pareto_front_on_a_hand_made_set():
    points = [
        (100.0, 8.0),  # 0: front (cheapest)
        (200.0, 7.5),  # 1: dominated by 0
        (200.0, 9.0),  # 2: front
        (300.0, 9.0),  # 3: dominated by 2 (same Q, dearer)
        (400.0, 10.0),  # 4: front
        (400.0, 10.0),  # 5: an exact duplicate of 4: only the first is kept
        (50.0, 6.0),  # 6: front (cheaper than everything, worst Q)
        (1000.0, 9.5),  # 7: dominated by 4
        (2000.0, 10.5),  # 8: front (best Q)
    ]
    assert pareto_front(points) == [6, 0, 2, 4, 8]
    assert pareto_front([]) == []
    assert pareto_front([(5.0, 1.0)]) == [0]


def test_constrained_objective_orders_points_as_documented():
    obj = Objective.constrained(9.0, rmps_reference=1000.0)
    v = lambda q, r: obj.value({"q_db": q, "rmps": r})  # noqa: E731
    cheapest, cheap, at_ceiling, dearer = v(9.0, 1.0), v(12.0, 100.0), v(9.0, 1000.0), v(20.0, 1e12)
    just_short, far_short, cheapest_infeasible = v(8.9, 5000.0), v(3.0, 5000.0), v(8.9, 1.0)
    assert -1.0 < cheapest < cheap < at_ceiling == dearer == 0.0 < just_short < far_short < 1.0
    assert just_short == cheapest_infeasible  # below the target only the shortfall counts
    assert cheap == pytest.approx(-0.5) and v(9.0, 10.0) == pytest.approx(-2 / 3)
    assert v(8.0, 1000.0) == pytest.approx(0.5) and v(0.0, 1.0) == pytest.approx(0.9)  # 1 and 9 dB short
    assert obj.feasible({"q_db": 9.0, "rmps": 1.0}) and not obj.feasible({"q_db": 8.99, "rmps": 1.0})


def test_weighted_objective_orders_points_as_documented():
    obj = Objective.weighted(0.5, rmps_reference=1000.0)
    v = lambda q, r: obj.value({"q_db": q, "rmps": r})  # noqa: E731
    assert v(10.0, 1000.0) == pytest.approx(-5.0)
    # with weight 0.5 and q_scale 1 dB, one decade of RMpS is worth exactly 1 dB of Q
    assert v(11.0, 10000.0) == pytest.approx(v(10.0, 1000.0))
    assert v(10.5, 10000.0) > v(10.0, 1000.0) > v(11.5, 10000.0)
    assert Objective.weighted(1.0, rmps_reference=1.0).value({"q_db": 0.0, "rmps": 10.0}) == 1.0  # RMpS only
    only_q = Objective.weighted(0.0, rmps_reference=1.0)
    assert only_q.value({"q_db": 3.0, "rmps": 1e6}) == -3.0  # Q only
    assert obj.feasible({"q_db": 3.0, "rmps": 1.0}) is None


def make_result(objective, points):
    evs = [
        Evaluation(call=i, params={"x": i}, metrics={"q_db": q, "rmps": r}, objective=objective.value(
            {"q_db": q, "rmps": r}), feasible=objective.feasible({"q_db": q, "rmps": r}), seconds=0.0)
        for i, (r, q) in enumerate(points)
    ]
    return SearchResult(evs, (Integer("x", 0, 100),), objective)


def test_constrained_mode_prefers_a_feasible_cheap_point_over_an_infeasible_cheaper_one():
    obj = Objective.constrained(9.0, rmps_reference=1000.0)
    result = make_result(obj, [(50.0, 8.99), (400.0, 9.1), (300.0, 9.02), (5000.0, 11.0), (10.0, 4.0)])
    assert result.best.call == 2 and result.cheapest_feasible.call == 2
    # nothing feasible: the best is the smallest shortfall, and there is no cheapest feasible point
    result = make_result(obj, [(50.0, 8.0), (400.0, 8.5), (10.0, 4.0)])
    assert result.best.call == 1 and result.cheapest_feasible is None


@pytest.mark.parametrize(
    "objective, points, expected",
    [
        # feasible points at or above the RMpS ceiling all score 0: the old rule (earliest call) took call 0,
        # dominated by call 2 (same cost as call 1, better Q)
        (Objective.constrained(9.0, rmps_reference=1000.0), [(2000.0, 9.5), (1000.0, 9.5), (1000.0, 10.0),
                                                               (5000.0, 12.0)], 2),
        # quantization-only points of the same RMpS below the ceiling: higher Q wins
        (Objective.constrained(9.0, rmps_reference=1000.0), [(500.0, 9.2), (500.0, 9.8), (700.0, 9.9)], 1),
        # nothing feasible: the same shortfall scores the same whatever the cost; cheaper wins
        (Objective.constrained(9.0, rmps_reference=1000.0), [(300.0, 8.0), (100.0, 8.0), (50.0, 7.0)], 1),
        # weight 1 looks at RMpS only: of the cheapest, the higher Q wins
        (Objective.weighted(1.0, rmps_reference=1.0), [(100.0, 7.0), (100.0, 9.0), (200.0, 11.0)], 1),
        # weight 0 looks at Q only: of the best Q, the cheaper wins
        (Objective.weighted(0.0, rmps_reference=1.0), [(900.0, 10.0), (300.0, 10.0), (100.0, 8.0)], 1),
        # exact duplicates: the earliest call
        (Objective.constrained(9.0, rmps_reference=1000.0), [(2000.0, 9.5), (1000.0, 9.5), (1000.0, 9.5)], 1),
    ],
)
def test_best_breaks_objective_ties_onto_the_pareto_front(objective, points, expected):
    result = make_result(objective, points)
    objectives = [e.objective for e in result.evaluations]
    tied = [e.call for e in result.evaluations if e.objective == min(objectives)]
    assert len(tied) >= 2 and tied[0] != expected  # a real tie, which the earliest call would have lost
    assert result.best.call == expected
    assert result.best in result.pareto
    if objective.q_target is not None and result.cheapest_feasible is not None:
        assert result.best is result.cheapest_feasible
    assert result.to_dict()["best"]["call"] == expected


# --------------------------------------------------------------------------------------------- outputs


def test_result_files_and_load(tmp_path, study):
    folder = tmp_path / "s"
    refs = {"CDC": (12.0, 7.2), "DBP-1": (2500.0, 8.4)}
    result = search(study["toy"], study["SPACE"], n_calls=6, n_initial_points=6, objective=study["OBJECTIVE"],
                    folder=folder, references=refs, progress=True)
    data = json.loads((folder / "result.json").read_text())
    assert data["n_evaluations"] == 6 and len(data["evaluations"]) == 6
    assert data == json.loads(json.dumps(result.to_dict()))
    front = pareto_front([(e.rmps, e.q_db) for e in result.evaluations])
    assert data["pareto_calls"] == [result.evaluations[i].call for i in front]
    assert data["best"]["call"] == result.best.call and data["objective"]["rmps_reference"] == 500.0
    with open(folder / "evaluations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    columns = {"call", "sparsity", "bits", "method", "q_db", "rmps", "bop", "objective", "feasible", "pareto"}
    assert columns <= set(rows[0])
    assert sum(r["pareto"] == "True" for r in rows) == len(front)
    assert (folder / "q_vs_rmps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    loaded = load(folder)
    assert [e.to_dict() for e in loaded.evaluations] == [e.to_dict() for e in result.evaluations]
    assert loaded.best.call == result.best.call and loaded.space == tuple(study["SPACE"])
