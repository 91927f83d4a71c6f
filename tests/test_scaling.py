"""The sweep report: scaling tables, growth per 100 timesteps, throughput saturation, plots."""

import pytest

from bench import plots, report, results, scaling
from tests.resultfiles import make_result, write_result


def sweep_rows(tmp_path, backend="jax", per_sample_ms=1.0, overhead_ms=10.0, per_step_ms=0.2, roofline=False):
    """A synthetic sweep: latency = overhead + batch * per-sample cost, plus a per-timestep cost."""
    for i, batch in enumerate((1, 8, 32, 128, 512)):
        seconds = (overhead_ms + per_sample_ms * batch) / 1e3
        write_result(tmp_path, make_result(backend, profile="sweep", batch_size=batch, maxlen=200,
                                           train=(seconds, 0.0), predict=(seconds / 3, 0.0),
                                           kinds=("train_step", "predict_step"), roofline=roofline),
                     name=f"{backend}-b{i}.json")
    for i, n in enumerate((50, 100, 400)):
        seconds = (overhead_ms + per_sample_ms * 32 + per_step_ms * (n - 200)) / 1e3
        write_result(tmp_path, make_result(backend, profile="sweep", batch_size=32, maxlen=n,
                                           train=(seconds, 0.0), predict=(seconds / 3, 0.0),
                                           kinds=("train_step", "predict_step")), name=f"{backend}-n{i}.json")
    runs, warnings = results.load([tmp_path])
    assert not warnings
    return results.results_of(runs)


def test_sweep_points_are_the_results_of_a_sweep_profile(tmp_path):
    write_result(tmp_path, make_result("jax", kinds=("train_step",)), name="quick.json")
    rows = sweep_rows(tmp_path)
    assert [r.context.profile for r in rows if not scaling.is_sweep(r)] == ["quick"]
    assert all(r.context.profile == "sweep" for r in rows if scaling.is_sweep(r))


def test_growth_per_100_timesteps_is_the_fitted_slope(tmp_path):
    rows = sweep_rows(tmp_path, per_step_ms=0.2)
    series = scaling.series(rows, "train_step", "maxlen")
    assert sorted(series["jax"]) == [50, 100, 200, 400]
    assert scaling.ms_per_100_steps(series["jax"]) == pytest.approx(20.0)


def test_saturation_is_where_throughput_stops_growing(tmp_path):
    # Overhead 10 ms + 1 ms per sample: samples/s grows fast until the per-sample cost dominates.
    rows = sweep_rows(tmp_path, per_sample_ms=1.0, overhead_ms=10.0)
    series = scaling.series(rows, "train_step", "batch_size")
    assert scaling.saturation_batch(series["jax"]) == "128"  # 128 -> 512 adds under 10%


def test_markdown_has_both_tables_and_no_ordinary_groups(tmp_path):
    rows = sweep_rows(tmp_path)
    text = report.render_markdown(rows)
    assert "## Scaling: train step" in text and "by batch size" in text and "by sequence length" in text
    assert "batch 512" in text and "maxlen 400" in text and "sweep profile ·" not in text


def test_scaling_plots_are_written(tmp_path):
    rows = sweep_rows(tmp_path / "results")
    paths = plots.plot(rows, tmp_path / "plots")
    names = sorted(p.name for p in paths)
    assert names == ["scaling_batch_size.png", "scaling_maxlen.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_the_sweep_says_how_gflops_and_the_binding_bound_move_with_batch_size(tmp_path):
    text = "\n".join(scaling.render(sweep_rows(tmp_path, roofline=True)))
    # 5 GFLOP per step (tests/resultfiles.roofline_of) in 11 ms at batch 1 and 522 ms at batch 512; its 10 ms
    # compute bound over those medians.
    assert "GFLOP/s (binding bound, share of it reached) by batch size:" in text
    assert "| jax | 454.5 (compute, 0.91) |" in text and "9.6 (compute, 0.02) |" in text
    assert "GFLOP/s (binding" not in "\n".join(scaling.render(sweep_rows(tmp_path / "plain")))
