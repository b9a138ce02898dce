"""The `optbench` command. Arguments become a Recipe; everything else lives elsewhere."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from optbench import __version__
from optbench.errors import OptbenchError, UsageError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Measure which runtime and optimization to ship: energy, latency and "
                       "accuracy fronts across backends and transforms.")
console = Console(stderr=True)
out_console = Console()
DEFAULT_OUT = Path("reports")
OutOption = typer.Option(DEFAULT_OUT, "--out", "-o", help="output directory (store + report)")
RegionOption = typer.Option(None, "--region", help="grid region for CO2 (default: world)")
IntensityOption = typer.Option(None, "--carbon-intensity", help="gCO2e/kWh, overrides --region")
PueOption = typer.Option(None, "--pue", help="data-centre PUE for CO2 (default 1.0)")
PriceOption = typer.Option(None, "--price-per-kwh", help="electricity price, for cost columns")
ObjectiveOption = typer.Option("energy", "--objective",
                               help="energy | latency | throughput | co2 | ttft | tpot")
QualityDropOption = typer.Option(None, "--max-quality-drop",
                                 help="allowed quality drop below the fp32 baseline, as a "
                                      "fraction (0.01 = one point of top-1), or in the "
                                      "metric's own units (perplexity)")
LatencyOption = typer.Option(None, "--max-latency-p99-ms", help="latency p99 ceiling in ms")
MlflowOption = typer.Option(False, "--mlflow", help="log runs and the report to MLflow "
                                                    "(local store OUT/mlruns)")
MlflowUriOption = typer.Option(None, "--mlflow-uri", help="MLflow tracking URI (implies --mlflow)")


def _carbon(region: str | None, intensity: float | None, pue: float | None) -> Any:
    from optbench.carbon import carbon_settings

    try:
        return carbon_settings(region, intensity, pue)
    except OptbenchError as exc:
        fail(exc)


def fail(exc: OptbenchError) -> None:
    console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


@app.callback()
def main_options(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="-v info, -vv debug"),
    version: bool = typer.Option(False, "--version", help="print the version and exit"),
) -> None:
    if version:
        out_console.print(f"optbench {__version__}")
        raise typer.Exit(0)
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@app.command()
def compare(
    model: str = typer.Option(..., "--model", "-m", help="card name, .onnx file, HF dir/id"),
    backends: str = typer.Option(..., "--backends", "-b", help="comma-separated, e.g. ort,trt"),
    int8: bool = typer.Option(False, "--int8", help="add an int8 variant (runtime's own PTQ)"),
    fp16: bool = typer.Option(False, "--fp16", help="add an fp16 variant"),
    bf16: bool = typer.Option(False, "--bf16", help="add a bf16 variant"),
    batch_sizes: str = typer.Option("1", "--batch-sizes", help="comma-separated, e.g. 1,8"),
    preset: str = typer.Option("quick", "--preset", help="quick | standard | rigorous"),
    dataset: Optional[str] = typer.Option(None, "--data", help="mnist | synthetic | "
                                          "imagefolder:<path> | pydocs | textfile:<path> "
                                          "(default: the model card's)"),
    eval_samples: Optional[int] = typer.Option(None, "--eval-samples",
                                               help="images, or prompts for text models"),
    new_tokens: Optional[int] = typer.Option(None, "--new-tokens",
                                             help="text models: tokens per request (32)"),
    prompt_tokens: Optional[int] = typer.Option(None, "--prompt-tokens",
                                                help="text models: prompt length (32)"),
    weights: Optional[str] = typer.Option(None, "--weights", help="weights file for the model"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    cpu_tdp_w: Optional[float] = typer.Option(None, "--cpu-tdp-w",
                                              help="CPU TDP for the energy estimate"),
    no_estimate: bool = typer.Option(False, "--no-estimate",
                                     help="no CPU estimate: unmeasured energy stays empty"),
    meters: str = typer.Option("auto", "--meters", help="auto, or e.g. nvml,rapl,estimate"),
    timeout_s: float = typer.Option(1800.0, "--timeout", help="seconds per configuration"),
    out: Path = OutOption,
    resume: bool = typer.Option(False, "--resume", help="skip configurations already ok"),
    print_recipe: bool = typer.Option(False, "--print-recipe", help="show the recipe, run nothing"),
    region: Optional[str] = RegionOption,
    carbon_intensity: Optional[float] = IntensityOption,
    pue: Optional[float] = PueOption,
    price_per_kwh: Optional[float] = PriceOption,
    mlflow: bool = MlflowOption,
    mlflow_uri: Optional[str] = MlflowUriOption,
) -> None:
    """Compare backends (and precisions) on one model; writes the store and the report."""
    from optbench.recipe import parse_recipe

    variants: dict[str, list[str]] = {"fp32": []}
    for flag, name in ((int8, "int8"), (fp16, "fp16"), (bf16, "bf16")):
        if flag:
            variants[name] = [name]
    data: dict[str, Any] = {
        "name": f"compare-{Path(model).stem if model.endswith('.onnx') else model}",
        "model": {"name": model, "weights": weights} if weights else model,
        "device": device,
        "backends": _split(backends),
        "variants": variants,
        "sweep": {"batch_sizes": _split(batch_sizes)},
        "measure": {"preset": preset, "timeout_s": timeout_s, "meters": _split(meters),
                    "estimate": not no_estimate,
                    **({"cpu_tdp_w": cpu_tdp_w} if cpu_tdp_w else {})},
        "workload": {k: v for k, v in (("dataset", dataset), ("eval_samples", eval_samples),
                                       ("new_tokens", new_tokens),
                                       ("prompt_tokens", prompt_tokens)) if v is not None},
    }
    options = _report_options(region, carbon_intensity, pue, price_per_kwh,
                              mlflow_uri=_mlflow(mlflow, mlflow_uri))
    _execute(lambda: parse_recipe(data), out, resume, print_recipe, options)


@app.command()
def run(
    recipe_file: Path = typer.Argument(..., help="recipe YAML"),
    out: Path = OutOption,
    resume: bool = typer.Option(False, "--resume", help="skip configurations already ok"),
    print_recipe: bool = typer.Option(False, "--print-recipe", help="show the recipe, run nothing"),
    region: Optional[str] = RegionOption,
    carbon_intensity: Optional[float] = IntensityOption,
    pue: Optional[float] = PueOption,
    price_per_kwh: Optional[float] = PriceOption,
    mlflow: bool = MlflowOption,
    mlflow_uri: Optional[str] = MlflowUriOption,
) -> None:
    """Run a recipe file; writes the store and the report."""
    from optbench.recipe import load_recipe

    options = _report_options(region, carbon_intensity, pue, price_per_kwh,
                              mlflow_uri=_mlflow(mlflow, mlflow_uri))
    _execute(lambda: load_recipe(recipe_file), out, resume, print_recipe, options)


def _execute(make_recipe: Any, out: Path, resume: bool, print_recipe: bool,
             options: Any) -> None:
    """Validate first (nothing is written for a bad recipe), then print or run it."""
    try:
        recipe = make_recipe()
    except OptbenchError as exc:
        fail(exc)
    if print_recipe:
        out_console.print(recipe.to_yaml(), end="", highlight=False)
        return
    _run_and_report(recipe, out, resume, options)


class SweepProgress:
    """Rich progress for a sweep: one bar, the current configuration and its phase."""

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console)
        self.task = self.progress.add_task("sweep", total=None)

    def __enter__(self) -> SweepProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def started(self, index: int, total: int, spec: Any) -> None:
        self.progress.update(self.task, total=total,
                             description=escape(f"{spec.label()}: starting"))

    def phase(self, spec: Any, phase: str) -> None:
        self.progress.update(self.task, description=escape(f"{spec.label()}: {phase}"))

    def finished(self, spec: Any, run_id: int | None, result: Any) -> None:
        from optbench.results.stats import percentile

        self.progress.advance(self.task)
        if result.status == "ok":
            metrics = {m.name: m.value for m in result.metrics}
            quality = metrics.get(result.quality_metric)
            p50 = percentile(result.latencies_s, 50) * 1e3 if result.latencies_s else None
            detail = f"{result.quality_metric}={quality:.4f}" if quality is not None else ""
            detail += f"  p50 {p50:.3g} ms" if p50 is not None else ""
            self.console.print(f"[green]ok[/green]      {escape(spec.label())}  {detail}",
                               highlight=False)
        else:
            color = "yellow" if result.status == "skipped" else "red"
            self.console.print(f"[{color}]{result.status:<7}[/{color}] {escape(spec.label())}: "
                               f"{escape(str(result.reason))}", highlight=False, soft_wrap=True)


def _run_and_report(recipe: Any, out: Path, resume: bool, options: ReportOptions) -> None:
    from optbench.runner import Runner

    try:
        with SweepProgress(console) as events:
            Runner(out, events).run(recipe, resume=resume)
        _report([out], options)
    except OptbenchError as exc:
        fail(exc)


@dataclass
class ReportOptions:
    carbon: Any
    price_per_kwh: float | None = None
    constraints: Any = None
    name: str | None = None
    html: bool = True
    screenshot: bool = False
    mlflow_uri: str | None = None


def _report_options(region: str | None, intensity: float | None, pue: float | None,
                    price: float | None = None, objective: str = "energy",
                    max_quality_drop: float | None = None,
                    max_latency_p99_ms: float | None = None, **rest: Any) -> ReportOptions:
    from optbench.report.recommend import Constraints

    try:
        constraints = Constraints(max_quality_drop, None if max_latency_p99_ms is None
                                  else max_latency_p99_ms / 1e3, objective)
    except ValueError as exc:
        fail(UsageError(str(exc)))
    if price is not None and price < 0:
        fail(UsageError(f"--price-per-kwh must be non-negative, got {price:g}"))
    return ReportOptions(_carbon(region, intensity, pue), price, constraints, **rest)


def _report(outs: list[Path], options: ReportOptions, dest: Path | None = None) -> None:
    from optbench.report.render import render

    rendered = render(outs, dest, options.carbon, options.price_per_kwh, options.constraints,
                      options.name, options.html)
    console.print(f"report: {rendered.markdown}")
    if rendered.html is not None:
        console.print(f"html:   {rendered.html}")
    if options.screenshot and rendered.html is not None:
        from optbench.report.screenshot import check_page

        png = rendered.directory / "screenshot.png"
        check = check_page(rendered.html, png)
        problems = check.errors + check.dialogs
        console.print(f"screenshot: {png} ({check.plots_drawn} plots drawn"
                      + (f"; page errors: {problems}" if problems else "") + ")")
    if options.mlflow_uri is not None:
        from optbench.report.data import load
        from optbench.results.mlflow_log import default_uri, log_runs

        uri = options.mlflow_uri or default_uri(outs[0])
        counts = log_runs(load(outs, options.carbon, options.price_per_kwh).rows,
                          rendered.directory, uri)
        console.print(f"mlflow: {counts['logged']} runs logged, {counts['skipped']} already "
                      f"there ({uri})")


def say(text: str, style: str | None = None) -> None:
    """A line on stdout, never interpreted as markup, never wrapped mid-word."""
    out_console.print(Text(text, style=style or ""), soft_wrap=True)


def _mlflow(flag: bool, uri: str | None) -> str | None:
    """None: no MLflow; "": the default local store; else the given tracking URI."""
    if uri:
        return uri
    return "" if flag else None


@app.command()
def report(
    outs: list[Path] = typer.Option([DEFAULT_OUT], "--out", "-o",
                                    help="store directory; repeat to put machines side by side"),
    dest: Optional[Path] = typer.Option(None, "--dest",
                                        help="where to write (default: first --out)"),
    name: Optional[str] = typer.Option(None, "--name", help="report name (default: latest recipe)"),
    region: Optional[str] = RegionOption,
    carbon_intensity: Optional[float] = IntensityOption,
    pue: Optional[float] = PueOption,
    price_per_kwh: Optional[float] = PriceOption,
    objective: str = ObjectiveOption,
    max_quality_drop: Optional[float] = QualityDropOption,
    max_latency_p99_ms: Optional[float] = LatencyOption,
    html: bool = typer.Option(True, "--html/--no-html", help="write index.html"),
    screenshot: bool = typer.Option(False, "--screenshot",
                                    help="render index.html in headless Chromium to a PNG"),
    mlflow: bool = MlflowOption,
    mlflow_uri: Optional[str] = MlflowUriOption,
) -> None:
    """Render the report (Markdown, PNG/SVG, offline HTML) from one or more stores."""
    options = _report_options(region, carbon_intensity, pue, price_per_kwh, objective,
                              max_quality_drop, max_latency_p99_ms, name=name, html=html,
                              screenshot=screenshot, mlflow_uri=_mlflow(mlflow, mlflow_uri))
    try:
        _report(outs, options, dest)
    except OptbenchError as exc:
        fail(exc)


@app.command()
def recommend(
    outs: list[Path] = typer.Option([DEFAULT_OUT], "--out", "-o", help="store directory"),
    objective: str = ObjectiveOption,
    max_quality_drop: Optional[float] = QualityDropOption,
    max_latency_p99_ms: Optional[float] = LatencyOption,
    region: Optional[str] = RegionOption,
    carbon_intensity: Optional[float] = IntensityOption,
    pue: Optional[float] = PueOption,
    price_per_kwh: Optional[float] = PriceOption,
) -> None:
    """The configuration to ship and the runners-up, with reasons; exit 1 if none fits."""
    from optbench.report.analysis import analyse
    from optbench.report.data import load
    from optbench.report.recommend import label
    from optbench.report.recommend import recommend as pick

    options = _report_options(region, carbon_intensity, pue, price_per_kwh, objective,
                              max_quality_drop, max_latency_p99_ms)
    try:
        rows = load(outs, options.carbon, options.price_per_kwh).rows
    except OptbenchError as exc:
        fail(exc)
    groups = analyse(rows)
    if not groups:
        console.print("[red]error:[/red] no successful runs in the store to choose from")
        raise typer.Exit(1)
    missing = False
    for group in groups:
        rec = pick(group, options.constraints)
        say(f"{group.model} ({group.metric}):", style="bold")
        if rec.best is None:
            missing = True
            say("  nothing satisfies the constraints:")
            for row, why in rec.rejected:
                say(f"    {label(row)}: {why}")
            continue
        say(f"  best: {label(rec.best)}")
        for reason in rec.reasons:
            say(f"    - {reason}")
        for other in rec.runners_up:
            say(f"  runner-up: {label(other)}")
    if missing:
        raise typer.Exit(1)


@app.command()
def export(
    format: str = typer.Option("csv", "--format", "-f", help="csv | json"),
    out: Path = OutOption,
    region: Optional[str] = RegionOption,
    carbon_intensity: Optional[float] = IntensityOption,
    pue: Optional[float] = PueOption,
    price_per_kwh: Optional[float] = PriceOption,
) -> None:
    """Print one row per run (latest per configuration) as CSV or JSON on stdout."""
    from optbench.results.export import export_rows

    carbon = _carbon(region, carbon_intensity, pue)
    try:
        text = export_rows(out, format, carbon, price_per_kwh)
    except OptbenchError as exc:
        fail(exc)
    sys.stdout.write(text)


@app.command("ls")
def list_plugins(
    kind: str = typer.Argument(..., help="backends | transforms | workloads | meters | models"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """List plugins of a kind with their availability here."""
    from optbench.catalog import describe_kind

    try:
        headers, rows = describe_kind(kind)
    except OptbenchError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps([dict(zip(headers, row)) for row in rows], indent=2) + "\n")
        return
    table = Table(*headers, show_lines=False)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    out_console.print(table)


@app.command()
def env(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Hardware, software versions, and which meters work here (and why not)."""
    from optbench.catalog import environment_report

    data = environment_report()
    if as_json:
        out_console.print_json(json.dumps(data, default=str))
        return
    for section, values in data.items():
        out_console.print(f"[bold]{section}[/bold]")
        if isinstance(values, dict):
            for key, value in values.items():
                say(f"  {key}: {value}")
        else:
            for value in values:
                say(f"  {value}")


def main() -> None:
    app()
