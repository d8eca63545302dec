"""Where a result comes from: the code (eqnn version, git commit and whether the tree had changes), the libraries,
the command line, the seeds, the machine and the wall time per stage; ``results.json`` and ``report.md`` of
``eqnn run`` carry it (:func:`collect`, :func:`markdown_lines`).

Nothing here imports TensorFlow or the other libraries: their versions are read from the installed distributions
(``importlib.metadata``).
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

__all__ = ["LIBRARIES", "collect", "fft_state", "git_state", "library_versions", "markdown_lines"]

# distribution name -> the name the report gives it
LIBRARIES = {"tensorflow": "TensorFlow", "tf-keras": "tf-keras", "tensorflow-model-optimization": "TFMOT",
             "numpy": "numpy", "scipy": "scipy", "scikit-optimize": "scikit-optimize", "scikit-learn": "scikit-learn",
             "matplotlib": "matplotlib"}
GIT_TIMEOUT_S = 10


def library_versions(names: Sequence[str] = tuple(LIBRARIES)) -> dict[str, Optional[str]]:
    """``{distribution: version}`` of the installed ``names`` (None: not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(folder: Optional[Path] = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout holding ``folder`` (default: this
    package's source); ``dirty``: tracked files differ from the commit (untracked files do not count). None/None
    where there is no git or no checkout (an installed wheel)."""
    folder = Path(folder) if folder is not None else Path(__file__).resolve().parent.parent

    def git(*args: str) -> Optional[str]:
        try:
            proc = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                                  timeout=GIT_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def fft_state() -> dict[str, Any]:
    """The FFT library of the simulator in this process: ``{"backend": "fftw" | "mkl" | "scipy", "setting":
    EQNN_FFT_BACKEND's value or "auto", "version": the library's version}`` (:func:`channel.fft.backend`). Workers
    of a cluster choose their own with ``auto`` (the same where they run the same installation)."""
    from channel import fft, fft_backends, runtime

    backend = fft.backend()
    dist = {"fftw": "pyFFTW", "mkl": "mkl_fft", "scipy": "scipy"}[backend]
    return {"backend": backend, "setting": runtime.settings().fft_backend,
            "version": library_versions([dist])[dist], "installed": fft_backends.installed()}


def collect(*, seeds: Mapping[str, Any], stage_seconds: Mapping[str, float], wall_time_s: float,
            command: Optional[Sequence[str]] = None, started: Optional[datetime.datetime] = None) -> dict:
    """The provenance record of a run.

    Args:
        seeds: every seed of the run, by name.
        stage_seconds: wall time per stage (s).
        wall_time_s: wall time of the whole run (s).
        command: the command line (default ``sys.argv``).
        started: when the run started (default: now), written in UTC.
    """
    from . import __version__

    started = started or datetime.datetime.now(datetime.timezone.utc)
    argv = list(sys.argv if command is None else command)
    if argv and (Path(argv[0]).name == "eqnn" or Path(argv[0]).parts[-2:] == ("eqnn", "__main__.py")):
        argv[0] = "eqnn"  # the console script, or python -m eqnn
    git = git_state()
    return {"eqnn_version": __version__, "git_commit": git["commit"], "git_dirty": git["dirty"],
            "python": platform.python_version(), "libraries": library_versions(), "fft": fft_state(),
            "command": shlex.join(argv), "seeds": dict(seeds), "cpu_count": os.cpu_count(),
            "machine": f"{platform.system()} {platform.machine()}",
            "started_utc": started.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "stage_seconds": {k: float(v) for k, v in stage_seconds.items()}, "wall_time_s": float(wall_time_s)}


def markdown_lines(p: Mapping[str, Any]) -> list[str]:
    """The provenance record as the bullet list of ``report.md`` (every value as in ``results.json``)."""
    commit = p.get("git_commit")
    code = (f"eqnn {p['eqnn_version']}, git commit {commit}"
            + (" with uncommitted changes (dirty tree)" if p.get("git_dirty") else " (clean tree)")
            if commit else f"eqnn {p['eqnn_version']}, not a git checkout")
    libraries = ", ".join(f"{LIBRARIES.get(k, k)} {v or 'not installed'}" for k, v in p["libraries"].items())
    seeds = ", ".join(f"{k} {v}" for k, v in p["seeds"].items())
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in p["stage_seconds"].items())
    return [f"- Code: {code}",
            f"- Python {p['python']}; {libraries}",
            *([f"- FFT: {p['fft']['backend']} {p['fft']['version'] or ''} (setting {p['fft']['setting']}; "
               f"installed: {', '.join(p['fft']['installed'])})"] if "fft" in p else []),
            f"- Command: `{p['command']}`",
            f"- Seeds: {seeds}",
            f"- Machine: {p['machine']}, {p['cpu_count']} cores; started {p['started_utc']}",
            f"- Wall time: {p['wall_time_s']:.1f} s ({stages})"]
