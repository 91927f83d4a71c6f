"""Predict-step latency: one inference batch of the compiled function ``model.predict`` runs."""

from bench import timing


def test_predict_step(benchmark, target, model, imdb, settings, record):
    batch_size, profile = settings.model.batch_size, settings.profile
    batches = timing.stage_batches(imdb.x_test, imdb.y_test, batch_size, profile.staged_batches)
    step = timing.predict_step(model, batches)
    measured = timing.measure_step(benchmark, step, rounds=profile.predict_rounds,
                                   warmup_rounds=profile.warmup_rounds, batch_size=batch_size)
    record(benchmark, model, staged_batches=len(batches), **measured)
