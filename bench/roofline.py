"""Bounds on a step's time from its work and the machine's ceilings, and the share of the tightest one reached.

Pure arithmetic over ``bench.work.StepWork`` and ``bench.ceilings.Ceilings`` (no backend, no clock):

- compute: the step's FLOPs at the large-GEMM rate;
- recurrence: the timesteps that must run one after another, each at least one recurrent GEMM;
- memory: the bytes that must move (a lower bound) at the triad's rate;
- dispatch: host dispatches per step times the tiny-op round trip (a compiled step is one dispatch).

Each is a floor on the step's time, so the tightest (largest) one is the step's bound, and the share is
that bound over the measured median: 1.0 would be the machine's limit, 0.1 a tenth of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.ceilings import Ceilings
from bench.work import StepWork

BOUNDS = ("compute", "recurrence", "memory", "dispatch")


@dataclass(frozen=True)
class Bounds:
    compute_s: float
    recurrence_s: float
    memory_s: float
    dispatch_s: float | None  # None where the dispatches per step were not observed

    def as_seconds(self) -> dict[str, float | None]:
        return {"compute": self.compute_s, "recurrence": self.recurrence_s, "memory": self.memory_s,
                "dispatch": self.dispatch_s}

    @property
    def binding(self) -> str:
        """The name of the tightest bound."""
        known = {k: v for k, v in self.as_seconds().items() if v is not None}
        return max(known, key=known.__getitem__)

    @property
    def bound_s(self) -> float:
        return self.as_seconds()[self.binding]


def bounds(work: StepWork, ceilings: Ceilings, dispatches: int | None) -> Bounds:
    """The four bounds of one step (seconds)."""
    return Bounds(compute_s=work.flops / ceilings.gemm_flops_per_s,
                  recurrence_s=work.dependent_steps * ceilings.cell_gemm_s,
                  memory_s=work.bytes / ceilings.triad_bytes_per_s,
                  dispatch_s=None if dispatches is None else dispatches * ceilings.dispatch_s)


def share(bound: Bounds, median_s: float) -> float:
    """The share of the tightest bound the measured median reached (bound / median)."""
    if median_s <= 0:
        raise ValueError(f"a step's median must be positive, not {median_s}")
    return bound.bound_s / median_s


def intensity(work: StepWork) -> float:
    """Arithmetic intensity, FLOPs per byte that must move (the roofline's x axis)."""
    return work.flops / work.bytes
