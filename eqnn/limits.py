"""Constants shared by compression, its search and complexity counting, defined once (no TensorFlow import).

Bit widths:

- ``MIN_BITS``, ``MAX_BITS`` = 2, 16: the weight / activation widths that quantization produces
  (:func:`eqnn.compress.quantize`, a compression search's ``weight_bits`` / ``activation_bits``).
- ``FLOAT_BITS`` = 32: bits of an unquantized float32 value (model size of float tensors).
- ``COUNT_MIN_BITS``, ``COUNT_MAX_BITS`` = 2, 32: the widths that complexity counting (BoP, NABS) accepts; it can
  also cost a float model as 32-bit fixed point (``DEFAULT_COUNT_BITS``).

Pruning scope:

- ``SCOPES`` = ("layer", "global"): how :func:`eqnn.compress.prune` spreads ``sparsity``: one fraction per layer,
  or one magnitude threshold over all layers (methods with ``supports_global_scope``).
- ``SEARCH_SCOPES`` = SCOPES + ("per_layer",): a compression search may also make each layer's fraction its own
  hyperparameter ("per_layer"), which it turns into ``prune(..., per_layer={...})``, a search-level option that the
  library's ``scope`` does not take.
"""

MIN_BITS, MAX_BITS = 2, 16
FLOAT_BITS = 32
COUNT_MIN_BITS, COUNT_MAX_BITS = 2, FLOAT_BITS
DEFAULT_COUNT_BITS = FLOAT_BITS
SCOPES = ("layer", "global")
SEARCH_SCOPES = SCOPES + ("per_layer",)
