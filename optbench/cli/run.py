"""`optbench compare` and `optbench run`: a recipe from flags or a file, run, then reported."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from optbench.cli.app import app, console, out_console
from optbench.cli.flags import (
    ExecutorOption,
    MachinesOption,
    OutOption,
    PrintRecipeOption,
    RayAddressOption,
    ReportFlags,
    ResumeOption,
    placement,
    report_flags,
    split,
)
from optbench.errors import UsageError


@app.command()
@report_flags(constraints=True, mlflow=True)
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
    scenario: Optional[str] = typer.Option(
        None, "--scenario", help="serve under traffic: single-stream | multi-stream | server "
        "| offline (MLPerf LoadGen)"),
    rates: Optional[str] = typer.Option(None, "--rates",
                                        help="server: offered req/s, e.g. 20,50,100, or sweep"),
    latency_bound_ms: Optional[float] = typer.Option(
        None, "--latency-bound-ms", help="p99 bound; server runs also search the top rate"),
    ttft_bound_ms: Optional[float] = typer.Option(None, "--ttft-bound-ms",
                                                  help="text: time-to-first-token bound"),
    tpot_bound_ms: Optional[float] = typer.Option(None, "--tpot-bound-ms",
                                                  help="text: time-per-output-token bound"),
    max_batch: Optional[str] = typer.Option(None, "--max-batch",
                                            help="dynamic batcher's largest batch, e.g. 1,8"),
    max_wait_ms: Optional[str] = typer.Option(None, "--max-wait-ms",
                                              help="longest wait to fill a batch, e.g. 0,2"),
    scenario_s: Optional[float] = typer.Option(None, "--scenario-s",
                                               help="seconds of traffic per rate (10)"),
    cache_size: Optional[int] = typer.Option(None, "--cache-size",
                                             help="add an LRU prediction cache of N entries"),
    repeat_skew: Optional[float] = typer.Option(
        None, "--repeat-skew", help="requests repeat by a Zipf law of this exponent"),
    executor: Optional[str] = ExecutorOption,
    ray_address: Optional[str] = RayAddressOption,
    machines: Optional[str] = MachinesOption,
    out: Path = OutOption,
    resume: bool = ResumeOption,
    print_recipe: bool = PrintRecipeOption,
    flags: ReportFlags = None,  # type: ignore[assignment]  # filled in by report_flags
) -> None:
    """Compare backends (and precisions) on one model; writes the store and the report."""
    from optbench.run.parse import check_preset, parse_recipe

    check_preset(preset, "--preset")

    variants: dict[str, list[str]] = {"fp32": []}
    for flag, name in ((int8, "int8"), (fp16, "fp16"), (bf16, "bf16")):
        if flag:
            variants[name] = [name]
    data: dict[str, Any] = {
        "name": f"compare-{Path(model).stem if model.endswith('.onnx') else model}",
        "model": {"name": model, "weights": weights} if weights else model,
        "device": device,
        "backends": split(backends),
        "variants": variants,
        "sweep": {"batch_sizes": split(batch_sizes)},
        "measure": {"preset": preset, "timeout_s": timeout_s, "meters": split(meters),
                    "estimate": not no_estimate,
                    **({"cpu_tdp_w": cpu_tdp_w} if cpu_tdp_w is not None else {})},
        "workload": {k: v for k, v in (("dataset", dataset), ("eval_samples", eval_samples),
                                       ("new_tokens", new_tokens),
                                       ("prompt_tokens", prompt_tokens)) if v is not None},
    }
    serving = {"kind": scenario, "rates_per_s": rates, "latency_bound_ms": latency_bound_ms,
               "ttft_bound_ms": ttft_bound_ms, "tpot_bound_ms": tpot_bound_ms,
               "duration_s": scenario_s}
    batching = {"max_batch": max_batch and split(max_batch),
                "max_wait_ms": max_wait_ms and split(max_wait_ms)}
    cache = {"size": cache_size, "repeat_skew": repeat_skew}
    given = [k for k, v in {**serving, **batching, **cache}.items() if v is not None]
    if scenario is not None:
        data["scenario"] = {**{k: v for k, v in serving.items() if v is not None},
                            "batching": {k: v for k, v in batching.items() if v is not None},
                            "cache": {k: v for k, v in cache.items() if v is not None}}
        del data["sweep"]
        if batch_sizes != "1":
            raise UsageError("--batch-sizes is for closed-loop runs; a scenario batches "
                             "dynamically: use --max-batch")
    elif given:
        names = {"rates_per_s": "rates", "duration_s": "scenario-s", "size": "cache-size"}
        raise UsageError(f"--{names.get(given[0], given[0]).replace('_', '-')} needs --scenario")
    data.update(placement(executor, ray_address, machines))
    _execute(parse_recipe(data), out, resume, print_recipe, flags)


@app.command()
@report_flags(constraints=True, mlflow=True)
def run(
    recipe_file: Path = typer.Argument(..., help="recipe YAML"),
    preset: Optional[str] = typer.Option(
        None, "--preset", help="quick | standard | rigorous: replaces the recipe's "
        "measure.preset"),
    executor: Optional[str] = ExecutorOption,
    ray_address: Optional[str] = RayAddressOption,
    machines: Optional[str] = MachinesOption,
    out: Path = OutOption,
    resume: bool = ResumeOption,
    print_recipe: bool = PrintRecipeOption,
    flags: ReportFlags = None,  # type: ignore[assignment]  # filled in by report_flags
) -> None:
    """Run a recipe file; writes the store and the report."""
    from optbench.run.parse import load_recipe

    placement(executor, ray_address, machines)  # the flags checked before the file is read
    recipe = load_recipe(recipe_file, preset=preset, placement=lambda data: placement(
        executor, ray_address, machines, data))
    _execute(recipe, out, resume, print_recipe, flags)


def _execute(recipe: Any, out: Path, resume: bool, print_recipe: bool,
             flags: ReportFlags) -> None:
    """The recipe and the flags are valid by now (nothing was written); print or run it."""
    if print_recipe:
        out_console.print(recipe.to_yaml(), end="", highlight=False)
        return
    from optbench.cli.report import render_report
    from optbench.run.sweep import Runner, SweepInterrupted

    runner = Runner(out, events := SweepProgress(console), executor=_executor(recipe))
    try:
        with events, stop_signals_interrupt():
            runner.run(recipe, resume=resume)
    except SweepInterrupted as stop:
        say_interrupted(stop, out)
        raise typer.Exit(128 + stop.signum) from None
    render_report([out], flags)
    if runner.kept_on_disk:
        console.print(f"[red]error:[/red] {len(runner.kept_on_disk)} finished result(s) could "
                      f"not be written to the locked store and are kept in {out / 'pending'}; "
                      f"add them with `optbench import --out {escape(str(out))}`",
                      highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if runner.results and all(r.status == "failed" for r in runner.results):
        console.print("[red]error:[/red] every configuration failed: the reasons are above, "
                      f"the logs in {escape(str(out / 'logs'))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _executor(recipe: Any) -> Any:
    """The recipe's executor, connected: None runs here; a cluster that cannot be reached
    is bad input (exit 2), found before anything is written."""
    if recipe.executor.kind == "local":
        return None
    from optbench.run.ray_executor import RayExecutor

    executor = RayExecutor(recipe.executor.address, recipe.machines)
    console.print(escape(executor.describe()), highlight=False, soft_wrap=True)
    return executor


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP stop a sweep as Ctrl-C does (children stopped, what finished
    kept), instead of killing the parent with its children left running."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signum)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def say_interrupted(stop: Any, out: Path) -> None:
    name = signal.Signals(stop.signum).name
    stopped = f"; stopped and not recorded: {', '.join(stop.stopped)}" if stop.stopped else ""
    console.print(f"[yellow]interrupted[/yellow] by {name}: {stop.kept} of {stop.total} "
                  f"configuration(s) finished and kept in {escape(str(out))}{escape(stopped)}. "
                  f"`--resume` continues the sweep; `optbench report --out "
                  f"{escape(str(out))}` shows what was kept.", highlight=False, soft_wrap=True)


@app.command(name="import")
def import_kept(out: Path = OutOption) -> None:
    """Add results kept on disk (when the store was locked) to the store."""
    from optbench.results.store import Store
    from optbench.run.outdir import OutputLock
    from optbench.run.pending import PENDING_DIR, import_pending, pending_files

    if not pending_files(out):
        console.print(f"nothing to import: no kept results in {escape(str(out / PENDING_DIR))}")
        return
    with OutputLock(out):
        store = Store.open(out)
        try:
            ids = import_pending(out, store)
        finally:
            store.close()
    console.print(f"imported {len(ids)} result(s) into {escape(str(out))} (runs "
                  f"{', '.join(map(str, ids))})", highlight=False)


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

    def notice(self, text: str) -> None:
        self.console.print(f"[yellow]note:[/yellow] {escape(text)}", highlight=False,
                           soft_wrap=True)

    def advance(self) -> None:
        """One more of the bar's units done (a sweep's: a configuration)."""
        self.progress.advance(self.task)

    def finished(self, spec: Any, run_id: int | None, result: Any) -> None:
        from optbench.results.stats import percentile

        self.advance()
        if result.status == "ok":
            metrics = {m.name: m.value for m in result.metrics}
            quality = metrics.get(result.quality_metric)
            p50 = percentile(result.latencies_s, 50) * 1e3 if result.latencies_s else None
            detail = f"{result.quality_metric}={quality:.4f}" if quality is not None else ""
            agreement = metrics.get("top1_agreement")
            reference = result.artifact.get("reference_backend")
            if (agreement is not None and result.quality_metric != "top1_agreement"
                    and reference and reference != spec.backend.name):
                # a transformed model is judged against the untransformed one's outputs
                against = reference if not spec.variant.steps else f"fp32 {reference}"
                detail += f"  agrees with {against} {agreement:.4f}"
            serving = result.details.get("serving")
            if serving:  # the closed-loop p50 is not what a serving run is about
                points = serving["points"]
                top = serving.get("max_rate_under_bound_per_s")
                detail += (f"  {len(points)} loads, capacity {serving['capacity_per_s']:.4g}"
                           " req/s" + (f", p99 bound held to {top:.4g} req/s" if top else ""))
            else:
                detail += f"  p50 {p50:.3g} ms" if p50 is not None else ""
            self.console.print(f"[green]ok[/green]      {escape(spec.label())}  {detail}",
                               highlight=False)
        else:
            color = "yellow" if result.status == "skipped" else "red"
            self.console.print(f"[{color}]{result.status:<7}[/{color}] {escape(spec.label())}: "
                               f"{escape(str(result.reason))}", highlight=False, soft_wrap=True)
