"""Predict-step latency: one inference batch of the compiled function ``model.predict`` runs."""

from bench import timing


def test_predict_step(benchmark, target, model, imdb, settings, record):
    batch_size = settings.model.batch_size
    batches = timing.stage_batches(imdb.x_test, imdb.y_test, batch_size, settings.profile.staged_batches)
    step = timing.predict_step(model, batches)
    first_step_s = timing.time_call(step)
    benchmark.pedantic(step, rounds=settings.profile.predict_rounds, warmup_rounds=settings.profile.warmup_rounds)
    median = benchmark.stats.stats.median
    record(benchmark, model, first_step_s=first_step_s, samples_per_s=batch_size / median,
           staged_batches=len(batches))
