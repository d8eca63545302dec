"""Training and evaluation of NN equalizers (``eqnn train``): the public names, kept importable from here.

The code lives in :mod:`eqnn.training` (config, fit, equalizer, evaluate, run); the training TOML format is in
``docs/config_reference.md`` (generated from :class:`TrainRunConfig` and its tables by ``python -m eqnn.docs``).
"""

from .training import *  # noqa: F401,F403
from .training import __all__  # noqa: F401
from .training.evaluate import _bare_config  # noqa: F401
