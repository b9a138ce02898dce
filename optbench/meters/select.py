"""Choosing meters for a run: one per role, strongest first, never silently nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optbench.meters import METERS
from optbench.meters.base import Meter, MeterContext
from optbench.results.schema import EnergyReading


class UnavailableMeter(Meter):
    """Stands in for a role no source can measure: every window reads None with the reason."""

    name = "unavailable"

    def __init__(self, ctx: MeterContext, role: str, reason: str) -> None:
        super().__init__(ctx)
        self.role_name = role
        self.reason = reason
        self._t0: int | None = None

    @classmethod
    def availability(cls, ctx: MeterContext) -> Any:
        raise NotImplementedError

    def start(self) -> None:
        self._t0 = self.ctx.clock()

    def stop(self) -> list[EnergyReading]:
        t0 = self._t0 if self._t0 is not None else self.ctx.clock()
        window_s = (self.ctx.clock() - t0) / 1e9
        return [EnergyReading(f"{self.role_name}:unavailable", None, window_s, "unavailable",
                              "none", reason=self.reason)]

    def describe(self) -> dict[str, Any]:
        return {"meter": self.name, "role": self.role_name, "reason": self.reason}


def roles_for(device: str) -> tuple[str, ...]:
    return ("gpu", "cpu") if device == "cuda" else ("cpu",)


def select_meters(
    names: Sequence[str], ctx: MeterContext, estimate: bool = True, registry: Any = METERS
) -> list[Meter]:
    """Instantiate the meters for a run.

    "auto" picks, for each role the device needs, the strongest available source
    (counter > polling > estimate; the estimate only when `estimate` is true). Explicit
    names are used as given. A role nothing can measure gets an UnavailableMeter.
    """
    chosen: list[Meter] = []
    explicit = [n for n in names if n != "auto"]
    for name in explicit:
        cls = registry.get(name)
        available = cls.availability(ctx)
        chosen.append(cls(ctx) if available else UnavailableMeter(ctx, cls.role, available.reason))
    if "auto" in names:
        covered = {m.role if not isinstance(m, UnavailableMeter) else m.role_name for m in chosen}
        classes = sorted((registry.get(n) for n in registry.names()), key=lambda c: c.rank)
        for role in roles_for(ctx.device):
            if role in covered:
                continue
            reasons = []
            for cls in classes:
                if cls.role != role or (cls.estimated and not estimate):
                    continue
                available = cls.availability(ctx)
                if available:
                    meter = cls(ctx)
                    meter.passed_over = list(reasons)  # why stronger sources were not used
                    chosen.append(meter)
                    break
                reasons.append(f"{cls.name}: {available.reason}")
            else:
                reason = "; ".join(reasons) or f"no {role} meter is registered"
                if not estimate:
                    reason += "; estimates disabled"
                chosen.append(UnavailableMeter(ctx, role, reason))
    return chosen
