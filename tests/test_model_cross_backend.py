"""Same weights, same input: every backend must give the same predictions.

This is what makes results comparable: the weights saved under the backend of this process are
loaded under each other installed backend (a subprocess each: Keras fixes its backend at import). One
run covers every backend, so `make test` runs it once (under JAX).
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.backends import BACKENDS, selected_backend
from bench.data import synthetic
from model import build_model, initialize_weights

WORKER = Path(__file__).with_name("crossbackend_worker.py")
TOLERANCE = 1e-5  # max abs difference of sigmoid outputs, float32 through 400 LSTM steps
OTHERS = [b for b in BACKENDS if b != selected_backend() and importlib.util.find_spec(b)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cross")
    model = build_model()
    initialize_weights(model, 3)
    # Spread the weights out so predictions are far from 0.5 and differ between reviews.
    rng = np.random.default_rng(4)
    model.set_weights([w + rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in model.get_weights()])
    x = synthetic(1, 64, seed=5).x_test
    np.savez(folder / "x.npz", x=x)
    model.save_weights(folder / "model.weights.h5")
    return folder, model.predict_on_batch(x)


def test_predictions_are_informative(saved):
    _, ours = saved
    assert ours.shape == (64, 1) and float(ours.std()) > 0.01


@pytest.mark.parametrize("other", OTHERS)
def test_other_backend_predicts_the_same(saved, other):
    folder, ours = saved
    out = folder / f"{other}.npy"
    env = {**os.environ, "KERAS_BACKEND": other, "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}
    subprocess.run(
        [sys.executable, str(WORKER), str(folder / "model.weights.h5"), str(folder / "x.npz"), str(out)],
        env=env, check=True, capture_output=True, timeout=300,
    )
    theirs = np.load(out)
    diff = float(np.abs(theirs - ours).max())
    print(f"max |{selected_backend()} - {other}| = {diff:.2e}")
    assert diff < TOLERANCE
