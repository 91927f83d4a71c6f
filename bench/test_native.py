"""Native references: the same model and step written directly in PyTorch or JAX, timed like Keras's steps.

Keras's median over these medians (same backend, device, batch and data) is the cost of Keras's
abstraction on that backend. See bench/native.py for what "the same" covers.
"""

import pytest

from bench import native, timing

pytestmark = pytest.mark.skipif(not native.is_supported(), reason=native.UNSUPPORTED_REASON)


def test_native_train_step(benchmark, target, shape, model, imdb, settings, record):
    batch_size, maxlen = shape
    profile = settings.profile
    batches = timing.stage_batches(imdb.x_train[:, -maxlen:], imdb.y_train, batch_size, profile.staged_batches)
    step = native.native_train_step(model, batches)
    measured = timing.measure_step(benchmark, step, rounds=profile.train_rounds,
                                   warmup_rounds=profile.warmup_rounds, batch_size=batch_size)
    record(benchmark, model, batch_size=batch_size, maxlen=maxlen, staged_batches=len(batches), **measured,
           **native.describe())


def test_native_predict_step(benchmark, target, shape, model, imdb, settings, record):
    batch_size, maxlen = shape
    profile = settings.profile
    batches = timing.stage_batches(imdb.x_test[:, -maxlen:], imdb.y_test, batch_size, profile.staged_batches)
    step = native.native_predict_step(model, batches)
    measured = timing.measure_step(benchmark, step, rounds=profile.predict_rounds,
                                   warmup_rounds=profile.warmup_rounds, batch_size=batch_size)
    record(benchmark, model, batch_size=batch_size, maxlen=maxlen, staged_batches=len(batches), **measured,
           **native.describe())
