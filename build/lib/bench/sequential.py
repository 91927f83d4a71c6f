"""Seeds until the answer settles (``--seeds auto``): a group-sequential design over batches of seeds.

The accuracy benchmark runs in batches of seeds (0-1, then 2-3, ...), every backend on each batch.
After each batch (a "look") every pair of backends is judged on all seeds so far (``bench.parity``),
at the nominal levels a group-sequential boundary allows at that look (``stats.look_levels``: an
alpha-spending function, O'Brien-Fleming or Pocock), so that looking after every batch keeps each
claim's error at its stated alpha. The run stops when every pair's val_accuracy verdict has settled
(equivalent, or different within or beyond the margin), when the seeds reach the design's horizon,
or when the next batch would pass the time cap.

The horizon is planned, before any seed runs, from a stated effect and a stated upper bound of the
per-seed differences' SD (``stats.seeds_for_equivalence``: TOST's power from statsmodels), capped
by ``max_seeds``; never from the data. A pair still unsettled at the end says so, with the seeds
its SD bound would need. A pair's verdict is the one of the look where it first settled.

``run_until_settled`` takes the function that runs a batch of seeds and the one that analyses the
results so far, so the design is tested without training; ``python -m bench run --seeds auto``
passes it the runner (``bench.commands.run``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import parity, stats
from bench.results import REPORT_MARKER, load, results_of, write_json_atomic
from bench.tables import table

# The paired SD of val_accuracy a plan assumes unless told: 1 point. On the parity profile a backend's
# final val_accuracy varies by about 1.6 points between seeds, and JAX and TensorFlow correlated at
# r = 0.86 over seeds 0-4, so their per-seed differences vary by about 1.6 * sqrt(2 * 0.14) = 0.85 point.
DEFAULT_SD_BOUND = 0.01
DEFAULT_BATCH = 2  # seeds per look: each look costs a process start per backend, and is cheap besides
DEFAULT_MAX_SEEDS = 20
DEFAULT_SPENDING = "obrien-fleming"
DESIGN_FILE = "sequential.json"  # in the run folder: lets `bench parity` read the run as designed


@dataclass(frozen=True)
class Design:
    """A group-sequential plan: what is compared, at what level, how the seeds come and when they stop."""

    margin: float = parity.DEFAULT_MARGIN  # val_accuracy difference that still counts as equivalent
    time_margin: float = parity.DEFAULT_TIME_MARGIN
    sd_bound: float = DEFAULT_SD_BOUND  # stated upper bound of the per-seed differences' SD (val_accuracy)
    difference: float = 0.0  # the true difference the plan is powered for
    alpha: float = stats.DEFAULT_ALPHA
    power: float = stats.DEFAULT_POWER
    batch: int = DEFAULT_BATCH
    max_seeds: int = DEFAULT_MAX_SEEDS
    max_seconds: float | None = None
    spending: str = DEFAULT_SPENDING
    first_seed: int = 0

    def __post_init__(self) -> None:
        if self.margin <= 0 or self.sd_bound <= 0:
            raise ValueError("the margin and the SD bound must be above 0")
        if abs(self.difference) >= self.margin:
            raise ValueError("the difference planned for must lie inside the margin")
        if self.batch < 1 or self.max_seeds < 2:
            raise ValueError("a batch needs a seed and the cap two")
        if self.spending not in stats.SPENDING:
            raise ValueError(f"unknown spending function {self.spending!r}; one of {', '.join(stats.SPENDING)}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError("the time cap must be above 0")

    @property
    def planned(self) -> int | None:
        """Seeds a fixed design needs for ``power`` at ``difference`` with a paired SD of ``sd_bound``."""
        return stats.seeds_for_equivalence(self.sd_bound, self.margin, self.difference, self.alpha, self.power)

    @property
    def horizon(self) -> int:
        """The last look: the plan's seeds, or the cap when that is lower (or the plan has no answer)."""
        return min(self.planned or self.max_seeds, self.max_seeds)

    @property
    def looks(self) -> tuple[int, ...]:
        """Seeds in at each look: every ``batch`` seeds (from 2, the fewest with a spread), then the horizon."""
        return (*(n for n in range(self.batch, self.horizon, self.batch) if n >= 2), self.horizon)

    def seeds(self, index: int) -> tuple[int, ...]:
        """The seeds that run before look ``index``."""
        start = self.looks[index - 1] if index else 0
        return tuple(range(self.first_seed + start, self.first_seed + self.looks[index]))

    def levels(self, index: int) -> stats.Levels:
        return stats.look_levels(self.looks, index, self.alpha, self.spending)

    def describe(self) -> str:
        """The plan in one sentence."""
        planned = self.planned
        plan = (f"{planned} seeds give TOST {self.power:.0%} power at a true difference of "
                f"{self.difference * 100:g} pt with a paired SD ≤ {self.sd_bound * 100:g} pt (stated)"
                if planned else f"no seed count up to {stats.MAX_SEEDS_NEEDED} gives TOST {self.power:.0%} power "
                                f"with a paired SD ≤ {self.sd_bound * 100:g} pt")
        capped = (f"; capped at {self.max_seeds} seeds, so a pair at that SD may stay unsettled"
                  if planned is None or planned > self.max_seeds else "")
        timed = f"; stops before a batch that would pass {self.max_seconds / 60:g} min" if self.max_seconds else ""
        name = {"obrien-fleming": "O'Brien-Fleming", "pocock": "Pocock"}[self.spending]
        return (f"Seeds until settled: ±{self.margin * 100:g} pt of val_accuracy, alpha {self.alpha:g} per claim; "
                f"{plan}{capped}. Looks after {', '.join(map(str, self.looks))} seeds ({name} alpha spending){timed}.")

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Look:
    """What was known after one batch of seeds."""

    index: int  # 0-based
    seeds: int  # seeds in
    seconds: float  # since the design started
    levels: stats.Levels
    groups: list[parity.ParityGroup]

    @property
    def pairs(self) -> list[parity.PairVerdict]:
        return [v for g in self.groups for v in g.pairs if v.metric == "val_accuracy"]


@dataclass
class Outcome:
    design: Design
    looks: list[Look] = field(default_factory=list)
    stop: str = ""  # "settled", "seed cap", "time cap", "a backend failed", "no pairs to compare"
    settled: dict[str, tuple[int, parity.PairVerdict]] = field(default_factory=dict)  # pair -> (seeds in, verdict)
    seconds: float = 0.0

    @property
    def seeds(self) -> int:
        return self.looks[-1].seeds if self.looks else 0

    @property
    def final(self) -> list[parity.ParityGroup]:
        return self.looks[-1].groups if self.looks else []

    def verdicts(self) -> list[tuple[str, int, parity.PairVerdict]]:
        """Per val_accuracy pair: its name, the seeds in when it settled (or at the end), and its verdict."""
        last = self.looks[-1].pairs if self.looks else []
        out = []
        for verdict in last:
            name = pair_name(verdict)
            seeds, shown = self.settled.get(name, (self.seeds, verdict))
            out.append((name, seeds, shown))
        return out


def pair_name(verdict: parity.PairVerdict) -> str:
    return f"{verdict.first} - {verdict.second}"


def run_until_settled(design: Design, run_batch: Callable[[tuple[int, ...]], bool],
                      analyze: Callable[[stats.Levels], list[parity.ParityGroup]],
                      write: Callable[[str], None] = print,
                      clock: Callable[[], float] = time.monotonic) -> Outcome:
    """Run batches of seeds until every pair of backends has settled, or a cap is reached.

    ``run_batch(seeds)`` runs the accuracy benchmark for those seeds on every backend and returns
    whether all of it ran; ``analyze(levels)`` returns the parity groups of every seed so far, judged
    at ``levels``. ``write`` gets the plan, then after every look the current verdict and interval of
    each pair.
    """
    outcome = Outcome(design)
    start = clock()
    write(design.describe())
    for index in range(len(design.looks)):
        seeds = design.seeds(index)
        elapsed = clock() - start
        if design.max_seconds is not None and outcome.looks:
            per_seed = elapsed / outcome.seeds
            if elapsed + per_seed * len(seeds) > design.max_seconds:
                outcome.stop = "time cap"
                break
        write(f"look {index + 1}/{len(design.looks)}: running seeds {_span(seeds)}")
        ran = run_batch(seeds)
        look = Look(index, design.looks[index], clock() - start, design.levels(index), analyze(design.levels(index)))
        outcome.looks.append(look)
        for verdict in look.pairs:
            if verdict.settled and pair_name(verdict) not in outcome.settled:
                outcome.settled[pair_name(verdict)] = (look.seeds, verdict)
        write(progress(look, outcome))
        if not ran:
            outcome.stop = "a backend failed"
            break
        if not look.pairs:
            outcome.stop = "no pairs to compare"
            break
        if all(pair_name(v) in outcome.settled for v in look.pairs):
            outcome.stop = "settled"
            break
    else:
        outcome.stop = "seed cap"
    outcome.seconds = clock() - start
    return outcome


def _span(seeds: tuple[int, ...]) -> str:
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


def progress(look: Look, outcome: Outcome) -> str:
    """One line per val_accuracy pair: its verdict and interval at this look (or when it settled)."""
    lines = [f"look {look.index + 1} ({look.seeds} seeds, {look.seconds / 60:.1f} min, {look.levels.look or 'fixed'}):"]
    for verdict in look.pairs:
        name = pair_name(verdict)
        seeds, shown = outcome.settled.get(name, (look.seeds, verdict))
        when = f" (settled at {seeds} seeds)" if name in outcome.settled and seeds < look.seeds else ""
        r = shown.test.correlation if shown.test else None
        lines.append(f"  {name}: {shown.verdict}{when}" + (f"; r {r:.2f}" if r is not None else ""))
    if not look.pairs:
        lines.append("  no pair of backends to compare")
    return "\n".join(lines)


STOPS = {
    "settled": "every pair settled",
    "seed cap": "the seed cap was reached",
    "time cap": "the next batch would have passed the time cap",
    "a backend failed": "a backend failed (see its log)",
    "no pairs to compare": "fewer than two backends have results",
}


def render(outcome: Outcome) -> str:
    """The design's outcome as markdown: the plan, why it stopped, and each pair's verdict."""
    design = outcome.design
    out = ["## Seeds until settled", "", design.describe(), "",
           f"Ran {outcome.seeds} seeds in {outcome.seconds / 60:.1f} min over {len(outcome.looks)} look(s); "
           f"stopped because {STOPS.get(outcome.stop, outcome.stop)}.", ""]
    rows = []
    for name, seeds, verdict in outcome.verdicts():
        rows.append([name, str(seeds), parity.pairing_text(verdict), parity.difference_text(verdict),
                     verdict.verdict, verdict.note])
    if rows:
        out += [table(("Pair", "Seeds when decided", "Seeds", "Difference [95% repeated CI]", "Verdict", "Note"),
                             rows), ""]
        out += ["Each verdict is the one of the look where it settled, read from a repeated confidence interval "
                "whose error over every look stays at the design's alpha; an unsettled pair shows the last look.", ""]
    return "\n".join(out)


# ------------------------------------------------------------------------------------ a run folder

def analyze_folder(run_dir: str | os.PathLike, design: Design) -> Callable[[stats.Levels], list[parity.ParityGroup]]:
    """``analyze`` for ``run_until_settled``: the parity groups of every result file in ``run_dir``."""

    def analyze(levels: stats.Levels) -> list[parity.ParityGroup]:
        runs, _ = load([run_dir])
        return parity.analyze(results_of(runs), design.margin, design.time_margin, levels=levels,
                              sd_bound=design.sd_bound)

    return analyze


def save(outcome: Outcome, run_dir: str | os.PathLike) -> Path:
    """The design and the looks it took, so that a later `bench parity` reads the run at its last look."""
    path = Path(run_dir) / DESIGN_FILE
    # Marked as a report, so that loading the run folder's results skips it silently.
    write_json_atomic(path, {REPORT_MARKER: "sequential", "design": outcome.design.to_json(),
                             "looks": len(outcome.looks), "stop": outcome.stop, "seeds": outcome.seeds,
                             "seconds": outcome.seconds})
    return path


def saved_levels(paths: Iterable[str | os.PathLike]) -> tuple[stats.Levels, float] | None:
    """The levels and SD bound of the last look of a ``--seeds auto`` run among ``paths`` (folders), if one is."""
    for path in paths:
        file = Path(path) / DESIGN_FILE
        if file.is_file():
            saved = json.loads(file.read_text())
            design = Design(**saved["design"])
            index = min(max(int(saved["looks"]) - 1, 0), len(design.looks) - 1)
            return design.levels(index), design.sd_bound
    return None

