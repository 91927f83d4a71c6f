"""THE result file: typed records, one writer, one loader, the schema version check.

A result file is pytest-benchmark's own JSON (so ``pytest-benchmark compare`` and CI tools read it)
plus two things of ours:

* a ``kerasbench`` block for the run (``RunInfo``): schema version, settings, whether it finished;
* in every benchmark's ``extra_info`` a ``Record``: the benchmark's ``kind``, its ``Context``
  (where and how it ran) and its kind's metrics (``StepMetrics`` or ``AccuracyMetrics``). Both
  nest small records by concern (the layout, the kernel, the rounds, the interval, the energy...),
  each present in full or, where a benchmark has no such thing, None.

Writers build records; ``write`` stores them atomically (the file is rewritten after every
benchmark, so a crash keeps everything measured before it). Readers (report, plots, compare)
call ``load`` and get ``Result`` objects; nothing else parses these files. A file of the current
schema with a key missing raises ``SchemaError`` naming the file and the key; files of older schemas
are upgraded as they are read (``upgrade``: schema 1 to 2 to 3). This module imports nothing of how
timing or training works.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
import tempfile
import typing
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

SCHEMA_VERSION = 3
RUN_ID_ENV = "KERASBENCH_RUN_ID"  # set by `python -m bench run` for every process of one run
REPEAT_INDEX_ENV = "KERASBENCH_REPEAT_INDEX"  # which repeat (0..N-1) of that run a process is
ENVIRONMENT_ENV = "KERASBENCH_ENVIRONMENT"  # the label of the environment a process runs in ("" for the project venv)
STEP_KINDS = ("train_step", "predict_step", "native_train_step", "native_predict_step", "serve_batch1")
KINDS = (*STEP_KINDS, "accuracy")
REPORT_MARKER = "kerasbench_report"  # report.py's JSON output: not a result file, skipped silently
CALIBRATION_MARKER = "kerasbench_calibration"  # calibrate.py's noise, kept beside the results: skipped too


class SchemaError(ValueError):
    """A result file of the current schema lacks a key or has a wrong value; names file and key."""


# ------------------------------------------------------------------------------------------ records

def layout_name(mode: str, replicas: int) -> str:
    """"dp4" (N devices in one process), "mp2" (N processes) or "single": the one spelling of a layout's name."""
    if mode == "single":
        return "single"
    return f"{'dp' if mode == 'devices' else 'mp'}{replicas}"


@dataclass(frozen=True)
class ReplicaLayout:
    """How the replicas of one benchmark were laid out; one device without an engine by default.

    A data-parallel engine (``DataParallel.describe``) builds the dict this is made from, with the
    same keys: ``ReplicaLayout(**described)``.
    """

    engine: str | None = None  # the data-parallel engine; None on one device without one
    mode: str = "single"  # "single", "devices" (N devices, one process) or "processes" (N processes)
    replicas: int = 1
    processes: int = 1
    devices_per_process: int = 1
    simulated: bool = False  # several devices simulated on one CPU
    simulated_why: str | None = None
    scaling: str | None = None  # "weak" (per-replica batch kept) or "strong" (global batch kept)
    per_replica_batch: int | None = None
    global_batch: int | None = None
    devices: list = field(default_factory=list)  # the devices the engine drove, by name
    step: str | None = None  # which function one timed step calls
    collectives: str | None = None  # how the replicas exchange gradients
    rank_recording: int = 0  # the process whose record this is
    host: str | None = None
    keras_train_function: str | None = None  # TensorFlow, several processes: whether Keras's own step runs there

    @property
    def distributed(self) -> bool:
        """Whether it ran through a data-parallel engine (--devices / --processes), even at N = 1."""
        return self.engine is not None

    @property
    def name(self) -> str:
        return layout_name(self.mode, self.replicas)


@dataclass(frozen=True)
class Kernel:
    """Which LSTM implementation ran: the spy's label, checked against the executed program (bench.backends)."""

    name: str  # as the spy saw Keras pick it; a native reference names its own
    observed: str = "not checked"  # "<family>: <evidence>" from the program, or "not checked: <why>"
    check: str = "not checked"  # "agrees", "MISMATCH: ..." or "not checked: ..."
    family: str = "unknown"  # what ran: cudnn, cuda, onednn, aten, loop or "mixed (...)"


@dataclass(frozen=True)
class Memory:
    """What the benchmark added to memory, in MiB (bench.backends: Adapter.memory_stats)."""

    host_rss_growth_mib: float | None = None
    host_peak_rss_mib: float | None = None  # the process's peak so far: a ceiling for this benchmark
    device_peak_mib: float | None = None  # GPU: the backend allocator's peak
    device_peak_scope: str | None = None  # what device_peak_mib covers, where not "since the benchmark began"


@dataclass(frozen=True)
class Precision:
    """The arithmetic float32 matmuls (Dense, LSTM projections) and the LSTM's recurrence ran in: fp32, tf32, bf16
    or fp16. Derived from the dtype policy, the device and the backend's TF32 switches by the backend's own
    rules (``how`` says which); no backend reports the precision a kernel ran in."""

    matmul: str
    rnn: str
    how: str


@dataclass(frozen=True)
class Context:
    """Where and how one benchmark ran: what makes two numbers comparable, or not."""

    backend: str
    backend_version: str
    keras: str
    device: str  # "cpu" or "gpu", as resolved
    device_name: str
    profile: str
    variant: str
    dataset_requested: str
    device_requested: str
    batch_size: int  # as this benchmark ran it (a sweep point may differ from the settings)
    maxlen: int
    epochs: int
    threads: int
    seed: int
    model_config: dict
    dataset: dict  # bench.data.Dataset.info(): "source" always, the rest by source
    jit_compile: bool | str  # what jit_compile="auto" resolved to
    kernel: Kernel
    memory: Memory
    runtime: dict = field(default_factory=dict)  # threads, denormal handling, float32 matmul precision (observed)
    layout: ReplicaLayout = field(default_factory=ReplicaLayout)
    precision: Precision | None = None  # None in files that predate it


@dataclass(frozen=True)
class Rounds:
    """How the timed rounds ran and why they stopped (bench.timing.measure_step)."""

    mode: str = "fixed"  # "fixed" or "adaptive"
    stop_reason: str | None = None  # "fixed", "target", "max rounds", "max seconds"; None in older files
    timed_s: float | None = None  # wall seconds of the timed rounds
    measure_s: float | None = None  # wall seconds after the first call: warm-up, timed rounds, plain loop


@dataclass(frozen=True)
class Tail:
    """Tail latency of the timed rounds, in seconds."""

    p50_s: float
    p90_s: float
    p99_s: float
    method: str  # bench.stats.PERCENTILE_METHOD


@dataclass(frozen=True)
class Interval:
    """The median's confidence interval over the timed rounds."""

    confidence: float
    method: str  # bench.stats.ROUNDS_CI_METHOD (older files: QUANTILE_CI_METHOD)
    low_s: float | None = None  # None where the rounds are too few for an interval
    high_s: float | None = None
    half_width: float | None = None  # relative to the median: 0.02 means ±2%
    target: float | None = None  # adaptive rounds stop once half_width is at most this; None for fixed rounds


@dataclass(frozen=True)
class Energy:
    """Energy over the timed rounds, from a hardware counter read before and after them (bench.energy).

    NVML's total energy on GPU, RAPL on CPU. Never an estimate: None where no counter was readable.
    """

    source: str = "unavailable: not measured"  # the counter, or "unavailable: <why>"
    j_per_step: float | None = None
    samples_per_joule: float | None = None


@dataclass(frozen=True)
class Serving:
    """Batch-1 serving: how its query count was sized (bench.stats.QuerySizing) and the p99's interval."""

    queries: int
    percentile: float
    margin: float  # in quantile levels: 0.005 means the interval lies within p98.5 .. p99.5
    confidence: float
    sizing_method: str | None = None
    p99_low_s: float | None = None  # the p99's interval (bench.stats.TAIL_CI_METHOD); None where too few queries
    p99_high_s: float | None = None
    # The queries' measured lag-1 autocorrelation, and what the p99's interval covers given it
    # (bench.stats.tail_interval_label): its confidence, or "below" it for strongly correlated queries.
    queries_lag1: float | None = None
    p99_interval: str | None = None


@dataclass(frozen=True)
class Scaling:
    """A data-parallel train step (the layout says how many replicas): samples_per_s is the global batch
    over the slowest replica's step, against one device timed in the same process (rank 0)."""

    slowest_replica_step_s: float  # per step the slowest replica's time, then the median
    rank_step_s: list  # each process's median step time, in rank order
    reference_batch: int  # weak scaling: the per-replica batch; strong: the global batch
    reference_step_s: float | None = None  # one device at reference_batch, median; rank 0 only
    efficiency: float | None = None  # samples/s at N over N times the reference's samples/s; rank 0 only


@dataclass(frozen=True)
class Equivalence:
    """Before the timing: data-parallel steps against as many on one device, on the same global batches."""

    steps: int
    ranks_agree: bool  # every process's weights had the same checksums
    max_weight_diff_vs_one_device: float | None = None  # largest absolute difference of any weight; rank 0 only


@dataclass(frozen=True)
class Roofline:
    """The step's work against this machine's ceilings (bench/work.py, bench/ceilings.py, bench/roofline.py).

    Work is analytic (FLOPs; bytes are a lower bound), checked against the backend's own counter where
    it has one (``counter`` says which, or why none). Each bound is a floor on the step's time in
    seconds (None where not observable); ``share`` is the tightest bound over the measured median.
    """

    flops: float
    matmul_flops: float
    bytes: float
    intensity: float  # FLOPs per byte
    counted_matmul_flops: float | None
    counter: str
    counted_vs_analytic: float | None
    dispatches: int | None
    dispatch_how: str
    achieved_flops_per_s: float
    ceilings: dict  # bench.ceilings.Ceilings, as measured (or a spec value, labelled)
    bounds_s: dict  # compute, recurrence, memory, dispatch
    binding: str
    share: float
    phases: dict = field(default_factory=dict)  # analytic FLOPs of forward, backward, optimizer (None: no such phase)


@dataclass(frozen=True)
class Contention:
    """Other processes' use of the CPUs a benchmark ran on, while its timed rounds ran (bench/contention.py)."""

    wall_s: float
    cpus: int  # the CPUs this process may run on
    other_cpu_s: float  # CPU time other processes used on them
    steal_s: float  # time a hypervisor gave them to other machines
    share: float  # (other_cpu_s + steal_s) / (wall_s * cpus)
    contended: bool  # share (or the GPU's) >= threshold: compare does not gate the line
    threshold: float
    source: str
    gpu_other_sm_percent: float | None = None  # GPU runs: other processes' SM utilisation (NVML), percent
    gpu_source: str | None = None  # how that was read, or why it could not be


@dataclass(frozen=True)
class Phases:
    """A train step split into phases by timing variants that stop after each (bench/phases.py), seconds."""

    forward_s: float
    backward_s: float
    optimizer_s: float
    overhead_s: float  # the full step minus its lean variant: framework, metrics, dispatch (may be negative)
    step_s: float  # the step timed beside the variants: the phases add up to it
    measured_median_s: float  # the benchmark's own median
    tolerance: float
    adds_up: bool  # step_s within tolerance of measured_median_s
    rounds: int
    op_families_s: dict | None  # seconds per step by operation family, from the backend's profiler
    profiler: str  # what profiled, or "not profiled: <why>"
    measure_s: float  # what explaining cost, wall clock


@dataclass(frozen=True)
class StepMetrics:
    """A step benchmark (train, predict, or their native references): one timed round is one step."""

    staged_batches: int
    first_step_s: float  # the trace/compile call, timed apart from the statistics
    samples_per_s: float  # data-parallel: the global batch over Scaling.slowest_replica_step_s
    plain_loop_median_s: float
    harness_vs_plain: float  # harness median / plain perf_counter loop median of the same step
    implementation: str = "keras"  # or "native"
    native_kernel: str | None = None
    rounds: Rounds = field(default_factory=Rounds)
    tail: Tail | None = None  # None in files that predate it
    interval: Interval | None = None
    energy: Energy = field(default_factory=Energy)
    serving: Serving | None = None  # serve_batch1 only
    scaling: Scaling | None = None  # data-parallel layouts only
    equivalence: Equivalence | None = None  # data-parallel layouts only
    roofline: Roofline | None = None  # None in files that predate it, and in data-parallel layouts
    phases: Phases | None = None  # --explain yes, train steps only
    contention: Contention | None = None  # None in files that predate it


@dataclass(frozen=True)
class AccuracyMetrics:
    """The accuracy benchmark: one timed round is one epoch of fit plus validation."""

    status: str  # "ok" or "failed: <why>"
    history: list  # one dict per epoch: epoch, seconds, loss, accuracy, val_loss, val_accuracy
    final_val_accuracy: float | None
    target_accuracy: float
    time_to_accuracy_s: float | None
    train_samples_used: int
    val_samples_used: int
    first_epoch_s: float | None
    contention: Contention | None = None  # over the timed epochs; None in files that predate it


Metrics = StepMetrics | AccuracyMetrics


@dataclass(frozen=True)
class Record:
    """What one benchmark records in its extra_info."""

    kind: str
    context: Context
    metrics: Metrics

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown benchmark kind {self.kind!r}; one of {', '.join(KINDS)}")
        expected = AccuracyMetrics if self.kind == "accuracy" else StepMetrics
        if not isinstance(self.metrics, expected):
            raise TypeError(f"a {self.kind} record takes {expected.__name__}, not {type(self.metrics).__name__}")

    def to_json(self) -> dict:
        return {"kind": self.kind, "context": asdict(self.context), "metrics": asdict(self.metrics)}


@dataclass(frozen=True)
class PackageSet:
    """The exact package set of one process (bench.packages) and how its environment was made."""

    id: str  # a hash of ``installed``: two processes share it exactly when their sets are the same
    installed: list  # "name==version" of every distribution the process would import from, sorted
    source: str = "project venv"  # or the environment's label, e.g. "overlay 1a2b3c4d5e6f7a8b: keras==3.12.0"


@dataclass(frozen=True)
class RunInfo:
    """The ``kerasbench`` block: one pytest process under one backend."""

    backend: str
    device: str
    device_name: str
    settings: dict
    started: str  # ISO time
    updated: str
    finished: bool  # False while running, and forever if the run was killed
    exitstatus: int | None
    argv: list
    unrecorded: list = field(default_factory=list)  # benchmarks timed but not recorded (failed mid-way)
    schema_version: int = SCHEMA_VERSION
    # Repeats: the processes of one `python -m bench run --repeat N` share a run_id (RUN_ID_ENV) and
    # are numbered 0..N-1 (REPEAT_INDEX_ENV); "" for a process started on its own, which is its own run.
    run_id: str = ""
    repeat_index: int = 0
    # Where it was measured (bench.fingerprint); {} in files written before it was recorded.
    fingerprint: dict = field(default_factory=dict)
    # The device and its state, observed (bench.gpu.device_facts): on GPU driver, CUDA, cuDNN, clocks,
    # temperature, power and throttle reasons before the first benchmark and after the latest one.
    device_facts: dict = field(default_factory=dict)
    # The process's exact package set and environment (bench.packages); None in files written before it.
    packages: PackageSet | None = None

    @classmethod
    def now(cls, *, backend: str, device: dict, settings: dict, started: datetime, finished: bool,
            exitstatus: int | None, unrecorded: Sequence[str] = (), run_id: str = "", repeat_index: int = 0,
            fingerprint: dict | None = None, device_facts: dict | None = None,
            packages: PackageSet | None = None) -> RunInfo:
        return cls(backend=backend, device=device["device"], device_name=device["device_name"], settings=settings,
                   started=started.isoformat(), updated=datetime.now(timezone.utc).isoformat(), finished=finished,
                   exitstatus=exitstatus, argv=list(sys.argv), unrecorded=list(unrecorded), run_id=run_id,
                   repeat_index=repeat_index, fingerprint=dict(fingerprint or {}),
                   device_facts=dict(device_facts or {}), packages=packages)


@dataclass(frozen=True)
class Stats:
    """pytest-benchmark's statistics of the timed rounds, in seconds."""

    median: float
    iqr: float
    q1: float
    q3: float
    mean: float
    stddev: float
    min: float
    max: float
    rounds: int
    data: tuple = ()  # every round's time, when the file holds them


class GroupKey(NamedTuple):
    """What makes two benchmarks comparable: same profile, data source, shape and device kind."""

    profile: str
    dataset: str
    batch_size: int
    maxlen: int
    device: str

    @property
    def label(self) -> str:
        return (f"{self.profile} profile · {self.dataset} data · batch {self.batch_size} · "
                f"maxlen {self.maxlen} · {self.device}")

    @property
    def slug(self) -> str:
        return f"{self.profile}-{self.dataset}-bs{self.batch_size}-len{self.maxlen}-{self.device}"


@dataclass(frozen=True)
class Result:
    """One benchmark of one result file, as read back."""

    file: str
    name: str
    run: RunInfo
    stats: Stats | None  # None only where a file held no statistics
    record: Record

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def context(self) -> Context:
        return self.record.context

    @property
    def metrics(self) -> Metrics:
        return self.record.metrics

    @property
    def backend(self) -> str:
        return self.context.backend

    @property
    def group(self) -> GroupKey:
        c = self.context
        return GroupKey(c.profile, str(c.dataset["source"]), c.batch_size, c.maxlen, c.device)

    @property
    def line(self) -> tuple[str, str, str, str]:
        """Which line of a comparison table this belongs to."""
        c = self.context
        return c.backend, c.device_name, c.keras, c.variant

    def ms(self, stat: str) -> float | None:
        """A statistic (median, iqr, q1, ...) in milliseconds, or None without statistics."""
        return None if self.stats is None else getattr(self.stats, stat) * 1e3

    @property
    def median_ms(self) -> float | None:
        return self.ms("median")

    @property
    def step(self) -> StepMetrics | None:
        return self.metrics if isinstance(self.metrics, StepMetrics) else None

    @property
    def accuracy(self) -> AccuracyMetrics | None:
        return self.metrics if isinstance(self.metrics, AccuracyMetrics) else None

    @property
    def contention(self) -> Contention | None:
        """What other processes took of the CPUs while the timed rounds ran (None in older files)."""
        return self.metrics.contention

    @property
    def layout(self) -> ReplicaLayout:
        return self.context.layout

    @property
    def distributed(self) -> bool:
        """Whether it ran through a data-parallel engine (--devices / --processes), even at N = 1."""
        return self.layout.distributed

    @property
    def simulated(self) -> bool:
        """Several devices simulated on one CPU (host-platform devices, logical CPUs, processes sharing it)."""
        return self.layout.simulated


@dataclass
class Run:
    """One readable result file and its benchmarks."""

    path: Path
    info: RunInfo
    results: list[Result]
    commit_info: dict = field(default_factory=dict)  # pytest-benchmark's: id, time, dirty, branch, ...


# -------------------------------------------------------------------------------------------- writing

def result_path(results_dir: str | os.PathLike, label: str, profile: str, started: datetime) -> Path:
    """``<results>/<backend>-<device>-<profile>_<time>_<pid>.json``: runs never share a file."""
    stamp = started.strftime("%Y%m%dT%H%M%S")
    return Path(results_dir) / f"{label}-{profile}_{stamp}_{os.getpid()}.json"


def check_writable(results_dir: str | os.PathLike) -> None:
    """Fail before any benchmark runs if results cannot be written."""
    path = Path(results_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise OSError(
            f"cannot write results to {path}: {exc.strerror or exc}. Choose another folder with "
            "--results-dir or KERASBENCH_RESULTS."
        ) from None


def write(path: str | os.PathLike, benchmark_json: dict, run: RunInfo) -> None:
    """Write a result file: pytest-benchmark's JSON document plus our run block, atomically.

    Every benchmark in ``benchmark_json`` must carry a ``Record`` (``Record.to_json``) as its
    extra_info: what is written here is what ``load`` reads back.
    """
    for bench in benchmark_json.get("benchmarks", []):
        _parse_record(bench.get("extra_info") or {}, f"benchmark {bench.get('name')}")
    write_json_atomic(path, {**benchmark_json, "kerasbench": asdict(run)})


def write_json_atomic(path: str | os.PathLike, document: Any) -> None:
    """JSON with null for NaN/Infinity (JavaScript readers reject those tokens), written atomically."""
    write_text_atomic(path, json_text(document))


def json_text(document: Any) -> str:
    """``document`` as JSON text with null for NaN/Infinity: what every JSON kerasbench writes or prints."""
    return json.dumps(_finite(document), indent=2, default=_jsonable, allow_nan=False)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write to a temp file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for everyone to read
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # NumPy scalars and arrays
        return _finite(value.tolist())
    return str(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# -------------------------------------------------------------------------------------------- loading

def load(paths: Iterable[str | os.PathLike]) -> tuple[list[Run], list[str]]:
    """Read result files and folders (``*.json`` directly inside); return runs and warnings.

    What is not a kerasbench result of a known schema (unreadable, truncated, foreign JSON, another
    version) is skipped with a warning naming it. A file of the current schema that lacks a key
    raises ``SchemaError``: that is a bug in a writer, and a default would hide it.
    """
    runs: list[Run] = []
    warnings: list[str] = []
    seen: set[Path] = set()
    for path in _expand(paths, warnings):
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            warnings.append(f"{path}: skipped, unreadable ({getattr(exc, 'strerror', None) or exc})")
            continue
        except json.JSONDecodeError as exc:
            warnings.append(f"{path}: skipped, not valid JSON (truncated?): {exc.msg} at line {exc.lineno}")
            continue
        if isinstance(document, dict) and (REPORT_MARKER in document or CALIBRATION_MARKER in document):
            continue
        problem = _not_ours(document)
        if problem:
            warnings.append(f"{path}: skipped, {problem}")
            continue
        document = upgrade(document)
        try:
            runs.append(_parse_run(path, document))
        except SchemaError as exc:
            raise SchemaError(f"{path}: {exc}") from None
    return runs, warnings


def results_of(runs: Iterable[Run]) -> list[Result]:
    return [result for run in runs for result in run.results]


def _expand(paths: Iterable[str | os.PathLike], warnings: list[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # Not recursive: results/baseline/ must not mix into a report of results/.
            inside = sorted(p for p in path.glob("*.json") if p.is_file() and not p.name.startswith("."))
            if not inside:
                warnings.append(f"{path}: no result files (*.json) in this folder")
            found.extend(inside)
        elif path.exists():
            found.append(path)
        else:
            warnings.append(f"{path}: skipped, no such file or folder")
    return found


def _not_ours(document: Any) -> str | None:
    """Why a parsed document is not a result file this version reads, or None."""
    if not isinstance(document, dict) or not isinstance(document.get("benchmarks"), list):
        return "not a pytest-benchmark result (no 'benchmarks' list)"
    block = document.get("kerasbench")
    if not isinstance(block, dict):
        return "not a kerasbench result (no 'kerasbench' block)"
    version = block.get("schema_version")
    readable = (*UPGRADERS, SCHEMA_VERSION)
    if version not in readable:
        return f"schema_version {version!r}, this kerasbench reads {', '.join(map(str, readable))}"
    return None


def _parse_run(path: Path, document: dict) -> Run:
    info = _build(RunInfo, document["kerasbench"], "kerasbench")
    results = []
    for i, bench in enumerate(document["benchmarks"]):
        if not isinstance(bench, dict) or not isinstance(bench.get("name"), str):
            raise SchemaError(f"benchmarks[{i}] has no name")
        where = f"benchmark {bench['name']}"
        stats = bench.get("stats")
        results.append(Result(
            file=str(path), name=bench["name"], run=info,
            stats=None if stats is None else _build(Stats, _keys(stats, f"{where}: stats"), f"{where}: stats"),
            record=_parse_record(_keys(bench.get("extra_info"), f"{where}: extra_info"), where),
        ))
    commit_info = document.get("commit_info")
    return Run(path, info, results, commit_info if isinstance(commit_info, dict) else {})


def _parse_record(extra: dict, where: str) -> Record:
    kind = extra.get("kind")
    if kind not in KINDS:
        raise SchemaError(f"{where}: extra_info.kind is {kind!r}, not one of {', '.join(KINDS)}")
    metrics_type = AccuracyMetrics if kind == "accuracy" else StepMetrics
    return Record(
        kind=kind,
        context=_build(Context, _keys(extra.get("context"), f"{where}: extra_info.context"),
                       f"{where}: extra_info.context"),
        metrics=_build(metrics_type, _keys(extra.get("metrics"), f"{where}: extra_info.metrics"),
                       f"{where}: extra_info.metrics"),
    )


def _keys(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise SchemaError(f"{where} is missing or not an object")
    return value


def _build(cls: type, data: dict, where: str) -> Any:
    """``cls(**data)`` for the dataclass's fields, nested records built the same way; a field without a
    default must be present. Keys the record does not know are ignored."""
    if not isinstance(data, dict):
        raise SchemaError(f"{where} is not an object")
    nested = _nested_records(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            value = data[f.name]
            if f.name in nested and value is not None:
                value = _build(nested[f.name], value, f"{where}.{f.name}")
            values[f.name] = tuple(value) if f.name == "data" else value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SchemaError(f"{where}: missing key {f.name!r}")
    return cls(**values)


@functools.cache
def _nested_records(cls: type) -> dict[str, type]:
    """The fields of ``cls`` that hold a record (or None): field name -> the record's class."""
    hints = typing.get_type_hints(cls)
    found = {}
    for f in dataclasses.fields(cls):
        records = [t for t in (typing.get_args(hints[f.name]) or (hints[f.name],)) if dataclasses.is_dataclass(t)]
        if records:
            found[f.name] = records[0]
    return found


# ------------------------------------------------------------------------------------- older schemas
# Each upgrader takes a document of its schema to the next one, never to the current one directly,
# so that it describes a frozen schema: the keys it reads are spelled out here, not taken from the
# records above, which move on.

_V2_CONTEXT = ("backend", "backend_version", "keras", "device", "device_name", "profile", "variant",
               "dataset_requested", "device_requested", "batch_size", "maxlen", "epochs", "threads", "seed",
               "model_config", "dataset", "jit_compile", "lstm_kernel", "memory", "lstm_kernel_observed",
               "lstm_kernel_check", "lstm_kernel_family", "runtime", "layout")
_V2_STEP = ("staged_batches", "first_step_s", "samples_per_s", "plain_loop_median_s", "harness_vs_plain",
            "implementation", "native_kernel", "p50_s", "p90_s", "p99_s", "percentile_method", "rounds_mode",
            "stop_reason", "ci_low_s", "ci_high_s", "ci_half_width", "ci_target", "ci_confidence", "ci_method",
            "timed_s", "measure_s", "queries", "p99_ci_low_s", "p99_ci_high_s", "energy_j_per_step",
            "samples_per_joule", "energy_source", "replicas", "per_replica_batch", "slowest_replica_step_s",
            "rank_step_s", "reference_step_s", "reference_batch", "scaling_efficiency", "equivalence_steps",
            "max_weight_diff_vs_one_device", "ranks_agree")
_V2_ACCURACY = ("status", "history", "final_val_accuracy", "target_accuracy", "time_to_accuracy_s",
                "train_samples_used", "val_samples_used", "first_epoch_s")
_V1_MEMORY = ("host_rss_growth_mib", "host_peak_rss_mib", "device_peak_mib", "device_peak_scope")


def upgrade_v1(document: dict) -> dict:
    """A schema-1 document (flat extra_info, kind in the test name) in schema 2's layout."""
    benchmarks = []
    for bench in document["benchmarks"]:
        info = dict(bench.get("extra_info") or {})
        if not info:
            continue  # schema 1 kept benchmarks that failed before recording: nothing to report
        kind = str(bench["name"]).split("[", 1)[0].removeprefix("test_")
        backend = info.get("backend")
        context = {k: v for k, v in info.items() if k in _V2_CONTEXT}
        context["backend_version"] = info.get(backend)
        context["memory"] = {k: info[k] for k in _V1_MEMORY if k in info}
        wanted = _V2_ACCURACY if kind == "accuracy" else _V2_STEP
        metrics = {k: v for k, v in info.items() if k in wanted}
        benchmarks.append({**bench, "extra_info": {"kind": kind, "context": context, "metrics": metrics}})
    return {**document, "benchmarks": benchmarks, "kerasbench": {**document["kerasbench"], "schema_version": 2}}


# Schema 2's flat StepMetrics keys, by the schema-3 record that holds them: {record: {old key: new field}}.
# A record that may be absent is made when its marker key (first) holds a value.
_V2_STEP_GROUPS: dict[str, dict[str, str]] = {
    "rounds": {"rounds_mode": "mode", "stop_reason": "stop_reason", "timed_s": "timed_s", "measure_s": "measure_s"},
    "tail": {"p99_s": "p99_s", "p50_s": "p50_s", "p90_s": "p90_s", "percentile_method": "method"},
    "interval": {"ci_confidence": "confidence", "ci_method": "method", "ci_low_s": "low_s", "ci_high_s": "high_s",
                 "ci_half_width": "half_width", "ci_target": "target"},
    "energy": {"energy_source": "source", "energy_j_per_step": "j_per_step", "samples_per_joule": "samples_per_joule"},
    "serving": {"queries": "queries", "p99_ci_low_s": "p99_low_s", "p99_ci_high_s": "p99_high_s"},
    "scaling": {"slowest_replica_step_s": "slowest_replica_step_s", "rank_step_s": "rank_step_s",
                "reference_batch": "reference_batch", "reference_step_s": "reference_step_s",
                "scaling_efficiency": "efficiency"},
    "equivalence": {"equivalence_steps": "steps", "ranks_agree": "ranks_agree",
                    "max_weight_diff_vs_one_device": "max_weight_diff_vs_one_device"},
}
_V2_ALWAYS = ("rounds", "energy")  # records every schema-3 step benchmark has (their fields have defaults)
# Schema 2 kept these twice, in the metrics and in the layout; schema 3 keeps the layout's.
_V2_DUPLICATES = ("replicas", "per_replica_batch")
_V2_KERNEL = {"lstm_kernel": "name", "lstm_kernel_observed": "observed", "lstm_kernel_check": "check",
              "lstm_kernel_family": "family"}


def upgrade_v2(document: dict) -> dict:
    """A schema-2 document (flat StepMetrics, dict layout and memory) in schema 3's nested records.

    What is not shaped as schema 2 is left as it is, for the parser to name.
    """
    benchmarks = []
    for bench in document["benchmarks"]:
        extra = bench.get("extra_info") if isinstance(bench, dict) else None
        if isinstance(extra, dict):
            extra = dict(extra)
            if isinstance(extra.get("context"), dict):
                extra["context"] = _v2_context(extra["context"])
            if isinstance(extra.get("metrics"), dict) and extra.get("kind") != "accuracy":
                extra["metrics"] = _v2_step(extra["metrics"])
            bench = {**bench, "extra_info": extra}
        benchmarks.append(bench)
    return {**document, "benchmarks": benchmarks, "kerasbench": {**document["kerasbench"], "schema_version": 3}}


def _v2_context(context: dict) -> dict:
    upgraded = {k: v for k, v in context.items() if k not in _V2_KERNEL}
    if "lstm_kernel" in context:
        upgraded["kernel"] = {new: context[old] for old, new in _V2_KERNEL.items() if old in context}
    return upgraded


def _v2_step(metrics: dict) -> dict:
    grouped = {key for keys in _V2_STEP_GROUPS.values() for key in keys}
    upgraded = {k: v for k, v in metrics.items() if k not in grouped and k not in _V2_DUPLICATES}
    for record, keys in _V2_STEP_GROUPS.items():
        if record not in _V2_ALWAYS and metrics.get(next(iter(keys))) is None:
            continue
        upgraded[record] = {new: metrics[old] for old, new in keys.items() if old in metrics}
    serving = upgraded.get("serving")
    if serving is not None and isinstance(serving.get("queries"), dict):  # schema 2: stats.QuerySizing as a dict
        sizing = serving.pop("queries")
        serving.update({k: sizing[k] for k in ("queries", "percentile", "margin", "confidence") if k in sizing},
                       sizing_method=sizing.get("method"))
    return upgraded


UPGRADERS = {1: upgrade_v1, 2: upgrade_v2}  # schema version -> the upgrader to the next one


def upgrade(document: dict) -> dict:
    """A readable document of any schema in the current one, through each upgrader in turn."""
    version = document["kerasbench"].get("schema_version")
    while version in UPGRADERS:
        document = UPGRADERS[version](document)
        version = document["kerasbench"]["schema_version"]
    return document
