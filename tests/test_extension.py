"""Extending eqnn by capability: a toy model family, a toy layer type and a toy pruning method, each defined here
as it would be in one new file and registered from here, run through training, complexity counting and
compression with no other file edited. Tiny sizes (a few hundred windows, one epoch)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import tf_keras as keras

import channel
from eqnn import compress as C
from eqnn import layers, models
from eqnn.complexity import count_multiplications_reference, model_complexity
from eqnn.complexity.counting import csd_digit_count, input_shape, quantize_to_integers
from eqnn.data import DataConfig, make_datasets
from eqnn.train import TrainingConfig, train_model

# ------------------------------------------------------------------ "toy_layer.py": a new layer type


class ToyScale(keras.layers.Layer):
    """``y[t, c] = x[t, c] w[c]``: one trained weight per input feature (a diagonal layer)."""

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[-1]),), initializer="ones")
        super().build(input_shape)

    def call(self, inputs):
        return inputs * self.kernel


def _toy_tally(tally, layer):
    """Per position, one product per non-zero weight: ``P nnz(w)`` multiplications, no additions."""
    shape = input_shape(layer)
    positions = int(np.prod(shape[1:-1]))
    w = layer.kernel.numpy()
    nz = w != 0
    tally.const_products(int(nz.sum()), csd_digit_count(quantize_to_integers(w, tally.bw))[nz], times=positions)
    return (w,)


def _toy_reference(counter, layer, x):
    w = layer.kernel.numpy()
    return np.array([[counter.mul(float(v), float(w[c])) if w[c] != 0 else 0.0 for c, v in enumerate(row)]
                     for row in x])


TOY_LAYER = layers.LayerType(
    name="ToyScale", matches=lambda layer: isinstance(layer, ToyScale), tally=_toy_tally, reference=_toy_reference,
    structure="per_feature", slice_in=lambda layer, weights, keep: [weights[0][keep]],
    prunable_weights=lambda layer: [layer.kernel])


# ------------------------------------------------------------------ "toy_family.py": a new model family


@dataclass(frozen=True)
class ToyConfig:
    type: ClassVar[str] = "toy_scale"
    name: str = "Toy"
    units: int = 6


def build_toy(config, input_shape, n_outputs):
    inputs = keras.Input(shape=input_shape, name="window")
    h = ToyScale(name="scale")(inputs)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(config.units, activation="tanh", name="hidden")(h)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, name="output")(h), name=config.type)


TOY_FAMILY = models.ModelFamily(
    config=ToyConfig, build=build_toy, roles=lambda config: {"scale": "hidden", "hidden": "hidden",
                                                             "output": "output"},
    resized_config=lambda config, model: dataclasses.replace(config, units=model.get_layer("hidden").units))


# ------------------------------------------------------------------ "toy_pruning.py": a new pruning method


def _toy_prune(model, targets, *, schedule, scope, fine_tune, options):
    """Zero the first ``round(s n)`` entries (in memory order) of each kernel: structure-blind, one-shot."""
    pruned = C.copy_model(model)
    for name, s in targets.items():
        for _, var in C.kernel_entries(pruned.get_layer(name)):
            w = var.numpy().ravel()
            w[:int(round(s * w.size))] = 0.0
            var.assign(w.reshape(var.shape))
    return pruned, {"fine_tuned": False}


TOY_PRUNING = C.PruningMethod(
    "toy_first_entries", prunable=lambda model: [layer.name for layer in model.layers if C.kernel_entries(layer)],
    apply=_toy_prune, description="zeros the first entries of each kernel")


# ------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def registered():
    layers.register_layer_type(TOY_LAYER)
    models.register_model_family(TOY_FAMILY)
    C.register_pruning_method(TOY_PRUNING)
    yield
    layers.unregister_layer_type(TOY_LAYER.name)
    models.unregister_model_family(ToyConfig.type)
    C.unregister_pruning_method(TOY_PRUNING.name)


@pytest.fixture(scope="module")
def windows():
    link = channel.reference_config().replace(
        transmitter={"modulation": "16QAM", "n_symbols": 512, "seed": 1, "launch_power_dbm": 2.0},
        link={"n_spans": 1, "span_length_km": 20.0}, propagation={"step_mode": "fixed", "steps_per_span": 2},
        receiver={"dbp_steps_per_span": []}, name="tiny")
    config = DataConfig(taps=2, guard_symbols=4)
    train_set, test_set = make_datasets(channel.simulate(link.with_seed(5)), channel.simulate(link.with_seed(6)),
                                        config)
    return train_set, test_set, config


def test_toy_family_layer_and_method_run_through_training_complexity_and_compression(registered, windows):
    train_set, _, data_config = windows
    config = models.model_config_from_dict({"type": "toy_scale", "units": 6})
    assert models.model_config_to_dict(config) == {"type": "toy_scale", "name": "Toy", "units": 6}
    models.check_input(config, 5)  # no input constraint
    training = TrainingConfig(epochs=1, batch_size=128, validation_split=0.0, seed=1)
    equalizer = train_model(config, train_set, training, data_config, progress=False)
    model = equalizer.model
    assert isinstance(model.get_layer("scale"), ToyScale)
    assert layers.find_layer_type(model.get_layer("scale")) is TOY_LAYER

    # complexity: formula == counting reference; the toy layer costs T * F products (no zero weights)
    window = train_set.x[0]
    mc = model_complexity(model)
    ref = count_multiplications_reference(model, window)
    assert ref.multiplications == mc.multiplications_per_window and ref.additions == mc.additions_per_window
    np.testing.assert_allclose(ref.output, np.asarray(model(window[None], training=False))[0], rtol=1e-5, atol=1e-5)
    t, f = window.shape
    assert mc.layers[1].multiplications_per_window == t * f
    assert mc.multiplications_per_window == t * f + t * f * 6 + 6 * 2

    # compression with the toy method (prune), then cluster and quantize (the toy layer is PTQ-quantized)
    result = C.compress(model, C.CompressionConfig(prune_method="toy_first_entries", sparsity=0.5, n_clusters=3,
                                                   weight_bits=6))
    out = result.model
    assert [s.step for s in result.steps] == ["prune", "cluster", "quantize"]
    kernel = out.get_layer("scale").kernel.numpy()
    assert np.count_nonzero(kernel[:round(0.5 * f)]) == 0
    assert len(np.unique(kernel)) <= 2 ** 6
    pruned = result.steps[0].model
    assert np.count_nonzero(pruned.get_layer("hidden").kernel.numpy().ravel()[:t * f * 3]) == 0
    cost = model_complexity(out, weight_bits=6)
    assert cost.multiplications_per_window == count_multiplications_reference(out, window).multiplications
    assert cost.multiplications_per_window < mc.multiplications_per_window
    assert models.resized_config(config, out) == config


def test_registered_layer_type_is_magnitude_and_structurally_prunable(registered, windows):
    train_set, _, data_config = windows
    model = models.build_model(ToyConfig(units=6), train_set.input_shape, train_set.n_outputs)
    ft = C.FineTune(train_set.x[:256], train_set.y[:256], epochs=1, batch_size=128)
    # magnitude pruning wraps the toy layer through the PrunableLayer subclass built from prunable_weights
    assert "scale" in C.PRUNING_METHODS["magnitude"].prunable(model)
    pruned = C.prune(model, 0.5, per_layer={"scale": 0.5}, fine_tune=ft)
    assert type(pruned.get_layer("scale")) is ToyScale
    assert np.mean(pruned.get_layer("scale").kernel.numpy() == 0) == pytest.approx(0.5)
    # structured pruning passes through the toy layer ("per_feature") and shrinks the hidden layer
    smaller = C.prune(model, 0.5, method="structured")
    assert smaller.get_layer("hidden").units == 3
    assert models.resized_config(ToyConfig(units=6), smaller) == ToyConfig(units=3)


def test_unregistering_restores_the_registries(registered):
    assert "toy_scale" in models.MODEL_TYPES and "toy_first_entries" in C.PRUNING_METHODS
    assert list(models.MODEL_TYPES)[:6] == ["mlp", "lstm", "bilstm", "gru", "bigru", "cnn_bilstm"]
    assert list(C.PRUNING_METHODS)[:2] == ["magnitude", "structured"]


def test_capability_flags_not_names():
    assert C.PRUNING_METHODS["magnitude"].supports_global_scope and not C.PRUNING_METHODS["magnitude"].structured
    assert C.PRUNING_METHODS["structured"].structured and not C.PRUNING_METHODS["structured"].supports_global_scope
    needy = C.PruningMethod("needs_data", prunable=lambda model: ["output"], apply=_toy_prune, needs_fine_tune=True)
    C.register_pruning_method(needy)
    try:
        model = keras.Sequential([keras.Input((3, 4)), keras.layers.Flatten(), keras.layers.Dense(2, name="output")])
        with pytest.raises(ValueError, match="needs fine_tune"):
            C.prune(model, 0.5, method="needs_data")
        with pytest.raises(ValueError, match="global"):
            C.prune(model, 0.5, method="needs_data", scope="global")
        # clustering after a method that leaves zeros preserves them by default; after a structured one it cannot
        assert C.CompressionConfig(prune_method="needs_data", sparsity=0.5, n_clusters=4).cluster_preserves_sparsity()
        assert not C.CompressionConfig(prune_method="structured", sparsity=0.5,
                                       n_clusters=4).cluster_preserves_sparsity()
    finally:
        C.unregister_pruning_method("needs_data")
