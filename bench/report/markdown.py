"""The report as markdown (REPORT.md): one wide table per comparison group, then parity, the sweep's
scaling tables, the data-parallel section, and notes on what was left out."""

from __future__ import annotations

from bench import parity, scaling, stats
from bench.report.model import Group, Line, Report
from bench.tables import MISSING, fmt, fmt_ms, speed_text, table

HEADERS = ("Backend", "Keras", "Device", "Train ms/step", "Train IQR ms", "Predict ms/batch", "Train samples/s",
           "First step s", "val_accuracy by epoch", "Time to acc. s", "Speed vs fastest", "LSTM kernel", "jit",
           "Harness/plain", "Keras/native train", "Keras/native predict", "Processes",
           "Train p50/p90/p99 ms", "Predict p50/p90/p99 ms", "Serve batch-1 p50/p90/p99 ms", "Train J/step",
           "Train GFLOP/s (share of bound)", "Predict GFLOP/s (share of bound)")

DP_HEADERS = ("Backend", "Device", "Engine", "Layout", "Scaling", "N", "Batch per replica / global",
              "Slowest replica ms/step", "Global samples/s", "1-device samples/s", "Efficiency",
              "Max weight diff vs 1 device", "Devices")

DP_ACCURACY_HEADERS = ("Backend", "Device", "Layout", "Scaling", "Global batch", "First epoch s", "Final val_accuracy",
                       "Devices")


def render(report: Report) -> str:
    """The comparison tables, one per group, plus the sections and notes on what was left out."""
    out = ["# kerasbench report", ""]
    if report.empty:
        out += ["No results.", ""]
    for group in report.groups:
        out += [f"## {group.key.label}", "", table(HEADERS, [cells(s) for s in group.lines]), "", _notes(group), ""]
    if report.several_seeds:
        out += ["## Does accuracy hold across backends?", "", *parity.render_markdown(report.several_seeds,
                                                                                      heading="###")]
    out += phases_section(report)
    out += scaling.render(report.sweep)
    out += _data_parallel(report)
    if report.older_files:
        out += [f"_{report.older_files} older result file(s) not shown: each line is the newest run "
                "(`--format csv` lists every run)._", ""]
    if report.warnings:
        out += ["## Skipped files", ""] + [f"- {w}" for w in report.warnings] + [""]
    return "\n".join(out)


def _notes(group: Group) -> str:
    lines = group.lines
    notes = ["Medians of the timed rounds; the first (compile) step is timed apart as \"First step\"."]
    if any(s.processes > 1 for s in lines):
        notes.append("Several processes per benchmark (--repeat): each time is the median of the process "
                     "medians, with the 95% interval of the typical process median (Student t on log medians).")
    notes.append(f"Percentiles: {stats.PERCENTILE_METHOD}, over the timed rounds.")
    targets = {s.target_accuracy for s in lines if s.target_accuracy is not None}
    if targets:
        notes.append("Time to accuracy: training seconds until val_accuracy reached "
                     + " / ".join(f"{t:g}" for t in sorted(targets)) + ".")
    sources = sorted({s.data_source for s in lines if s.data_source})
    if sources:
        notes.append(f"Accuracy data: {'; '.join(sources)}.")
    if any(s.train_gflops is not None or s.predict_gflops is not None for s in lines):
        notes.append("GFLOP/s: analytic FLOPs per step (bench/work.py) over the median. Share of bound: the tightest "
                     "of the compute, recurrence, memory and dispatch bounds (from this machine's ceilings, measured "
                     "by the backend after the timed rounds) over the median.")
    if len({s.precision for s in lines if s.precision}) > 1:
        notes.append("MIXED PRECISION: the lines ran float32 work in different precisions ("
                     + "; ".join(f"{s.label}: {s.precision}" for s in lines if s.precision)
                     + "): their times are not like for like; --variant strict-fp32 turns TF32 off everywhere.")
    busy = [s for s in lines if s.contended]
    if busy:
        notes.append("(contended): other processes used up to " + ", ".join(
            f"{s.contended_share:.0%} ({s.backend}: {', '.join(s.contended)})" for s in busy)
            + " of the CPUs while these benchmarks' timed rounds ran (bench/contention.py): their times measure the "
              "other work too, and compare does not gate them.")
    differing = group.package_differences()
    if differing:
        notes.append(f"Package sets differ between lines: {'; '.join(differing)}.")
    return " ".join(notes)


def cells(s: Line) -> list[str]:
    """The table cells of one line, in HEADERS order."""
    if s.accuracy_status and s.accuracy_status != "ok":
        accuracy = "failed"
    else:
        per_epoch = [fmt(v, ".3f") for v in s.val_accuracy_per_epoch]
        accuracy = " → ".join(per_epoch) if per_epoch else fmt(s.final_val_accuracy, ".3f")
    reached = fmt(s.time_to_accuracy_s, ".1f")
    if s.has_accuracy and s.time_to_accuracy_s is None and accuracy != "failed":
        reached = "not reached"
    if s.accuracy_seeds > 1:
        accuracy = f"mean of {s.accuracy_seeds} seeds: {accuracy} (see parity)"
        reached = "see parity"
    return [s.label, s.keras, s.device_name, fmt_ms(s.train_median_ms), fmt_ms(s.train_iqr_ms),
            fmt_ms(s.predict_median_ms), fmt(s.train_samples_per_s, ".0f"), fmt(s.first_step_s, ".2f"),
            accuracy, reached, speed_text(s.speed_ratio), s.lstm_kernel or MISSING, s.jit_compile or MISSING,
            fmt(s.harness_vs_plain, ".3f"), native_text(s.keras_vs_native_train, s),
            native_text(s.keras_vs_native_predict, s), processes_text(s), tail_text(s.train_percentiles_ms),
            tail_text(s.predict_percentiles_ms), tail_text(s.serve_percentiles_ms, s.serve_queries),
            energy_text(s), roofline_text(s.train_gflops, s.train_share, s.train_binding),
            roofline_text(s.predict_gflops, s.predict_share, s.predict_binding)]


def roofline_text(gflops: float | None, share: float | None, binding: str | None) -> str:
    """'63.1 (0.42 of the compute bound)': achieved GFLOP/s and the share of the tightest bound reached."""
    if gflops is None:
        return MISSING
    return f"{gflops:.1f} ({share:.2f} of the {binding} bound)"


def energy_text(s: Line) -> str:
    """Joules per train step from a hardware counter; 'unavailable' where the machine has none."""
    if s.train_energy_j_per_step is not None:
        return format(s.train_energy_j_per_step, ".3g")
    return "unavailable" if s.train_energy_source else MISSING


def native_text(ratio: float | None, s: Line) -> str:
    """'6.85', or '6.85 (different kernels: Keras loop, native onednn)' where the two ran different kernels."""
    text = fmt(ratio, ".2f")
    if ratio is None or not s.native_kernel_differs:
        return text
    return f"{text} (different kernels: {s.native_kernel_differs})"


def processes_text(s: Line) -> str:
    """'3 (train 95% CI 128-139)': processes per benchmark, and the train median's interval over them."""
    if s.train_ci_ms is None:
        return str(s.processes)
    low, high = s.train_ci_ms
    return f"{s.processes} (train 95% CI {fmt_ms(low)}-{fmt_ms(high)})"


def tail_text(percentiles_ms: tuple | None, queries: int | None = None) -> str:
    if percentiles_ms is None:
        return MISSING
    text = " / ".join(fmt_ms(v) for v in percentiles_ms)
    return f"{text} ({queries} queries)" if queries else text


PHASE_HEADERS = ("Backend", "Step", "Forward ms", "Backward ms", "Optimizer ms", "Overhead ms", "Sum ms",
                 "Benchmark median ms", "Adds up", "Op families: the profiled step, then the top 4 (ms, share)")


def phases_section(report: Report) -> list[str]:
    """--explain: each train step split into phases, and by operation family where the backend was profiled."""
    rows = []
    for group in report.groups:
        for s in group.lines:
            for step, p in (("Keras", s.train_phases), ("native", s.native_train_phases)):
                if p:
                    top = sorted(p["families"].items(), key=lambda kv: -kv[1])[:4]
                    # The profiler slows the step it watches, so its total is shown and the families read as shares.
                    total = sum(p["families"].values())
                    families = (f"{total:.1f} profiled: " + ", ".join(f"{k} {v:.1f} ({v / total:.0%})" for k, v in top)
                                if top and total > 0 else p["profiler"])
                    rows.append([s.label, step, *(fmt(p[k], ".1f") for k in
                                                  ("forward", "backward", "optimizer", "overhead", "step", "median")),
                                 "yes" if p["adds_up"] else f"no (beyond ±{p['tolerance']:.0%})", families])
    if not rows:
        return []
    return ["## Where the time goes (train step)", "", table(PHASE_HEADERS, rows), "",
            "Phases: the step timed beside variants that stop after the loss, after the gradients and after the "
            "optimizer's update (interleaved, medians; bench/phases.py). Overhead is the full step minus the lean "
            "update. Adds up: the phases' sum against the benchmark's own median. Op families: ms per step under the "
            "backend's profiler, which runs slower than the timed rounds; their total is that profiled step, and the "
            "rest of it outside any op is Python and framework. The profiler's cost falls on every op it records, so "
            "where the profiled step is well above the median, families of many tiny ops (views, slices) read larger "
            "than they run.", ""]


def _data_parallel(report: Report) -> list[str]:
    """Data-parallel runs (--devices/--processes): the slowest replica's step, global samples/s, efficiency."""
    steps, accuracy = report.parallel_steps, report.parallel_accuracy
    if not steps and not accuracy:
        return []
    devices = lambda row: "simulated" if row.simulated else "real"
    simulated = any(row.simulated for row in (*steps, *accuracy))
    out = ["## Data-parallel scaling" + (" (simulated devices)" if simulated else ""), ""]
    if steps:
        out += [table(DP_HEADERS, [[
            f"{p.backend} {p.backend_version}", p.device_name, p.engine, p.layout, p.scaling, str(p.replicas),
            f"{p.per_replica_batch} / {p.global_batch}", fmt_ms(p.slowest_replica_ms), fmt(p.samples_per_s, ".0f"),
            fmt(p.reference_samples_per_s, ".0f"), fmt(p.efficiency, ".2f"), fmt(p.max_weight_diff, ".1e"),
            devices(p)] for p in steps]), ""]
        out += ["Slowest replica: per step the longest of the processes' step times, then the median over steps. "
                "Efficiency: global samples/s over N times the samples/s of one device, timed in the same run (rank "
                "0) at the batch one replica would get alone: the per-replica batch under weak scaling, the global "
                "batch under strong scaling. Max weight diff: after 2 data-parallel steps against 2 steps on one "
                "device on the same global batches, before the timing.", ""]
    if accuracy:
        out += [table(DP_ACCURACY_HEADERS, [[
            f"{a.backend} {a.backend_version}", a.device_name, a.layout, a.scaling, str(a.global_batch),
            fmt(a.first_epoch_s, ".1f"), fmt(a.final_val_accuracy, ".3f"), devices(a)] for a in accuracy]), ""]
    whys = sorted({row.simulated_why for row in (*steps, *accuracy) if row.simulated})
    if whys:
        out += ["Simulated: " + " ".join(f"{why}." for why in whys), ""]
    return out
