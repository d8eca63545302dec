"""Compression of trained equalizers (pruning, clustering, quantization, their pipeline): the public names of
:mod:`eqnn.compression`, where the code and its documentation live. ``from eqnn import compress as C`` keeps
working."""

from .compression import *  # noqa: F403
from .compression import __all__  # noqa: F401
