"""Shared wording and number formatting for every report renderer."""

from __future__ import annotations

from typing import Any

BOUNDARY = (
    "Energy boundary: on-board sensors only (GPU board, CPU package, DRAM) where counters "
    "exist; wall power (PSU, fans, network) is outside it. Figures labelled `estimated` are "
    "modelled from CPU time and a TDP, not measured, and carry a wide band."
)
QUALITY_NOTES = {
    "top1": "top-1 accuracy on held-out labelled data",
    "top1_agreement": "top-1 agreement with the fp32 reference model on the same inputs "
                      "(no labels, or random weights: this is fidelity, not accuracy)",
    "perplexity": "perplexity on held-out text (lower is better); greedy-token agreement "
                  "with the fp32 reference is in the export (token_agreement)",
}


def fmt(value: Any, scale: float = 1.0, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value * scale:.{digits}g}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.0%}"


def environment_summary(env: dict[str, Any]) -> str:
    cpu = env.get("cpu", {})
    gpus = env.get("gpus", {}).get("devices", [])
    return (f"{cpu.get('model')} ({cpu.get('logical_cpus')} logical CPUs), "
            f"{', '.join(g['name'] for g in gpus) or 'no NVIDIA GPU'}, {env.get('os')} "
            f"{env.get('kernel')}, Python {env.get('python')}, optbench "
            f"{env.get('optbench_version')}")


def packages_summary(env: dict[str, Any]) -> str:
    packages = {k: v for k, v in env.get("packages", {}).items() if v}
    return ", ".join(f"{k} {v}" for k, v in sorted(packages.items()))


def run_label(row: dict[str, Any], short: bool = False) -> str:
    """A run's name: in full with its device (recommendations, the CLI), or short where
    the device is at hand (tables, provenance, figures, MLflow). The machine is named only
    when a report puts several side by side."""
    return placed(f"{model_prefix(row)}{row['backend']} {row['variant']} bs{row['batch_size']}",
                  row, short)


def model_prefix(row: dict[str, Any]) -> str:
    """The model's name before a run's, where several models share its front."""
    return f"{row['model']} " if row.get("shared_front") else ""


def placed(name: str, row: dict[str, Any], short: bool) -> str:
    """A name with its device (in full) and, where several are side by side, its machine."""
    machine = row.get("env_label")
    if short:
        return f"{name} @ {machine}" if machine else name
    return f"{name} ({row['device']}{f' on {machine}' if machine else ''})"


def serving_label(row: dict[str, Any], short: bool = False) -> str:
    """A serving configuration's name: the run's backend and variant with its batching
    policy (max batch, max wait), its cache, and its scenario unless it is `server`."""
    wait = row.get("max_wait_ms")
    name = (f"{model_prefix(row)}{row['backend']} {row['variant']} mb{row.get('max_batch')} "
            f"wait{'-' if wait is None else f'{wait:g}'}ms")
    if row.get("cache_size"):
        name += f" cache{row['cache_size']}"
    if row.get("scenario") not in (None, "server"):
        name += f" {row['scenario']}"
    return placed(name, row, short)


def provenance(row: dict[str, Any]) -> str:
    """One line of where a row's energy came from: channels, trials, flags, weights."""
    parts = [f"energy {row.get('energy_method') or '-'}"]
    if row.get("energy_channels"):
        parts.append(f"channels: {row['energy_channels']}")
    parts.append(f"trials: {row.get('energy_trials', 0)}")
    if row.get("energy_trials_excluded"):
        parts.append(f"excluded: {row['energy_trials_excluded']}")
    if row.get("energy_flags"):
        parts.append(f"flags: {row['energy_flags']}")
    if row.get("energy_reason"):
        parts.append(f"why empty: {row['energy_reason']}")
    if row.get("precision_path"):
        parts.append(f"path: {row['precision_path']}")
    if row.get("timing_source"):
        parts.append(f"TTFT/TPOT from: {row['timing_source']}")
    if row.get("validity") and row["validity"] != "ok":
        parts.append(f"validity {row['validity']}")
    return "; ".join(parts)


SPARSITY_NOTE = (
    "Unstructured pruning leaves every weight tensor its dense size and these runtimes do "
    "not skip zeros, so it is not expected to save time or energy by itself: a difference "
    "from the fp32 run of the same backend is run-to-run variation unless repeated "
    "measurements show otherwise. It shrinks only the compressed file. Structured pruning "
    "removes channels, so parameters, MACs and latency really fall."
)
MAKING_HEAD = ("backend", "variant", "lineage", "parameters", "MACs", "model KB",
               "training J (method)", "training s", "break-even inferences")


def break_even_unit(rows: list[dict[str, Any]]) -> str:
    """What break-even counts: inferences, or output tokens for text generation."""
    return "output tokens" if any(r.get("sample_unit") == "token" for r in rows) \
        else "inferences"


def making_head(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    return (*MAKING_HEAD[:-1], f"break-even {break_even_unit(rows)}")


def break_even_text(row: dict[str, Any]) -> str:
    if not row.get("training"):
        return "- (no training)"
    value, note = row.get("break_even_samples"), row.get("break_even_note")
    text = "-" if value is None else f"{value:,.0f}"
    return f"{text} ({note})" if note else text


def making_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["model"], r["backend"], r["variant"], r["batch_size"]))


def making_cells(row: dict[str, Any]) -> list[str]:
    """What a row's model is and what it cost to make, as table cells."""
    spent = row.get("training_energy_j")
    training = "-" if not row.get("training") else (
        f"{fmt(spent, 1, 4)} ({row.get('training_energy_method')})"
        + (", budget spent" if row.get("training_budget_exhausted") else ""))
    size = row.get("model_bytes")
    return [f"{model_prefix(row)}{row['backend']}", str(row["variant"]), row.get("lineage") or "-",
            fmt(row.get("parameters"), 1, 4), fmt(row.get("macs"), 1, 4),
            fmt(None if size is None else size / 1024), training,
            fmt(row.get("training_s")), break_even_text(row)]


FAILED_HEAD = ("model", "backend", "variant", "batch", "status", "reason")


def failed_cells(row: dict[str, Any]) -> list[str]:
    """A skipped or failed run, as table cells."""
    return [str(row[k]) for k in ("model", "backend", "variant", "batch_size", "status")] + [
        row["reason"] or ""]


def shows_making(rows: list[dict[str, Any]]) -> bool:
    """Whether some model was transformed or trained here (a classic model is fitted by
    its builder: its training energy is what it cost to make)."""
    return any(r.get("lineage") or r.get("training") for r in rows)


def mentions_unstructured(rows: list[dict[str, Any]]) -> bool:
    return any("unstructured" in (r.get("lineage") or "") for r in rows)
