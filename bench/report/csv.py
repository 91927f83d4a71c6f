"""The report as CSV: every run's every benchmark, one line each (``Report.rows``)."""

from __future__ import annotations

import csv
import io
import math

from bench.report.model import Report

CSV_FIELDS = ["file", "name", "kind", "backend", "device", "device_name", "profile", "dataset", "batch_size",
              "maxlen", "keras", "backend_version", "finished", "started", "median_ms", "iqr_ms", "q1_ms", "q3_ms",
              "mean_ms", "stddev_ms", "min_ms", "max_ms", "rounds", "first_step_s", "samples_per_s",
              "final_val_accuracy", "target_accuracy", "time_to_accuracy_s", "status", "variant", "jit_compile",
              "lstm_kernel", "harness_vs_plain", "seed", "run_id", "repeat_index", "p50_ms", "p90_ms", "p99_ms",
              "ci_half_width", "stop_reason", "measure_s", "lstm_kernel_family", "lstm_kernel_check",
              "energy_j_per_step",
              "samples_per_joule", "energy_source", "layout", "replicas", "scaling", "simulated",
              "slowest_replica_ms", "scaling_efficiency", "max_weight_diff_vs_one_device", "flops", "bytes",
              "counted_vs_analytic", "achieved_gflops", "binding_bound", "share_of_bound", "contended",
              "other_cpu_share"]


def render(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        # Empty for missing and for non-finite numbers: no NaN/Infinity tokens in any file kerasbench writes.
        writer.writerow({k: "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v
                         for k, v in row.fields.items()})
    return buffer.getvalue()
