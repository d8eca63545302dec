"""Training and evaluation of NN equalizers, and the launch-power study behind ``eqnn train``, one module each:

- :mod:`.config`: the training TOML as typed configs (:class:`TrainRunConfig`, :class:`TrainingConfig`,
  :class:`SeedsConfig`) and :func:`load_train_config`.
- :mod:`.fitting`: :func:`train_model` / :func:`fit` (seeded Adam/MSE, early stopping on a validation split).
- :mod:`.equalizer`: the :class:`Equalizer` record and its folder (:func:`save_equalizer` / :func:`load_equalizer`).
- :mod:`.evaluate`: :func:`evaluate`: Q of the equalized test symbols next to CDC and DBP on the same symbols.
- :mod:`.run`: the stage: :func:`run_training` (``eqnn train``) and :func:`train_stage` (typed result).
"""

from .config import MODES, SeedsConfig, TrainingConfig, TrainRunConfig, load_train_config
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
from .fitting import EpochLog, fit, train_model, validation_mask
from .run import cache_folder, format_table, run_training, train_stage

__all__ = ["EQUALIZER_FORMAT", "EQUALIZER_VERSION", "MODES", "WEIGHTS_PREFIX", "BareModel", "EpochLog", "Equalizer",
           "Evaluation", "SeedsConfig", "TrainRunConfig", "TrainingConfig", "cache_folder", "evaluate", "fit",
           "format_table", "load_equalizer", "load_train_config", "predict_symbols", "run_training",
           "save_equalizer", "train_model", "train_stage", "validation_mask"]
