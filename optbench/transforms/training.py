"""What training transforms share: metered training loops, energy budgets, caching, facts.

Every training transform runs under the same meters as the run (so its energy carries the
same provenance) and records a TrainingRecord on the artifact: seconds, steps, epochs
completed, energy and its method, and whether an energy budget stopped it. Trained
artifacts are cached under the cache's `transforms/` by their digest, so a variant trained
for one backend is reused, unchanged, by the others (the record says `cached`).
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from optbench.cache import atomic_path
from optbench.errors import Unavailable
from optbench.results.schema import weakest_method

log = logging.getLogger(__name__)


@dataclass
class TrainingRecord:
    transform: str
    seconds: float = 0.0
    steps: int = 0
    epochs_completed: float = 0.0
    energy_j: float | None = None
    energy_method: str = "unavailable"
    channels: dict[str, float | None] = field(default_factory=dict)
    budget_j: float | None = None
    budget_exhausted: bool = False
    cached: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MeteredSession:
    """The run's meters around a training loop; `spent_j()` reads the energy so far."""

    def __init__(self, meters: list[Any]) -> None:
        self.meters = meters
        self.totals: dict[str, float | None] = {}
        self.methods: dict[str, str] = {}
        self.started = 0.0
        self.running = False

    def __enter__(self) -> MeteredSession:
        for meter in self.meters:
            meter.open()
            meter.start()
        self.started = time.monotonic()
        self.running = True
        return self

    def _collect(self) -> None:
        self.running = False
        for meter in self.meters:
            for reading in meter.stop():
                if not reading.in_total:
                    continue
                previous = self.totals.get(reading.channel, 0.0)
                self.totals[reading.channel] = (None if previous is None or reading.energy_j
                                                is None else previous + reading.energy_j)
                self.methods[reading.channel] = reading.method

    def spent_j(self) -> float | None:
        """Energy since the session began (the meters are read and restarted)."""
        self._collect()
        for meter in self.meters:
            meter.start()
        self.running = True
        return self.total()

    def total(self) -> float | None:
        values = list(self.totals.values())
        if not values or any(v is None for v in values):
            return None
        return float(sum(values))  # type: ignore[arg-type]

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.running:
                self._collect()
        finally:
            for meter in self.meters:
                meter.close()

    def fill(self, record: TrainingRecord) -> TrainingRecord:
        """Stop the meters and write time and energy into `record`."""
        if self.running:
            self._collect()
        record.seconds = round(time.monotonic() - self.started, 3)
        record.energy_j = self.total()
        record.energy_method = weakest_method(list(self.methods.values()))
        record.channels = dict(self.totals)
        return record


def metered(meters: Callable[[], list[Any]]
            ) -> Callable[[str, Callable[[], Any]], tuple[Any, dict[str, Any]]]:
    """A trainer for model builders that train (models/classic.py): `work()` under fresh
    meters, returning its result and the TrainingRecord as a dict."""
    def run(transform: str, work: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
        record = TrainingRecord(transform, steps=1, epochs_completed=1.0)
        with MeteredSession(meters()) as session:
            result = work()
            session.fill(record)
        return result, record.to_dict()

    return run


def train(module: Any, x: np.ndarray, y: np.ndarray, loss_fn: Callable[..., Any], *,
          epochs: float, batch_size: int, lr: float, seed: int, session: MeteredSession,
          budget_j: float | None, record: TrainingRecord, check_every: int = 20) -> None:
    """Adam over shuffled batches for `epochs` (fractional allowed) or until the budget."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    optimizer = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)
    steps_per_epoch = max(1, len(xs) // batch_size)
    total_steps = max(1, round(epochs * steps_per_epoch))
    record.budget_j = budget_j
    step = 0
    while step < total_steps:
        order = torch.from_numpy(rng.permutation(len(xs)))
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            optimizer.zero_grad()
            loss = loss_fn(module, xs[idx], ys[idx])
            loss.backward()
            optimizer.step()
            step += 1
            if budget_j is not None and step % check_every == 0:
                spent = session.spent_j()
                if spent is not None and spent >= budget_j:
                    record.budget_exhausted = True
                    record.notes.append(f"energy budget {budget_j:g} J spent after {step} steps")
                    break
            if step >= total_steps:
                break
        if record.budget_exhausted:
            break
    record.steps = step
    record.epochs_completed = round(step / steps_per_epoch, 3)
    log.info("%s: %d steps (%.2f epochs)", record.transform, step, record.epochs_completed)


def training_split(ctx: Any, transform: str) -> tuple[np.ndarray, np.ndarray]:
    split = ctx.workload.train_split()
    if split is None:
        raise Unavailable(f"{transform} needs labelled training data; dataset "
                          f"'{ctx.workload.dataset}' has none (use mnist or imagefolder:<dir>)")
    return split


class TransformCache:
    """A directory per trained artifact; `record.json` is written last, as the mark of a
    complete entry, so an interrupted training is never reused."""

    def __init__(self, root: Path, digest: str) -> None:
        self.dir = root / "transforms" / digest
        self.record_path = self.dir / "record.json"

    def load_record(self) -> dict[str, Any] | None:
        if self.record_path.is_file():
            return json.loads(self.record_path.read_text())
        return None

    def save_record(self, record: dict[str, Any]) -> None:
        with atomic_path(self.record_path) as tmp:
            tmp.write_text(json.dumps(record, default=str))


def float_torch_support(backend: type, device: str, artifact: Any, what: str) -> Any:
    """Training transforms start from a float torch model that `backend` can run."""
    from optbench.errors import Availability

    if artifact.format != "torch" or artifact.quantization:
        return Availability.no(f"{what} needs a float torch model")
    return backend.supports(artifact.format, artifact.precision, device)


def train_once(ctx: Any, digest: str, transform: str,
               make: Callable[[MeteredSession, TrainingRecord, Path], dict[str, Any]],
               data: str | None = None) -> tuple[dict[str, Any], Path]:
    """Run `make` (train, then save under the given directory; returns facts) under the
    run's meters, once per digest; later calls get the stored record flagged `cached`.
    `data` (the transform's name, for the error) reads the workload's training split
    before the meters start: reading a dataset (importing its library) is not training.

    Returns (stored entry: {"record": ..., "facts": ...}, the entry's directory).
    """
    cache = TransformCache(ctx.cache_dir, digest)
    stored = cache.load_record()
    if stored is not None:
        stored["record"]["cached"] = True
        return stored, cache.dir
    if data is not None:
        training_split(ctx, data)  # the workload keeps it: `make` reads it again for free
    record = TrainingRecord(transform)
    cache.dir.mkdir(parents=True, exist_ok=True)
    with MeteredSession(ctx.meters()) as session:
        found = make(session, record, cache.dir)
        session.fill(record)
    stored = {"record": record.to_dict(), "facts": found}
    cache.save_record(stored)
    return stored, cache.dir


def save_program(module: Any, input_shape: tuple[int, ...], path: Path) -> None:
    """Save a module as an ExportedProgram with a dynamic batch (works for graph modules
    whose classes cannot be pickled, like pruned or quantized ones)."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)
    example = torch.zeros((2, *input_shape))
    program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    with atomic_path(path) as tmp:
        torch.export.save(program, str(tmp))


def load_program(path: Path) -> Any:
    import torch

    try:  # registers torch.ops.quantized_decomposed, which QAT programs use
        import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401
    except ImportError:
        pass
    return torch.export.load(str(path)).module()


def facts(module: Any, input_shape: tuple[int, ...], compress: bool = True) -> dict[str, Any]:
    """Parameters, non-zero parameters, dense bytes, MACs (where countable), and with
    `compress` the zlib size of the state (what unstructured sparsity does shrink)."""
    import torch

    from optbench.models.torchnet import module_facts

    tensors = [t.detach() for t in module.state_dict().values() if torch.is_tensor(t)]
    out: dict[str, Any] = {
        **module_facts(module),
        "state_bytes": int(sum(t.numel() * t.element_size() for t in tensors)),
    }
    if compress:
        raw = b"".join(t.contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes()
                       for t in tensors if t.numel())
        out["compressed_bytes"] = len(zlib.compress(raw, 6))
    try:
        import torch_pruning as tp

        macs, _ = tp.utils.count_ops_and_params(module, torch.zeros((1, *input_shape)))
        out["macs"] = int(macs)
    except Exception as exc:  # noqa: BLE001 - graph modules have no countable layers
        out["macs_note"] = f"not countable here ({type(exc).__name__})"
    return out
