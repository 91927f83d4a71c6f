"""Data-parallel against single-device training: K steps of global batch B, the largest weight difference.

``python tests/parallel_worker.py OUT.json devices 2``: one process, N simulated CPU devices ("2,4": each N in
turn, where the engine allows several layouts in one process: JAX does; TensorFlow's collectives refuse a
second MirroredStrategy of another size, so run one N per process there).
``python tests/parallel_worker.py OUT.json processes``: run as each rank of ``bench.parallel.launch``.

Each layout trains the tiny model for STEPS data-parallel steps through the backend's engine
(bench/parallel.py, the benchmarks' own step) and the same model for STEPS single-device
``train_on_batch`` steps on the same global batches; rank 0 writes the largest absolute difference
of any weight, and with several processes how far the ranks' weights are apart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import backends, parallel  # noqa: E402
from model import DEFAULT_CONFIG, build_model, initialize_weights  # noqa: E402

CONFIG = DEFAULT_CONFIG.replace(max_features=100, embed_dim=8, lstm_units=4, maxlen=10)
GLOBAL_BATCH, STEPS, SEED = 8, 3, 7


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


def compare(engine: parallel.DataParallel, x: np.ndarray, y: np.ndarray) -> dict:
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


def main(out: str, mode: str, counts: str = "") -> None:
    backends.prepare_environment("cpu")
    x, y = batches()
    found: dict = {}
    if mode == "processes":
        parallel.die_with_launcher()
        rank = parallel.rank_from_env()
        layout = parallel.Layout(processes=rank.world, scaling="strong")
        engines: list = []

        def start(adapter: backends.Adapter) -> None:
            engines.append(parallel.engine_for(adapter, layout, rank, model_config=CONFIG, seed=SEED))
            engines[0].before_start(adapter)

        adapter = backends.configure("cpu", 1, before_start=start)
        engine = engines[0]
        engine.after_start(adapter)
        found[f"mp{rank.world}"] = compare(engine, x, y)
        probe = getattr(engine, "keras_train_function_status", None)
        if probe is not None:
            found["keras_train_function"] = probe()
        engine.finish()
        if rank.rank != 0:
            return
    else:
        counts_ = [int(n) for n in counts.split(",")]
        adapter = backends.configure("cpu", 2, before_start=lambda a: a.simulate_devices(max(counts_)))
        for n in counts_:
            engine = parallel.ENGINES[adapter.parallel_engine](parallel.Layout(devices=n, scaling="strong"),
                                                               model_config=CONFIG, seed=SEED)
            engine.after_start(adapter)
            found[f"dp{n}"] = compare(engine, x, y)
    found["backend"] = adapter.name
    Path(out).write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:])
