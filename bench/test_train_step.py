"""Train-step latency: one optimizer step of the compiled function ``model.fit`` runs."""

from bench import timing


def test_train_step(benchmark, target, shape, model, imdb, settings, record):
    p = settings.profile
    metrics = timing.bench_step(benchmark, lambda batches: timing.train_step(model, batches), imdb.x_train,
                                imdb.y_train, shape, rounds=p.train_rounds, warmup_rounds=p.warmup_rounds,
                                staged_batches=p.staged_batches)
    record(benchmark, "train_step", metrics, model=model, shape=shape)
