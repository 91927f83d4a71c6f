"""Batch-1 serving latency: one review per query through the compiled predict function, tail included.

A query count that makes the p99 mean something: as MLPerf's inference rules do, it is sized from
the percentile and the confidence wanted (``bench.stats.queries_for_percentile``): enough queries
for the order-statistic 95% interval of the profile's percentile to lie within ± its margin
(quick: p99 within p98.5 .. p99.5, 1,600 queries). The sizing and the p99's interval are recorded; the
interval allows for correlated queries (``bench.stats.tail_interval``), so it can be wider than the margin;
the queries' lag-1 autocorrelation is recorded with it, and where it is past the one the interval's 95% was
checked at, the record labels the interval as below 95%.
"""

import dataclasses

import pytest

from bench import stats, timing
from bench.results import Serving


def test_serve_batch1(benchmark, target, model, imdb, settings, record):
    p = settings.profile
    if not p.step_benchmarks or p.sweep:
        pytest.skip(f"the {p.name} profile does not time serving (the sweep times batch 1 as one of its points)")
    sizing = stats.queries_for_percentile(p.serve_percentile, p.serve_margin)
    shape = (1, settings.model.maxlen)
    # The harness-vs-plain check needs no thousands of queries: a loop as long as the other benchmarks'.
    metrics = timing.bench_step(benchmark, lambda batches: timing.predict_step(model, batches), imdb.x_test,
                                imdb.y_test, shape, rounds=sizing.queries, warmup_rounds=p.warmup_rounds,
                                staged_batches=p.staged_batches, plain_rounds=min(sizing.queries, p.predict_rounds))
    times = benchmark.stats.stats.data
    low, high = stats.tail_interval(times, 0.99, sizing.confidence)  # None where too few queries (smoke)
    lag1 = stats.lag1_autocorrelation(times)
    serving = Serving(queries=sizing.queries, percentile=sizing.percentile, margin=sizing.margin,
                      confidence=sizing.confidence, sizing_method=sizing.method, p99_low_s=low, p99_high_s=high,
                      queries_lag1=lag1, p99_interval=stats.tail_interval_label(lag1, sizing.confidence))
    metrics = dataclasses.replace(metrics, serving=serving)
    record(benchmark, "serve_batch1", metrics, model=model, shape=shape)
