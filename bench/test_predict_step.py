"""Predict-step latency: one inference batch of the compiled function ``model.predict`` runs."""

from bench import timing


def test_predict_step(benchmark, target, shape, model, imdb, settings, record):
    batch_size, maxlen = shape
    profile = settings.profile
    batches = timing.stage_batches(imdb.x_test[:, -maxlen:], imdb.y_test, batch_size, profile.staged_batches)
    step = timing.predict_step(model, batches)
    measured = timing.measure_step(benchmark, step, rounds=profile.predict_rounds,
                                   warmup_rounds=profile.warmup_rounds, batch_size=batch_size)
    record(benchmark, model, batch_size=batch_size, maxlen=maxlen, staged_batches=len(batches), **measured)
