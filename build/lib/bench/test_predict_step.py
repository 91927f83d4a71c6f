"""Predict-step latency: one inference batch of the compiled function ``model.predict`` runs."""

from bench import timing


def test_predict_step(benchmark, target, shape, model, imdb, settings, record):
    p = settings.profile
    metrics = timing.bench_step(benchmark, lambda batches: timing.predict_step(model, batches), imdb.x_test,
                                imdb.y_test, shape, rounds=p.predict_rounds, warmup_rounds=p.warmup_rounds,
                                staged_batches=p.staged_batches, adaptive=settings.adaptive)
    record(benchmark, "predict_step", metrics, model=model, shape=shape)
