"""Run by test_model_same_start.py under one backend: seeded initial weights and the first training losses.

Usage: KERAS_BACKEND=<name> python tests/samestart_worker.py OUTPUT.npz

Writes the initial weights for seeds 0 and 1 (``w<seed>_<i>``, in ``model.weights`` order) and the
losses of the first ``STEPS`` ``train_on_batch`` steps from seed 0 on one fixed batch (``losses``).
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.data import synthetic
from model import build_model, initialize_weights

# Small, so that three processes (one per backend) stay within a few seconds each.
SMALL = dict(max_features=1000, maxlen=20, embed_dim=16, lstm_units=8, batch_size=16)
SEEDS = (0, 1)
STEPS = 3
SGD_LEARNING_RATE = 1.0  # large, so that three steps move the loss well beyond float32 rounding


def measure() -> dict[str, np.ndarray]:
    import keras

    keras.utils.set_random_seed(0)
    model = build_model(**SMALL)  # one model, re-initialized: building is the slow part
    arrays: dict[str, np.ndarray] = {}
    for seed in SEEDS:
        initialize_weights(model, seed)
        for i, weight in enumerate(model.get_weights()):
            arrays[f"w{seed}_{i}"] = weight
    data = synthetic(SMALL["batch_size"], 1, max_features=SMALL["max_features"], maxlen=SMALL["maxlen"], seed=7)
    x, y = data.x_train, data.y_train.astype("float32")
    initialize_weights(model, 0)
    arrays["losses"] = np.array([float(model.train_on_batch(x, y, return_dict=True)["loss"]) for _ in range(STEPS)])
    # The same start with plain SGD, whose step is linear in the gradient: no optimizer state to differ in.
    model.compile(optimizer=keras.optimizers.SGD(SGD_LEARNING_RATE), loss="binary_crossentropy")
    initialize_weights(model, 0)
    arrays["losses_sgd"] = np.array([float(model.train_on_batch(x, y, return_dict=True)["loss"])
                                     for _ in range(STEPS)])
    return arrays


def main(output: str) -> None:
    np.savez(output, **measure())


if __name__ == "__main__":
    main(sys.argv[1])
