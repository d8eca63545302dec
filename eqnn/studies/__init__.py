"""The compression study and the whole-study pipeline, one module each:

- :mod:`.compression_config`: the ``[compression]`` table (:class:`CompressionSearchConfig`).
- :mod:`.compression`: the resumable compression study of one trained equalizer (:func:`compress_equalizer`) and
  the one path that compresses a model of a training stage (:func:`compress_trained`).
- :mod:`.compress_cli`: ``eqnn compress`` (:func:`compress_command`).
"""
