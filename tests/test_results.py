"""The result schema: nested records, the writer and loader round trip, and the upgraders from schemas 1 and 2.

The old-schema documents below are written out by hand, as their writers wrote them, so that the
upgraders are checked against the files they meet and not against themselves.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re

import pytest

from bench import results
from bench.packages import set_id
from bench.results import (
    AccuracyMetrics,
    Context,
    Energy,
    Equivalence,
    Interval,
    Kernel,
    Memory,
    Record,
    ReplicaLayout,
    Rounds,
    RunInfo,
    Scaling,
    Serving,
    StepMetrics,
    Tail,
)
from tests.resultfiles import make_result, write_result

STATS = {"median": 0.1, "iqr": 0.004, "q1": 0.098, "q3": 0.102, "mean": 0.1, "stddev": 0.003, "min": 0.095,
         "max": 0.11, "rounds": 30}
RUN = {"backend": "jax", "device": "cpu", "device_name": "Test CPU", "settings": {"profile": "quick"},
       "started": "2026-11-29T08:00:00+00:00", "updated": "2026-11-29T08:01:00+00:00", "finished": True,
       "exitstatus": 0, "argv": ["bench/"]}
CONTEXT_V2 = {"backend": "jax", "backend_version": "0.4.1", "keras": "3.15.1", "device": "cpu",
              "device_name": "Test CPU", "profile": "quick", "variant": "default", "dataset_requested": "synthetic",
              "device_requested": "auto", "batch_size": 32, "maxlen": 200, "epochs": 1, "threads": 2, "seed": 1337,
              "model_config": {"lstm_units": 64}, "dataset": {"source": "synthetic"}, "jit_compile": True,
              "lstm_kernel": "generic (lax.scan)", "memory": {"host_rss_growth_mib": 1.5, "host_peak_rss_mib": 900.0}}
TRAIN_V2 = {"staged_batches": 8, "first_step_s": 1.5, "samples_per_s": 320.0, "plain_loop_median_s": 0.1,
            "harness_vs_plain": 1.0}
ACCURACY_V2 = {"status": "ok", "history": [{"epoch": 1, "seconds": 5.0, "val_accuracy": 0.8}],
               "final_val_accuracy": 0.8, "target_accuracy": 0.7, "time_to_accuracy_s": 5.0,
               "train_samples_used": 4992, "val_samples_used": 1984, "first_epoch_s": 5.0}


def document(version: int, benchmarks: list[dict]) -> dict:
    return {"machine_info": {}, "commit_info": {"id": "0" * 40}, "benchmarks": benchmarks, "version": "5.3.1",
            "kerasbench": {**RUN, "schema_version": version}}


def schema_1() -> dict:
    """Schema 1: extra_info flat, the kind only in the test's name, the backend's version under its name."""
    flat = {k: v for k, v in CONTEXT_V2.items() if k not in ("backend_version", "memory")}
    flat |= {"jax": "0.4.1", **CONTEXT_V2["memory"]}
    return document(1, [
        {"name": "test_train_step[jax-cpu]", "stats": STATS, "extra_info": {**flat, **TRAIN_V2}},
        {"name": "test_accuracy[jax-cpu]", "stats": STATS, "extra_info": {**flat, **ACCURACY_V2}},
        {"name": "test_predict_step[jax-cpu]", "stats": STATS, "extra_info": {}},  # failed before recording
    ])


def schema_2(train: dict | None = None, context: dict | None = None) -> dict:
    """Schema 2: kind, context and metrics apart, the metrics flat, the layout and memory plain dicts."""
    return document(2, [
        {"name": "test_train_step[jax-cpu]", "stats": STATS,
         "extra_info": {"kind": "train_step", "context": context or CONTEXT_V2, "metrics": train or TRAIN_V2}},
        {"name": "test_accuracy[jax-cpu]", "stats": STATS,
         "extra_info": {"kind": "accuracy", "context": CONTEXT_V2, "metrics": ACCURACY_V2}},
    ])


def plant(tmp_path, doc: dict, name: str = "run.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def load_records(path) -> list[Record]:
    [run] = results.load([path])[0]
    assert run.info.schema_version == results.SCHEMA_VERSION == 3
    return [r.record for r in run.results]


def expected_context(**changes) -> Context:
    c = {k: v for k, v in CONTEXT_V2.items() if k not in ("lstm_kernel", "memory")}
    return Context(**c, kernel=Kernel("generic (lax.scan)"), memory=Memory(host_rss_growth_mib=1.5,
                   host_peak_rss_mib=900.0), **changes)


# ----------------------------------------------------------------------------------------- upgrades

def test_schema_1_and_schema_2_files_load_into_schema_3_with_the_same_values(tmp_path):
    old = load_records(plant(tmp_path, schema_1(), "v1.json"))
    newer = load_records(plant(tmp_path, schema_2(), "v2.json"))
    assert old == newer  # the benchmark schema 1 kept without a record is dropped, as before
    train, accuracy = newer
    assert train == Record("train_step", expected_context(), StepMetrics(**TRAIN_V2))
    assert accuracy == Record("accuracy", expected_context(), AccuracyMetrics(**ACCURACY_V2))
    # What schema 3 adds reads as "one device, not measured" for both.
    assert train.context.layout == ReplicaLayout() and train.context.layout.name == "single"
    assert train.metrics.rounds == Rounds() and train.metrics.energy == Energy()
    assert train.metrics.tail is train.metrics.interval is train.metrics.scaling is None


def test_every_flat_schema_2_field_lands_in_its_record(tmp_path):
    train = {**TRAIN_V2, "p50_s": 0.1, "p90_s": 0.105, "p99_s": 0.11, "percentile_method": "linear",
             "rounds_mode": "adaptive", "stop_reason": "target", "ci_low_s": 0.099, "ci_high_s": 0.101,
             "ci_half_width": 0.01, "ci_target": 0.02, "ci_confidence": 0.95, "ci_method": "quantile_test",
             "timed_s": 3.0, "measure_s": 4.0, "energy_j_per_step": 0.5, "samples_per_joule": 64.0,
             "energy_source": "RAPL package-0", "queries": {"percentile": 0.99, "margin": 0.005, "confidence": 0.95,
                                                           "queries": 1600, "method": "binom ranks"},
             "p99_ci_low_s": 0.108, "p99_ci_high_s": 0.112, "replicas": 2, "per_replica_batch": 32,
             "slowest_replica_step_s": 0.1, "rank_step_s": [0.1, 0.09], "reference_step_s": 0.08,
             "reference_batch": 32, "scaling_efficiency": 0.8, "equivalence_steps": 2,
             "max_weight_diff_vs_one_device": 3e-8, "ranks_agree": True}
    layout = {"engine": "keras.distribution.DataParallel", "mode": "processes", "replicas": 2, "processes": 2,
              "devices_per_process": 1, "scaling": "weak", "per_replica_batch": 32, "global_batch": 64,
              "simulated": True, "simulated_why": "2 processes share 2 cores", "devices": ["cpu:0"],
              "step": "train_step", "collectives": "gloo", "rank_recording": 0, "host": "h",
              "keras_train_function": "fails: ValueError: x"}
    context = {**CONTEXT_V2, "lstm_kernel_observed": "loop: while", "lstm_kernel_check": "agrees",
               "lstm_kernel_family": "loop", "runtime": {"threads": 2}, "layout": layout,
               "memory": {"host_rss_growth_mib": 1.5, "device_peak_mib": 12.0, "device_peak_scope": "process"}}
    [record, _] = load_records(plant(tmp_path, schema_2(train, context)))
    m, c = record.metrics, record.context
    assert m.rounds == Rounds("adaptive", "target", 3.0, 4.0)
    assert m.tail == Tail(0.1, 0.105, 0.11, "linear")
    assert m.interval == Interval(0.95, "quantile_test", 0.099, 0.101, 0.01, 0.02)
    assert m.energy == Energy("RAPL package-0", 0.5, 64.0)
    assert m.serving == Serving(1600, 0.99, 0.005, 0.95, "binom ranks", 0.108, 0.112)
    assert m.scaling == Scaling(0.1, [0.1, 0.09], 32, 0.08, 0.8)
    assert m.equivalence == Equivalence(2, True, 3e-8)
    assert (m.staged_batches, m.samples_per_s, m.implementation) == (8, 320.0, "keras")
    assert c.kernel == Kernel("generic (lax.scan)", "loop: while", "agrees", "loop")
    assert c.memory == Memory(1.5, None, 12.0, "process") and c.runtime == {"threads": 2}
    assert c.layout == ReplicaLayout(**layout) and c.layout.name == "mp2" and c.layout.distributed
    # The replicas and per-replica batch schema 2 kept twice live in the layout only.
    assert (c.layout.replicas, c.layout.per_replica_batch) == (2, 32)


def test_upgrades_chain_and_leave_the_current_schema_alone():
    v1 = schema_1()
    assert results.upgrade_v1(copy.deepcopy(v1))["kerasbench"]["schema_version"] == 2
    upgraded = results.upgrade(copy.deepcopy(v1))
    assert upgraded == results.upgrade_v2(results.upgrade_v1(copy.deepcopy(v1)))
    assert upgraded["kerasbench"]["schema_version"] == 3 and upgraded == results.upgrade(upgraded)
    assert v1 == schema_1()  # the documents read are not changed in place


def test_a_malformed_schema_2_file_is_named_by_the_parser_not_hidden_by_the_upgrade(tmp_path):
    train = {k: v for k, v in TRAIN_V2.items() if k != "samples_per_s"}
    path = plant(tmp_path, schema_2(train), "broken.json")
    expected = "broken.json: benchmark test_train_step[jax-cpu]: extra_info.metrics: missing key 'samples_per_s'"
    with pytest.raises(results.SchemaError, match=re.escape(expected)):
        results.load([path])
    interval_without_method = {**TRAIN_V2, "ci_confidence": 0.95}
    plant(tmp_path, schema_2(interval_without_method), "broken.json")
    with pytest.raises(results.SchemaError, match=re.escape("extra_info.metrics.interval: missing key 'method'")):
        results.load([path])


def test_unknown_schema_versions_are_skipped_naming_the_readable_ones(tmp_path):
    plant(tmp_path, document(4, []), "future.json")
    runs, warnings = results.load([tmp_path])
    assert runs == [] and warnings == [f"{tmp_path / 'future.json'}: skipped, schema_version 4, this kerasbench "
                                       "reads 1, 2, 3"]


# ---------------------------------------------------------------------------------- schema 3 itself

def full_step_record() -> Record:
    layout = ReplicaLayout(engine="torch.nn.parallel.DistributedDataParallel", mode="processes", replicas=2,
                           processes=2, scaling="strong", per_replica_batch=16, global_batch=32, simulated=True,
                           simulated_why="2 processes on one CPU", devices=["cpu", "cpu"], step="ddp",
                           collectives="gloo", rank_recording=0, host="h")
    context = dataclasses.replace(expected_context(), kernel=Kernel("cudnn", "cudnn: op", "agrees", "cudnn"),
                                  memory=Memory(1.0, 2.0, 3.0, "allocator"), runtime={"threads": 2}, layout=layout)
    metrics = StepMetrics(
        staged_batches=2, first_step_s=1.0, samples_per_s=320.0, plain_loop_median_s=0.1, harness_vs_plain=1.01,
        implementation="native", native_kernel="torch.nn.LSTM", rounds=Rounds("fixed", "fixed", 1.0, 2.0),
        tail=Tail(0.1, 0.2, 0.3, "linear"), interval=Interval(0.95, "quantile_test", None, None, None, None),
        energy=Energy("NVML", 2.0, 16.0), serving=Serving(200, 0.9, 0.05, 0.95, "binom", None, None),
        scaling=Scaling(0.1, [0.1, 0.1], 32, None, None), equivalence=Equivalence(2, False, None))
    return Record("train_step", context, metrics)


def test_a_record_with_every_nested_record_round_trips_through_the_writer(tmp_path):
    record = full_step_record()
    benchmark = {"name": "test_train_step[torch-cpu-mp2-strong]", "stats": {**STATS, "data": [0.1, 0.1]},
                 "extra_info": record.to_json()}
    path = tmp_path / "run.json"
    results.write(path, {"benchmarks": [benchmark]}, RunInfo(**RUN))
    written = json.loads(path.read_text())
    assert written["kerasbench"]["schema_version"] == 3
    metrics = written["benchmarks"][0]["extra_info"]["metrics"]
    assert metrics["tail"] == {"p50_s": 0.1, "p90_s": 0.2, "p99_s": 0.3, "method": "linear"}
    assert not {"p99_s", "energy_source", "replicas", "scaling_efficiency"} & set(metrics)  # nothing flat
    [run] = results.load([path])[0]
    [result] = run.results
    assert result.record == record and result.stats.data == (0.1, 0.1)
    assert result.distributed and result.simulated and result.layout.name == "mp2"


def test_new_files_are_schema_3_and_read_back_unchanged(tmp_path):
    doc = make_result("torch", kinds=("train_step", "accuracy"))
    path = write_result(tmp_path, doc)
    assert json.loads(path.read_text())["kerasbench"]["schema_version"] == 3
    records = load_records(path)
    assert [r.to_json() for r in records] == [b["extra_info"] for b in doc["benchmarks"]]


def test_a_schema_3_file_missing_a_nested_key_names_the_path_to_it(tmp_path):
    record = full_step_record()
    extra = record.to_json()
    del extra["metrics"]["tail"]["p99_s"]
    doc = document(3, [{"name": "test_train_step[torch-cpu]", "stats": STATS, "extra_info": extra}])
    path = plant(tmp_path, doc, "broken.json")
    with pytest.raises(results.SchemaError, match=re.escape("extra_info.metrics.tail: missing key 'p99_s'")):
        results.load([path])


def test_a_record_takes_the_metrics_of_its_kind():
    record = full_step_record()
    with pytest.raises(TypeError, match="accuracy record takes AccuracyMetrics, not StepMetrics"):
        Record("accuracy", record.context, record.metrics)
    with pytest.raises(ValueError, match="unknown benchmark kind"):
        Record("warmup", record.context, record.metrics)


@pytest.mark.parametrize(("mode", "replicas", "name"), [("single", 1, "single"), ("devices", 4, "dp4"),
                                                       ("processes", 2, "mp2"), ("devices", 1, "dp1")])
def test_layout_names(mode, replicas, name):
    assert results.layout_name(mode, replicas) == name
    assert ReplicaLayout(engine=None if mode == "single" else "e", mode=mode, replicas=replicas).name == name



def test_the_package_set_is_recorded_and_older_files_load_without_one(tmp_path):
    specs = ["keras==3.12.0", "jax==0.10.2"]
    path = write_result(tmp_path, make_result("jax", kinds=("train_step",), packages=specs,
                                              environment="overlay 0123: keras==3.12.0"))
    [run] = results.load([path])[0]
    assert run.info.packages == results.PackageSet(set_id(specs), sorted(specs), "overlay 0123: keras==3.12.0")
    older = make_result("jax", kinds=("train_step",))
    del older["kerasbench"]["packages"]  # a schema-3 file written before package sets were recorded
    [run] = results.load([plant(tmp_path, older, "older.json")])[0]
    assert run.info.packages is None
