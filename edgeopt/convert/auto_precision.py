"""`precision="auto"`: the smallest per-op mix of int4 / int8 / int16x8 / float32 within an accuracy budget.

The search is **greedy, guided by the sensitivity ranking** (not a knapsack: the
drops of several quantized ops do not add up, so a knapsack over single-op costs
optimizes a number that is not the model's accuracy; every greedy step is instead
checked on the whole model in LiteRT):

1. Sensitivity (`edgeopt.convert.sensitivity.measure`): each region (a weight op and
   the weightless ops after it) quantized alone at int4, int8 and int16x8.
2. Every region starts at the smallest level whose single-op drop is within the
   budget (int4 < int8 < float32 in file size; int16x8, as big as int8 but slower,
   is on a region's ladder only where it alone beats int8).
3. While the whole model misses the budget, the region that costs most at its
   current level (the ranking) moves one step up its ladder.
4. Shrink pass: regions from the largest weight count down try their smaller levels
   again, keeping any that still meets the budget.
5. Contiguity pass: a region whose neighbours share another level takes it when the
   model stays within budget and does not grow by more than `_JOIN_GROWTH` — fewer
   precision boundaries, fewer quantize/dequantize ops (ai-edge-quantizer's warning
   that a scattered mix can be slower).

The accuracy is measured on the eval data against the Keras model's, as the
exporter's validation measures it, so the chosen model meets the budget there by
construction (and the exporter validates it again end to end). The eval data both
guides and judges the choice: on unseen data the drop can be larger.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from edgeopt.convert import mixed
from edgeopt.convert.mixed import LEVELS, MixedQuantizer
from edgeopt.convert.precision import Precision
from edgeopt.convert.sensitivity import Evaluator, OpSensitivity, measure
from edgeopt.errors import ConversionError, EdgeoptError

_JOIN_GROWTH = 0.02  # a contiguity change may grow the weights by this fraction of the model


@dataclass
class Decision:
    """What `choose` picked: the bytes, each region's precision and why, and the search's cost."""

    data: bytes
    choices: list[dict]
    accuracy_drop_points: float
    budget_points: float
    boundaries: int
    evaluations: int
    seconds: float
    steps: list[str] = field(default_factory=list)
    sensitivity: list[dict] = field(default_factory=list)

    def settings(self) -> dict:
        """The report's `settings` of the chosen model (everything but the bytes)."""
        out = asdict(self)
        out.pop("data")
        return out


class _Search:
    def __init__(self, quantizer: MixedQuantizer, evaluate: Evaluator, budget: float, say):
        self.q, self.evaluate, self.budget, self.say = quantizer, evaluate, float(budget), say
        self.regions = quantizer.regions
        self.cache: dict[tuple, tuple[float, bytes | None]] = {}
        self.steps: list[str] = []

    def score(self, choice: dict[int, Precision]) -> float:
        """The whole model's accuracy drop for `choice` (inf when it cannot be made)."""
        key = tuple(str(choice[r.index]) for r in self.regions)
        if key not in self.cache:
            try:
                data = self.q.quantize(choice)
                validation, _ = self.evaluate(data)
                self.cache[key] = (self.evaluate.drop(validation), data)
            except EdgeoptError as exc:
                if "labelled class outputs" in str(exc):
                    raise
                self.cache[key] = (float("inf"), None)
        return self.cache[key][0]

    def fits(self, choice) -> bool:
        return self.score(choice) <= self.budget

    def size(self, choice) -> float:
        return mixed.estimated_bytes(self.regions, choice)


def _ladder(alone: dict[str, OpSensitivity]) -> list[Precision]:
    """A region's levels, smallest first; int16x8 only where it alone beats int8."""
    def drop(level):
        row = alone.get(str(level))
        return float("inf") if row is None or row.accuracy_drop_points is None else row.accuracy_drop_points

    ladder = [Precision.INT4, Precision.INT8]
    if drop(Precision.INT16X8) < drop(Precision.INT8):
        ladder.append(Precision.INT16X8)
    return ladder + [Precision.FLOAT32]


def choose(quantizer: MixedQuantizer, evaluate: Evaluator, budget: float, *,
           say: Callable[[str], None] = lambda line: None) -> Decision:
    """The smallest mix found whose accuracy drop on the eval data is within `budget` points.

    Args:
        quantizer: the float model's regions.
        evaluate: runs and scores a candidate against the reference.
        budget: the accuracy drop allowed, in points.
        say: progress lines. Defaults to no output.
    """
    started = time.perf_counter()
    rows = measure(quantizer, evaluate, layers=False, say=say)
    search = _Search(quantizer, evaluate, budget, say)
    alone = {r.index: {row.precision: row for row in rows if row.index == r.index} for r in search.regions}
    ladders = {r.index: _ladder(alone[r.index]) for r in search.regions}

    def cost(index: int, level: Precision) -> float:
        row = alone[index].get(str(level))
        if level is Precision.FLOAT32:
            return 0.0
        return float("inf") if row is None or row.accuracy_drop_points is None else row.accuracy_drop_points

    reason: dict[int, str] = {}
    choice: dict[int, Precision] = {}
    for r in search.regions:
        level = next(lv for lv in ladders[r.index] if cost(r.index, lv) <= budget)
        choice[r.index] = level
        below = ladders[r.index][:ladders[r.index].index(level)]
        skipped = [f"{lv} alone costs {cost(r.index, lv):.2f} pts" for lv in below]
        reason[r.index] = ("; ".join(skipped) + " (over the budget)") if skipped else f"{level} alone fits the budget"
    search.steps.append(f"start: {_describe(choice, search.regions)}")
    while not search.fits(choice):
        movable = [r.index for r in search.regions if choice[r.index] is not Precision.FLOAT32]
        if not movable:
            break
        worst = max(movable, key=lambda i: (cost(i, choice[i]), -LEVELS.index(choice[i])))
        ladder = ladders[worst]
        before = choice[worst]
        choice[worst] = ladder[ladder.index(before) + 1]
        reason[worst] = (f"raised from {before}: the whole model missed the budget and this op is the most "
                         f"sensitive at {before} ({cost(worst, before):.2f} pts alone)")
        was = search.score({**choice, worst: before})
        search.steps.append(f"raise op {worst} {before}->{choice[worst]} (drop was {was:.2f})")
    if not search.fits(choice):  # even the float model misses it: the float model
        choice = {r.index: Precision.FLOAT32 for r in search.regions}
        reason = {i: "float32: no quantized mix met the budget" for i in choice}
    else:
        _shrink(search, choice, ladders, reason)
        _join(search, choice, reason)
    search.score(choice)
    drop, data = search.cache[tuple(str(choice[r.index]) for r in search.regions)]
    if data is None or drop == float("inf"):
        raise ConversionError("auto could not make and score its choice in LiteRT. Received: ai-edge-quantizer or "
                              "LiteRT failed on every candidate. Use a uniform precision.")
    choices = [{"index": r.index, "op": r.name, "op_type": r.op_type, "weights": r.weights,
                "precision": str(choice[r.index]), "reason": reason[r.index],
                "alone_drop_points": {s: row.accuracy_drop_points for s, row in alone[r.index].items()}}
               for r in search.regions]
    say(f"auto: {_describe(choice, search.regions)}; drop {drop:.2f} pts (budget {budget}), "
        f"{evaluate.evaluations} LiteRT evaluations")
    return Decision(data=data, choices=choices,
                    accuracy_drop_points=round(drop, 4), budget_points=float(budget),
                    boundaries=mixed.boundaries(search.regions, choice), evaluations=evaluate.evaluations,
                    seconds=round(time.perf_counter() - started, 3), steps=search.steps,
                    sensitivity=[asdict(r) for r in rows])


def _shrink(search: _Search, choice: dict, ladders: dict, reason: dict) -> None:
    for r in sorted(search.regions, key=lambda r: -r.weights):
        current = choice[r.index]
        for level in ladders[r.index][:ladders[r.index].index(current)]:
            if level is Precision.INT16X8:
                continue
            trial = {**choice, r.index: level}
            if search.fits(trial):
                choice[r.index] = level
                reason[r.index] = f"{level}: still within budget with the other choices (shrink pass)"
                search.steps.append(f"shrink op {r.index} {current}->{level}")
                break


def _join(search: _Search, choice: dict, reason: dict) -> None:
    total = max(search.size(choice), 1.0)
    regions = search.regions
    for k, r in enumerate(regions):
        neighbours = {choice[n.index] for n in regions[max(k - 1, 0):k + 2] if n.index != r.index}
        if len(neighbours) != 1:
            continue
        level = neighbours.pop()
        if level == choice[r.index]:
            continue
        trial = {**choice, r.index: level}
        if search.size(trial) - search.size(choice) > _JOIN_GROWTH * total:
            continue
        if search.fits(trial):
            search.steps.append(f"join op {r.index} {choice[r.index]}->{level} (same as its neighbours)")
            reason[r.index] = f"{level}: joins its neighbours' region (fewer quantize/dequantize boundaries)"
            choice[r.index] = level


def _describe(choice: dict, regions) -> str:
    return " ".join(f"{r.index}:{choice[r.index]}" for r in regions)
