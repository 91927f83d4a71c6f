"""Train-step latency: one optimizer step of the compiled function ``model.fit`` runs."""

from bench import timing


def test_train_step(benchmark, target, shape, model, imdb, settings, record):
    batch_size, maxlen = shape
    profile = settings.profile
    batches = timing.stage_batches(imdb.x_train[:, -maxlen:], imdb.y_train, batch_size, profile.staged_batches)
    step = timing.train_step(model, batches)
    measured = timing.measure_step(benchmark, step, rounds=profile.train_rounds,
                                   warmup_rounds=profile.warmup_rounds, batch_size=batch_size)
    record(benchmark, model, batch_size=batch_size, maxlen=maxlen, staged_batches=len(batches), **measured)
