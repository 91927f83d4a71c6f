"""Native references: the same model and step written directly in PyTorch or JAX, timed like Keras's steps.

Keras's median over these medians (same backend, device, batch and data) is the cost of Keras's
abstraction on that backend. See bench/native/__init__.py for what "the same" covers.
"""

import dataclasses

import pytest

from bench import native, phases, timing

pytestmark = pytest.mark.skipif(not native.is_supported(), reason=str(native.why_unsupported()))


def record_native(record, benchmark, kind, metrics, model, shape):
    # The native step's kernel and jit replace what the Keras model would have reported.
    described = native.describe()
    metrics = dataclasses.replace(metrics, implementation=described["implementation"],
                                  native_kernel=described["native_kernel"])
    record(benchmark, kind, metrics, model=model, shape=shape, lstm_kernel=described["lstm_kernel"],
           jit_compile=described["jit_compile"])


def test_native_train_step(benchmark, target, shape, model, imdb, settings, record):
    p = settings.profile
    metrics = timing.bench_step(benchmark, lambda batches: native.native_train_step(model, batches), imdb.x_train,
                                imdb.y_train, shape, rounds=p.train_rounds, warmup_rounds=p.warmup_rounds,
                                staged_batches=p.staged_batches, adaptive=settings.adaptive)
    if settings.explain:  # after the timed rounds: where the native step's time goes
        reference = native.build_native(model)
        metrics = dataclasses.replace(metrics, phases=phases.explain(
            lambda batches: timing.train_step(reference, [reference.stage(x, y) for x, y in batches]),
            lambda x, y: reference.phase_steps(x, y), imdb.x_train, imdb.y_train, shape,
            rounds=p.train_rounds, measured_median_s=benchmark.stats.stats.median))
    record_native(record, benchmark, "native_train_step", metrics, model, shape)


def test_native_predict_step(benchmark, target, shape, model, imdb, settings, record):
    p = settings.profile
    metrics = timing.bench_step(benchmark, lambda batches: native.native_predict_step(model, batches), imdb.x_test,
                                imdb.y_test, shape, rounds=p.predict_rounds, warmup_rounds=p.warmup_rounds,
                                staged_batches=p.staged_batches, adaptive=settings.adaptive)
    record_native(record, benchmark, "native_predict_step", metrics, model, shape)
