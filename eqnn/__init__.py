"""eqnn: neural-network equalizers for coherent optical links, their compression and complexity.

TFMOT needs Keras 2: every model in this package is built with ``tf_keras``. ``TF_USE_LEGACY_KERAS``
is set here (unless the user set it) so that ``tf.keras`` is Keras 2 as well and TFMOT's internals agree.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
