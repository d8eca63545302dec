"""The registry of model families: config class, builder, layer roles, resize after pruning, input check.

A family is everything the rest of the toolkit needs to know about one architecture; nothing outside its module
names its layers. Adding one (e.g. a transformer) is a new module that calls :func:`register_model_family`::

    register_model_family(ModelFamily(config=TransformerConfig, build=build_transformer, roles=transformer_roles,
                                      resized_config=transformer_resized, check_input=None))

with ``TransformerConfig`` a frozen dataclass whose ``ClassVar`` ``type`` is the TOML ``type = ...`` name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional

from channel.validation import ConfigError

from .common import check_keras_model

# Layer roles (values of ModelFamily.roles(config)): what a named layer is in its family.
ROLES = ("hidden", "recurrent", "conv", "output")


@dataclass(frozen=True)
class ModelFamily:
    """One architecture.

    Attributes:
        config: the frozen dataclass of its settings; ``config.type`` is the TOML type name.
        build: ``build(config, input_shape=(T, features), n_outputs) -> tf_keras.Model`` (uncompiled).
        roles: ``roles(config) -> {layer name: role}`` for the layers with weights, role in :data:`ROLES`.
        prunable: ``prunable(config) -> [layer names]`` whose units structured pruning may remove (default: every
            named layer but the "output" one).
        resized_config: ``resized_config(config, model) -> config`` with the widths of ``model`` (a possibly
            structurally pruned model built from ``config``).
        check_input: ``check_input(config, window_length)``: raise :class:`ConfigError` if the family cannot take
            windows of ``window_length`` time slots (None: any length).
        saved_defaults: ``{field: value}`` for fields added after models of this family were first saved: a saved
            record (``model_config_from_dict(..., saved=True)``) that lacks the field was built with that value.
        blocks: for a sequence (many-to-many) family, ``blocks(config) -> BlockGeometry`` (training block length,
            inference block, overlap); None: the family takes windows (many-to-one).
        custom_input: for a family whose input is not the received symbols after CDC (e.g. ``ldbp``: the received
            field), how it is prepared, trained, applied and costed (:class:`CustomInput`); None: windows or blocks.
    """

    config: type
    build: Callable[..., Any]
    roles: Callable[[Any], dict]
    resized_config: Callable[[Any, Any], Any]
    check_input: Optional[Callable[[Any, int], None]] = None
    prunable: Optional[Callable[[Any], list]] = None
    saved_defaults: dict = dataclasses.field(default_factory=dict)
    blocks: Optional[Callable[[Any], "BlockGeometry"]] = None
    custom_input: Optional["CustomInput"] = None

    @property
    def type(self) -> str:
        return self.config.type


@dataclass(frozen=True)
class BlockGeometry:
    """The blocks of a sequence family (:mod:`eqnn.data_blocks`): training ``block_length`` L, ``inference_block``
    B and ``overlap`` O (symbols discarded on each side of an inference block); a block delivers ``B - 2 O``."""

    block_length: int
    inference_block: int
    overlap: int

    @property
    def delivered(self) -> int:
        return self.inference_block - 2 * self.overlap


@dataclass(frozen=True)
class CustomInput:
    """The data hooks of a family with its own input (:attr:`ModelFamily.custom_input`; :mod:`eqnn.models.ldbp`).

    Attributes:
        prepare: ``prepare(config, train_transmissions) -> config``: the config resolved from the training data
            before the model is built (e.g. the link quantities an LDBP is initialized from); idempotent.
        training_set: ``training_set(config, transmissions, data_config) -> set`` with arrays ``.x``, ``.y``,
            ``.block`` and the attributes of :class:`eqnn.data.WindowSet` that :func:`eqnn.training.fit` and
            :func:`eqnn.training.train_model` read (``input_shape``, ``n_outputs``, ``taps``, ``guard``,
            ``normalization``, ``launch_powers_dbm``, ``seeds``).
        predict: ``predict(model, config, transmission, data_config, batch_size) -> (symbols complex (n_pol,
            n_centres), centres)`` at the window centres of ``data_config`` (the symbols every method is evaluated on).
        complexity_arguments: ``(config, n_outputs) -> dict`` of extra arguments of
            :func:`eqnn.complexity.model_complexity` (e.g. ``time_steps``, ``symbols_per_window``).
        input_shape: ``input_shape(config) -> (T, features)`` the model is saved with.
    """

    prepare: Callable[[Any, Any], Any]
    training_set: Callable[..., Any]
    predict: Callable[..., Any]
    complexity_arguments: Callable[[Any, int], dict]
    input_shape: Callable[[Any], tuple]


def custom_input_of(config: Any) -> Optional[CustomInput]:
    """The :class:`CustomInput` of ``config``'s family; None for a windowed or sequence family (or a bare label)."""
    try:
        return family_of(config).custom_input
    except TypeError:
        return None


FAMILIES: dict[str, ModelFamily] = {}
MODEL_TYPES: dict[str, type] = {}  # TOML type name -> config class (kept in step with FAMILIES)


def register_model_family(family: ModelFamily) -> ModelFamily:
    """Add (or replace) a family; its config's ``type`` then works in TOML, :func:`build_model` and resizing."""
    if not isinstance(family, ModelFamily):
        raise TypeError("register_model_family takes a ModelFamily")
    if not dataclasses.is_dataclass(family.config) or not isinstance(getattr(family.config, "type", None), str):
        raise TypeError("ModelFamily.config must be a dataclass with a ClassVar `type` (its TOML type name)")
    FAMILIES[family.type] = family
    MODEL_TYPES[family.type] = family.config
    return family


def unregister_model_family(type_name: str) -> None:
    """Remove a family (tests that register a toy family clean up with this)."""
    FAMILIES.pop(type_name, None)
    MODEL_TYPES.pop(type_name, None)


def family_of(config: Any) -> ModelFamily:
    """The family of a config instance; TypeError for anything else."""
    family = FAMILIES.get(getattr(config, "type", None))
    if family is None or not isinstance(config, family.config):
        raise TypeError(f"expected a model config ({', '.join(f.config.__name__ for f in FAMILIES.values())}), "
                        f"got {type(config).__name__}")
    return family


def model_config_to_dict(config: Any) -> dict:
    """``{"type": ..., field: value ...}`` (JSON/TOML-ready)."""
    family_of(config)
    d = {"type": config.type}
    for k, v in dataclasses.asdict(config).items():
        d[k] = list(v) if isinstance(v, tuple) else v
    return d


def model_config_from_dict(data: dict, section: str = "models", *, saved: bool = False) -> Any:
    """Build a model config from ``{"type": <a registered type name>, ...fields}``.

    ``saved=True``: ``data`` was written with a saved model (e.g. ``equalizer.json``); fields it lacks take the
    family's ``saved_defaults`` (the values such models were built with), not the config defaults.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"[{section}] must be a table, got {data!r}")
    kind = data.get("type")
    if kind not in MODEL_TYPES:
        raise ConfigError(f"{section}.type = {kind!r}: allowed values are {', '.join(map(repr, MODEL_TYPES))}")
    cls = MODEL_TYPES[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in data.items() if k != "type"}
    if saved:
        values = {**FAMILIES[kind].saved_defaults, **values}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in [{section}] of type {kind!r}: "
                          f"allowed type, {', '.join(sorted(names))}")
    return cls(**values)


def build_model(config: Any, input_shape: tuple[int, int], n_outputs: int):
    """Build the (uncompiled) ``tf_keras`` model of ``config`` for windows ``input_shape`` = (2N + 1, 4).

    ``config``: a model config dataclass or its dict form (``{"type": ..., ...}``).
    Weights are initialized from TensorFlow's global seed: call ``keras.utils.set_random_seed`` first
    for reproducible weights.
    """
    if isinstance(config, dict):
        config = model_config_from_dict(config)
    family = family_of(config)
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, int) or n_outputs < 1:
        raise ValueError(f"n_outputs must be a positive integer, got {n_outputs!r}")
    model = family.build(config, tuple(int(v) for v in input_shape), n_outputs)
    return check_keras_model(model)


def check_input(config: Any, window_length: int) -> None:
    """Raise :class:`ConfigError` if ``config``'s family cannot take windows of ``window_length`` (= 2 taps + 1)."""
    family = family_of(config)
    if family.check_input is not None:
        family.check_input(config, int(window_length))


def resized_config(config: Any, model) -> Any:
    """``config`` with the layer widths of ``model`` (built from ``config``, then possibly structurally pruned)."""
    return family_of(config).resized_config(config, model)


def layer_roles(config: Any) -> dict:
    """``{layer name: role}`` of the weighted layers of the model of ``config`` (roles in :data:`ROLES`)."""
    return dict(family_of(config).roles(config))


def prunable_layers(config: Any) -> list:
    """Names of the layers of ``config``'s model whose units structured pruning may remove."""
    family = family_of(config)
    if family.prunable is not None:
        return list(family.prunable(config))
    return [name for name, role in family.roles(config).items() if role != "output"]


def block_geometry(config: Any) -> Optional[BlockGeometry]:
    """The :class:`BlockGeometry` of a sequence (many-to-many) model config; None for a windowed family."""
    family = family_of(config) if not isinstance(config, dict) else family_of(model_config_from_dict(config))
    return None if family.blocks is None else family.blocks(config)
