"""Train-step latency: one optimizer step of the compiled function ``model.fit`` runs."""

from bench import timing


def test_train_step(benchmark, target, model, imdb, settings, record):
    batch_size = settings.model.batch_size
    batches = timing.stage_batches(imdb.x_train, imdb.y_train, batch_size, settings.profile.staged_batches)
    step = timing.train_step(model, batches)
    first_step_s = timing.time_call(step)  # trace/compile: recorded apart, never in the statistics
    benchmark.pedantic(step, rounds=settings.profile.train_rounds, warmup_rounds=settings.profile.warmup_rounds)
    median = benchmark.stats.stats.median
    record(benchmark, model, first_step_s=first_step_s, samples_per_s=batch_size / median,
           staged_batches=len(batches))
