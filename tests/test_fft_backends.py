"""The FFT layer (channel.fft, channel.fft_backends): every installed backend gives scipy.fft's numbers to 1e-12
(forward link, DBP, transmitter, receiver; power-of-two and other sizes); FFTW plans are made once and reused;
EQNN_FFT_BACKEND is validated in one line; without pyFFTW everything falls back to scipy.fft; the backend is in the
provenance and not in the cache key.

pyFFTW is required here: the ``dev`` extra installs it (through the ``fast`` extra), so a missing pyFFTW fails
:func:`test_pyfftw_is_installed` instead of skipping the FFTW tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import channel
from channel import fft, fft_backends, runtime, storage
from channel.dbp import backpropagate
from channel.fiber import FiberParameters, SplitStepFourier, step_lengths
from channel.link import propagate_link
from channel.receiver import matched_filter_and_sample, select_channel
from channel.validation import ConfigError

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = fft_backends.installed()


@pytest.fixture(autouse=True)
def _clean(monkeypatch, tmp_path):
    """No backend from the caller's environment; FFTW wisdom in a temporary folder; FFTW plans estimated, not
    measured (planning time is wasted on these tiny sizes; the plan is a choice of algorithm, not of result)."""
    monkeypatch.delenv(runtime.ENV_FFT_BACKEND, raising=False)
    monkeypatch.setattr(fft_backends, "REPEATED_PLANNER", "FFTW_ESTIMATE")
    monkeypatch.setenv(fft_backends.ENV_WISDOM_DIR, str(tmp_path / "wisdom"))
    runtime.reset()
    yield
    runtime.reset()


def small_link(n_symbols: int) -> channel.LinkConfig:
    return channel.reference_config().replace(
        transmitter={"modulation": "16QAM", "n_symbols": n_symbols, "seed": 3, "launch_power_dbm": 4.0},
        link={"n_spans": 2, "span_length_km": 50.0}, propagation={"step_mode": "fixed", "steps_per_span": 5})


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def chain(config: channel.LinkConfig, workers: int) -> dict[str, np.ndarray]:
    """Transmitter, forward link, receiver (channel selection, CDC + matched filter) and DBP-2 of ``config``."""
    with runtime.configure(fft_workers=workers):
        tx = channel.transmit(config.transmitter)
        out = propagate_link(config, tx.field)
        rx = select_channel(out, config)
        return {"transmitter": tx.field, "link": out,
                "receiver": matched_filter_and_sample(rx, config, 2, cdc=True),
                "dbp": backpropagate(rx, config, 2, 1.0, 2)}


def test_pyfftw_is_installed():
    """The dev extra brings pyFFTW (through 'fast'): the FFTW tests below must run, not skip."""
    assert "fftw" in BACKENDS, "pyFFTW is missing: pip install -e '.[dev]' (or '.[fast]')"


@pytest.mark.parametrize("n_symbols", [256, 300])  # 1024 and 1200 samples: a power of two and 2^4 * 3 * 5^2
def test_every_backend_gives_the_scipy_field(n_symbols):
    config = small_link(n_symbols)
    with runtime.configure(fft_backend="scipy"):
        reference = chain(config, 1)
    for name in BACKENDS:
        for workers in ((1, 2) if name == "fftw" else (1,)):
            with runtime.configure(fft_backend=name):
                assert fft.backend() == name
                got = chain(config, workers)
            for stage, field in reference.items():
                assert got[stage].dtype == field.dtype and got[stage].shape == field.shape
                assert rel(got[stage], field) < 1e-12, (name, workers, stage)


@pytest.mark.parametrize("dtype", ["complex64", "complex128", "float64"])
def test_fft_and_ifft_match_numpy_for_every_backend(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2 * 90)).view(np.complex128)  # 3 rows of 90 samples, not a power of two
    x = x.real.copy() if dtype == "float64" else x.astype(dtype)
    tolerance = 1e-5 if dtype == "complex64" else 1e-12
    for name in BACKENDS:
        with runtime.configure(fft_backend=name):
            spectrum = fft.fft(x)
            assert spectrum.dtype == (np.complex64 if dtype == "complex64" else np.complex128)
            assert rel(spectrum, np.fft.fft(x, axis=-1)) < tolerance, name
            assert rel(fft.ifft(spectrum), x) < tolerance, name
            unscaled = fft.fft_in_place(fft.work_copy(spectrum, spectrum.dtype), inverse=True, normalized=False)
            assert rel(unscaled, x.shape[-1] * np.asarray(x, spectrum.dtype)) < tolerance, name
            y = x.astype(spectrum.dtype)  # overwrite_x: the input may hold the result, and here it does
            assert fft.fft(y, overwrite_x=True) is y and rel(y, np.fft.fft(x, axis=-1)) < tolerance, name


def test_fftw_plans_are_made_once_and_reused():
    config = small_link(256)
    field = channel.transmit(config.transmitter).field
    with runtime.configure(fft_backend="fftw"):
        solver = SplitStepFourier(field.shape[-1], config.transmitter.sample_rate,
                                  FiberParameters.from_config(config.fiber), step_lengths(config), workers=1)
        fft_backends.forget_plans()
        before = fft_backends.plans_made()
        first = solver.propagate(field, 3)
        assert fft_backends.plans_made() - before == 2  # forward and inverse of the (2, n) work array
        second = solver.propagate(field, 3)  # 3 spans x 5 steps x 2 transforms, and no new plan
        assert fft_backends.plans_made() - before == 2
    np.testing.assert_array_equal(first, second)



def test_measured_plans_are_kept_as_wisdom(monkeypatch):
    monkeypatch.setattr(fft_backends, "REPEATED_PLANNER", "FFTW_MEASURE")
    fft_backends.forget_plans()
    x = fft.empty_aligned((2, 96), np.complex128)
    x[...] = 1.0
    with runtime.configure(fft_backend="fftw"):
        fft.fft_in_place(x, repeated=True)
    text = json.loads(fft_backends.wisdom_path().read_text())
    assert isinstance(text, list) and len(text) == 3 and "fftw" in text[0]


def test_wisdom_file_is_read_as_data_and_a_bad_one_is_ignored(monkeypatch):
    import pyfftw  # required (the dev extra): an ImportError fails the test
    path = fft_backends.wisdom_path()
    path.parent.mkdir(parents=True)
    for content in ("not json", json.dumps({"a": 1}), json.dumps(["(fftw-3.3.10 fftw_wisdom #x0 garbage", "", ""])):
        path.write_text(content)
        monkeypatch.setattr(fft_backends, "_wisdom_loaded", False)
        fft_backends._load_wisdom(pyfftw)  # no error: planning starts afresh
    x = fft.empty_aligned((2, 64), np.complex128)
    x[...] = 1.0
    with runtime.configure(fft_backend="fftw"):
        assert rel(fft.fft_in_place(x, repeated=True), np.fft.fft(np.ones((2, 64)))) < 1e-12


def test_aligned_work_arrays():
    for shape in [(2, 7), (3, 2, 5), (1,)]:
        a = fft.empty_aligned(shape, np.complex64)
        assert a.shape == shape and a.flags.c_contiguous and a.ctypes.data % 64 == 0
    x = np.arange(6.0).reshape(2, 3)
    w = fft.work_copy(x, np.complex128)
    assert w.dtype == np.complex128 and w.ctypes.data % 64 == 0 and np.array_equal(w, x)


def test_without_pyfftw_everything_falls_back_to_scipy(monkeypatch):
    """A failing ``import pyfftw`` (simulated): auto takes another backend, 'fftw' is refused in one line."""
    real_import = fft_backends._import

    def failing(name):
        if name == "fftw":
            raise ImportError("No module named 'pyfftw'")
        return real_import(name)

    monkeypatch.setattr(fft_backends, "_import", failing)
    monkeypatch.setattr(fft_backends, "_auto", None)
    assert "fftw" not in fft_backends.installed()
    assert fft.backend() in ("scipy", "mkl")
    with pytest.raises(ConfigError, match=r"^fft_backend = 'fftw': pyfftw is not installed \(pip install pyfftw"):
        runtime.configure(fft_backend="fftw")
    monkeypatch.setenv(runtime.ENV_FFT_BACKEND, "fftw")
    with pytest.raises(ConfigError, match=r"^EQNN_FFT_BACKEND = 'fftw': pyfftw is not installed"):
        runtime.settings()
    monkeypatch.setenv(runtime.ENV_FFT_BACKEND, "scipy")
    config = small_link(256)
    forced = chain(config, 1)
    monkeypatch.setattr(fft_backends, "_import", real_import)
    with runtime.configure(fft_backend="fftw"):
        assert rel(chain(config, 1)["dbp"], forced["dbp"]) < 1e-12


def test_auto_measures_once_per_process(monkeypatch):
    calls = []
    monkeypatch.setattr(fft_backends, "_auto", None)
    monkeypatch.setattr(fft_backends, "_probe_seconds", lambda name: calls.append(name) or BACKENDS.index(name))
    assert fft.backend() == BACKENDS[0] and fft.backend() == BACKENDS[0]
    assert calls == (BACKENDS if len(BACKENDS) > 1 else [])


def test_auto_choice_is_kept_for_every_later_process_on_the_machine(monkeypatch):
    """The first measurement decides for later processes (forget_auto_choice = a new process): they read the
    stored choice and do not measure, even where their own probe would now rank the backends the other way
    (a loaded machine), so Dask workers and the client use one backend. A corrupt record or one naming a
    backend that is not installed is ignored (measured again); with wisdom off, nothing is stored."""
    if len(BACKENDS) < 2:
        pytest.skip("one FFT backend installed: auto has nothing to choose (pip install -e '.[fast]')")
    calls = []
    monkeypatch.setattr(fft_backends, "_auto", None)
    monkeypatch.setattr(fft_backends, "_probe_seconds", lambda name: calls.append(name) or BACKENDS.index(name))
    assert fft.backend() == BACKENDS[0] and calls == BACKENDS
    path = fft_backends.auto_choice_path()
    assert json.loads(path.read_text())["backend"] == BACKENDS[0]
    fft_backends.forget_auto_choice()
    monkeypatch.setattr(fft_backends, "_probe_seconds", lambda name: calls.append(name) or -BACKENDS.index(name))
    assert fft.backend() == BACKENDS[0] and calls == BACKENDS  # read, not measured
    for content in ("not json", json.dumps({"backend": "cufft"}), json.dumps(["fftw"])):
        path.write_text(content)
        fft_backends.forget_auto_choice()
        calls.clear()
        assert fft.backend() == BACKENDS[-1] and calls == BACKENDS  # measured again, and stored
        assert json.loads(path.read_text())["backend"] == BACKENDS[-1]
        path.write_text(content)
    monkeypatch.setenv(fft_backends.ENV_WISDOM_DIR, "off")
    fft_backends.forget_auto_choice()
    assert fft_backends.auto_choice_path() is None and fft.backend() == BACKENDS[-1]


def test_cli_refuses_an_unknown_or_missing_backend_in_one_line(tmp_path):
    """In a fresh process where ``import pyfftw`` fails: one line on stderr naming the variable, exit code 2, for
    an unknown name and for the missing pyFFTW (one process, two commands: the variable is read again)."""
    cases = {"fastest": "EQNN_FFT_BACKEND = 'fastest': allowed 'auto', 'fftw', 'mkl', 'scipy' (FFT library)",
             "fftw": "EQNN_FFT_BACKEND = 'fftw': pyfftw is not installed (pip install pyfftw"}
    probe = ("import os, sys; sys.modules['pyfftw'] = None\nfrom eqnn.cli import main\n"
             "for value in sys.argv[1:]:\n"
             "    os.environ['EQNN_FFT_BACKEND'] = value\n"
             f"    code = main(['simulate', '--power', '0', '--no-cache', '--out', {str(tmp_path / 'o')!r}])\n"
             "    print(code, file=sys.stderr, flush=True)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", probe, *cases], capture_output=True, text=True, env=env,
                          timeout=300)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 0 and len(lines) == 4, proc.stderr
    for (value, needle), error, code in zip(cases.items(), lines[0::2], lines[1::2]):
        assert error.startswith("eqnn simulate: error: ") and needle in error and code == "2", proc.stderr


def test_backend_is_in_the_provenance_and_not_in_the_cache_key(tmp_path):
    from eqnn import provenance

    config = small_link(256)
    keys = set()
    for name in BACKENDS:
        with runtime.configure(fft_backend=name):
            record = provenance.collect(seeds={}, stage_seconds={}, wall_time_s=0.0)
            assert record["fft"]["backend"] == name and record["fft"]["setting"] == name
            assert record["fft"]["version"]
            assert any(f"- FFT: {name}" in line for line in provenance.markdown_lines(record))
            keys.add(storage.cache_path(tmp_path, config))
    assert len(keys) == 1


def test_threaded_nonlinear_step_and_operator_multiply_are_bit_identical():
    """With 2 workers the rotation and the operator multiply run on 2 threads, each sample as on one thread."""
    from channel.fiber import PARALLEL_MIN_SAMPLES

    n = 2 * PARALLEL_MIN_SAMPLES + 1000  # two threads, a last block shorter than the others
    rng = np.random.default_rng(5)
    field = 0.03 * rng.standard_normal((2, 2 * n)).view(np.complex128)
    params = FiberParameters(alpha=4.6e-5, beta2=-2.1e-26, beta3=0.0, gamma=1.3e-3)
    results, peaks = [], []
    for workers in (1, 2):
        solver = SplitStepFourier(n, 1.2e11, params, [1e4, 2e4], workers=workers)
        x = field.copy()
        peaks.append(solver._nonlinear_step(x, 7.0))
        solver._apply_linear(x, 1.5e4)
        results.append(x)
    np.testing.assert_array_equal(results[0], results[1])
    assert peaks[0] == peaks[1] > 0
    x = field.copy()
    x[1, n - 3] = np.nan  # in the second thread's range
    assert np.isnan(SplitStepFourier(n, 1.2e11, params, [1e4], workers=2)._nonlinear_step(x, 7.0))


@pytest.mark.parametrize("n", [12_000, 16_384])  # 3 rows: an uneven split over 2 threads; not / a power of two
def test_fftw_rows_split_over_threads_give_the_scipy_transform(monkeypatch, n):
    """With 2 workers and enough elements, FFTW's rows go to 2 threads (one single-threaded plan per group of rows):
    the transform is numpy's within 1e-12, forward and inverse, and the pool was used."""
    assert 3 * n >= fft_backends.MIN_ELEMENTS_PER_THREADED_FFT
    calls = []
    pool = fft_backends.thread_pool
    monkeypatch.setattr(fft_backends, "thread_pool", lambda workers: calls.append(workers) or pool(workers))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2 * n)).view(np.complex128)
    y = fft_backends.transform_in_place("fftw", x.copy(), False, 2)
    assert rel(y, np.fft.fft(x, axis=-1)) < 1e-12
    assert rel(fft_backends.transform_in_place("fftw", y, True, 2), x) < 1e-12
    assert calls == [2, 2]
