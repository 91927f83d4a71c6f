"""bench.plots: every PNG from the report model, one colour and one place per backend in every panel."""

import pytest
from matplotlib.colors import to_hex

from bench import plots, report, results
from tests.resultfiles import make_result, write_result
from tests.test_scaling import sweep_rows


def load_rows(*paths):
    runs, _ = results.load(paths)
    return results.results_of(runs)


def test_plots_are_written(tmp_path):
    history = [{"epoch": e, "seconds": 5.0, "val_accuracy": 0.6 + 0.1 * e} for e in (1, 2)]
    write_result(tmp_path, make_result("jax", history=history, accuracy=0.8))
    write_result(tmp_path, make_result("torch", train=(0.2, 0.03), history=history[:1], accuracy=0.7))
    rows = load_rows(tmp_path)
    written = plots.plot(report.build(rows), tmp_path / "plots")
    assert sorted(p.name.split("_")[0] for p in written) == ["accuracy", "latency"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(plots.plot(rows, tmp_path / "again")) != []  # results are built into a model first


def test_backend_colours_and_order_are_fixed():
    known = [plots.backend_colour(b) for b in ("tensorflow", "jax", "torch")]
    assert len(set(known)) == 3
    assert plots.backend_colour("mxnet") == plots.backend_colour("mxnet") not in known  # stable, never a known one
    assert sorted(["torch", "mxnet", "jax", "tensorflow", "caffe"], key=plots.backend_order) == [
        "tensorflow", "jax", "torch", "caffe", "mxnet"]


@pytest.fixture
def figures(monkeypatch):
    """The figures plot() draws, by file name, kept open instead of saved."""
    drawn = {}

    def keep(plt_, fig, path):
        drawn[path.name] = fig
        return path

    monkeypatch.setattr(plots, "_save", keep)
    yield drawn
    import matplotlib.pyplot as plt  # plot() chose the Agg backend

    for fig in drawn.values():
        plt.close(fig)


def test_each_backend_keeps_its_colour_and_place_across_panels(tmp_path, figures):
    # Fastest train step: jax; fastest predict: torch. Bars still stand in one order, coloured by backend.
    for backend, train, predict, final in (("torch", 0.231, 0.010, 0.70), ("jax", 0.100, 0.030, 0.80),
                                           ("tensorflow", 0.150, 0.020, 0.75)):
        history = [{"epoch": e, "seconds": 5.0, "val_accuracy": final - 0.1 * (2 - e)} for e in (1, 2)]
        write_result(tmp_path, make_result(backend, train=(train, 0.002), predict=(predict, 0.001), history=history,
                                           accuracy=final))
    sweep_rows(tmp_path / "sweep", "torch")
    sweep_rows(tmp_path / "sweep", "jax", per_sample_ms=2.0)
    plots.plot(report.build(load_rows(tmp_path, tmp_path / "sweep")), tmp_path / "plots")
    order = ["tensorflow", "jax", "torch"]
    colour = {b: plots.backend_colour(b).lower() for b in order}

    [latency] = [fig for name, fig in figures.items() if name.startswith("latency_")]
    for ax in latency.axes:  # train and predict
        assert [t.get_text() for t in ax.get_xticklabels()] == order
        assert [to_hex(bar.get_facecolor()) for bar in ax.patches] == [colour[b] for b in order]
    [accuracy] = [fig for name, fig in figures.items() if name.startswith("accuracy_")]
    drawn = [(line.get_label(), to_hex(line.get_color())) for line in accuracy.axes[0].get_lines()
             if not line.get_label().startswith(("target", "_"))]
    assert drawn == [(b, colour[b]) for b in order]
    for name in ("scaling_batch_size.png", "scaling_maxlen.png"):
        for ax in figures[name].axes:
            assert [(line.get_label(), to_hex(line.get_color())) for line in ax.get_lines()] == [
                ("jax", colour["jax"]), ("torch", colour["torch"])]


def test_a_roofline_is_drawn_where_the_records_have_one(tmp_path):
    write_result(tmp_path, make_result("jax", kinds=("train_step", "predict_step"), roofline=True))
    write_result(tmp_path, make_result("torch", kinds=("train_step",), train=(0.5, 0.01), roofline=True))
    written = plots.plot(load_rows(tmp_path), tmp_path / "plots")
    assert sorted(p.name.split("_")[0] for p in written) == ["latency", "roofline"]
    plain = tmp_path / "plain"
    plain.mkdir()
    write_result(plain, make_result("jax", kinds=("train_step",)))
    assert [p.name.split("_")[0] for p in plots.plot(load_rows(plain), tmp_path / "none")] == ["latency"]
