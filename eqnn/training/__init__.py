"""Training and evaluation of NN equalizers, and the launch-power study behind ``eqnn train``, one module each:

- :mod:`.config`: the training TOML as typed configs (:class:`TrainRunConfig`, :class:`TrainingConfig`,
  :class:`SeedsConfig`) and :func:`load_train_config`.
- :mod:`.fitting`: :func:`train_model` / :func:`fit` (seeded Adam/MSE, early stopping on a validation split).
- :mod:`.equalizer`: the :class:`Equalizer` record and its folder (:func:`save_equalizer` / :func:`load_equalizer`).
- :mod:`.evaluate`: :func:`evaluate`: Q of the equalized test symbols next to CDC and DBP on the same symbols.
- :mod:`.run`: the stage: :func:`run_training` (``eqnn train``) and :func:`train_stage` (typed result).
"""

from .config import MODES, SeedsConfig, TrainingConfig, TrainRunConfig, cache_folder, load_train_config
from .equalizer import (
    EQUALIZER_FORMAT,
    EQUALIZER_VERSION,
    WEIGHTS_PREFIX,
    Equalizer,
    load_equalizer,
    predict_symbols,
    save_equalizer,
)
from .evaluate import BareModel, Evaluation, evaluate

# The fitting and the stage import TensorFlow: they are imported on first use (PEP 562), so that reading and
# validating a training TOML (:mod:`.config`) does not start TensorFlow (the equalizer and evaluation modules use
# the lazy :data:`eqnn.keras2.keras`); :func:`eqnn.quiet.import_tensorflow` starts it quietly.
_LAZY = {
    "EpochLog": "fitting", "fit": "fitting", "train_model": "fitting", "validation_mask": "fitting",
    "format_table": "run", "run_training": "run", "train_stage": "run",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    from ..quiet import import_tensorflow

    import_tensorflow()
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = ["EQUALIZER_FORMAT", "EQUALIZER_VERSION", "MODES", "WEIGHTS_PREFIX", "BareModel", "EpochLog", "Equalizer",
           "Evaluation", "SeedsConfig", "TrainRunConfig", "TrainingConfig", "cache_folder", "evaluate", "fit",
           "format_table", "load_equalizer", "load_train_config", "predict_symbols", "run_training",
           "save_equalizer", "train_model", "train_stage", "validation_mask"]
