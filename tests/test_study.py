"""`eqnn run`: a tiny study end to end, every stage reused on a second run, resume after SIGKILL, bad study files."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import channel.link
from channel import ConfigError
from eqnn.cli import main
from eqnn.study import EDGE_MARK, load_study, run_study

ROOT = Path(__file__).resolve().parent.parent

TINY = """
name = "tiny"
powers_dbm = [-4.0, -2.0]
cache_dir = ""                 # the study's own <out>/cache
test_symbols = 2048
train_symbols = 4096

[seeds]
train = 11
test = 22

[scenario]
name = "tiny-link"
[scenario.transmitter]
modulation = "64QAM"
n_symbols = 2048
seed = 1
[scenario.link]
n_spans = 2
span_length_km = 40.0
noise_figure_db = 20.0          # noisy: hundreds of bit errors in 2k symbols
[scenario.propagation]
step_mode = "fixed"
steps_per_span = 4
[scenario.receiver]
dbp_steps_per_span = [1]
dbp_xi = 1.0

[data]
taps = 3
guard_symbols = 8

[training]
epochs = 2
batch_size = 256
patience = 2
seed = 0

[[models]]
type = "mlp"
name = "MLP"
units = [8]
activation = "tanh"
"""

COMPRESSION = """
[compression]
n_calls = 3
n_initial_points = 3
pruning_methods = ["magnitude"]
fine_tune_epochs = 1
fine_tune_windows = 2048
"""

STUDY = """
[study]
dsp_powers_dbm = [-6.0]
title = "Tiny study"
"""


def _compression_available() -> bool:
    try:
        import eqnn.compress_run  # noqa: F401
    except ImportError:
        return False
    return True


HAS_COMPRESSION = _compression_available()


def _study_text(compression: bool = HAS_COMPRESSION) -> str:
    return TINY + (COMPRESSION if compression else "") + STUDY


@pytest.fixture(scope="module")
def study_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("study") / "tiny.toml"
    path.write_text(_study_text())
    return path


@pytest.fixture(scope="module")
def first_run(study_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    result = run_study(study_file, out, progress=False)
    return out, result


def _report_table(text: str) -> list[list[str]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("| Method")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


def test_study_writes_every_file_and_the_report_matches_results(first_run):
    out, result = first_run
    for name in ("report.md", "q_vs_power.png", "q_vs_rmps.png", "results.json", "methods.csv", "q_vs_power.csv",
                 "pareto.csv"):
        assert (out / name).is_file(), name
    for name in ("q_vs_power.png", "q_vs_rmps.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "results.json").read_text())
    methods = [m["method"] for m in data["methods"]]
    expected = ["CDC", "DBP-1", "MLP"] + (["MLP compressed"] if HAS_COMPRESSION else [])
    assert methods == expected
    # the markdown table is the JSON table, number for number
    report = (out / "report.md").read_text()
    rows = _report_table(report)
    assert [r[0] for r in rows] == methods
    for cells, m in zip(rows, data["methods"]):
        assert float(cells[3].rstrip(EDGE_MARK)) == pytest.approx(m["launch_power_dbm"], abs=0.005)
        assert cells[3].endswith(EDGE_MARK) == m["optimum_at_edge"]
        assert float(cells[4].lstrip("~")) == pytest.approx(m["q_db"], abs=0.005)
        assert cells[4].startswith("~") == (not m["q_measured"])
        assert float(cells[6]) == pytest.approx(m["gain_over_cdc_db"], abs=0.005)
        assert cells[7] == m["gain_basis"]
        assert float(cells[1].replace(",", "")) == pytest.approx(m["rmps"], rel=0.01, abs=0.05)
    assert "![Q-factor versus launch power](q_vs_power.png)" in report
    assert "![Q-factor versus real multiplications per symbol](q_vs_rmps.png)" in report
    assert "64QAM" in report and "2 x 40 km" in report and "seed 22" in report
    # gain over CDC is relative to CDC's optimum; CDC's optimum is the best CDC point of the sweep
    cdc = data["methods"][0]
    assert cdc["gain_over_cdc_db"] == 0
    sweep = [r for r in data["q_vs_power"] if r["method"] == "CDC"]
    assert sorted(r["launch_power_dbm"] for r in sweep) == [-6.0, -4.0, -2.0]
    assert cdc["q_db"] == pytest.approx(max(r["q_db"] if r["q_db"] is not None else r["q_db_from_snr"]
                                            for r in sweep))
    # DSP costs from eqnn.complexity on the study's link; the NN's from its weights (8 hidden units, 7x4 inputs)
    from eqnn.complexity import cdc_complexity, dbp_complexity

    link = load_study_link(data)
    assert cdc["rmps"] == pytest.approx(cdc_complexity(link, samples_per_symbol=2).rmps)
    assert data["methods"][1]["rmps"] == pytest.approx(dbp_complexity(link, 1).rmps)
    assert data["methods"][2]["rmps"] == 7 * 4 * 8 + 8 * 2
    # CSVs hold the same numbers
    with open(out / "methods.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["method"] for r in csv_rows] == methods
    for c, m in zip(csv_rows, data["methods"]):
        assert float(c["q_db"]) == pytest.approx(m["q_db"], rel=1e-9)
    with open(out / "q_vs_power.csv") as f:
        assert len(list(csv.DictReader(f))) == len(data["q_vs_power"])


def test_report_intervals_gains_and_provenance_equal_results_json(first_run):
    """Every Q of the report table has its 95 % interval, the gain over CDC compares like with like, the compressed
    model is described by what its weights are, and the provenance is in results.json and report.md alike."""
    from eqnn import provenance
    from eqnn.study import _ci_text, _fmt

    out, _ = first_run
    data = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()
    rows = _report_table(report.split("## Provenance")[0])
    cdc = data["methods"][0]
    for cells, m in zip(rows, data["methods"]):
        assert m["q_db_ci_low"] is not None, m  # a bound at least: thousands of bits were compared
        assert cells[5] == _ci_text(m["q_db_ci_low"], m["q_db_ci_high"])
        if m["q_measured"]:
            assert m["q_db_ci_low"] <= m["q_db"] <= m["q_db_ci_high"]
        if m["gain_basis"] == "BER":
            assert m["q_measured"] and cdc["q_measured"]
            assert m["gain_over_cdc_db"] == pytest.approx(m["q_db"] - cdc["q_db"])
        else:
            assert m["gain_basis"] == "SNR" and not (m["q_measured"] and cdc["q_measured"])
            assert m["gain_over_cdc_db"] == pytest.approx(m["q_db_from_snr"] - cdc["q_db_from_snr"])
    # the same intervals in q_vs_power.csv for every measured point
    for r in data["q_vs_power"]:
        if r["q_db"] is not None:
            assert r["q_db_ci_low"] <= r["q_db"] <= r["q_db_ci_high"]
    if HAS_COMPRESSION:
        from eqnn.compress import weight_stats
        from eqnn.train import load_equalizer

        row = data["methods"][-1]
        eq = load_equalizer(out / "compress" / "MLP" / "best")
        kernels = [t for layer in weight_stats(eq.model)["layers"] for t in layer["tensors"] if t["kernel"]]
        zeros = sum(t["n_weights"] - t["n_nonzero"] for t in kernels) / sum(t["n_weights"] for t in kernels)
        assert row["actual"]["kernel_sparsity"] == pytest.approx(zeros)
        assert row["actual"]["max_distinct_kernel_values"] == max(t["n_distinct_nonzero"] for t in kernels)
        assert f"{zeros:.1%} of its kernel weights zero" in report
    p = data["provenance"]
    import eqnn

    assert p["eqnn_version"] == eqnn.__version__ and p["cpu_count"] >= 1 and p["command"]
    assert set(p["libraries"]) >= {"tensorflow", "tensorflow-model-optimization", "numpy", "scipy", "scikit-optimize"}
    assert p["libraries"]["numpy"] == __import__("numpy").__version__
    assert p["git_dirty"] in (True, False, None) and (p["git_commit"] is None) == (p["git_dirty"] is None)
    assert p["seeds"]["train_transmission"] == 11 and p["seeds"]["test_transmission"] == 22
    assert {"dsp_sweep", "training", "report"} <= set(p["stage_seconds"]) and p["wall_time_s"] > 0
    assert p["wall_time_s"] == pytest.approx(data["wall_time_s"])
    for line in provenance.markdown_lines(p):
        assert line in report
    assert _fmt(p["wall_time_s"], 1) in report


def load_study_link(data):
    from channel import LinkConfig

    return LinkConfig.from_dict(data["config"]["scenario"])


def test_dsp_sweep_is_measured_on_the_nn_symbols(first_run):
    """At the NN powers, the sweep's CDC equals run_training's CDC on the same test symbols."""
    out, result = first_run
    training = json.loads((out / "train" / "results.json").read_text())
    for p in (-4.0, -2.0):
        a = next(r for r in result["q_vs_power"] if r["method"] == "CDC" and r["launch_power_dbm"] == p)
        b = next(r for r in training["rows"] if r["method"] == "CDC" and r["launch_power_dbm"] == p)
        assert (a["bit_errors"], a["n_bits"]) == (b["bit_errors"], b["n_bits"])
        assert a["snr_db"] == pytest.approx(b["snr_db"], rel=1e-12)


def test_second_run_reuses_every_stage(first_run, study_file, monkeypatch, capsys):
    out, result = first_run
    models = sorted(out.glob("train/models/*/equalizer.json"))
    assert len(models) == 2
    stamps = {p: p.stat().st_mtime_ns for p in models}
    records = sorted(out.glob("compress/*/evaluations.jsonl"))
    assert len(records) == (1 if HAS_COMPRESSION else 0)
    before = {p: p.read_bytes() for p in records}

    def no_propagation(*a, **k):
        raise AssertionError("simulated although every transmission is cached")

    monkeypatch.setattr(channel.link, "propagate_link", no_propagation)
    # through the command line, which also checks `eqnn run`
    assert main(["run", str(study_file), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    # one results table: the final one (no per-stage optimum table that covers other launch powers)
    assert printed.count("| Method |") == 1 and "optimum per method" not in printed
    assert "stage 1/4" in printed and "3 cached, 0 to simulate" in printed
    assert "2 model(s) reused, 0 trained" in printed
    assert {p: p.stat().st_mtime_ns for p in models} == stamps
    assert {p: p.read_bytes() for p in records} == before
    again = json.loads((out / "results.json").read_text())
    assert again["stages"]["dsp"]["simulated"] == 0 and again["stages"]["training"]["trained"] == 0
    if HAS_COMPRESSION:
        assert all(v["new"] == 0 for v in again["stages"]["compression"].values())
    assert again["methods"] == json.loads(json.dumps(result["methods"]))


def _numbers(result: dict) -> list:
    """DSP and trained-NN rows: deterministic, so equal to the last digit."""
    return [(m["method"], m["q_db"], m["rmps"], m["launch_power_dbm"]) for m in result["methods"]
            if m["kind"] != "compressed NN"]


def _search(out: Path) -> list[tuple[dict, float]]:
    path = out / "compress" / "MLP" / "evaluations.jsonl"
    return [(r["params"], r["metrics"]["q_db"]) for r in map(json.loads, path.read_text().splitlines())]


def test_killed_run_resumes_with_the_same_numbers(first_run, study_file, tmp_path):
    """SIGKILL in the middle of stage 2 (training) or 3 (compression), then rerun: same numbers as a clean run."""
    _, clean = first_run
    out = tmp_path / "killed"
    marker = "stage 3/4 compression of" if HAS_COMPRESSION else "training MLP @ -2"
    cmd = [sys.executable, "-m", "eqnn", "run", str(study_file), "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if marker in line:
                if HAS_COMPRESSION:  # wait for the first recorded evaluation of the search, then kill
                    records = out / "compress" / "MLP" / "evaluations.jsonl"
                    while proc.poll() is None and not (records.is_file() and records.read_text().strip()):
                        time.sleep(0.05)
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-20:])
    assert not (out / "results.json").exists()
    resumed = run_study(study_file, out, progress=False)
    assert _numbers(resumed) == _numbers(clean)
    if HAS_COMPRESSION:  # the same search points; fine-tuning in another process may differ in the last bits
        a, b = _search(out), _search(first_run[0])
        assert [p for p, _ in a] == [p for p, _ in b] and len(a) == 3
        assert [q for _, q in a] == pytest.approx([q for _, q in b], abs=0.1)


def test_a_compression_folder_of_other_inputs_is_refused_not_deleted(first_run, study_file, tmp_path):
    """The one resume rule of eqnn compress and eqnn run: a folder holding another search is refused, naming it."""
    if not HAS_COMPRESSION:
        pytest.skip("no compression")
    out = tmp_path / "copy"
    shutil.copytree(first_run[0], out)
    changed = tmp_path / "changed.toml"
    changed.write_text(study_file.read_text().replace("fine_tune_windows = 2048", "fine_tune_windows = 1024"))
    folder = out / "compress" / "MLP"
    before = (folder / "evaluations.jsonl").read_bytes()
    with pytest.raises(ConfigError, match=rf"{re.escape(str(folder))} holds a compression study of other inputs "
                                          rf"\(config, fine_tune_data differ\).*"
                                          rf"delete {re.escape(str(folder))} to start over"):
        run_study(changed, out, progress=False)
    assert (folder / "evaluations.jsonl").read_bytes() == before


@pytest.mark.parametrize("edit, message", [
    (("[study]", "[study]\ncompress_at = 'best'"), r"study.compress_at = 'best': allowed 'nn_optimum' or one of "
                                                    r"powers_dbm \[-4.0, -2.0\]"),
    (("[study]", "[study]\ncompress_at = 3.0"), r"study.compress_at = 3.0"),
    (("[study]", "[study]\ncompress = ['LSTM']"), r"study.compress: unknown model\(s\) \['LSTM'\]: allowed MLP"),
    (("[study]", "[study]\nplots = true"), r"unknown key\(s\) \['plots'\] in \[study\]: allowed dsp_powers_dbm"),
    (("dsp_powers_dbm = [-6.0]", "dsp_powers_dbm = [-6.0, 40.0]"), r"study.dsp_powers_dbm: 40.0 .* \[-30, 30\]"),
    (("name = \"tiny\"", "name = \"tiny\"\nepochs = 3"), r"unknown top-level key\(s\) \['epochs'\]: allowed .*study"),
    (("units = [8]", "units = [0]"), r"models.mlp.units\[\] = 0 is out of range"),
    (("modulation = \"64QAM\"", "modulation = \"8QAM\""), r"transmitter.modulation = '8QAM': allowed values"),
])
def test_bad_study_files_name_the_key(tmp_path, monkeypatch, capsys, edit, message):
    def no_propagation(*a, **k):
        raise AssertionError("started simulating despite a bad study file")

    monkeypatch.setattr(channel.link, "propagate_link", no_propagation)
    old, new = edit
    text = _study_text(compression=False)
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError, match=message):
        load_study(path)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eqnn run: error:") and re.search(message, err)
    assert not (tmp_path / "out").exists()


def test_compress_without_compression_table_is_an_error(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(_study_text(compression=False).replace("[study]", "[study]\ncompress = ['MLP']"))
    with pytest.raises(ConfigError, match=r"study.compress = \['MLP'\] needs a \[compression\] table"):
        load_study(path)


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--out", "--cache", "--quiet", "study"):
        assert option in text
    assert "report.md" in text and "cached" in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "run" in capsys.readouterr().out


def test_ready_studies_are_valid():
    root = Path(__file__).resolve().parent.parent / "experiments"
    for name in ("quickstart.toml", "reference_study.toml", "wdm.toml"):
        config = load_study(root / name)
        assert config.train.models and config.sweep_powers
    # the link file stays a link file for `eqnn simulate` and `base = "reference.toml"`
    assert channel.load_config(root / "reference.toml").link.n_spans == 20


def test_docs_script_rebuilds_the_figure_and_numbers_from_results(first_run, tmp_path):
    """docs/make_quickstart.py (here on the tiny study's results, --no-run): the side-by-side figure, the numbers
    file and the README section between the markers, every number from results.json."""
    import importlib.util

    from matplotlib import image

    spec = importlib.util.spec_from_file_location("make_quickstart", ROOT / "docs" / "make_quickstart.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out, _ = first_run
    data = json.loads((out / "results.json").read_text())
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{script.BEGIN}\nold numbers\n{script.END}\nafter\n")
    figure, numbers = tmp_path / "q.png", tmp_path / "q.md"
    assert script.main(["--no-run", "--out", str(out), "--figure", str(figure), "--numbers", str(numbers),
                        "--readme", str(readme)]) == 0
    left, right, both = (image.imread(str(p)) for p in (out / "q_vs_power.png", out / "q_vs_rmps.png", figure))
    assert both.shape[1] == left.shape[1] + right.shape[1] and both.shape[0] == max(left.shape[0], right.shape[0])
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("# x\n\nbefore\n") and text.endswith("after\n")
    paragraph = script.numbers_paragraph(data)
    assert paragraph in text and paragraph in numbers.read_text()
    cdc = next(m for m in data["methods"] if m["method"] == "CDC")
    assert f"{cdc['q_db']:.2f} dB" in paragraph
    mlp = next(m for m in data["methods"] if m["method"] == "MLP")
    assert f"{mlp['gain_over_cdc_db']:+.2f} dB over CDC" in paragraph and f"{mlp['rmps']:,.0f} RMpS" in paragraph


def test_q_text_reads_the_row_as_the_report_table_does():
    """The one prose form of a report row's Q (report and docs/make_quickstart.py): interval only when counted."""
    from eqnn.study import q_text
    assert q_text({"q_db": 9.494, "q_measured": True, "q_db_ci_low": 9.42, "q_db_ci_high": 9.571}) == \
        "9.49 dB [9.42, 9.57]"
    assert q_text({"q_db": 9.494, "q_measured": True, "q_db_ci_low": 9.42, "q_db_ci_high": None}) == \
        "9.49 dB >= 9.42"
    assert q_text({"q_db": 12.049, "q_measured": False, "q_db_ci_low": 11.0}) == "~12.05 dB (implied by the SNR)"
    assert q_text({"q_db": 9.0, "q_measured": True}) == "9.00 dB"
