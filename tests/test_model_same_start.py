"""The same start, proven: seeded initial weights are the same arrays on every backend, and the first
training steps from them give the same loss.

Each other installed backend runs tests/samestart_worker.py in its own process (Keras fixes its
backend at import); this process's backend runs the same function in-process, so one run covers all
three (`make test` runs it once, under JAX; the pair of the other two is compared through it). Small model
(embed_dim 16, lstm_units 8, maxlen 20, 1,000 words), one fixed batch of 16 reviews, 3
``train_on_batch`` steps.

Measured on this project's CPU machine (Keras 3.15.1, TF 2.21.0, JAX 0.10.2, torch 2.13.0):

* initial weights: bit-identical on all three backends, for seeds 0 and 1;
* first step (a forward pass from those weights): |loss difference| <= 6e-8 for every pair;
* plain SGD (learning rate 1.0), 3 steps: <= 6e-8 for every pair, so the gradients agree;
* Adam (the model's own optimizer), 3 steps: JAX and PyTorch agree to 6e-8; TensorFlow differs
  from both by 4.7e-4 at step 2 and 9.4e-4 at step 3. The cause, observed: the embedding gradient
  is a ``tf.IndexedSlices`` on TensorFlow, and Keras's Adam squares it slice by slice
  (``ops.square`` is elementwise on the slices), so a word that occurs k times in a batch adds
  the sum of its k squared gradients to Adam's second moment instead of the square of their sum;
  its first step is then up to sqrt(k) times larger than on JAX and PyTorch (measured here: 36 of
  the 93 embedding rows the batch touches moved differently, by up to 3.2e-3 against 1.0e-3). The
  TensorFlow pairs are therefore expected to fail the 1e-4 tolerance (strict xfail: should Keras
  change this, the test says so).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.backends import BACKENDS, selected_backend
from tests import samestart_worker

WORKER = Path(__file__).with_name("samestart_worker.py")
OTHERS = [b for b in BACKENDS if b != selected_backend() and importlib.util.find_spec(b)]
FIRST_STEP_TOLERANCE = 1e-6  # measured <= 6e-8: float32 rounding through 2 x 20 LSTM steps
STEPS_TOLERANCE = 1e-4  # 3 optimizer steps; measured <= 6e-8 where the backends agree
TIMEOUT_S = 240
TF_ADAM = "Keras's Adam on TensorFlow squares the embedding's IndexedSlices gradient per slice (see module doc)"


@pytest.fixture(scope="module")
def starts(tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    """What each backend measured; the other backends' processes run at the same time."""
    folder = tmp_path_factory.mktemp("same_start")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}
    procs = {other: subprocess.Popen([sys.executable, str(WORKER), str(folder / f"{other}.npz")],
                                     env={**env, "KERAS_BACKEND": other}, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
             for other in OTHERS}
    try:
        measured = {selected_backend(): samestart_worker.measure()}
        for other, proc in procs.items():
            output, _ = proc.communicate(timeout=TIMEOUT_S)
            assert proc.returncode == 0, f"{other} worker failed:\n{output[-3000:]}"
            with np.load(folder / f"{other}.npz") as data:
                measured[other] = {key: data[key] for key in data.files}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return measured


def weights(arrays: dict[str, np.ndarray], seed: int) -> list[np.ndarray]:
    count = sum(key.startswith(f"w{seed}_") for key in arrays)
    return [arrays[f"w{seed}_{i}"] for i in range(count)]


def test_seeds_draw_different_weights(starts):
    ours = starts[selected_backend()]
    first, second = weights(ours, 0), weights(ours, 1)
    assert len(first) == len(second) > 10
    assert not np.array_equal(first[0], second[0])  # the embeddings: another seed is another start


@pytest.mark.parametrize("other", OTHERS)
@pytest.mark.parametrize("seed", samestart_worker.SEEDS)
def test_seeded_initial_weights_are_the_same_arrays(starts, other, seed):
    ours, theirs = weights(starts[selected_backend()], seed), weights(starts[other], seed)
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.shape == b.shape and a.dtype == b.dtype, i
        assert np.array_equal(a, b), f"weight {i} differs: max {np.abs(a - b).max():.2e}"


@pytest.mark.parametrize("other", OTHERS)
def test_first_step_gives_the_same_loss(starts, other):
    ours, theirs = starts[selected_backend()]["losses"][0], starts[other]["losses"][0]
    assert abs(ours - theirs) < FIRST_STEP_TOLERANCE


@pytest.mark.parametrize("other", OTHERS)
def test_first_sgd_steps_give_the_same_loss(starts, other):
    difference = np.abs(starts[selected_backend()]["losses_sgd"] - starts[other]["losses_sgd"])
    assert difference.max() < STEPS_TOLERANCE, difference


def _adam_pair(other: str) -> object:
    if "tensorflow" in (selected_backend(), other):
        return pytest.param(other, marks=pytest.mark.xfail(strict=True, reason=TF_ADAM))
    return other


@pytest.mark.parametrize("other", [_adam_pair(other) for other in OTHERS])
def test_first_adam_steps_give_the_same_loss(starts, other):
    difference = np.abs(starts[selected_backend()]["losses"] - starts[other]["losses"])
    print(f"|{selected_backend()} - {other}| per step: {difference}")
    assert difference.max() < STEPS_TOLERANCE, difference
