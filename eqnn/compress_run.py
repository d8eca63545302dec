"""Compression study of a trained equalizer (``eqnn compress``): the public names, kept importable from here.

The code lives in :mod:`eqnn.studies`: the ``[compression]`` table in :mod:`eqnn.studies.compression_config`,
the study (search, measurements, saved models, resume rule) in :mod:`eqnn.studies.compression`, the command in
:mod:`eqnn.studies.compress_cli`; the DSP references in :mod:`eqnn.references`. The table's format reference is
``docs/config_reference.md``.
"""

from .references import dsp_costs, reference_points
from .studies.compress_cli import (
    DEFAULT_CACHE,
    compress_command,
    compress_saved_equalizer,
    format_summary,
    summary_rows,
)
from .studies.compression import (
    FAILED_Q_PENALTY_DB,
    FORMAT,
    PIPELINE_VERSION,
    POINT_FAILURES,
    SETUP_FILE,
    STUDY_FILE,
    CompressionStudy,
    _as_equalizer,
    _evaluate_point,
    _resized_model_config,
    compress_equalizer,
    compress_trained,
    params_key,
)
from .studies.compression_config import (
    MAX_CLUSTERS,
    OBJECTIVES,
    SCOPES,
    CompressionSearchConfig,
    load_compression_config,
)

__all__ = ["CompressionSearchConfig", "CompressionStudy", "compress_equalizer", "reference_points", "dsp_costs",
           "load_compression_config", "compress_saved_equalizer", "compress_command", "FAILED_Q_PENALTY_DB",
           "compress_trained", "summary_rows", "format_summary", "params_key", "PIPELINE_VERSION", "POINT_FAILURES",
           "DEFAULT_CACHE", "FORMAT", "SETUP_FILE", "STUDY_FILE", "MAX_CLUSTERS", "OBJECTIVES", "SCOPES",
           "_as_equalizer", "_evaluate_point", "_resized_model_config"]
