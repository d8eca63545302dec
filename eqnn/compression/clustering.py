"""Weight clustering (TFMOT ``cluster_weights`` + ``strip_clustering``): every kernel of the supported layers gets
at most ``n_clusters`` distinct values (one codebook per tensor); see :func:`cluster`."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper
from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import ClusteringRegistry

from . import catalog
from .common import (
    _check_choice,
    _check_clusters,
    _check_model,
    _fresh_built,
    _is_plain,
    _plain_rebuild,
    attach_info,
    kernel_entries,
)
from .fine_tune import FineTune, _check_fine_tune, _fit, _ProjectStructure, _seed
from .ldbp import cluster_ldbp, is_ldbp

CLUSTER_INITS = {
    "kmeans++": tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS,
    "linear": tfmot.clustering.keras.CentroidInitialization.LINEAR,
    "density": tfmot.clustering.keras.CentroidInitialization.DENSITY_BASED,
    "random": tfmot.clustering.keras.CentroidInitialization.RANDOM,
}
if tuple(CLUSTER_INITS) != catalog.CLUSTER_INITS:  # the names a configuration is checked against
    raise ImportError(f"CLUSTER_INITS {list(CLUSTER_INITS)} differ from eqnn.compression.catalog.CLUSTER_INITS")


def _clusterable(layer: keras.layers.Layer) -> bool:
    if not kernel_entries(layer) or not layer.trainable_weights:
        return False
    try:
        return bool(ClusteringRegistry.supports(layer))
    except Exception:  # noqa: BLE001 - the registry inspects cells and may raise on exotic layers
        return False


_MIN_TFMOT_CLUSTERS = {False: 2, True: 3}  # cluster_weights' smallest number_of_clusters (by preserve_sparsity)


def _cluster_plan(layer: keras.layers.Layer, n_clusters: int, init: str, preserve_sparsity: bool) -> dict:
    """How :func:`cluster` treats one clusterable layer: ``{"skip": bool, "n_clusters": int, "init": str}``.

    A layer whose every kernel already has at most ``n_clusters`` distinct values (zero included) is skipped. TFMOT
    gives all kernels of a layer one cluster count, and its kmeans++ initialization fails when it has to place more
    centroids than there are weights: without ``preserve_sparsity`` it needs ``n_clusters <= size`` for every
    kernel, with it ``n_clusters - 1 <= non-zeros`` for every kernel that has any (the zero centroid is added, the
    others are split between the negative and the positive weights in proportion to their counts). A kmeans++
    layer is therefore capped to the largest count that every kernel admits; where that is below TFMOT's minimum
    (2, or 3 with ``preserve_sparsity``), the layer keeps ``n_clusters`` and is initialized linearly instead.
    """
    tensors = [var.numpy() for _, var in kernel_entries(layer)]
    if all(np.unique(w).size <= n_clusters for w in tensors):
        return {"skip": True, "n_clusters": n_clusters, "init": init}
    if init != "kmeans++":
        return {"skip": False, "n_clusters": n_clusters, "init": init}
    if preserve_sparsity:
        limits = [int(np.count_nonzero(w)) + 1 for w in tensors if np.count_nonzero(w)]
    else:
        limits = [int(w.size) for w in tensors]
    cap = min([n_clusters, *limits])
    if cap < _MIN_TFMOT_CLUSTERS[preserve_sparsity]:
        return {"skip": False, "n_clusters": n_clusters, "init": "linear"}
    return {"skip": False, "n_clusters": cap, "init": init}


def cluster(model: keras.Model, n_clusters: int, *, init: str = "kmeans++", preserve_sparsity: bool = False,
            fine_tune: FineTune | None = None) -> keras.Model:
    """Weight clustering (TFMOT ``cluster_weights`` + ``strip_clustering``); returns a new plain model.

    Every kernel / recurrent kernel of the supported layers (Dense, Conv1D, LSTM, Bidirectional) gets at most
    ``n_clusters`` distinct values (one codebook per tensor). ``preserve_sparsity=True`` keeps zero weights at zero
    (the zeros form one of the clusters, so it needs ``n_clusters >= 3``). ``init``: ``"kmeans++"``,
    ``"linear"``, ``"density"``, ``"random"``. ``fine_tune`` trains the centroids; ``None``: one-shot.

    Few weights (e.g. after strong pruning, or clustering twice):

    * A layer whose every kernel already has at most ``n_clusters`` distinct values (zero included) is not
      clustered: its weights are kept exactly. With ``fine_tune`` it trains like the clustered layers, its kernels
      projected back after every batch (weights that shared a value share their mean, zeros stay zero), so they
      keep at most ``n_clusters`` distinct values and their zeros.
    * TFMOT clusters all kernels of a layer (an LSTM's kernel and recurrent kernel, a Bidirectional's four) with
      one count, and kmeans++ cannot place more centroids than a kernel has weights (non-zero weights with
      ``preserve_sparsity``; the zeros get their own centroid). With ``init="kmeans++"`` the count of such a layer
      is capped to what its sparsest kernel admits (``size``, or ``non-zeros + 1``); if that is below TFMOT's
      minimum (2, or 3 with ``preserve_sparsity``: a kernel with a single non-zero weight), the layer keeps
      ``n_clusters`` and is initialized with ``"linear"`` instead. Both only lower the number of distinct values.

    The step's info records ``layers`` (every supported layer), ``not_clustered`` (layers with kernels that TFMOT
    cannot cluster; left as they are), ``skipped_few_values`` (the layers of the first point),
    ``clusters_per_layer`` (the count TFMOT used per clustered layer), ``capped`` (``{layer: count}`` below
    ``n_clusters``), ``init_fallback`` (``{layer: "linear"}``) and ``distinct_values`` per kernel afterwards.
    """
    _check_model(model)
    if not isinstance(preserve_sparsity, (bool, np.bool_)):
        raise TypeError(f"preserve_sparsity must be a bool, got {preserve_sparsity!r}")
    preserve_sparsity = bool(preserve_sparsity)
    n_clusters = _check_clusters(n_clusters, preserve_sparsity)
    init = _check_choice(init, "cluster init", list(CLUSTER_INITS))
    _check_fine_tune(fine_tune)
    if is_ldbp(model):  # learned DBP: its custom layers are clustered in numpy (eqnn.compression.ldbp)
        _seed(fine_tune)
        start = time.perf_counter()
        clustered, info = cluster_ldbp(model, n_clusters, init, preserve_sparsity, fine_tune,
                                       fine_tune.seed if fine_tune is not None else 0)
        return attach_info(clustered, model, {"step": "cluster", "n_clusters": n_clusters, "init": init,
                                              "preserve_sparsity": preserve_sparsity,
                                              "seconds": time.perf_counter() - start, **info})
    names = [layer.name for layer in model.layers if _clusterable(layer)]
    if not names:
        raise ValueError(f"model {model.name!r} has no layer that can be clustered")
    skipped = [layer.name for layer in model.layers if kernel_entries(layer) and layer.name not in names]
    plans = {name: _cluster_plan(model.get_layer(name), n_clusters, init, preserve_sparsity) for name in names}
    clustered_names = [name for name in names if not plans[name]["skip"]]
    _seed(fine_tune)
    start = time.perf_counter()

    def wrap(layer):
        # cluster_weights wraps (and training changes) the layer object it is given: give it a built copy, whose
        # weights the centroid initialization reads, never the input model's layer.
        if layer.name not in clustered_names:
            return type(layer).from_config(layer.get_config())
        plan = plans[layer.name]
        return tfmot.clustering.keras.cluster_weights(_fresh_built(layer), number_of_clusters=plan["n_clusters"],
                                                      cluster_centroids_init=CLUSTER_INITS[plan["init"]],
                                                      preserve_sparsity=preserve_sparsity)

    wrapped = keras.models.clone_model(model, clone_function=wrap)
    for layer in wrapped.layers:  # the unwrapped layers with weights (left as they are, or not supported)
        if layer.weights and not isinstance(layer, cluster_wrapper.ClusterWeights):
            layer.set_weights(model.get_layer(layer.name).get_weights())
    info: dict[str, Any] = {"fine_tuned": fine_tune is not None}
    if fine_tune is not None:
        few = [var for name in names if plans[name]["skip"] for _, var in kernel_entries(wrapped.get_layer(name))]
        info["history"] = _fit(wrapped, fine_tune, [_ProjectStructure(few)] if few else [])
    clustered = tfmot.clustering.keras.strip_clustering(wrapped)
    if not _is_plain(clustered):
        clustered = _plain_rebuild(clustered)
    distinct = {key: int(np.unique(var.numpy()).size)
                for name in names for key, var in kernel_entries(clustered.get_layer(name))}
    step = {"step": "cluster", "n_clusters": n_clusters, "init": init, "preserve_sparsity": preserve_sparsity,
            "layers": names, "not_clustered": skipped,
            "skipped_few_values": [name for name in names if plans[name]["skip"]],
            "clusters_per_layer": {name: plans[name]["n_clusters"] for name in clustered_names},
            "capped": {name: plans[name]["n_clusters"] for name in clustered_names
                       if plans[name]["n_clusters"] < n_clusters},
            "init_fallback": {name: plans[name]["init"] for name in clustered_names if plans[name]["init"] != init},
            "distinct_values": distinct, "seconds": time.perf_counter() - start, **info}
    return attach_info(clustered, model, step)

