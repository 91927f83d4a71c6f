"""Accuracy: train for the profile's epochs; each timed round is one epoch (train + validation).

Runs once per seed of --seeds (the plugin parametrizes ``seed``): the seed draws the initial
weights and the batch order, the same way on every backend.
"""

import math

import pytest

from bench import contention, training
from bench.results import AccuracyMetrics


def test_accuracy(benchmark, target, seed, model, imdb, settings, record, progress, layout):
    if not settings.profile.accuracy:
        pytest.skip("the sweep profile measures step latency only")
    epochs: list[training.EpochRecord] = []
    failure: training.NonFiniteLoss | None = None

    def one_epoch() -> None:
        nonlocal failure
        if failure is None:
            try:
                epoch = len(epochs) + 1
                epochs.append(training.fit_epoch(model, imdb, epoch, settings.model.batch_size, seed, progress,
                                                  engine=layout))
            except training.NonFiniteLoss as exc:
                failure = exc

    watch = contention.Watch()
    benchmark.pedantic(one_epoch, rounds=settings.model.epochs, warmup_rounds=0)
    busy = watch.stop()
    target_acc = settings.profile.target_accuracy
    batch = layout.global_batch(settings.model.batch_size)  # --batch-size, or N times it (weak scaling)
    metrics = AccuracyMetrics(
        status="ok" if failure is None else f"failed: {failure}",
        history=[e.as_dict() for e in epochs],
        final_val_accuracy=epochs[-1].val_accuracy if epochs else None,
        target_accuracy=target_acc,
        time_to_accuracy_s=training.time_to_accuracy(epochs, target_acc),
        train_samples_used=len(imdb.y_train) // batch * batch,
        val_samples_used=len(imdb.y_test) // batch * batch,
        first_epoch_s=epochs[0].seconds if epochs else None,
        contention=busy,
    )
    record(benchmark, "accuracy", metrics, model=model, **layout.context(settings.model.batch_size))
    if failure is not None:
        pytest.fail(str(failure), pytrace=False)
    assert all(math.isfinite(e.val_loss) for e in epochs), "validation loss is not finite"
