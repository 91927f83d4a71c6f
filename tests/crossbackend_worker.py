"""Run by test_model_cross_backend.py under another backend: load weights, predict, save the outputs.

Usage: KERAS_BACKEND=<name> python tests/crossbackend_worker.py WEIGHTS INPUTS OUTPUT
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model import build_model


def main(weights: str, inputs: str, output: str) -> None:
    model = build_model()
    model.load_weights(weights)
    x = np.load(inputs)["x"]
    np.save(output, model.predict_on_batch(x))


if __name__ == "__main__":
    main(*sys.argv[1:4])
