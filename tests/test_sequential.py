"""Seeds until the answer settles (bench.sequential): the plan, the looks, the stops, and `run --seeds auto`,
all on synthetic result files (no training)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bench import runner, sequential, stats
from bench.commands import main
from tests.conftest import run_cli
from tests.resultfiles import seeded_run, write_result


def accuracy(backend: str, seed: int, spread: float) -> float:
    """Seed ``seed``'s final val_accuracy on ``backend``: shared by every backend, plus ``spread`` of its own."""
    common = np.random.default_rng(seed).normal(0, 0.016)
    own = np.random.default_rng([seed, sum(map(ord, backend))]).normal(0, spread)
    return float(0.80 + common + own)


class Batches:
    """A ``run_batch`` that writes one synthetic result file per backend for the seeds it is given."""

    def __init__(self, folder, backends=("jax", "tensorflow"), spread=0.002, fail_at=None):
        self.folder, self.backends, self.spread, self.fail_at = folder, backends, spread, fail_at
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, seeds: tuple[int, ...]) -> bool:
        self.calls.append(seeds)
        for i, backend in enumerate(self.backends):
            spread = self.spread[backend] if isinstance(self.spread, dict) else self.spread
            finals = [accuracy(backend, s, spread) for s in seeds]
            write_result(self.folder, seeded_run(backend, finals, seeds=list(seeds),
                                                 started=f"2026-11-29T{8 + len(self.calls):02d}:{i:02d}:00+00:00"))
        return self.fail_at != len(self.calls)


class Clock:
    def __init__(self, per_call: float = 0.0) -> None:
        self.now, self.per_call = 0.0, per_call

    def __call__(self) -> float:
        self.now += self.per_call
        return self.now


# ------------------------------------------------------------------------------------------ plan

def test_the_plan_comes_from_the_stated_sd_and_the_cap():
    design = sequential.Design()
    assert design.planned == stats.seeds_for_equivalence(0.01, 0.01) == 11
    assert design.looks == (2, 4, 6, 8, 10, 11) and design.seeds(0) == (0, 1) and design.seeds(5) == (10,)
    assert "11 seeds give TOST 80% power at a true difference of 0 pt with a paired SD ≤ 1 pt" in design.describe()
    wide = sequential.Design(sd_bound=0.016)
    assert wide.planned == 24 and wide.horizon == 20 and "capped at 20 seeds" in wide.describe()
    assert sequential.Design(max_seeds=6).looks == (2, 4, 6)
    one = sequential.Design(batch=1, max_seeds=4, first_seed=100)
    assert one.looks == (2, 3, 4) and one.seeds(0) == (100, 101) and one.seeds(1) == (102,)
    assert design.levels(5) == stats.look_levels((2, 4, 6, 8, 10, 11), 5)
    for bad in ({"margin": 0}, {"sd_bound": -0.01}, {"difference": 0.01}, {"batch": 0}, {"max_seeds": 1},
                {"spending": "haybittle"}, {"max_seconds": 0}):
        with pytest.raises(ValueError):
            sequential.Design(**bad)


# ----------------------------------------------------------------------------------------- looks

def test_it_stops_once_every_pair_has_settled(tmp_path):
    design, batches, lines = sequential.Design(), Batches(tmp_path), []
    levels_seen = []

    def analyze(levels):
        levels_seen.append(levels)
        return sequential.analyze_folder(tmp_path, design)(levels)

    outcome = sequential.run_until_settled(design, batches, analyze, lines.append, Clock(30.0))
    assert outcome.stop == "settled" and outcome.seeds <= 10
    assert batches.calls == [design.seeds(i) for i in range(len(outcome.looks))]
    assert levels_seen == [design.levels(i) for i in range(len(outcome.looks))]  # each look at its own boundary
    [(name, seeds, verdict)] = outcome.verdicts()
    assert name == "jax 1.0.0 - tensorflow 1.0.0" and seeds == outcome.seeds
    assert verdict.verdict.startswith(("equivalent within ±1 pt, 90% repeated CI [", "different, but within ±1 pt"))
    assert lines[0] == design.describe() and lines[1] == "look 1/6: running seeds 0-1"
    assert lines[2].startswith("look 1 (2 seeds, 1.0 min, look 1 of 6, O'Brien-Fleming spending):\n"
                               "  jax 1.0.0 - tensorflow 1.0.0: not settled after 2 seeds")
    text = sequential.render(outcome)
    assert f"Ran {outcome.seeds} seeds in" in text and "stopped because every pair settled" in text


def test_a_pair_that_does_not_settle_stops_at_the_cap_and_says_what_its_sd_would_need(tmp_path):
    design = sequential.Design(max_seeds=6)
    outcome = sequential.run_until_settled(design, Batches(tmp_path, spread=0.03),
                                           sequential.analyze_folder(tmp_path, design), lambda line: None)
    assert outcome.stop == "seed cap" and outcome.seeds == 6 and len(outcome.looks) == 3
    [(_, seeds, verdict)] = outcome.verdicts()
    assert seeds == 6 and verdict.verdict.startswith("not settled after 6 seeds, 90% repeated CI [")
    assert "11 at a paired SD ≤ 1 pt (stated)" in verdict.note
    assert "stopped because the seed cap was reached" in sequential.render(outcome)


def test_a_settled_pair_keeps_the_verdict_of_the_look_where_it_settled(tmp_path):
    # JAX and TensorFlow move together closely; PyTorch less so: its pairs settle later, and the run goes on.
    design, lines = sequential.Design(), []
    batches = Batches(tmp_path, ("jax", "tensorflow", "torch"), spread={"jax": 0.0005, "tensorflow": 0.0005,
                                                                        "torch": 0.005})
    outcome = sequential.run_until_settled(design, batches, sequential.analyze_folder(tmp_path, design), lines.append)
    settled = {name: seeds for name, (seeds, _) in outcome.settled.items()}
    assert settled == {"jax 1.0.0 - tensorflow 1.0.0": 4, "jax 1.0.0 - torch 1.0.0": 8,
                       "tensorflow 1.0.0 - torch 1.0.0": 8}
    assert outcome.stop == "settled" and outcome.seeds == 8
    early = outcome.settled["jax 1.0.0 - tensorflow 1.0.0"][1]
    assert [seeds for name, seeds, verdict in outcome.verdicts() if verdict is early] == [4]
    assert ("  jax 1.0.0 - tensorflow 1.0.0: " + early.verdict + " (settled at 4 seeds)") in lines[-1]


def test_the_time_cap_stops_before_a_batch_that_would_pass_it(tmp_path):
    design, clock = sequential.Design(max_seconds=250), Clock()
    batches = Batches(tmp_path, spread=0.03)

    def slow(seeds):
        clock.now += 100.0  # a batch of 2 seeds takes 100 s: a third one would end at 300 s
        return batches(seeds)

    outcome = sequential.run_until_settled(design, slow, sequential.analyze_folder(tmp_path, design),
                                           lambda line: None, clock)
    assert outcome.stop == "time cap" and len(batches.calls) == 2 and outcome.seeds == 4
    assert "stops before a batch that would pass 4.16667 min" in design.describe()


def test_a_failed_backend_or_a_lone_one_stops_the_run(tmp_path):
    design = sequential.Design()
    failed = sequential.run_until_settled(design, Batches(tmp_path / "a", spread=0.03, fail_at=2),
                                          sequential.analyze_folder(tmp_path / "a", design), lambda line: None)
    assert failed.stop == "a backend failed" and len(failed.looks) == 2
    lone = sequential.run_until_settled(design, Batches(tmp_path / "b", backends=("jax",)),
                                        sequential.analyze_folder(tmp_path / "b", design), lambda line: None)
    assert lone.stop == "no pairs to compare" and lone.seeds == 2


def test_the_design_is_saved_and_parity_reads_the_run_at_its_last_look(tmp_path):
    design = sequential.Design(max_seeds=6)
    outcome = sequential.run_until_settled(design, Batches(tmp_path, spread=0.03),
                                           sequential.analyze_folder(tmp_path, design), lambda line: None)
    sequential.save(outcome, tmp_path)
    assert sequential.saved_levels([tmp_path]) == (design.levels(2), 0.01)
    assert sequential.saved_levels([tmp_path / "elsewhere"]) is None
    done = run_cli("parity", str(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Group-sequential design, look 3 of 3, O'Brien-Fleming spending" in done.stdout
    assert "90% repeated CI" in done.stdout


# ------------------------------------------------------------------------------------ the command

def test_run_seeds_auto_runs_batches_and_writes_its_outcome(tmp_path, monkeypatch, capsys):
    calls, run_ids = [], []

    def run_backends(backends, pytest_args, run_dir, repeat=1, environment=None, backend_environments=None,
                     run_id=None):
        seeds = [int(s) for s in pytest_args[pytest_args.index("--seeds") + 1].split(",")]
        calls.append((backends, pytest_args[:2], seeds))
        run_ids.append(run_id)
        Batches(run_dir, backends=tuple(backends), spread=0.002)(tuple(seeds))
        return [runner.Outcome(name, "ok", 1.0) for name in backends]

    monkeypatch.setattr(runner, "run_backends", run_backends)
    run_dir = tmp_path / "run"
    code = main(["run", "--backends", "jax,tensorflow", "--profile", "parity", "--seeds", "auto",
                 "--max-seeds", "6", "--run-dir", str(run_dir)])
    assert code == 0
    assert calls[0] == (["jax", "tensorflow"], ["-k", "test_accuracy"], [0, 1])
    assert [seeds for _, _, seeds in calls] == [[0, 1], [2, 3], [4, 5]][: len(calls)]
    assert len(calls) > 1 and run_ids[0] and set(run_ids) == {run_ids[0]}  # every look joins one run
    out = capsys.readouterr().out
    assert "Seeds until settled: ±1 pt of val_accuracy" in out and "look 1/3: running seeds 0-1" in out
    assert "## Seeds until settled" in (run_dir / "SEQUENTIAL.md").read_text()
    assert sequential.saved_levels([run_dir]) is not None
    assert "Group-sequential design" in (run_dir / "REPORT.md").read_text()


def test_run_seeds_auto_refuses_a_bad_design(tmp_path, capsys):
    code = main(["run", "--backends", "jax", "--seeds", "auto", "--margin", "0pt", "--run-dir", str(tmp_path)])
    assert code == 2 and "the margin and the SD bound must be above 0" in capsys.readouterr().err


# ------------------------------------------------------------------------------ the outcome, written out

DESCRIBED = ("Seeds until settled: ±1 pt of val_accuracy, alpha 0.05 per claim; 11 seeds give TOST 80% power at a "
             "true difference of 0 pt with a paired SD ≤ 1 pt (stated). Looks after 2, 4, 6, 8, 10, 11 seeds "
             "(O'Brien-Fleming alpha spending).")


def hand_made_outcome(stop="settled", looks=2):
    from bench import parity
    from bench.results import GroupKey

    key = parity.ParityKey(GroupKey("parity", "synthetic", 32, 200, "cpu"), 1, 4992, 1984, 0.7)
    verdict = parity.PairVerdict("val_accuracy", "jax", "tensorflow", None, None, "equivalent within ±1 pt", (0, 1),
                                 "a note")
    seconds = parity.PairVerdict("seconds", "jax", "tensorflow", None, None, "x", (0, 1))
    group = parity.ParityGroup(key, [], [verdict, seconds])
    outcome = sequential.Outcome(sequential.Design(), stop=stop, seconds=600.0)
    outcome.looks = [sequential.Look(i, 2 * (i + 1), 300.0 * (i + 1), stats.FIXED, [group]) for i in range(looks)]
    outcome.settled = {"jax - tensorflow": (2, verdict)} if looks else {}
    return outcome


def test_render_says_the_plan_the_stop_and_each_pairs_verdict():
    assert sequential.Design().describe() == DESCRIBED
    assert sequential.render(hand_made_outcome()) == "\n".join([
        "## Seeds until settled", "", DESCRIBED, "",
        "Ran 4 seeds in 10.0 min over 2 look(s); stopped because every pair settled.", "",
        "| Pair | Seeds when decided | Seeds | Difference [95% repeated CI] | Verdict | Note |",
        "|---|---|---|---|---|---|",
        "| jax - tensorflow | 2 | 2 paired | — | equivalent within ±1 pt | a note |", "",
        "Each verdict is the one of the look where it settled, read from a repeated confidence interval whose error "
        "over every look stays at the design's alpha; an unsettled pair shows the last look.", ""])
    assert sequential.render(hand_made_outcome("a reason of its own", looks=0)).endswith(
        "Ran 0 seeds in 10.0 min over 0 look(s); stopped because a reason of its own.\n")
    assert sequential.Outcome(sequential.Design()).verdicts() == []


def test_save_writes_the_design_and_where_it_stopped(tmp_path):
    import dataclasses
    import json

    from bench.results import REPORT_MARKER

    path = sequential.save(hand_made_outcome(), tmp_path)
    assert path == tmp_path / "sequential.json"
    assert json.loads(path.read_text()) == {REPORT_MARKER: "sequential",
                                            "design": dataclasses.asdict(sequential.Design()), "looks": 2,
                                            "stop": "settled", "seeds": 4, "seconds": 600.0}
    assert sequential.saved_levels([tmp_path / "none", tmp_path]) == (sequential.Design().levels(1), 0.01)


def test_progress_says_each_pairs_verdict_and_when_it_settled():
    from bench import parity

    outcome = hand_made_outcome()
    test = stats.equivalence([0.80, 0.81, 0.79, 0.82], [0.80, 0.80, 0.79, 0.81], 0.01)
    later = parity.PairVerdict("val_accuracy", "jax", "torch", None, test, "not settled", (0, 1, 2, 3))
    look = outcome.looks[1]
    look.groups[0].pairs.append(later)
    assert sequential.progress(look, outcome) == (
        "look 2 (4 seeds, 10.0 min, fixed):\n"
        "  jax - tensorflow: equivalent within ±1 pt (settled at 2 seeds)\n"
        f"  jax - torch: not settled; r {test.correlation:.2f}")
    assert sequential.progress(outcome.looks[0], outcome) == (
        "look 1 (2 seeds, 5.0 min, fixed):\n  jax - tensorflow: equivalent within ±1 pt\n  jax - torch: not settled"
        f"; r {test.correlation:.2f}")
    empty = sequential.Look(0, 2, 90.0, stats.Levels(look="look 1 of 3"), [])
    assert sequential.progress(empty, outcome) == ("look 1 (2 seeds, 1.5 min, look 1 of 3):\n"
                                                   "  no pair of backends to compare")


def test_the_time_cap_counts_from_the_designs_own_start():
    from bench import parity

    class Ticks:  # 30 s per reading, from 1000 s
        now = 1000.0

        def __call__(self):
            self.now += 30.0
            return self.now

    group = parity.ParityGroup(None, [], [parity.PairVerdict("val_accuracy", "a", "b", None, None, "x")])
    design = sequential.Design(batch=3, max_seeds=9, max_seconds=180)
    lines, ran = [], []
    outcome = sequential.run_until_settled(design, lambda seeds: ran.append(seeds) or True, lambda levels: [group],
                                           lines.append, Ticks())
    # Look 2 starts 90 s in, 30 s a seed: 90 + 3 x 30 = 180 is not past the cap; look 3 (150 + 3 x 25) is.
    assert ran == [(0, 1, 2), (3, 4, 5)] and outcome.stop == "time cap"
    assert [look.seconds for look in outcome.looks] == [60.0, 120.0] and outcome.seconds == 180.0
    assert lines[1] == "look 1/3: running seeds 0-2"
    single = sequential.Design(batch=2, max_seeds=3)
    sequential.run_until_settled(single, lambda seeds: True, lambda levels: [group], lines.append)
    assert "look 2/2: running seeds 2" in lines


def test_a_folder_is_analyzed_with_the_designs_margins(tmp_path):
    Batches(tmp_path)((0, 1))
    design = sequential.Design(margin=0.02, time_margin=0.2)
    [group] = sequential.analyze_folder(tmp_path, design)(stats.FIXED)
    assert (group.margin, group.time_margin, group.sd_bound) == (0.02, 0.2, 0.01)


@pytest.mark.parametrize(("bad", "message"), [
    ({"margin": 0}, "the margin and the SD bound must be above 0"),
    ({"sd_bound": 0}, "the margin and the SD bound must be above 0"),
    ({"difference": -0.01}, "the difference planned for must lie inside the margin"),
    ({"batch": 0}, "a batch needs a seed and the cap two"),
    ({"max_seeds": 1}, "a batch needs a seed and the cap two"),
    ({"spending": "haybittle"}, "unknown spending function 'haybittle'; one of obrien-fleming, pocock"),
    ({"max_seconds": 0}, "the time cap must be above 0"),
])
def test_a_bad_design_says_what_is_wrong(bad, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        sequential.Design(**bad)


def test_the_smallest_designs_are_allowed():
    assert sequential.Design(batch=1, max_seeds=2).looks == (2,)
    assert sequential.Design(max_seconds=0.5, difference=-0.009, margin=0.01, sd_bound=1e-4).max_seconds == 0.5


def test_every_kind_of_plan_is_described():
    looks = "2, 4, 6, 8, 10, 12, 14, 16, 18, 20"
    capped = sequential.Design(sd_bound=0.016)
    assert capped.describe() == (
        "Seeds until settled: ±1 pt of val_accuracy, alpha 0.05 per claim; 24 seeds give TOST 80% power at a true "
        "difference of 0 pt with a paired SD ≤ 1.6 pt (stated); capped at 20 seeds, so a pair at that SD may stay "
        f"unsettled. Looks after {looks} seeds (O'Brien-Fleming alpha spending).")
    hopeless = sequential.Design(sd_bound=0.5)
    assert hopeless.planned is None and hopeless.horizon == 20 and hopeless.describe() == (
        "Seeds until settled: ±1 pt of val_accuracy, alpha 0.05 per claim; no seed count up to 1000 gives TOST 80% "
        "power with a paired SD ≤ 50 pt; capped at 20 seeds, so a pair at that SD may stay unsettled. "
        f"Looks after {looks} seeds (O'Brien-Fleming alpha spending).")
    design = sequential.Design(margin=0.02, difference=0.002, alpha=0.1, power=0.9, spending="pocock",
                               max_seconds=5400, batch=3)
    planned = stats.seeds_for_equivalence(0.01, 0.02, 0.002, 0.1, 0.9)
    assert design.planned == planned and design.looks == (*range(3, planned, 3), planned)
    assert design.describe() == (
        f"Seeds until settled: ±2 pt of val_accuracy, alpha 0.1 per claim; {planned} seeds give TOST 90% power at a "
        "true difference of 0.2 pt with a paired SD ≤ 1 pt (stated). Looks after "
        f"{', '.join(map(str, design.looks))} seeds (Pocock alpha spending); stops before a batch that would pass "
        "90 min.")
    assert design.levels(1) == stats.look_levels(design.looks, 1, 0.1, "pocock")
    assert sequential.Design(max_seeds=6).horizon == 6
    assert "capped" not in sequential.Design(max_seeds=11).describe()  # the plan's 11 seeds fit the cap exactly
    assert sequential.Design(batch=3, first_seed=100).seeds(0) == (100, 101, 102)
    assert sequential.Design(batch=3, first_seed=100).seeds(3) == (109, 110)
    assert sequential.Design(batch=1).looks == (2, 3, 4, 5, 6, 7, 8, 9, 10, 11)


def test_saved_levels_clamp_the_looks_to_the_design(tmp_path):
    import json

    from bench.results import REPORT_MARKER

    design = sequential.Design()
    for looks, index in ((0, 0), (99, len(design.looks) - 1), (3, 2)):
        (tmp_path / "sequential.json").write_text(json.dumps(
            {REPORT_MARKER: "sequential", "design": design.to_json(), "looks": looks, "stop": "x", "seeds": 0,
             "seconds": 0.0}))
        assert sequential.saved_levels([tmp_path]) == (design.levels(index), 0.01)
