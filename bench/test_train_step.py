"""Train-step latency: one optimizer step of the compiled function ``model.fit`` runs."""

import dataclasses

from bench import backends, phases, timing


def test_train_step(benchmark, target, shape, model, imdb, settings, record, layout):
    p = settings.profile
    if layout.distributed:  # --devices / --processes: the backend's data-parallel engine (bench/distributed/)
        metrics = layout.bench_train_step(benchmark, model, imdb.x_train, imdb.y_train, shape, rounds=p.train_rounds,
                                          warmup_rounds=p.warmup_rounds, staged_batches=p.staged_batches,
                                          adaptive=settings.adaptive)
        record(benchmark, "train_step", metrics, model=model, shape=shape, **layout.context(shape[0]))
        return
    metrics = timing.bench_step(benchmark, lambda batches: timing.train_step(model, batches), imdb.x_train,
                                imdb.y_train, shape, rounds=p.train_rounds, warmup_rounds=p.warmup_rounds,
                                staged_batches=p.staged_batches, adaptive=settings.adaptive)
    if settings.explain:  # after the timed rounds: where the step's time goes
        metrics = dataclasses.replace(metrics, phases=phases.explain(
            lambda batches: timing.train_step(model, batches),
            lambda x, y: backends.current().phase_steps(model, x, y), imdb.x_train, imdb.y_train, shape,
            rounds=p.train_rounds, measured_median_s=benchmark.stats.stats.median))
    record(benchmark, "train_step", metrics, model=model, shape=shape)
