"""A data-parallel engine against one device: the same weights after K steps, and the same first NaN.

``python tests/distributed_worker.py OUT.json devices 2``: one process, 2 simulated CPU devices.
``python tests/distributed_worker.py OUT.json processes``: run as each rank of ``launcher.launch``.

Each layout trains the tiny model for STEPS data-parallel steps through the backend's engine
(bench/distributed/, the benchmarks' own step) and the same model for STEPS single-device
``train_on_batch`` steps on the same global batches; rank 0 writes the largest absolute difference
of any weight, and with several processes how far the ranks' weights are apart. Then one epoch of
``training.fit_epoch`` (the accuracy benchmark's) with a NaN planted at step NAN_STEP, once on one
device and once through the engine: both messages are written. Under TensorFlow's multi-worker
engine, also whether Keras's own train_function works there now (``keras_train_function``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import backends, training  # noqa: E402
from bench.data import synthetic  # noqa: E402
from bench.distributed import launcher  # noqa: E402
from bench.distributed.engine import DataParallel, engine_for  # noqa: E402
from bench.distributed.layout import Layout, rank_from_env  # noqa: E402
from bench.results import layout_name  # noqa: E402
from model import DEFAULT_CONFIG, build_model, initialize_weights  # noqa: E402

CONFIG = DEFAULT_CONFIG.replace(max_features=100, embed_dim=8, lstm_units=4, maxlen=10)
GLOBAL_BATCH, STEPS, SEED = 8, 3, 7
NAN_STEP, NAN_EPOCH_STEPS = 3, 6  # the planted NaN's step (1-based) of an epoch of NAN_EPOCH_STEPS global batches


def batches() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    x = rng.integers(1, CONFIG.max_features, (STEPS * GLOBAL_BATCH, CONFIG.maxlen)).astype("int32")
    y = rng.integers(0, 2, STEPS * GLOBAL_BATCH).astype("float32")
    return x, y


def seeded_model() -> object:
    model = build_model(CONFIG)
    initialize_weights(model, SEED)
    return model


def flat(weights: list) -> np.ndarray:
    return np.concatenate([np.asarray(w, dtype=np.float64).ravel() for w in weights])


def compare(engine: DataParallel, x: np.ndarray, y: np.ndarray) -> dict:
    """Train STEPS steps both ways; the layout's max weight difference (and across ranks, with processes)."""
    with engine.scope():
        model = seeded_model()
    rows = engine.local_rows(GLOBAL_BATCH)
    staged = [engine.stage(x[k * GLOBAL_BATCH:(k + 1) * GLOBAL_BATCH][rows],
                           y[k * GLOBAL_BATCH:(k + 1) * GLOBAL_BATCH][rows]) for k in range(STEPS)]
    step = engine.make_step(model, staged)
    for _ in range(STEPS):
        step()
    parallel_weights = flat(model.get_weights())
    with engine.single_device():
        reference = seeded_model()
        for k in range(STEPS):
            rows_k = slice(k * GLOBAL_BATCH, (k + 1) * GLOBAL_BATCH)
            reference.train_on_batch(x[rows_k], y[rows_k])
        single_weights = flat(reference.get_weights())
    every_rank = engine.gather(parallel_weights)
    return {"replicas": engine.layout.replicas, "engine": engine.name,
            "max_weight_diff": float(np.max(np.abs(parallel_weights - single_weights))),
            "max_weight_change": float(np.max(np.abs(single_weights - flat(seeded_model().get_weights())))),
            "max_rank_spread": float(np.max(np.abs(every_rank - every_rank[0])))}


def planted_loss(y_true: object, y_pred: object) -> object:
    """Binary cross-entropy, plus log(y + 1): 0 or log 2 for the labels 0 and 1, NaN for a planted label of -2."""
    import keras

    labels = keras.ops.clip(y_true, 0.0, 1.0)
    return (keras.ops.mean(keras.losses.binary_crossentropy(labels, y_pred))
            + keras.ops.mean(keras.ops.log(y_true + 1.0)))


def first_nan(engine: DataParallel) -> dict:
    """The NonFiniteLoss message of one epoch with a NaN planted at step NAN_STEP: on one device, then the engine."""
    data = synthetic(NAN_EPOCH_STEPS * GLOBAL_BATCH, 2 * GLOBAL_BATCH, max_features=CONFIG.max_features,
                     maxlen=CONFIG.maxlen, seed=SEED)
    epoch = 1
    order = training.batch_order(len(data.y_train), SEED, epoch)  # the rows each step of the epoch trains on
    data.y_train[order[(NAN_STEP - 1) * GLOBAL_BATCH:NAN_STEP * GLOBAL_BATCH]] = -2

    def run(where: object, placement: DataParallel | None) -> str:
        with where:
            model = seeded_model()
            model.compile(optimizer="adam", loss=planted_loss, metrics=["accuracy"])
            try:
                training.fit_epoch(model, data, epoch, GLOBAL_BATCH, SEED, engine=placement)
            except training.NonFiniteLoss as exc:
                return str(exc)
        return "no NaN: the epoch trained to its end"

    # Every rank runs the engine's epoch (its steps are collective); the single-device epoch after it, and
    # the rest of the worker, is rank 0's alone (it alone writes), except the TensorFlow probe, which every
    # rank of the strategy must take part in.
    parallel = run(engine.scope(), engine)
    return {"single": run(engine.single_device(), None) if engine.rank == 0 else None, "parallel": parallel}


def keras_train_function_status(engine: DataParallel) -> str:
    """Whether Keras's own train_function runs under the engine's strategy: "works", or "fails: <error>".

    TensorFlow's multi-worker step is our own only because Keras 3.15's fails there; this notices
    the Keras release that fixes it. On a throwaway model (a working function trains it).
    """
    import tensorflow as tf

    with engine.strategy.scope():
        model = seeded_model()
    replicas = len(engine.device_names)
    x = np.ones((2 * replicas, CONFIG.maxlen), dtype="int32")
    y = np.ones(2 * replicas, dtype="float32")
    engine._prepare(model, x, y)
    dataset = engine.strategy.distribute_datasets_from_function(
        lambda context: tf.data.Dataset.from_tensor_slices((x, y)).batch(2))
    model.make_train_function()
    try:
        model.train_function(iter(dataset))
    except (ValueError, TypeError) as exc:
        return f"fails: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    return "works"


def main(out: str, mode: str, count: str = "") -> None:
    backends.prepare_environment("cpu")
    rank = None
    if mode == "processes":
        launcher.die_with_launcher()
        rank = rank_from_env()
        layout = Layout(processes=rank.world, scaling="strong")
    else:
        layout = Layout(devices=int(count), scaling="strong")
    engines: list = []

    def start(adapter: backends.Adapter) -> None:
        engines.append(engine_for(adapter, layout, rank, model_config=CONFIG, seed=SEED))
        engines[0].before_start(adapter)

    adapter = backends.configure("cpu", 1 if rank else 2, before_start=start)
    engine = engines[0]
    engine.after_start(adapter)
    x, y = batches()
    found = {"backend": adapter.name, layout_name(layout.mode, layout.replicas): compare(engine, x, y),
             "nan": first_nan(engine)}
    if engine.name == "tf.distribute.MultiWorkerMirroredStrategy":
        found["keras_train_function"] = keras_train_function_status(engine)
    engine.finish()
    if engine.rank == 0:
        Path(out).write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:])
