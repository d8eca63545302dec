"""Runtime settings (channel.runtime): validated once, in one object, from the environment or set in code; the
stepper and the FFT helpers read them. Importing channel changes no process state (the umask), and written files
get the permissions the umask in force asks for.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import channel
from channel import fft, runtime
from channel.fiber import FiberParameters, SplitStepFourier
from channel.runtime import ENV_FFT_WORKERS, ENV_OPERATOR_CACHE_MB, RuntimeSettings
from channel.storage import write_bytes_atomic
from channel.validation import ConfigError

PARAMS = FiberParameters(alpha=0.0, beta2=-2e-26, beta3=0.0, gamma=1.3e-3)


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.delenv(ENV_FFT_WORKERS, raising=False)
    monkeypatch.delenv(ENV_OPERATOR_CACHE_MB, raising=False)
    runtime.reset()
    yield
    runtime.reset()


def test_defaults_all_cores_and_64_mib():
    s = RuntimeSettings.from_env({})
    assert s.fft_workers == (os.cpu_count() or 1) and s.operator_cache_mb == 64.0
    assert s.operator_cache_bytes == 64 * 2**20
    assert runtime.settings() == s


def test_environment_values_are_read(monkeypatch):
    monkeypatch.setenv(ENV_FFT_WORKERS, "3")
    monkeypatch.setenv(ENV_OPERATOR_CACHE_MB, "0.5")
    s = runtime.settings()
    assert (s.fft_workers, s.operator_cache_mb, s.operator_cache_bytes) == (3, 0.5, 2**19)
    assert fft.fft_workers() == 3 and channel.fiber.fft_workers() == 3 and channel.fiber.operator_cache_bytes() == 2**19
    monkeypatch.setenv(ENV_FFT_WORKERS, "2")  # a program that changes the variable between runs is followed
    assert runtime.settings().fft_workers == 2


@pytest.mark.parametrize("variable,value,allowed", [
    (ENV_FFT_WORKERS, "0", "[1, 4096]"), (ENV_FFT_WORKERS, "two", "[1, 4096]"), (ENV_FFT_WORKERS, "1.5", "[1, 4096]"),
    (ENV_OPERATOR_CACHE_MB, "-1", "[0, 1.04858e+06]"), (ENV_OPERATOR_CACHE_MB, "lots", "[0, 1.04858e+06]"),
    (ENV_OPERATOR_CACHE_MB, "nan", "[0, 1.04858e+06]"),
])
def test_bad_environment_values_are_one_line_errors_naming_variable_value_and_range(monkeypatch, variable, value,
                                                                                     allowed):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        runtime.settings()
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{variable} = {value!r}") and allowed in message
    with pytest.raises(ConfigError, match=variable):  # the stepper reads the same settings
        SplitStepFourier(16, 1e9, PARAMS, [1.0])


def test_configure_in_code_and_the_stepper_reads_it(monkeypatch):
    monkeypatch.setenv(ENV_FFT_WORKERS, "3")
    with runtime.configure(fft_workers=1, operator_cache_mb=0) as s:
        assert s == runtime.settings() == RuntimeSettings(fft_workers=1, operator_cache_mb=0.0)
        solver = SplitStepFourier(64, 1e9, PARAMS, [1.0, 2.0])
        assert solver._workers == 1 and solver._cache_budget == 0
        with runtime.configure(operator_cache_mb=1):  # fields not given keep the value in force
            assert runtime.settings() == RuntimeSettings(fft_workers=1, operator_cache_mb=1.0)
        assert runtime.settings().operator_cache_mb == 0
    assert runtime.settings().fft_workers == 3  # back to the environment
    solver = SplitStepFourier(64, 1e9, PARAMS, [1.0])
    assert solver._workers == 3 and solver._cache_budget == 64 * 2**20
    runtime.configure(fft_workers=2)  # without `with`: until reset
    assert SplitStepFourier(64, 1e9, PARAMS, [1.0])._workers == 2
    runtime.reset()
    assert runtime.settings().fft_workers == 3


@pytest.mark.parametrize("kwargs,key", [({"fft_workers": 0}, "fft_workers"), ({"fft_workers": 1.5}, "fft_workers"),
                                        ({"operator_cache_mb": -1}, "operator_cache_mb")])
def test_configure_validates(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        runtime.configure(**kwargs)
    assert runtime.settings() == RuntimeSettings.from_env({})  # nothing changed


def test_settings_do_not_change_the_numbers():
    rng = np.random.default_rng(0)
    field = 1e-2 * (rng.standard_normal((2, 256)) + 1j * rng.standard_normal((2, 256)))
    steps = np.array([1e3, 2e3, 3e3, 1e3])
    outs = []
    for workers, cache_mb in [(1, 64), (2, 64), (1, 0), (2, 0)]:
        with runtime.configure(fft_workers=workers, operator_cache_mb=cache_mb):
            outs.append(SplitStepFourier(256, 60e9, PARAMS, steps).propagate(field, 2))
    for out in outs[1:]:
        np.testing.assert_allclose(out, outs[0], rtol=0, atol=1e-15)


# --- importing the library changes no process state; files get the permissions of the umask in force ----------

UMASK_PROBE = """
import os
calls = []
real_umask = os.umask
def spy(mask):
    calls.append(mask)
    return real_umask(mask)
real_umask(0o027)
os.umask = spy
import channel, channel.storage
os.umask = real_umask
print(oct(real_umask(0o027)), calls)
"""


def test_importing_channel_leaves_the_umask_alone():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", UMASK_PROBE], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["0o27", "[]"], "importing channel called os.umask (process state changed)"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask_in_force_when_written(tmp_path, umask):
    old = os.umask(umask)  # set after channel.storage was imported: the base code used the umask of import time
    try:
        path = write_bytes_atomic(tmp_path / "sub" / "file.bin", b"data")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"data"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["file.bin"]  # no temporary file left
