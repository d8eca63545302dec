"""eqnn: neural-network equalizers for coherent optical links, their compression and complexity.

TFMOT needs Keras 2: every model in this package is built with ``tf_keras``. :func:`eqnn.keras2.select_keras2`
(the one place that does so) sets ``TF_USE_LEGACY_KERAS`` here (unless the user set it) so that ``tf.keras`` is
Keras 2 as well and TFMOT's internals agree, and warns (:class:`eqnn.keras2.KerasVersionWarning`) if TensorFlow
already resolved ``tf.keras`` to Keras 3.
"""

import os

from .keras2 import select_keras2

# TensorFlow's C++ log level: warnings and errors only, unless the user chose (eqnn.quiet shows all with --verbose)
TF_LOG_LEVEL_CHOSEN = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
select_keras2()

__version__ = "0.1.0"
