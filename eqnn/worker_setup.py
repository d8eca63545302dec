"""Dask worker preload: TensorFlow started quietly in every worker process of an ``eqnn ... --workers`` cluster.

A worker unpickles task functions whose modules import TensorFlow at their top (training, compression), which would
start TensorFlow with its start-up lines going straight to the terminal. :class:`eqnn.execution.DaskExecutor` starts
its local workers with this module as their preload: :func:`dask_setup` starts TensorFlow through
:func:`eqnn.quiet.import_tensorflow` before any task runs, in verbose mode when the client was
(``EQNN_VERBOSE=1`` in the workers' environment). For a cluster of your own, start the workers with
``dask worker <scheduler> --preload eqnn.worker_setup``.
"""

from __future__ import annotations

import os

ENV_VERBOSE = "EQNN_VERBOSE"


def dask_setup(worker=None) -> None:
    from . import quiet

    quiet.set_verbose(os.environ.get(ENV_VERBOSE, "").strip() == "1")
    quiet.import_tensorflow()
