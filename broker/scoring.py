"""Scores of wait estimates against the waits that followed, shared by simulate and replay."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from broker.estimate import HORIZON_MINUTES
from broker.site import Lane

ESTIMATORS = ("model", "baseline_queue", "baseline_last")


@dataclass(frozen=True)
class Outcome:
    """One ticket's estimates at issue and the wait it had until its first call."""

    lane: Lane
    actual: float
    model: float | None
    low: int | None
    high: int | None
    baseline_queue: float
    baseline_last: float

    @classmethod
    def from_row(cls, row: dict[str, object], actual: float) -> Outcome:
        """Build an outcome from a tickets row and the minutes it waited."""
        return cls(
            lane=Lane(str(row["lane"])),
            actual=actual,
            model=_number(row.get("estimate")),
            low=_whole(row.get("estimate_min")),
            high=_whole(row.get("estimate_max")),
            baseline_queue=_number(row.get("baseline_queue")) or 0.0,
            baseline_last=_number(row.get("baseline_last")) or 0.0,
        )


@dataclass(frozen=True)
class Score:
    """Errors of one estimator over a set of tickets, in minutes."""

    estimator: str
    lane: str
    tickets: int
    mae: float
    rmse: float
    # Share of actual waits inside the printed range; None for the baselines.
    inside_range: float | None = None
    # Tickets whose estimate had no bound; they count as HORIZON_MINUTES.
    unbounded: int = 0


@dataclass(frozen=True)
class LaneWaits:
    """Waits of one lane until the first call, in minutes."""

    lane: str
    tickets: int
    p50: float
    p90: float
    max: float


def score(outcomes: Sequence[Outcome]) -> list[Score]:
    """Score every estimator over all tickets and per lane."""
    groups: list[tuple[str, list[Outcome]]] = [("all", list(outcomes))]
    for lane in Lane:
        groups.append((lane.value, [o for o in outcomes if o.lane is lane]))
    scores: list[Score] = []
    for name, group in groups:
        if group:
            scores.extend(_score_group(name, group))
    return scores


def lane_waits(outcomes: Iterable[Outcome]) -> list[LaneWaits]:
    """Return the wait percentiles of each lane that had tickets."""
    result: list[LaneWaits] = []
    for lane in Lane:
        waits = sorted(o.actual for o in outcomes if o.lane is lane)
        if waits:
            result.append(
                LaneWaits(
                    lane.value,
                    len(waits),
                    _quantile(waits, 0.5),
                    _quantile(waits, 0.9),
                    waits[-1],
                )
            )
    return result


def _score_group(lane: str, group: list[Outcome]) -> list[Score]:
    actual = [o.actual for o in group]
    model = [o.model if o.model is not None else HORIZON_MINUTES for o in group]
    inside = sum(
        1
        for o in group
        if o.low is not None and o.high is not None and o.low <= o.actual <= o.high
    )
    unbounded = sum(1 for o in group if o.model is None)
    return [
        _errors("model", lane, actual, model, inside / len(group), unbounded),
        _errors("baseline_queue", lane, actual, [o.baseline_queue for o in group]),
        _errors("baseline_last", lane, actual, [o.baseline_last for o in group]),
    ]


def _errors(
    name: str,
    lane: str,
    actual: list[float],
    estimate: list[float],
    inside: float | None = None,
    unbounded: int = 0,
) -> Score:
    errors = [e - a for a, e in zip(actual, estimate, strict=True)]
    return Score(
        estimator=name,
        lane=lane,
        tickets=len(errors),
        mae=statistics.fmean(abs(e) for e in errors),
        rmse=math.sqrt(statistics.fmean(e * e for e in errors)),
        inside_range=inside,
        unbounded=unbounded,
    )


def _quantile(values: list[float], share: float) -> float:
    return values[min(int(share * len(values)), len(values) - 1)]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _whole(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def format_scores(scores: Sequence[Score]) -> list[str]:
    """Render scores as aligned text lines."""
    lines = [
        f"  {'estimator':<15} {'lane':<9} {'tickets':>7} {'MAE':>6} {'RMSE':>6}  in range"
    ]
    for item in scores:
        inside = (
            f"{item.inside_range:7.0%}" if item.inside_range is not None else "      -"
        )
        lines.append(
            f"  {item.estimator:<15} {item.lane:<9} {item.tickets:>7}"
            f" {item.mae:6.1f} {item.rmse:6.1f}  {inside}"
        )
    return lines
