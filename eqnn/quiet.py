"""TensorFlow started quietly: its start-up lines kept off the terminal unless asked for.

``import tensorflow`` writes lines such as ``WARNING: All log messages before absl::InitializeLog() ...``,
``I0000 ... cudart_stub.cc ... Could not find cuda drivers`` and, when the devices are first listed,
``E0000 ... failed call to cuInit: ... CUDA error`` straight to file descriptor 2, before its logging honours
``TF_CPP_MIN_LOG_LEVEL``; on a machine without a GPU they look like failures but are not.

:func:`import_tensorflow` is the one place that starts TensorFlow (``tensorflow``, ``tf_keras`` and TensorFlow Model
Optimization imported, the devices listed) with file descriptor 2 redirected to a temporary file; afterwards the
captured lines are written to ``sys.stderr``: all of them in verbose mode (:func:`set_verbose`, ``eqnn ... --verbose``),
else all but the known start-up lines (:func:`is_startup_noise`), so that an unexpected error is still seen. Outside
verbose mode TensorFlow's Python logger and absl logging are set to ERROR (Python ``warnings`` are untouched).

Every module of eqnn that needs TensorFlow gets it through here (:data:`eqnn.keras2.keras`, a lazy ``tf_keras``, calls
:func:`import_tensorflow` on first use), so that reading and validating a configuration never imports it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading

__all__ = ["captured_startup", "import_tensorflow", "is_startup_noise", "set_verbose", "verbose"]

_lock = threading.RLock()
_verbose = False
_started = False
_captured: list[str] = []

# absl-formatted C++ log lines: "I0000 00:00:1796100067.560836    4170 cudart_stub.cc:31] ..."
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:[\d.]+\s+\d+ [\w./-]+:\d+\] (.*)$")
# TensorFlow's own C++ format: "2026-12-01 10:00:00.000000: I tensorflow/core/util/port.cc:153] ..."
_TF_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) [\w./-]+:\d+\] (.*)$")
# E lines of a start-up that only say there is no usable GPU (or that a plugin registered twice)
_GPU_ABSENT = re.compile(r"cuInit|CUDA|cuda|cuDNN|cuFFT|cuBLAS|GPU|TensorRT|TF-TRT|Unable to register", re.I)
_NOISE_TEXT = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "To enable the following instructions",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use available CPU instructions",
)


def set_verbose(flag: bool) -> None:
    """Verbose mode: every captured start-up line is shown, and TensorFlow's loggers keep their levels."""
    global _verbose
    _verbose = bool(flag)


def verbose() -> bool:
    return _verbose


def is_startup_noise(line: str) -> bool:
    """Whether ``line`` (written by TensorFlow while it starts) is a known start-up line that reports nothing wrong:
    informational or warning C++ log lines, and error lines that only say that no GPU/CUDA is usable."""
    text = line.strip()
    if not text:
        return True
    if any(text.startswith(n) or n in text for n in _NOISE_TEXT):
        return True
    match = _ABSL_LINE.match(text) or _TF_LINE.match(text)
    if match is None:
        return False
    level, message = match.groups()
    return level in "IW" or (level == "E" and bool(_GPU_ABSENT.search(message)))


@contextlib.contextmanager
def _fd2_to_file():
    """Redirect file descriptor 2 (and ``sys.stderr``, flushed first) to a temporary file; yields a list that holds
    the captured lines once the block has ended (fd 2 restored even if the block raises)."""
    lines: list[str] = []
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError, OSError):
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (e.g. a GUI process): nothing to redirect
        yield lines
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            try:
                sys.stderr.flush()
            except (AttributeError, ValueError, OSError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", errors="replace").splitlines())


def _quiet_loggers() -> None:
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; nothing to quieten without it
        pass


def import_tensorflow() -> None:
    """Import TensorFlow, ``tf_keras`` and TensorFlow Model Optimization and list the devices, with their start-up
    lines captured (module docstring); a no-op after the first call. An ImportError propagates as is."""
    global _started
    with _lock:
        if _started:
            return
        # Keras 2 for TFMOT, and no C++ INFO/WARNING lines once TensorFlow's logging is set up (unless the user chose)
        import eqnn  # sets the TF_USE_LEGACY_KERAS and TF_CPP_MIN_LOG_LEVEL defaults

        if _verbose and not eqnn.TF_LOG_LEVEL_CHOSEN and "tensorflow" not in sys.modules:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"  # verbose: every log line of TensorFlow

        lines: list[str] = []
        failed = True
        try:
            with _fd2_to_file() as lines:
                import tensorflow as tf
                import tf_keras  # noqa: F401

                try:
                    import tensorflow_model_optimization  # noqa: F401
                except ImportError:  # only compression needs it; its import error is raised there
                    pass
                tf.config.list_physical_devices()  # the device probe writes the cuInit line
            failed = False
        finally:
            _started = True
            _captured[:] = lines
            # everything on a failed start (the lines may explain it), else what is not known start-up noise
            shown = lines if _verbose or failed else [ln for ln in lines if not is_startup_noise(ln)]
            if shown:
                print("\n".join(shown), file=sys.stderr, flush=True)
        if not _verbose:
            _quiet_loggers()


def captured_startup() -> list[str]:
    """The lines TensorFlow wrote while :func:`import_tensorflow` started it (all of them, shown or not)."""
    return list(_captured)
