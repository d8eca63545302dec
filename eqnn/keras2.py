"""The one place where eqnn selects Keras 2 (``tf_keras``) for TensorFlow.

TensorFlow Model Optimization (TFMOT 0.8.1) accepts only Keras 2 models. Every model in eqnn is built with
``import tf_keras as keras``, and every public function checks ``isinstance(model, tf_keras.Model)``, so eqnn works
in any import order. ``tf.keras`` itself is Keras 2 only if ``TF_USE_LEGACY_KERAS`` is true when ``tf.keras`` is
first touched (TensorFlow resolves it lazily, once); :func:`select_keras2` sets it (unless the user set it) and,
when ``tf.keras`` was already resolved to another Keras (e.g. Keras 3, because TensorFlow was imported and
``tf.keras`` used before eqnn), warns with :class:`KerasVersionWarning`: then models built with ``tf.keras`` are
not accepted by eqnn (build them with ``tf_keras``).
"""

from __future__ import annotations

import os
import sys
import warnings

ENV = "TF_USE_LEGACY_KERAS"


class KerasVersionWarning(RuntimeWarning):
    """``tf.keras`` in this process is not Keras 2 (``tf_keras``)."""


def tf_keras_flavour() -> str | None:
    """What ``tf.keras`` is in this process, without resolving it.

    Returns ``None`` if TensorFlow is not imported or ``tf.keras`` not yet resolved (the environment variable still
    decides), ``"tf_keras"`` for Keras 2, else the name of the module it resolved to (``"keras._tf_keras.keras"``
    for Keras 3).
    """
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    loaded = getattr(tf, "__dict__", {}).get("keras")
    if loaded is None or (type(loaded).__name__ == "KerasLazyLoader"
                          and not loaded.__dict__.get("_tfll_initialized", False)):
        return None
    if type(loaded).__name__ == "KerasLazyLoader":
        version = loaded.__dict__.get("_tfll_keras_version")
        return "tf_keras" if version == "tf_keras" else str(version)
    name = getattr(loaded, "__name__", "")
    return "tf_keras" if name.startswith("tf_keras") else name


def select_keras2() -> None:
    """Set ``TF_USE_LEGACY_KERAS=1`` (unless set) and warn if ``tf.keras`` already is another Keras."""
    os.environ.setdefault(ENV, "1")
    flavour = tf_keras_flavour()
    if flavour is not None and flavour != "tf_keras":
        warnings.warn(
            f"tf.keras in this process is {flavour} (Keras 3), not Keras 2: TensorFlow was imported and tf.keras "
            f"used before eqnn, so {ENV}=1 comes too late. eqnn builds its models with tf_keras and works, but it "
            "accepts only tf_keras models (TensorFlow Model Optimization supports Keras 2 only): build yours with "
            f"`import tf_keras as keras`, or import eqnn (or set {ENV}=1) before TensorFlow.",
            KerasVersionWarning, stacklevel=3)


def not_tf_keras_message(model: object, what: str = "model") -> str:
    """The one wording of "``model`` is not a ``tf_keras.Model``" (with the Keras 3 hint where it applies), used
    by every public function that takes a model (models, complexity, compression)."""
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    hint = ""
    if type(model).__module__.startswith("keras"):
        hint = (" It looks like a Keras 3 (tf.keras / keras) model: build it with `import tf_keras as keras` "
                "(TensorFlow Model Optimization supports only Keras 2).")
    return f"{what} must be a tf_keras.Model, got {kind}.{hint}"


class _LazyKeras:
    """``tf_keras``, imported on first attribute access through :func:`eqnn.quiet.import_tensorflow` (TensorFlow's
    start-up lines captured): modules that define configs next to their builders (:mod:`eqnn.models`) use it, so
    that reading and validating a configuration does not import TensorFlow."""

    __slots__ = ()

    def __getattr__(self, name: str):
        module = sys.modules.get("tf_keras")
        if module is None:
            from .quiet import import_tensorflow

            import_tensorflow()
            import tf_keras as module
        return getattr(module, name)

    def __repr__(self) -> str:
        return "<tf_keras, imported on first use>"


#: ``tf_keras``, imported on first use (:class:`_LazyKeras`)
keras = _LazyKeras()
