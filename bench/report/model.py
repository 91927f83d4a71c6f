"""The report model: everything a report shows, built once from result files by ``build``.

Runs are compared only with like (``results.GroupKey``: profile, data source, batch size, maxlen,
device kind), one table per group. Within a table there is one line per (backend, device name,
Keras version, variant); when several files hold that line, the newest run (by its start time)
is shown and older ones are counted (the flat rows keep every run). A run that did not finish is
marked incomplete. Sweep points (``bench.scaling``) and data-parallel layouts get sections of
their own instead of table lines.

This module is the one place the report reads result records; the renderers (markdown, csv,
json, terminal) and ``bench.plots`` only format what it holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bench import packages, parity, scaling
from bench.results import GroupKey, Result
from bench.selection import Aggregate, aggregate, by_group, latest, started_order
from bench.tables import data_description

LineKey = tuple[str, str, str, str]  # backend, device name, Keras version, variant: ``Result.line``


@dataclass
class Line:
    """One line of a comparison table: one backend (device, Keras version, variant) in one group.

    Every field is written to the JSON report as it is (``asdict``): add fields at the end.
    """

    backend: str
    backend_version: str
    device_name: str
    keras: str
    variant: str
    incomplete: bool
    files: list[str]
    train_median_ms: float | None = None
    train_iqr_ms: float | None = None
    predict_median_ms: float | None = None
    predict_iqr_ms: float | None = None
    train_samples_per_s: float | None = None
    first_step_s: float | None = None
    harness_vs_plain: float | None = None
    has_accuracy: bool = False
    accuracy_status: str | None = None
    final_val_accuracy: float | None = None
    target_accuracy: float | None = None
    time_to_accuracy_s: float | None = None
    val_accuracy_per_epoch: tuple = ()
    accuracy_seeds: int = 1  # seeds of the accuracy benchmark in this run; several: the cell shows their mean
    data_source: str | None = None  # data_description of the accuracy benchmark's data
    lstm_kernel: str | None = None
    jit_compile: str | None = None
    keras_vs_native_train: float | None = None
    keras_vs_native_predict: float | None = None
    # Set when Keras and the native reference ran different LSTM kernel families ("Keras loop, native onednn").
    native_kernel_differs: str | None = None
    train_energy_j_per_step: float | None = None  # from a hardware counter (StepMetrics.energy), else None
    train_energy_source: str | None = None
    speed_ratio: float | None = None  # train median over the group's fastest
    # Repeats (--repeat N): processes per step benchmark and the 95% t interval of the typical process median.
    processes: int = 1
    train_ci_ms: tuple[float, float] | None = None
    predict_ci_ms: tuple[float, float] | None = None
    # Tail latency (ms): percentiles of the timed rounds (all processes' rounds pooled).
    train_percentiles_ms: tuple | None = None  # (p50, p90, p99)
    predict_percentiles_ms: tuple | None = None
    serve_percentiles_ms: tuple | None = None  # batch-1 serving (test_serve_batch1)
    serve_queries: int | None = None  # per process
    # Against the machine (StepMetrics.roofline): achieved GFLOP/s at the median, the tightest bound's name and
    # the share of it reached (bound / median); None where the records predate it.
    train_gflops: float | None = None
    train_share: float | None = None
    train_binding: str | None = None
    predict_gflops: float | None = None
    predict_share: float | None = None
    predict_binding: str | None = None
    train_intensity: float | None = None  # FLOPs per byte that must move
    predict_intensity: float | None = None
    roof: dict | None = None  # this backend's measured ceilings (bench.ceilings.Ceilings), for the roofline plot
    # --explain: the train step (and its native reference's) split into phases, ms (bench.results.Phases)
    train_phases: dict | None = None
    native_train_phases: dict | None = None
    # Benchmarks of this line whose timed rounds ran beside other busy processes (bench.contention), and the
    # largest share of the CPUs those took; compare does not gate such lines.
    contended: tuple = ()
    contended_share: float | None = None
    precision: str | None = None  # "matmul tf32, LSTM fp32" (results.Precision); None in older files

    @property
    def key(self) -> LineKey:
        return self.backend, self.device_name, self.keras, self.variant

    @property
    def label(self) -> str:
        """'jax 0.10.2', 'torch 2.13.0 [cudnn_off] (incomplete)': how tables name the line."""
        label = f"{self.backend} {self.backend_version}"
        if self.variant != "default":
            label += f" [{self.variant}]"
        return label + (" (incomplete)" if self.incomplete else "") + (" (contended)" if self.contended else "")


@dataclass(frozen=True)
class Group:
    """One comparison table: its lines, fastest train step first, and the runs they were made from."""

    key: GroupKey
    lines: list[Line]
    results: list[Result]  # the newest run of each line, every process and kind (batch-1 serving included)

    def quartiles_ms(self, line: Line, kind: str) -> tuple[float | None, float | None]:
        """Q1 and Q3 of the line's newest process of ``kind`` (ms): the spread of one process's rounds."""
        r = [r for r in self.results if r.line == line.key and r.kind == kind][-1]
        return r.ms("q1"), r.ms("q3")

    def distinguishing(self, line: Line) -> list[str]:
        """The device and Keras version of ``line`` where they tell this group's lines apart, for short labels."""
        parts = []
        if len({other.device_name for other in self.lines}) > 1:
            parts.append(line.device_name)
        if len({other.keras for other in self.lines}) > 1:
            parts.append(f"keras {line.keras}")
        return parts

    def package_differences(self) -> list[str]:
        """Lines whose processes ran on another package set than the first line's, with what differs.

        ``["jax 0.10.2 (Keras 3.12.0) against jax 0.10.2 (Keras 3.15.1): keras 3.15.1 → 3.12.0"]``; empty
        when every line ran on one set (or the files predate package sets).
        """
        sets = {}
        for r in sorted(self.results, key=started_order):
            if r.run.packages is not None:
                sets[r.line] = r.run.packages
        described = [(f"{line.label} (Keras {line.keras})", sets[line.key]) for line in self.lines
                     if line.key in sets]
        if not described:
            return []
        first_label, first = described[0]
        return [f"{label} against {first_label}: {', '.join(packages.differences(first.installed, found.installed))}"
                for label, found in described[1:] if found.id != first.id]

    def histories(self) -> list[tuple[Line, list[dict]]]:
        """Each accuracy run's (each seed's) per-epoch history, with the line it belongs to."""
        lines = {line.key: line for line in self.lines}
        return [(lines[r.line], r.accuracy.history) for r in self.results if r.accuracy and r.accuracy.history]


@dataclass(frozen=True)
class ParallelStep:
    """The newest train step of one data-parallel layout (--devices / --processes)."""

    backend: str
    backend_version: str
    device_name: str
    engine: str
    layout: str  # layout_name: "dp4", "mp2"
    mode: str  # "devices" or "processes"
    scaling: str  # "weak" or "strong"
    replicas: int
    per_replica_batch: int | None
    global_batch: int
    slowest_replica_ms: float | None
    samples_per_s: float | None
    reference_samples_per_s: float | None  # one device, timed in the same run
    efficiency: float | None
    max_weight_diff: float | None
    simulated: bool
    simulated_why: str | None


@dataclass(frozen=True)
class ParallelAccuracy:
    """The newest accuracy benchmark of one data-parallel layout."""

    backend: str
    backend_version: str
    device_name: str
    layout: str
    scaling: str
    global_batch: int
    first_epoch_s: float | None
    final_val_accuracy: float | None
    simulated: bool
    simulated_why: str | None


@dataclass(frozen=True)
class Row:
    """One benchmark of one file, flat (CSV_FIELDS; times in ms), and its per-epoch history."""

    fields: dict[str, Any]
    history: list[dict]


@dataclass(frozen=True)
class Report:
    """Everything one report shows; every output (md, csv, json, terminal, png) renders this."""

    groups: list[Group]  # single-device comparison tables, in group order
    parity: list[parity.ParityGroup]  # accuracy across backends, over the same results as the tables
    sweep: list[Result]  # sweep-profile points (bench.scaling renders and plots them)
    parallel_steps: list[ParallelStep]
    parallel_accuracy: list[ParallelAccuracy]
    rows: list[Row]  # every benchmark of every file, older runs included
    older_files: int  # files of the tables' results whose runs were superseded by newer ones
    warnings: list[str]  # files skipped while loading

    @property
    def empty(self) -> bool:
        return not (self.groups or self.sweep or self.parallel_steps or self.parallel_accuracy)

    @property
    def several_seeds(self) -> list[parity.ParityGroup]:
        """The parity groups worth a section: some backend trained several seeds."""
        return [g for g in self.parity if g.several_seeds]


def build(results: Iterable[Result], warnings: Sequence[str] = (), margin: float | None = None,
          **parity_options: Any) -> Report:
    """The report of ``results``; ``margin``: parity's equivalence margin (default 1 point of val_accuracy).

    ``parity_options`` go to ``parity.analyze`` as they are (``levels``, ``sd_bound``).
    """
    results = list(results)
    sweep = [r for r in results if scaling.is_sweep(r)]
    layouts = [r for r in results if not scaling.is_sweep(r) and r.distributed]
    single = [r for r in results if not scaling.is_sweep(r) and not r.distributed]
    shown = latest(single)
    steps, accuracy = _parallel(layouts)
    return Report(
        groups=_groups(shown),
        parity=parity.analyze(single, **({} if margin is None else {"margin": margin}), **parity_options),
        sweep=sweep, parallel_steps=steps, parallel_accuracy=accuracy,
        rows=[Row(flat(r), r.accuracy.history if r.accuracy else []) for r in results],
        older_files=len({r.file for r in single} - {r.file for r in shown}),
        warnings=list(warnings),
    )


# ------------------------------------------------------------------------------------------ lines

def _groups(shown: Sequence[Result]) -> list[Group]:
    """Per group, one Line per table line, fastest train step first."""
    grouped = by_group(r for r in shown if r.kind != "serve_batch1")
    for r in shown:
        if r.kind == "serve_batch1":
            # Batch-1 serving is its own group (batch size 1): shown on the line it was measured beside.
            beside = r.group._replace(batch_size=next((g.batch_size for g in grouped if g._replace(batch_size=1) ==
                                                       r.group._replace(batch_size=1)), 1))
            grouped.setdefault(beside, []).append(r)
    groups = []
    for key, members in sorted(grouped.items(), key=lambda item: tuple(str(v) for v in item[0])):
        per_line: dict[LineKey, list[Result]] = {}
        for r in members:
            per_line.setdefault(r.line, []).append(r)
        lines = [_line(line_members) for line_members in per_line.values()]
        medians = [line.train_median_ms for line in lines if line.train_median_ms]
        fastest = min(medians) if medians else None
        for line in lines:
            line.speed_ratio = line.train_median_ms / fastest if fastest and line.train_median_ms else None
        lines.sort(key=lambda s: (s.speed_ratio is None, s.speed_ratio or 0, s.backend))
        groups.append(Group(key, lines, members))
    return groups


def _line(members: Sequence[Result]) -> Line:
    """One table line from its run's results: each step kind over its processes (``aggregate``), the
    newest process of each kind for what a single process describes."""
    by_kind: dict[str, list[Result]] = {}
    for r in members:
        by_kind.setdefault(r.kind, []).append(r)
    newest = {kind: results[-1] for kind, results in by_kind.items()}
    summary = {kind: aggregate(results) for kind, results in by_kind.items() if kind != "accuracy"}
    train, predict, acc = newest.get("train_step"), newest.get("predict_step"), newest.get("accuracy")
    describing = train or predict or acc or next(iter(newest.values()))  # Keras's own benchmarks describe the line
    c = describing.context
    line = Line(backend=c.backend, backend_version=str(c.backend_version), device_name=c.device_name,
                keras=c.keras, variant=c.variant, incomplete=not all(r.run.finished for r in newest.values()),
                files=sorted({r.file for r in newest.values()}), lstm_kernel=c.kernel.name,
                jit_compile=str(c.jit_compile))
    train_all, predict_all, serve_all = (summary.get(k) for k in ("train_step", "predict_step", "serve_batch1"))
    if train:
        line.train_iqr_ms, line.first_step_s = train.ms("iqr"), train.step.first_step_s
        line.train_samples_per_s, line.harness_vs_plain = train.step.samples_per_s, train.step.harness_vs_plain
        line.train_energy_j_per_step = train.step.energy.j_per_step
        line.train_energy_source = train.step.energy.source
    if train_all:
        line.train_median_ms, line.train_ci_ms = train_all.median_ms, _interval(train_all)
        line.train_percentiles_ms = train_all.percentiles_ms
        line.train_samples_per_s = by_kind["train_step"][0].context.batch_size / train_all.median_ms * 1e3
    if predict:
        line.predict_iqr_ms = predict.ms("iqr")
    if predict_all:
        line.predict_median_ms, line.predict_ci_ms = predict_all.median_ms, _interval(predict_all)
        line.predict_percentiles_ms = predict_all.percentiles_ms
    if serve_all:
        line.serve_percentiles_ms = serve_all.percentiles_ms
        line.serve_queries = by_kind["serve_batch1"][0].stats.rounds
    for kind, newest_of_kind, all_of_kind in (("train", train, train_all), ("predict", predict, predict_all)):
        roof = newest_of_kind and newest_of_kind.step.roofline
        if roof and all_of_kind and all_of_kind.median_ms:
            median_s = all_of_kind.median_ms / 1e3
            setattr(line, f"{kind}_gflops", roof.flops / median_s / 1e9)
            setattr(line, f"{kind}_share", roof.bounds_s[roof.binding] / median_s)
            setattr(line, f"{kind}_binding", roof.binding)
            setattr(line, f"{kind}_intensity", roof.intensity)
            line.roof = roof.ceilings
    p = c.precision
    line.precision = f"matmul {p.matmul}, LSTM {p.rnn}" if p else None
    busy = [r for r in members if r.contention is not None and r.contention.contended]
    line.contended = tuple(sorted({r.kind for r in busy}))
    line.contended_share = max((r.contention.share for r in busy), default=None)
    line.train_phases = _phases(train)
    line.native_train_phases = _phases(newest.get("native_train_step"))
    line.processes = max((a.processes for a in (train_all, predict_all, serve_all) if a), default=1)
    line.keras_vs_native_train = _ratio(train_all, summary.get("native_train_step"))
    line.keras_vs_native_predict = _ratio(predict_all, summary.get("native_predict_step"))
    line.native_kernel_differs = _kernels_differ(train or predict, newest.get("native_train_step")
                                                 or newest.get("native_predict_step"))
    if acc:
        a = acc.accuracy
        line.has_accuracy, line.accuracy_status = True, a.status
        line.final_val_accuracy, line.target_accuracy = a.final_val_accuracy, a.target_accuracy
        line.time_to_accuracy_s = a.time_to_accuracy_s
        line.val_accuracy_per_epoch = tuple(h.get("val_accuracy") for h in a.history)
    return _with_seeds(line, by_kind.get("accuracy", []))


PHASES = ("forward", "backward", "optimizer", "overhead")


def _phases(r: Result | None) -> dict | None:
    """A step's phases in ms, the step they add up to, whether that matched the median, its op families in ms."""
    p = r and r.step and r.step.phases
    if not p:
        return None
    return {"forward": p.forward_s * 1e3, "backward": p.backward_s * 1e3, "optimizer": p.optimizer_s * 1e3,
            "overhead": p.overhead_s * 1e3, "step": p.step_s * 1e3, "median": p.measured_median_s * 1e3,
            "adds_up": p.adds_up, "tolerance": p.tolerance, "profiler": p.profiler,
            "families": {k: v * 1e3 for k, v in (p.op_families_s or {}).items()}}


def _interval(summary: Aggregate) -> tuple[float, float] | None:
    return None if summary.low_ms is None else (summary.low_ms, summary.high_ms)


def _ratio(keras_side: Aggregate | None, native_side: Aggregate | None) -> float | None:
    """Keras median over the native reference's median: what Keras's abstraction costs."""
    if keras_side and native_side and keras_side.median_ms and native_side.median_ms:
        return keras_side.median_ms / native_side.median_ms
    return None


def _kernels_differ(keras_result: Result | None, native_result: Result | None) -> str | None:
    """'Keras loop, native onednn' when the two ran different LSTM kernel families (as recorded), else None."""
    if keras_result is None or native_result is None:
        return None
    ours, theirs = keras_result.context.kernel.family, native_result.context.kernel.family
    if "unknown" in (ours, theirs) or ours == theirs:
        return None
    return f"Keras {ours}, native {theirs}"


def _with_seeds(line: Line, accuracy: list[Result]) -> Line:
    """Several seeds of the accuracy benchmark in one run: per epoch, the mean over the seeds that trained."""
    if accuracy:
        line.data_source = data_description(accuracy[0].context.dataset)
    per_seed: dict[int, Result] = {}  # a seed repeated (--repeat) counts once: its newest process
    for r in sorted(accuracy, key=started_order):
        per_seed[r.context.seed] = r
    trained = [r.accuracy for r in per_seed.values() if r.accuracy.status == "ok" and r.accuracy.history]
    line.accuracy_seeds = len(per_seed)
    if len(accuracy) > 1 and trained:
        epochs = min(len(a.history) for a in trained)
        line.val_accuracy_per_epoch = tuple(
            sum(a.history[i]["val_accuracy"] for a in trained) / len(trained) for i in range(epochs))
        line.final_val_accuracy = line.val_accuracy_per_epoch[-1] if epochs else None
        line.accuracy_status = "ok"
    return line


# --------------------------------------------------------------------------------- data-parallel

def _parallel(layouts: Sequence[Result]) -> tuple[list[ParallelStep], list[ParallelAccuracy]]:
    """The newest result of each data-parallel benchmark and group: train steps by backend, scaling and N."""
    newest = latest(layouts, key=lambda r: (r.name, r.group, r.line))
    steps = sorted((r for r in newest if r.kind == "train_step" and r.step),
                   key=lambda r: (r.backend, r.context.device_name, str(r.layout.scaling),
                                  r.layout.mode or "", r.layout.replicas))
    return [_parallel_step(r) for r in steps], [_parallel_accuracy(r) for r in newest if r.accuracy]


def _parallel_step(r: Result) -> ParallelStep:
    m, layout, s, e = r.step, r.layout, r.step.scaling, r.step.equivalence
    return ParallelStep(
        backend=r.backend, backend_version=str(r.context.backend_version), device_name=r.context.device_name,
        engine=str(layout.engine), layout=layout.name, mode=layout.mode or "",
        scaling=str(layout.scaling), replicas=layout.replicas, per_replica_batch=layout.per_replica_batch,
        global_batch=r.context.batch_size,
        slowest_replica_ms=s.slowest_replica_step_s * 1e3 if s and s.slowest_replica_step_s else None,
        samples_per_s=m.samples_per_s,
        reference_samples_per_s=s.reference_batch / s.reference_step_s if s and s.reference_step_s else None,
        efficiency=s and s.efficiency, max_weight_diff=e and e.max_weight_diff_vs_one_device,
        simulated=r.simulated, simulated_why=str(layout.simulated_why) if r.simulated else None)


def _parallel_accuracy(r: Result) -> ParallelAccuracy:
    return ParallelAccuracy(
        backend=r.backend, backend_version=str(r.context.backend_version), device_name=r.context.device_name,
        layout=r.layout.name, scaling=str(r.layout.scaling), global_batch=r.context.batch_size,
        first_epoch_s=r.accuracy.first_epoch_s, final_val_accuracy=r.accuracy.final_val_accuracy,
        simulated=r.simulated, simulated_why=str(r.layout.simulated_why) if r.simulated else None)


# ------------------------------------------------------------------------------------------- rows

def flat(r: Result) -> dict:
    """One benchmark as one flat dict of CSV_FIELDS (times in ms, per-epoch history left out)."""
    c, step, acc = r.context, r.step, r.accuracy
    row = {"file": r.file, "name": r.name, "kind": r.kind, "backend": c.backend, "device": c.device,
           "device_name": c.device_name, "profile": c.profile, "dataset": c.dataset["source"],
           "batch_size": c.batch_size, "maxlen": c.maxlen, "keras": c.keras, "backend_version": c.backend_version,
           "finished": r.run.finished, "started": r.run.started, "variant": c.variant, "jit_compile": c.jit_compile,
           "lstm_kernel": c.kernel.name, "rounds": r.stats and r.stats.rounds, "seed": c.seed}
    row |= {f"{stat}_ms": r.ms(stat) for stat in ("median", "iqr", "q1", "q3", "mean", "stddev", "min", "max")}
    row |= {"first_step_s": step and step.first_step_s, "samples_per_s": step and step.samples_per_s,
            "harness_vs_plain": step and step.harness_vs_plain}
    interval, tail = step and step.interval, step and step.tail
    row |= {"run_id": r.run.run_id, "repeat_index": r.run.repeat_index,
            "ci_half_width": interval and interval.half_width, "stop_reason": step and step.rounds.stop_reason,
            "measure_s": step and step.rounds.measure_s}
    row |= {f"{q}_ms": getattr(tail, f"{q}_s") * 1e3 if tail else None for q in ("p50", "p90", "p99")}
    row |= {"final_val_accuracy": acc and acc.final_val_accuracy, "target_accuracy": acc and acc.target_accuracy,
            "time_to_accuracy_s": acc and acc.time_to_accuracy_s, "status": acc and acc.status}
    row |= {"lstm_kernel_family": c.kernel.family, "lstm_kernel_check": c.kernel.check,
            "energy_j_per_step": step and step.energy.j_per_step,
            "samples_per_joule": step and step.energy.samples_per_joule, "energy_source": step and step.energy.source}
    scaled, equivalence = step and step.scaling, step and step.equivalence
    row |= {"layout": r.layout.name, "replicas": r.layout.replicas, "scaling": r.layout.scaling,
            "simulated": r.simulated,
            "slowest_replica_ms": scaled.slowest_replica_step_s * 1e3 if scaled and scaled.slowest_replica_step_s
            else None,
            "scaling_efficiency": scaled and scaled.efficiency,
            "max_weight_diff_vs_one_device": equivalence and equivalence.max_weight_diff_vs_one_device}
    roof = step and step.roofline
    row |= {"flops": roof and roof.flops, "bytes": roof and roof.bytes,
            "counted_vs_analytic": roof and roof.counted_vs_analytic,
            "achieved_gflops": roof and roof.achieved_flops_per_s / 1e9, "binding_bound": roof and roof.binding,
            "share_of_bound": roof and roof.share}
    busy = r.contention
    row |= {"contended": busy and busy.contended, "other_cpu_share": busy and busy.share}
    return row
