"""Traffic steps: set each weight, bake it under the judge, then the next, then promote.

Canary, linear, exponential, immediate and A/B strategies all compile to a
plan of (weight, bake) steps (skyline/strategies.py: plan_steps); this loop
runs any plan. Controls are looked at before every step and inside every
bake (workflows/judged_bake.py), so none is missed.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from skyline.manifest import RolloutConfig, RolloutCriteria, Unit
    from skyline.manifest_ops import SetCanary
    from skyline.rollout import RolloutStatus
    from skyline.strategies import ABTestStrategy
    from workflows.endings import Endings

# The seed's strategy names for the manifest's rollout config.
SEED_STRATEGY = {"linear": "gradual", "exponential": "gradual", "blue_green": "immediate"}


class TrafficSteps(Endings):
    def _rollout_config(self, weight: float) -> RolloutConfig:
        kind = self._spec.strategy.kind
        return RolloutConfig(
            strategy=SEED_STRATEGY.get(kind, kind),
            percentage=weight,
            rollout_id=self._status.rollout_id,
            duration=self._plan[max(self._status.step, 0)].bake_seconds / 60,
            criteria=self._spec.targeting or RolloutCriteria(),
        )

    async def _apply_weight(self, index: int, unit: Unit) -> None:
        weight = self._plan[index].weight
        self._status.step = index
        self._status.weight = weight
        revision = await self._write(
            SetCanary(building=self._spec.building, unit=unit, rollout=self._rollout_config(weight)),
            f"{unit.id} at {weight:g}%",
        )
        self._record("set weight", "skyline", f"{weight:g}% of users get {unit.id}", revision)
        self._telemetry.step(weight)

    async def _traffic_steps(self, unit: Unit) -> RolloutStatus:
        experiment = isinstance(self._spec.strategy, ABTestStrategy)
        index = 0
        while True:
            self._check_deadline()
            await self._hold_while_paused()
            if self._rollback is not None:
                return await self._do_rollback()
            if self._promote is not None and self._promote.full:
                self._promote = None
                return await self._promote_unit(unit)
            self._promote = None
            asked = self._promotions_requested
            await self._apply_weight(index, unit)
            self._promotions_done = self._answered(asked)
            outcome = await self._bake(self._plan[index].bake_seconds, experiment)
            if outcome == "rollback":
                return await self._do_rollback()
            if experiment and outcome == "next" and self._promote is None:
                self._report_ab()
                return await self._await_decision(unit, "the A/B test is complete")
            last = index == len(self._plan) - 1
            if (
                last
                and outcome == "next"
                and self._promote is None
                and self._spec.promotion.mode == "scheduled"
            ):
                return await self._await_decision(unit, "awaiting scheduled promotion", "scheduled_promotion")
            if outcome == "full" or last:
                self._promote = None
                return await self._promote_unit(unit)
            index += 1
            self._promote = None
