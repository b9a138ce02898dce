"""CO2 from measured energy, computed last and kept apart: energy is never overwritten.

    gCO2e = E[kWh] x PUE x intensity[gCO2e/kWh]

Intensity is location-based, from a versioned table (source and year below), or given
with --carbon-intensity. PUE defaults to 1.0 and is labelled as the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from optbench.errors import UsageError, closest

TABLE_VERSION = "owid-2023"
TABLE_SOURCE = ("Our World in Data, carbon intensity of electricity generation (Ember, Energy "
                "Institute), year 2023, gCO2e/kWh, location-based; "
                "ourworldindata.org/grapher/carbon-intensity-electricity")
INTENSITY_G_PER_KWH: dict[str, float] = {
    "world": 475, "argentina": 354, "australia": 549, "austria": 111, "belgium": 138,
    "brazil": 98, "bulgaria": 335, "canada": 170, "chile": 291, "china": 582,
    "colombia": 260, "czechia": 450, "denmark": 152, "finland": 79, "france": 56,
    "germany": 381, "greece": 337, "hungary": 204, "india": 713, "ireland": 291,
    "norway": 30, "usa": 369,
}
DEFAULT_REGION = "world"


@dataclass(frozen=True)
class CarbonSettings:
    """How energy becomes CO2 for a report, with where each number came from."""

    intensity_g_per_kwh: float
    pue: float
    region: str | None
    source: str
    pue_source: str

    def grams(self, energy_j: float | None) -> float | None:
        if energy_j is None:
            return None
        return energy_j / 3.6e6 * self.pue * self.intensity_g_per_kwh

    def describe(self) -> str:
        where = f"{self.region}: " if self.region else ""
        return (f"{where}{self.intensity_g_per_kwh:g} gCO2e/kWh ({self.source}); "
                f"PUE {self.pue:g} ({self.pue_source})")


def carbon_settings(region: str | None = None, intensity: float | None = None,
                    pue: float | None = None) -> CarbonSettings:
    """Resolve --region / --carbon-intensity / --pue; an explicit intensity wins."""
    # `not (x >= bound)` rather than `x < bound`: NaN compares false both ways.
    if pue is not None and not (math.isfinite(pue) and pue >= 1.0):
        raise UsageError(f"--pue must be a finite number of at least 1.0, got {pue:g}")
    pue_value, pue_source = (pue, "user-supplied") if pue is not None else (1.0, "default 1.0")
    if intensity is not None:
        if not (math.isfinite(intensity) and intensity >= 0):
            raise UsageError(f"--carbon-intensity must be a finite number >= 0, got "
                             f"{intensity:g}")
        return CarbonSettings(intensity, pue_value, region, "user-supplied", pue_source)
    key = (region or DEFAULT_REGION).strip().lower()
    if key not in INTENSITY_G_PER_KWH:
        suggestion = closest(key, INTENSITY_G_PER_KWH)
        hint = f"; did you mean '{suggestion}'?" if suggestion else ""
        raise UsageError(f"unknown region '{region}'{hint} (known: "
                         f"{', '.join(sorted(INTENSITY_G_PER_KWH))}; or --carbon-intensity)")
    source = f"{TABLE_VERSION} table" + ("" if region else ", default region")
    return CarbonSettings(INTENSITY_G_PER_KWH[key], pue_value, key, source, pue_source)
