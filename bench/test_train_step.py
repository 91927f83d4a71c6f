"""Train-step latency: one optimizer step of the compiled function ``model.fit`` runs."""

from bench import timing


def test_train_step(benchmark, target, model, imdb, settings, record):
    batch_size, profile = settings.model.batch_size, settings.profile
    batches = timing.stage_batches(imdb.x_train, imdb.y_train, batch_size, profile.staged_batches)
    step = timing.train_step(model, batches)
    measured = timing.measure_step(benchmark, step, rounds=profile.train_rounds,
                                   warmup_rounds=profile.warmup_rounds, batch_size=batch_size)
    record(benchmark, model, staged_batches=len(batches), **measured)
