"""bench.report: loading result files leniently, grouping like with like, one model rendered to md, csv, json and
the terminal, the CLI."""

import csv
import io
import json
import re
import sys

import pytest

from bench import parity, plots, report, results, runner, selection, tables
from bench.__main__ import main
from tests.conftest import run_cli
from tests.resultfiles import layout_document, make_result, write_result


def load_rows(*paths):
    runs, warnings = results.load(paths)
    return results.results_of(runs), warnings


def test_sample_shaped_file_flattens_to_one_row_per_benchmark(tmp_path):
    path = write_result(tmp_path, make_result("jax", train=(0.135, 0.018), predict=(0.028, 0.002), accuracy=0.49))
    rows, warnings = load_rows(path)
    assert warnings == []
    by_kind = {r.kind: r for r in rows}
    assert set(by_kind) == {"train_step", "predict_step", "accuracy"}
    train = by_kind["train_step"]
    assert train.median_ms == pytest.approx(135) and train.ms("iqr") == pytest.approx(18)  # seconds -> ms
    c = train.context
    assert (c.backend, c.device, c.profile, c.dataset["source"]) == ("jax", "cpu", "quick", "synthetic")
    assert (c.batch_size, c.maxlen, c.keras, c.backend_version) == (32, 200, "3.15.1", "1.0.0")
    assert train.step.samples_per_s == pytest.approx(32 / 0.135) and train.step.first_step_s == 1.5
    accuracy = by_kind["accuracy"].accuracy
    assert accuracy.final_val_accuracy == 0.49 and accuracy.history[0]["epoch"] == 1


def test_mixed_profiles_and_devices_are_reported_apart(tmp_path):
    write_result(tmp_path, make_result("jax", profile="quick"))
    write_result(tmp_path, make_result("torch", profile="quick"))
    write_result(tmp_path, make_result("jax", profile="smoke"))
    write_result(tmp_path, make_result("jax", device="gpu", device_name="NVIDIA H200"))
    write_result(tmp_path, make_result("tensorflow", batch_size=64))
    rows, _ = load_rows(tmp_path)
    summaries = dict(report.summarize(rows))
    assert len(summaries) == 4
    quick_cpu = report.GroupKey("quick", "synthetic", 32, 200, "cpu")
    assert sorted(s.backend for s in summaries[quick_cpu]) == ["jax", "torch"]
    text = report.render_markdown(rows)
    assert text.count("\n## ") == 4
    assert "## smoke profile · synthetic data · batch 32 · maxlen 200 · cpu" in text
    assert "## quick profile · synthetic data · batch 64 · maxlen 200 · cpu" in text
    assert "· gpu" in text


def test_speed_vs_fastest(tmp_path):
    write_result(tmp_path, make_result("jax", train=(0.100, 0.002)))
    write_result(tmp_path, make_result("torch", train=(0.231, 0.002)))
    write_result(tmp_path, make_result("tensorflow", train=(0.150, 0.002)))
    rows, _ = load_rows(tmp_path)
    [(_, lines)] = report.summarize(rows)
    assert [line.backend for line in lines] == ["jax", "tensorflow", "torch"]  # fastest first
    assert [tables.speed_text(line.speed_ratio) for line in lines] == ["1.00x", "1.50x slower", "2.31x slower"]
    text = report.render_markdown(rows)
    assert "| 1.00x |" in text and "| 2.31x slower |" in text


def test_bad_files_are_skipped_with_a_warning_naming_them(tmp_path):
    good = write_result(tmp_path, make_result("jax"))
    full = json.dumps(make_result("torch"))
    (tmp_path / "truncated.json").write_text(full[: len(full) // 2])
    (tmp_path / "malformed.json").write_text("this is not json")
    (tmp_path / "unreadable.json").write_bytes(b"\xff\xfe\x00\x81 binary")
    (tmp_path / "foreign.json").write_text(json.dumps({"hello": "world"}))
    plain = make_result("torch")
    del plain["kerasbench"]
    (tmp_path / "plain-pytest-benchmark.json").write_text(json.dumps(plain))
    old = make_result("torch")
    old["kerasbench"]["schema_version"] = 0
    (tmp_path / "old-schema.json").write_text(json.dumps(old))

    runs, warnings = results.load([tmp_path, tmp_path / "missing.json"])
    assert [run.path for run in runs] == [good]
    for name in ("truncated", "malformed", "unreadable", "foreign", "plain-pytest-benchmark", "old-schema",
                 "missing"):
        assert sum(f"{name}.json" in w for w in warnings) == 1, (name, warnings)
    assert any("truncated.json: skipped, not valid JSON" in w for w in warnings)
    assert any("old-schema.json: skipped, schema_version 0" in w for w in warnings)
    text = report.render_markdown(results.results_of(runs), warnings)
    assert "jax 1.0.0" in text and "## Skipped files" in text and "old-schema.json" in text


def test_folder_is_not_recursive_and_files_are_not_read_twice(tmp_path):
    top = write_result(tmp_path, make_result("jax"))
    write_result(tmp_path / "baseline", make_result("torch"))
    runs, warnings = results.load([tmp_path, top])
    assert [run.path for run in runs] == [top] and warnings == []


def test_newest_run_per_line_is_shown_and_the_rest_counted(tmp_path):
    write_result(tmp_path, make_result("jax", train=(0.300, 0.01), started="2026-11-28T08:00:00+00:00"))
    write_result(tmp_path, make_result("jax", train=(0.100, 0.01), started="2026-11-29T08:00:00+00:00"))
    rows, _ = load_rows(tmp_path)
    [(_, lines)] = report.summarize(rows)
    assert len(lines) == 1 and lines[0].train_median_ms == pytest.approx(100)
    text = report.render_markdown(rows)
    assert "1 older result file(s) not shown" in text
    assert len(list(csv.DictReader(io.StringIO(report.render_csv(rows))))) == 6  # CSV keeps every run


def test_different_keras_versions_get_their_own_lines(tmp_path):
    write_result(tmp_path, make_result("jax", keras="3.15.1"))
    write_result(tmp_path, make_result("jax", keras="3.16.0", started="2026-11-29T09:00:00+00:00"))
    rows, _ = load_rows(tmp_path)
    [(_, lines)] = report.summarize(rows)
    assert sorted(line.keras for line in lines) == ["3.15.1", "3.16.0"]


def test_lines_on_different_package_sets_say_what_differs(tmp_path):
    base = ["keras==3.15.1", "jax==0.10.2", "numpy==2.4.6"]
    write_result(tmp_path, make_result("jax", keras="3.15.1", packages=base))
    write_result(tmp_path, make_result("torch", keras="3.15.1", packages=base))  # same venv: nothing to say
    write_result(tmp_path, make_result("jax", keras="3.12.0", packages=[*base[1:], "keras==3.12.0"],
                                       started="2026-11-29T09:00:00+00:00", train=(0.2, 0.001)))
    rows, _ = load_rows(tmp_path)
    [group] = report.build(rows).groups
    assert group.package_differences() == ["jax 1.0.0 (Keras 3.12.0) against jax 1.0.0 (Keras 3.15.1): "
                                           "keras 3.15.1 → 3.12.0"]
    assert "Package sets differ between lines: jax 1.0.0 (Keras 3.12.0) against" in report.render_markdown(rows)
    write_result(tmp_path / "old", make_result("jax"))  # files from before package sets: no note
    [group] = report.build(load_rows(tmp_path / "old")[0]).groups
    assert group.package_differences() == []


def test_unfinished_run_is_marked_incomplete(tmp_path):
    write_result(tmp_path, make_result("torch", finished=False, kinds=("train_step",)))
    rows, _ = load_rows(tmp_path)
    text = report.render_markdown(rows)
    assert "torch 1.0.0 (incomplete)" in text


def test_failed_training_and_unreached_target_are_shown(tmp_path):
    write_result(tmp_path, make_result("jax", accuracy=0.5))
    write_result(tmp_path, make_result("torch", accuracy=None, status="failed: loss is nan at epoch 1"))
    rows, _ = load_rows(tmp_path)
    text = report.render_markdown(rows)
    assert "| not reached |" in text and "| failed |" in text


def test_csv_parses_back(tmp_path):
    write_result(tmp_path, make_result("jax"))
    write_result(tmp_path, make_result("torch", train=(0.2, 0.01)))
    rows, _ = load_rows(tmp_path)
    parsed = list(csv.DictReader(io.StringIO(report.render(rows, "csv"))))
    assert len(parsed) == 6 and set(parsed[0]) == set(report.CSV_FIELDS)
    torch_train = next(p for p in parsed if p["name"] == "test_train_step[torch-cpu]")
    assert float(torch_train["median_ms"]) == pytest.approx(200) and torch_train["finished"] == "True"
    assert next(p for p in parsed if p["kind"] == "accuracy")["first_step_s"] == ""  # None -> empty cell


def test_json_parses_back(tmp_path):
    write_result(tmp_path, make_result("jax"))
    rows, _ = load_rows(tmp_path)
    document = json.loads(report.render(rows, "json", ["x.json: skipped"]))
    assert document["warnings"] == ["x.json: skipped"]
    assert len(document["rows"]) == 3 and document["rows"][0]["history"] is not None
    [group] = document["groups"]
    assert group["key"]["profile"] == "quick" and group["lines"][0]["speed_ratio"] == 1.0


def test_write_report_writes_atomically_and_our_json_report_is_not_a_result(tmp_path):
    write_result(tmp_path, make_result("jax"))
    rows, warnings = load_rows(tmp_path)
    text = report.write_report(rows, warnings, "md", tmp_path / "out" / "REPORT.md")
    assert (tmp_path / "out" / "REPORT.md").read_text() == text
    report.write_report(rows, warnings, "json", tmp_path / "REPORT.json")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and p.name.startswith(".")) == []
    runs, warnings = results.load([tmp_path])
    assert len(runs) == 1 and warnings == []


def test_cli_report(tmp_path):
    write_result(tmp_path, make_result("jax"))
    (tmp_path / "bad.json").write_text("{")
    done = run_cli("report", str(tmp_path), "--output", str(tmp_path / "REPORT.md"))
    assert done.returncode == 0, done.stderr
    assert "## quick profile" in done.stdout and (tmp_path / "REPORT.md").exists()
    assert "bad.json: skipped" in done.stderr
    done = run_cli("report", str(tmp_path), "--format", "csv")
    assert done.returncode == 0 and done.stdout.startswith("file,name,kind,")


def test_cli_report_default_folder_and_no_results(tmp_path):
    env = {"KERASBENCH_RESULTS": str(tmp_path)}
    done = run_cli("report", env=env)
    assert done.returncode == 2 and done.stderr.strip().endswith(f"no readable results in {tmp_path}")
    write_result(tmp_path, make_result("jax"))
    done = run_cli("report", env=env)
    assert done.returncode == 0 and done.stdout.startswith("# kerasbench report")
    assert not (tmp_path / "REPORT.md").exists()  # a report file only where --output asks for one


def test_a_current_schema_file_missing_a_key_is_an_error_naming_file_and_key(tmp_path):
    broken = make_result("torch")
    del broken["benchmarks"][0]["extra_info"]["metrics"]["samples_per_s"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    expected = "broken.json: benchmark test_train_step[torch-cpu]: extra_info.metrics: missing key 'samples_per_s'"
    with pytest.raises(results.SchemaError, match=re.escape(expected)):
        results.load([tmp_path])
    done = run_cli("report", str(tmp_path))
    assert done.returncode == 2 and "missing key 'samples_per_s'" in done.stderr and "Traceback" not in done.stderr


def test_the_writer_refuses_a_benchmark_without_a_record(tmp_path):
    document = make_result("jax")
    document["benchmarks"][0]["extra_info"] = {}
    body = {k: v for k, v in document.items() if k != "kerasbench"}
    with pytest.raises(results.SchemaError, match=re.escape("extra_info.kind")):
        results.write(tmp_path / "x.json", body, results.RunInfo(**document["kerasbench"]))
    assert not list(tmp_path.iterdir())


def test_nan_and_infinity_are_written_as_null(tmp_path):
    path = write_result(tmp_path, make_result("jax", accuracy=float("nan")))
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    [acc] = [r for r in load_rows(path)[0] if r.kind == "accuracy"]
    assert acc.accuracy.final_val_accuracy is None


def test_schema_1_files_are_upgraded_as_they_are_read():
    from tests.conftest import ROOT

    runs, warnings = results.load([ROOT / "results" / "baseline"])
    assert warnings == [] and len(runs) == 3 and {r.info.schema_version for r in runs} == {results.SCHEMA_VERSION}
    found = results.results_of(runs)
    assert {r.kind for r in found} >= {"train_step", "predict_step", "accuracy", "native_train_step"}
    torch_train = next(r for r in found if r.name == "test_train_step[torch-cpu]")
    assert torch_train.context.backend_version == "2.13.0+cpu" and torch_train.context.memory.host_peak_rss_mib > 0


# --------------------------------------------------------------------------------- one model, built once

def three_backends(folder, kernels=("cudnn", "generic (lax.scan)", "fused input projection")):
    """tensorflow, jax and torch at 150, 100 and 231 ms a train step, each with its own LSTM kernel."""
    for backend, train, predict, accuracy, kernel in (("tensorflow", 0.150, 0.020, 0.812, kernels[0]),
                                                      ("jax", 0.100, 0.030, 0.805, kernels[1]),
                                                      ("torch", 0.231, 0.010, 0.798, kernels[2])):
        document = make_result(backend, train=(train, 0.002), predict=(predict, 0.001), accuracy=accuracy)
        for bench in document["benchmarks"]:
            bench["extra_info"]["context"]["kernel"]["name"] = kernel
        write_result(folder, document)
    return load_rows(folder)


def test_every_output_renders_one_model_built_once(tmp_path, monkeypatch):
    rows, warnings = three_backends(tmp_path)
    calls = {"latest": 0, "analyze": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(report.model, "latest", counted("latest", selection.latest))
    monkeypatch.setattr(parity, "analyze", counted("analyze", parity.analyze))
    model = report.build(rows, warnings)
    assert calls == {"latest": 2, "analyze": 1}  # the tables' newest runs, the data-parallel layouts' newest runs
    texts = {fmt_name: report.text(model, fmt_name) for fmt_name in report.FORMATS}
    assert calls == {"latest": 2, "analyze": 1}  # rendering selects nothing again
    assert texts["md"] == report.render_markdown(rows, warnings) and texts["csv"] == report.render_csv(rows)
    assert json.loads(texts["json"])["groups"][0]["lines"][0]["backend"] == "jax"
    assert report.write(model, "json", tmp_path / "out" / "REPORT.json") == texts["json"]
    assert (tmp_path / "out" / "REPORT.json").read_text() == texts["json"]


def test_json_groups_are_the_markdown_tables(tmp_path):
    # Sweep points get scaling tables, not comparison tables: in the markdown and in the JSON alike.
    write_result(tmp_path, make_result("jax"))
    write_result(tmp_path, make_result("jax", profile="sweep", batch_size=8, kinds=("train_step",)), "sweep.json")
    rows, _ = load_rows(tmp_path)
    document = json.loads(report.render(rows, "json"))
    assert [group["label"] for group in document["groups"]] == [group.key.label for group in report.build(rows).groups]
    assert [group["key"]["profile"] for group in document["groups"]] == ["quick"]
    assert len(document["rows"]) == 4  # every benchmark, the sweep point included


# ---------------------------------------------------------------------------------- the terminal table

def terminal_rows(text):
    """{first word of the backend cell: the rest of its row split on runs of 2+ spaces} of a rendered table."""
    rows = {}
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells and cells[0].split(" ")[0] in ("tensorflow", "jax", "torch"):
            rows[cells[0].split(" ")[0]] = cells
    return rows


@pytest.mark.parametrize("plain", [False, True], ids=["rich", "plain"])
def test_terminal_table_holds_the_columns_read_first(tmp_path, plain):
    rows, _ = three_backends(tmp_path)
    model = report.build(rows)
    text = report.terminal.render(model, width=160, plain=plain)
    assert text.splitlines()[0] == "quick profile · synthetic data · batch 32 · maxlen 200 · cpu"
    for word in ("Backend", "Train", "ms/step", "Predict", "ms/batch", "Accuracy", "Speed", "fastest", "LSTM kernel"):
        assert word in text
    for wide in ("IQR", "p50", "Harness", "Keras/native", "samples/s", "J/step"):  # REPORT.md's other columns
        assert wide not in text
    table = terminal_rows(text)
    assert list(table) == ["jax", "tensorflow", "torch"]  # fastest first, as in REPORT.md
    assert table["jax"] == ["jax 1.0.0", "100", "30.0", "0.805", "1.00x", "generic (lax.scan)"]
    assert table["tensorflow"] == ["tensorflow 1.0.0", "150", "20.0", "0.812", "1.50x slower", "cudnn"]
    assert table["torch"] == ["torch 1.0.0", "231", "10.0", "0.798", "2.31x slower", "fused input projection"]
    assert max(map(len, text.splitlines())) <= 160


def test_terminal_table_without_rich_is_plain_aligned_text(tmp_path, monkeypatch):
    rows, _ = three_backends(tmp_path)
    model = report.build(rows)
    for name in ("rich", "rich.box", "rich.console", "rich.table", "rich.text"):
        monkeypatch.setitem(sys.modules, name, None)  # import rich now fails, as where the extra is missing
    text = report.terminal_table(model, width=160)
    assert text == report.terminal.render(model, plain=True)
    assert "Speed vs fastest" in text and terminal_rows(text)["torch"][4] == "2.31x slower"


def test_terminal_table_names_seeds_failures_and_the_rest_of_the_report(tmp_path):
    write_result(tmp_path, make_result("jax", accuracy=None, status="failed: loss is nan at epoch 1"))
    write_result(tmp_path, make_result("torch", finished=False, kinds=("train_step",)))
    rows, _ = load_rows(tmp_path)
    text = report.terminal_table(report.build(rows, ["x.json: skipped"]), width=160)
    table = terminal_rows(text)
    assert table["jax"][3] == "failed" and table["torch"][0] == "torch 1.0.0 (incomplete)"
    assert text.rstrip().endswith("Also in the full report: skipped files.")
    assert report.terminal_table(report.build([])) == "No results.\n"


def test_run_ends_with_the_compact_table_and_writes_the_wide_one(tmp_path, monkeypatch, capsys):
    def planted(backends, pytest_args, run_dir, repeat=1, environment=None, backend_environments=None):
        three_backends(run_dir)
        return [runner.Outcome(backend, "ok") for backend in backends]

    monkeypatch.setattr(runner, "run_backends", planted)
    monkeypatch.setenv("COLUMNS", "160")
    assert main(["run", "--backends", "tensorflow,jax,torch", "--run-dir", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "# kerasbench report" not in out and "| Train IQR ms |" not in out  # the wide table stays in the file
    assert terminal_rows(out)["tensorflow"][4] == "1.50x slower"
    assert (tmp_path / "run" / "REPORT.md").read_text().startswith("# kerasbench report")
    assert any(p.suffix == ".png" for p in (tmp_path / "run").iterdir())


def test_cli_report_terminal_format(tmp_path):
    three_backends(tmp_path)
    done = run_cli("report", str(tmp_path), "--format", "terminal", env={"COLUMNS": "160"})
    assert done.returncode == 0, done.stderr
    assert terminal_rows(done.stdout)["jax"][4] == "1.00x"


# ---------------------------------------------------------- data-parallel layouts (--devices, --processes)

def test_files_without_a_layout_read_as_one_device(tmp_path):
    write_result(tmp_path, make_result("jax", kinds=("train_step",)))
    [result] = results.results_of(results.load([tmp_path])[0])
    assert result.layout == results.ReplicaLayout()
    assert not result.distributed and not result.simulated and result.layout.replicas == 1


def test_report_shows_scaling_apart_and_labels_simulated_devices(tmp_path):
    write_result(tmp_path, make_result("jax", kinds=("train_step",)), "single.json")
    write_result(tmp_path, layout_document("dp2", 0.8), "dp2.json")
    write_result(tmp_path, layout_document("mp4", 0.5), "mp4.json")
    found = results.results_of(results.load([tmp_path])[0])
    text = report.render_markdown(found)
    section = text.split("## Data-parallel scaling (simulated devices)", 1)[1]
    assert "| dp2 | weak | 2 | 32 / 64 |" in section and "| 0.80 | 3.0e-08 | simulated |" in section
    assert "| mp4 | weak | 4 | 32 / 128 |" in section and "| 0.50 | 3.0e-08 | simulated |" in section
    assert "Simulated: 2 XLA host-platform devices share 2 cores." in section
    assert text.split("## Data-parallel", 1)[0].count("| jax 1.0.0") == 1  # the main table: one device only
    rows = report.render_csv(found).splitlines()
    header = rows[0].split(",")
    efficiency = sorted(row.split(",")[header.index("scaling_efficiency")] for row in rows[1:])
    assert efficiency == ["", "0.5", "0.8"]
    written = plots.plot(found, tmp_path / "plots")
    assert tmp_path / "plots" / "data_parallel_efficiency.png" in written


def test_achieved_gflops_and_the_share_of_the_bound_come_from_the_median(tmp_path):
    write_result(tmp_path, make_result("jax", kinds=("train_step", "predict_step"), train=(0.100, 0.004),
                                       predict=(0.020, 0.001), roofline=True))
    (line,) = report.build(results.results_of(results.load([tmp_path])[0])).groups[0].lines
    assert line.train_gflops == pytest.approx(5e9 / 0.100 / 1e9, rel=0.01)  # 5 GFLOP in the median's 100 ms
    assert line.train_share == pytest.approx(0.010 / 0.100, rel=0.01) and line.train_binding == "compute"
    assert line.predict_gflops == pytest.approx(250, rel=0.01) and line.predict_intensity == 10.0
    md = report.text(report.build(results.results_of(results.load([tmp_path])[0])), "md")
    assert "50.0 (0.10 of the compute bound)" in md and "250.0 (0.50 of the compute bound)" in md
    rows = list(csv.DictReader(io.StringIO(report.text(report.build(results.results_of(
        results.load([tmp_path])[0])), "csv"))))
    assert {row["binding_bound"] for row in rows} == {"compute"}
    assert float(rows[0]["achieved_gflops"]) == pytest.approx(50, rel=0.01)


def test_a_table_whose_lines_ran_in_different_precisions_says_so(tmp_path):
    from bench.results import Precision

    tf32 = Precision("tf32", "tf32", "test: TF32 allowed")
    write_result(tmp_path / "mixed", make_result("jax", device="gpu", precision=tf32))
    write_result(tmp_path / "mixed", make_result("torch", device="gpu", precision=Precision("fp32", "tf32", "test")))
    runs, _ = results.load([tmp_path / "mixed"])
    text = report.text(report.build(results.results_of(runs)), "md")
    assert ("MIXED PRECISION: the lines ran float32 work in different precisions (jax 1.0.0: matmul tf32, LSTM tf32; "
            "torch 1.0.0: matmul fp32, LSTM tf32)") in text
    # Like for like (strict-fp32, or a CPU): no such note.
    write_result(tmp_path / "same", make_result("jax", device="gpu", precision=tf32))
    write_result(tmp_path / "same", make_result("torch", device="gpu", precision=tf32))
    runs, _ = results.load([tmp_path / "same"])
    assert "MIXED PRECISION" not in report.text(report.build(results.results_of(runs)), "md")
