"""Validity checks of one run: can its numbers be defended? (pure; docs/measurement.md).

Five checks, each "pass", "fail" or "n/a" (could not be judged: the run does not record
what the check needs, or the check does not apply), with a short sentence and the numbers:

- warmup: the warm-up reached a steady state (the last three blocks' throughput within the
  preset's tolerance) rather than stopping at its cap;
- windows: every metered window spans at least the meter's required number of update
  periods (RESOLUTION_PERIODS in meters/base.py: 10);
- power: each measured channel's mean power over each work window lies between its idle
  baseline (less IDLE_TOLERANCE) and the device's limit (the GPU's enforced power limit,
  the RAPL zone's highest documented constraint; plus LIMIT_TOLERANCE), each bound where it
  is known; estimated energy is modelled, not measured, so it has nothing to check;
- busy: the loop kept the device busy: closed-loop runs spent at least MIN_IN_CALL_SHARE of
  every window inside the backend's calls; served runs, at their highest unsaturated load,
  filled batches to at least MIN_FILL of max_batch or served at least MIN_FILL of the
  capacity (every load saturated: the device was at capacity);
- contention: no window saw foreign CPU work above the contention threshold (5% of a core,
  or /proc/stat's resolution) or another process on the GPU.

A run that fails a check is kept and flagged, never dropped; "n/a" fails nothing. Trials
whose energy is excluded from statistics (ambiguous wrap, reset, invalid) are not judged.
Stores written before these checks existed give "n/a" where a record is missing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from optbench.results.schema import RunResult, Trial

PASS, FAIL, NA = "pass", "fail", "n/a"
CHECKS = ("warmup", "windows", "power", "busy", "contention")

# meters/base.py RESOLUTION_PERIODS, for meters that did not record their own requirement
DEFAULT_WINDOW_PERIODS = 10
# Load power may sit this far below the idle baseline (the idle_drift bound) before it
# counts as impossible; and this far above a power cap, which the device enforces as an
# average over its own control window and can overshoot briefly.
IDLE_TOLERANCE = 0.05
LIMIT_TOLERANCE = 0.10
# Closed loop: the share of a window spent inside infer/synchronize; the rest is harness
# time whose energy is billed to the model.
MIN_IN_CALL_SHARE = 0.90
# Served: batch fill (mean batch / max_batch) or utilisation (achieved / capacity) at the
# highest load the configuration held, below which the device was mostly idle there.
MIN_FILL = 0.50
# measure/contention.py FOREIGN_CORE_FRACTION, for windows that did not record the threshold
FOREIGN_CORE_FRACTION = 0.05

METERED_PHASES = ("idle", "load", "serve")
WORK_PHASES = ("load", "serve")
STREAM_SCENARIOS = ("single-stream", "multi-stream")


@dataclass(frozen=True)
class Check:
    """One validity check of one run: its name (CHECKS), status and what it found."""

    name: str
    status: str  # PASS | FAIL | NA
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def check_run(result: RunResult) -> list[Check]:
    """The five checks of one stored run, in CHECKS order (a failed or skipped run: n/a)."""
    if result.status != "ok":
        return [Check(name, NA, f"run {result.status}: nothing was measured")
                for name in CHECKS]
    details = result.details if isinstance(result.details, dict) else {}
    meters = [m for m in details.get("meters") or [] if isinstance(m, dict)]
    trials = [t for t in result.trials if t.phase in METERED_PHASES and not t.excluded]
    checks = {
        "warmup": lambda: check_warmup(details.get("warmup")),
        "windows": lambda: check_windows(trials, meters),
        "power": lambda: check_power(trials, meters),
        "busy": lambda: check_busy(trials, details.get("serving")),
        "contention": lambda: check_contention(trials),
    }
    out = []
    for name, check in checks.items():
        try:
            out.append(check())
        except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as exc:
            # a record of another shape (an older store): not judged, never a crash
            out.append(Check(name, NA, f"record not readable ({type(exc).__name__}: {exc})"))
    return out


def is_valid(checks: list[Check]) -> bool:
    """True when no check failed (n/a fails nothing)."""
    return not any(c.failed for c in checks)


def validity_text(checks: list[Check]) -> str:
    """"ok" when nothing fails, else "failed: warmup (...); power (...)"."""
    failed = [c for c in checks if c.failed]
    if not failed:
        return "ok"
    return "failed: " + "; ".join(f"{c.name} ({c.detail})" for c in failed)


# ---------------------------------------------------------------------------- formatting
def _pct(x: float) -> str:
    return f"{x * 100:.2g}%" if abs(x) < 0.1 else f"{x * 100:.0f}%"


def _secs(x: float) -> str:
    return f"{x:.3g} s" if x >= 1 else f"{x * 1e3:.3g} ms"


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _more(items: list[str], shown: int = 2) -> str:
    text = "; ".join(items[:shown])
    return text + (f" (+{len(items) - shown} more)" if len(items) > shown else "")


# ---------------------------------------------------------------------------- warm-up
def check_warmup(record: Any) -> Check:
    """Steady when the last three blocks' throughput agreed within the preset's tolerance."""
    if not isinstance(record, dict) or "steady" not in record:
        return Check("warmup", NA, "no warm-up record")
    seconds = _num(record.get("seconds"))
    took = f" after {_secs(seconds)}" if seconds is not None else ""
    tolerance = _num(record.get("tolerance"))
    spread = _num(record.get("spread"))
    rates = [r for r in record.get("last_rates_per_s") or [] if _num(r) is not None]
    if spread is None and len(rates) >= 3:
        spread = (max(rates) - min(rates)) / (sum(rates) / len(rates))
    against = f" (tolerance {_pct(tolerance)})" if tolerance is not None else ""
    if record["steady"]:
        within = f": last 3 blocks within {_pct(spread)}" if spread is not None else ""
        return Check("warmup", PASS, f"steady{took}{within}{against}")
    cap = _num(record.get("max_s"))
    stopped = f"stopped at its {_secs(cap)} cap" if cap is not None else "stopped at its cap"
    if spread is None:
        blocks = record.get("blocks", len(rates))
        return Check("warmup", FAIL, f"warm-up not steady: {stopped}{took} with {blocks} "
                                     "block(s), 3 needed to judge")
    op = ">" if tolerance is not None and spread > tolerance else "vs"
    limit = f" {op} {_pct(tolerance)}" if tolerance is not None else ""
    return Check("warmup", FAIL, f"warm-up not steady: {stopped}{took}, last 3 blocks' "
                                 f"throughput spread {_pct(spread)}{limit}")


# ---------------------------------------------------------------------------- windows
def channel_info(meters: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per channel, from the meters' describe(): meter name, update period, the periods a
    window needs, and the documented power limit (RAPL zones)."""
    out: dict[str, dict[str, Any]] = {}
    for m in meters:
        base = {"meter": m.get("meter", "meter"),
                "periods": _num(m.get("min_window_periods")) or DEFAULT_WINDOW_PERIODS}
        channels = m.get("channels")
        if isinstance(channels, dict):
            for name, info in channels.items():
                info = info if isinstance(info, dict) else {}
                out[name] = {**base, "period": _num(info.get("update_period_s")),
                             "limit": _num(info.get("power_limit_w"))}
        elif isinstance(m.get("channel"), str):
            out[m["channel"]] = {**base, "period": _num(m.get("update_period_s")),
                                 "limit": None}
    return out


def check_windows(trials: list[Trial], meters: list[dict[str, Any]]) -> Check:
    """Every metered window >= the meter's required periods x its update period."""
    info = channel_info(meters)
    short: list[tuple[float, str]] = []
    tightest: tuple[float, str] | None = None
    for t in trials:
        for r in t.readings:
            meta = info.get(r.channel, {})
            period = _num(r.details.get("update_period_s")) or meta.get("period")
            meter = meta.get("meter") or r.channel.split(":")[0]
            window = r.window_s if r.window_s > 0 else t.window_s
            where = f"{t.phase} trial {t.index}, {r.channel}"
            if not period:
                if "below_resolution" in r.flags:  # the meter's own verdict
                    short.append((0.0, f"window {_secs(window)} ({where}) below {meter}'s "
                                       "resolution"))
                continue
            need = meta.get("periods") or DEFAULT_WINDOW_PERIODS
            ratio = window / (need * period)
            if ratio < 1 or "below_resolution" in r.flags:
                short.append((ratio, f"window {_secs(window)} ({where}) < {need:g} x "
                                     f"{_secs(period)} {meter} update period"))
            elif tightest is None or ratio < tightest[0]:
                tightest = (ratio, f"shortest {_secs(window)} >= {need:g} x {_secs(period)} "
                                   f"{meter} update period")
    if short:
        short.sort()
        return Check("windows", FAIL, _more([s for _, s in short], 1))
    if tightest is None:
        return Check("windows", NA, "no meter reports an update period for its channels")
    return Check("windows", PASS, f"every window spans its meters' update periods: "
                                  f"{tightest[1]}")


# ---------------------------------------------------------------------------- power
def _telemetry_limits(trial: Trial, meters: list[dict[str, Any]]) -> dict[str, float]:
    """Per channel, the power limit a meter recorded at the trial's edges (NVML's enforced
    limit), the highest of start and end."""
    out: dict[str, float] = {}
    for m in meters:
        channel, tel = m.get("channel"), trial.telemetry.get(m.get("meter", ""))
        if not isinstance(channel, str) or not isinstance(tel, dict):
            continue
        values = [v for edge in ("start", "end") if isinstance(tel.get(edge), dict)
                  and (v := _num(tel[edge].get("power_limit_w"))) and v > 0]
        if values:
            out[channel] = max(values)
    return out


def _idle_power(trials: list[Trial]) -> dict[str, float]:
    """Per measured channel, its mean power over the idle windows."""
    energy: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for t in trials:
        if t.phase != "idle":
            continue
        for r in t.readings:
            if r.method.startswith("measured") and r.energy_j is not None and r.window_s > 0:
                energy[r.channel] = energy.get(r.channel, 0.0) + r.energy_j
                seconds[r.channel] = seconds.get(r.channel, 0.0) + r.window_s
    return {c: energy[c] / seconds[c] for c in energy}


def check_power(trials: list[Trial], meters: list[dict[str, Any]]) -> Check:
    """Each measured channel's mean power per work window in [idle baseline, limit]."""
    info = channel_info(meters)
    idle = _idle_power(trials)
    bad: list[str] = []
    seen: dict[str, list[float]] = {}
    limits: dict[str, float] = {}
    estimated: set[str] = set()
    for t in trials:
        if t.phase not in WORK_PHASES:
            continue
        recorded = _telemetry_limits(t, meters)
        for r in t.readings:
            if r.method == "estimated":
                estimated.add(r.channel)
            if not r.method.startswith("measured") or r.energy_j is None or r.window_s <= 0:
                continue
            watts = r.energy_j / r.window_s
            slack = (r.uncertainty_j or 0.0) / r.window_s
            base = idle.get(r.channel)
            limit = recorded.get(r.channel) or info.get(r.channel, {}).get("limit")
            if base is None and limit is None:
                continue
            seen.setdefault(r.channel, []).append(watts)
            if limit is not None:
                limits[r.channel] = max(limit, limits.get(r.channel, 0.0))
            if base is not None and watts < base * (1 - IDLE_TOLERANCE) - slack:
                bad.append(f"{r.channel} {watts:.3g} W in {t.phase} trial {t.index} < its "
                           f"idle baseline {base:.3g} W")
            if limit is not None and watts > limit * (1 + LIMIT_TOLERANCE) + slack:
                bad.append(f"{r.channel} {watts:.3g} W in {t.phase} trial {t.index} > its "
                           f"{limit:.3g} W power limit")
    if bad:
        return Check("power", FAIL, _more(bad, 1))
    if not seen:
        if estimated:
            return Check("power", NA, f"energy is estimated ({', '.join(sorted(estimated))}): "
                                      "modelled from CPU time, no measured power to bound")
        return Check("power", NA, "no measured channel has an idle baseline or a power limit")
    parts = []
    for channel, watts in sorted(seen.items()):
        low = f"idle {idle[channel]:.3g} W" if channel in idle else "no idle baseline"
        high = (f"limit {limits[channel]:.3g} W" if channel in limits
                else "no power limit known")
        span = (f"{min(watts):.3g}" if f"{min(watts):.3g}" == f"{max(watts):.3g}"
                else f"{min(watts):.3g}-{max(watts):.3g}")
        parts.append(f"{channel} {span} W ({low}, {high})")
    if estimated:
        parts.append(f"estimated, not checked: {', '.join(sorted(estimated))}")
    return Check("power", PASS, "; ".join(parts))


# ---------------------------------------------------------------------------- busy
def check_busy(trials: list[Trial], serving: Any) -> Check:
    """Closed loop: time inside the backend's calls; served: batch fill or utilisation."""
    if isinstance(serving, dict) and serving:
        return _served_busy(serving)
    loads = [t for t in trials if t.phase == "load" and t.window_s > 0]
    if not loads:
        return Check("busy", NA, "no load trials")
    shares = [(s / t.window_s, t) for t in loads
              if (s := _num(t.telemetry.get("in_call_s"))) is not None]
    if not shares:
        return Check("busy", NA, "time inside the backend's calls not recorded in the "
                                 "load trials")
    share, worst = min(shares, key=lambda x: x[0])
    if share < MIN_IN_CALL_SHARE:
        return Check("busy", FAIL, f"load trial {worst.index} spent {_pct(share)} of its "
                                   f"window in the backend's calls < {_pct(MIN_IN_CALL_SHARE)}"
                                   " (the harness took the rest)")
    return Check("busy", PASS, f"every load window >= {_pct(share)} inside the backend's "
                               f"calls (>= {_pct(MIN_IN_CALL_SHARE)}), batches full")


def _served_busy(serving: dict[str, Any]) -> Check:
    kind = serving.get("scenario")
    if kind in STREAM_SCENARIOS:
        return Check("busy", NA, f"{kind}: queries one after another by design, batch "
                                 "saturation does not apply")
    points = [p for p in serving.get("points") or []
              if isinstance(p, dict) and isinstance(p.get("figures"), dict)]
    if not points:
        return Check("busy", NA, "no serving points")
    saturated = [p for p in points if p["figures"].get("saturated")]
    held = [p for p in points if not p["figures"].get("saturated")]
    if not held:
        return Check("busy", PASS, f"every load ({len(points)}) saturated the serving path: "
                                   "the device was kept at capacity")

    def rate(p: dict[str, Any]) -> float:
        return _num(p["figures"].get("achieved_rate_per_s")) or 0.0

    top = max(held, key=rate)
    max_batch = _num(serving.get("max_batch"))
    capacity = _num(serving.get("capacity_per_s"))
    mean_batch = _num(top["figures"].get("mean_batch"))
    fill = mean_batch / max_batch if mean_batch and max_batch and max_batch > 1 else None
    util = rate(top) / capacity if capacity else None
    found = []
    if fill is not None:
        found.append(f"batches averaged {mean_batch:.2g} of {max_batch:g} ({_pct(fill)})")
    if util is not None:
        found.append(f"{_pct(util)} of the {capacity:.3g} req/s capacity")
    if not found:
        return Check("busy", NA, "neither the batch size nor the capacity is recorded")
    text = (f"at {rate(top):.3g} req/s, the highest unsaturated load: " + ", ".join(found)
            + (f"; {len(saturated)} load(s) saturated" if saturated else ""))
    if max(x for x in (fill, util) if x is not None) < MIN_FILL:
        return Check("busy", FAIL, f"device under-used {text} (< {_pct(MIN_FILL)})")
    return Check("busy", PASS, text)


# ---------------------------------------------------------------------------- contention
def check_contention(trials: list[Trial]) -> Check:
    """Foreign CPU work above the threshold (the loop's `contended` flag) or GPU processes."""
    bad: list[str] = []
    cpu: list[tuple[float, float]] = []
    gpu_checked = False
    for t in trials:
        foreign = _num(t.telemetry.get("foreign_cpu_cores"))
        threshold = _num(t.telemetry.get("foreign_cpu_threshold_cores"))
        if foreign is not None:
            cpu.append((foreign, threshold or FOREIGN_CORE_FRACTION))
        if "contended" in t.flags:
            what = f"{foreign:.2g} cores" if foreign is not None else "contended"
            over = f" > {threshold:.2g}" if threshold is not None else ""
            bad.append(f"{t.phase} trial {t.index}: foreign CPU {what}{over}")
        for r in t.readings:
            if r.channel.startswith("gpu:") and r.method != "unavailable":
                gpu_checked = True
            if "contended" in r.flags:
                pids = r.details.get("foreign_pids")
                bad.append(f"{t.phase} trial {t.index}: other processes on {r.channel}"
                           + (f" (pids {', '.join(map(str, pids))})" if pids else ""))
    if bad:
        return Check("contention", FAIL, _more(bad, 1))
    if not cpu and not gpu_checked:
        return Check("contention", NA, "foreign CPU load not recorded (no /proc/stat)")
    parts = []
    if cpu:
        worst, threshold = max(cpu)
        parts.append(f"foreign CPU at most {worst:.2g} cores (threshold {threshold:.2g})")
    else:
        parts.append("foreign CPU load not recorded")
    if gpu_checked:
        parts.append("no other process on the GPU")
    return Check("contention", PASS, "; ".join(parts))
