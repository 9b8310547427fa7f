r"""Reproducible accuracy and speed tables: ``python -m pyg_ssgm.benchmark``.

Everything runs in **one process on the same pairs**, so the numbers of different methods are
comparable even on a busy machine (timings are reported as ratios against a baseline measured in
the same run, next to the absolute values).

Accuracy table (:func:`run_accuracy`)
    One fixed set of real cross-instance test pairs (:class:`~pyg_ssgm.data.RealPairs`, one seed,
    one subset) is batched once; every method predicts on those very batches and is scored by the
    same metric code (:func:`~pyg_ssgm.metrics.batch_counts`, :func:`~pyg_ssgm.metrics.aggregate`)
    in both settings of DESIGN.md section 5: *unfiltered* (precision / recall / F1, macro over
    classes) and *intersection* (accuracy). Methods: the classical pygmtools solvers of
    :class:`~pyg_ssgm.baselines.ClassicalMatcher` (Hungarian on node affinities; SM, RRWM, IPFP on
    the Delaunay edge affinity), each plain (full matching) and with a threshold calibrated on the
    validation split (partial matching); SSGM self-supervised, SSGM supervised and SSGM without
    completion (ablation), trained in the same process.

Speed tables (:func:`run_speed`)
    Synthetic instances with exactly ``n`` keypoints (``n`` in ``sizes``), real cross-instance pairs
    of them, batches of ``batch_sizes`` pairs. Per size and batch size: SSGM inference time
    (``model.predict``) and training-step time (forward + backward + Adam step, on a copy of the
    model), the share of inference time in each stage (forward hooks on the model's modules and a
    wrapper around ``pyg_ssgm.model.partial_hungarian``, installed in this process only), the
    number of solver calls per batch, peak memory, F1 on those pairs, and the classical solvers'
    time on the same batches. A second sweep raises the share of missing keypoints at a fixed
    size. Power laws ``t = c n^k`` are fitted by least squares in log-log space
    (:func:`fit_exponent`).

Targets (:func:`check_targets`) are printed as ``PASS`` / ``FAIL`` lines with the measured numbers.
"""
from __future__ import annotations

import copy
import ctypes
import gc
import hashlib
import json
import math
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .errors import ConfigError, InvalidInputError, SSGMError

__all__ = [
    "BenchmarkConfig", "PowerFit", "Target", "CallCounter", "StageTimer",
    "fit_exponent", "format_table", "machine_info", "measure_peak_memory", "time_call",
    "speed_instances", "run_accuracy", "run_speed", "check_targets", "format_accuracy", "format_speed",
    "format_report",
    "run_benchmark", "main", "CLASSICAL", "NEURAL_SOLVERS_NOTE",
]

#: Classical methods of the accuracy table: key -> (solver, description of its affinity).
CLASSICAL: Dict[str, Tuple[str, str]] = {
    "hungarian": ("hungarian", "Hungarian (node affinity)"),
    "sm": ("sm", "SM (Delaunay edge affinity)"),
    "rrwm": ("rrwm", "RRWM (Delaunay edge affinity)"),
    "ipfp": ("ipfp", "IPFP (Delaunay edge affinity)"),
}
QAP_SOLVERS = ("sm", "rrwm", "ipfp")

NEURAL_SOLVERS_NOTE = (
    "pygmtools' neural solvers (PCA-GM, IPCA-GM, CIE, NGM) are not in the table: they need pretrained "
    "weights that pygmtools downloads from the internet on first use, and this benchmark runs offline "
    "(nothing is downloaded at run time). Training them from scratch here would be a different baseline "
    "from the published one.")


# =============================================================================================
# configuration
# =============================================================================================
@dataclass
class BenchmarkConfig:
    """Everything a benchmark run depends on. :meth:`quick_preset` / :meth:`full_preset` give the
    two documented settings; invalid values raise :class:`~pyg_ssgm.errors.ConfigError`.

    Accuracy: ``dataset`` / ``root`` (as for training), ``epochs`` of each SSGM variant (``None``:
    ``TrainConfig``'s default), at most ``test_pairs_per_category`` / ``val_pairs_per_category``
    real pairs per class (``None``: all), evaluation ``batch_size``; ``synthetic``: fields of
    :class:`~pyg_ssgm.data.synthetic.SyntheticConfig` replacing the embedded data's defaults (for
    the accuracy table; ``None``: the embedded data as ``pyg_ssgm.train`` uses it).

    Speed: ``sizes`` (keypoints per graph), ``batch_sizes``, ``drop_rates`` (share of missing
    keypoints per graph, swept at ``drop_size`` keypoints and the largest batch size), timing
    ``repeats`` after ``warmup`` calls (a warm-up call longer than ``long_call_s`` counts as the
    single measurement), ``max_affinity_gib``: SM / RRWM / IPFP are skipped where the dense
    affinity matrix ``K`` of one batch (float64, ``B (n1 n2)^2`` entries) would exceed it.
    """

    quick: bool = False
    dataset: str = "synthetic"
    root: Optional[str] = None
    device: str = "cpu"
    output_dir: str = "benchmarks/results"
    seed: int = 0
    epochs: Optional[int] = None
    skip_accuracy: bool = False
    skip_speed: bool = False
    test_pairs_per_category: Optional[int] = None
    val_pairs_per_category: Optional[int] = 60
    batch_size: int = 32
    sizes: Tuple[int, ...] = (10, 20, 50, 100, 200)
    batch_sizes: Tuple[int, ...] = (1, 16)
    drop_rates: Tuple[float, ...] = (0.1, 0.3, 0.5)
    drop_size: int = 50
    repeats: int = 5
    warmup: int = 2
    long_call_s: float = 2.0
    max_affinity_gib: float = 1.0
    progress: bool = True
    synthetic: Optional[Dict[str, Any]] = None

    @classmethod
    def quick_preset(cls, **overrides) -> "BenchmarkConfig":
        """Tiny training, few pairs, 3 repeats: both tables in a few minutes on 2 CPU cores."""
        values = dict(quick=True, epochs=3, test_pairs_per_category=10, val_pairs_per_category=10,
                      batch_sizes=(1, 8), repeats=3, warmup=1, long_call_s=1.0, max_affinity_gib=0.5)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def full_preset(cls, **overrides) -> "BenchmarkConfig":
        """The reported setting: default training, all test pairs, 5 repeats."""
        return cls(**{k: v for k, v in overrides.items() if v is not None})

    def __post_init__(self) -> None:
        from .data.sources import DATASETS

        self.sizes = tuple(self.sizes)
        self.batch_sizes = tuple(self.batch_sizes)
        self.drop_rates = tuple(float(d) for d in self.drop_rates)
        if self.dataset not in DATASETS:
            raise ConfigError(f"dataset must be one of {DATASETS}, got {self.dataset!r}.")
        if self.dataset == "synthetic" and self.root is not None:
            raise ConfigError("the synthetic dataset is generated in memory; do not pass --root.")
        if self.dataset != "synthetic" and self.root is None:
            raise ConfigError(f"dataset {self.dataset!r} is read from disk: pass its root directory (--root).")
        if self.skip_accuracy and self.skip_speed:
            raise ConfigError("--skip-accuracy and --skip-speed together leave nothing to run.")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}.")
        for name in ("test_pairs_per_category", "val_pairs_per_category"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1 (or None for all pairs), got {value}.")
        if self.batch_size < 1 or self.repeats < 1 or self.warmup < 0:
            raise ConfigError("batch_size and repeats must be >= 1 and warmup >= 0.")
        if not self.sizes or any(not isinstance(n, (int, np.integer)) or n < 3 for n in self.sizes):
            raise ConfigError(f"sizes must be integers >= 3 (a keypoint graph needs a triangle), got {self.sizes}.")
        if not self.batch_sizes or any(not isinstance(b, (int, np.integer)) or b < 1 for b in self.batch_sizes):
            raise ConfigError(f"batch sizes must be integers >= 1, got {self.batch_sizes}.")
        self.sizes = tuple(sorted(set(self.sizes)))  # ascending: ratios are against the smallest
        self.batch_sizes = tuple(sorted(set(self.batch_sizes)))
        if any(not 0.0 <= d < 1.0 for d in self.drop_rates):
            raise ConfigError(f"drop rates must lie in [0, 1), got {self.drop_rates}.")
        if self.drop_size < 3:
            raise ConfigError(f"drop_size must be >= 3, got {self.drop_size}.")
        if not self.max_affinity_gib > 0 or not self.long_call_s > 0:
            raise ConfigError("max_affinity_gib and long_call_s must be > 0.")
        if self.device not in ("cpu", "auto") and not str(self.device).startswith("cuda"):
            raise ConfigError(f"device must be cpu, cuda, cuda:N or auto, got {self.device!r}.")
        if self.synthetic is not None:
            if self.dataset != "synthetic":
                raise ConfigError("synthetic settings only apply to dataset 'synthetic'.")
            self.synthetic_config()  # validates the fields

    def synthetic_config(self):
        """The :class:`~pyg_ssgm.data.synthetic.SyntheticConfig` of the accuracy data (``None``: defaults)."""
        from .data.synthetic import SyntheticConfig

        if self.synthetic is None:
            return None
        unknown = sorted(set(self.synthetic) - set(SyntheticConfig.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown SyntheticConfig field(s) {unknown}.")
        return SyntheticConfig(**self.synthetic)

    @property
    def name(self) -> str:
        """File stem of the results: dataset, quick/full, device, and which parts ran."""
        parts = [self.dataset, "quick" if self.quick else "full"]
        if self.resolved_device().type == "cuda":
            parts.append("cuda")
        if self.skip_accuracy:
            parts.append("speed")
        elif self.skip_speed:
            parts.append("accuracy")
        return "_".join(parts)

    def resolved_device(self) -> torch.device:
        name = self.device
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu.")
        return device


# =============================================================================================
# helpers: fits, tables, machine, timing, memory, call counting
# =============================================================================================
class PowerFit(NamedTuple):
    """``t ~ coefficient * n ** exponent`` fitted by least squares on ``log t`` vs ``log n``."""

    exponent: float
    coefficient: float
    r2: float
    num_points: int


def fit_exponent(sizes: Sequence[float], costs: Sequence[float]) -> PowerFit:
    r"""Least-squares fit of :math:`\log t = \log c + k \log n`; returns :class:`PowerFit`.

    Needs at least two distinct positive sizes and positive costs (else :class:`InvalidInputError`).
    ``r2`` is the coefficient of determination in log space (1.0 for two points).
    """
    n = np.asarray(list(sizes), dtype=np.float64)
    t = np.asarray(list(costs), dtype=np.float64)
    if n.shape != t.shape or n.ndim != 1:
        raise InvalidInputError(f"sizes and costs must be 1-D and of equal length, got {n.shape} and {t.shape}.")
    if n.size < 2 or np.unique(n).size < 2:
        raise InvalidInputError("fit_exponent needs at least two distinct sizes.")
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(t)) and np.all(n > 0) and np.all(t > 0)):
        raise InvalidInputError("fit_exponent needs finite, positive sizes and costs.")
    x, y = np.log(n), np.log(t)
    k, log_c = np.polyfit(x, y, 1)
    resid = y - (k * x + log_c)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else 1.0
    return PowerFit(float(k), float(math.exp(log_c)), r2, int(n.size))


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: Optional[str] = None) -> str:
    """A GitHub-markdown pipe table, padded so it also reads well in a terminal.

    ``align``: one character per column, ``l`` or ``r`` (default: first column left, others right).
    Cells are converted with ``str``; ``None`` becomes ``n/a``.
    """
    headers = [str(h) for h in headers]
    rows = [["n/a" if c is None else str(c) for c in row] for row in rows]
    width = len(headers)
    for row in rows:
        if len(row) != width:
            raise InvalidInputError(f"table row has {len(row)} cells, the header has {width}: {row}.")
    align = align or ("l" + "r" * (width - 1))
    if len(align) != width or set(align) - {"l", "r"}:
        raise InvalidInputError(f"align must be {width} characters of 'l'/'r', got {align!r}.")
    widths = [max(3, len(headers[i]), *(len(r[i]) for r in rows)) for i in range(width)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if a == "l" else c.rjust(w)
                                 for c, w, a in zip(cells, widths, align)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else (":" + "-" * (w + 1))
                         for w, a in zip(widths, align)) + "|"
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


def _f(value: Optional[float], digits: int = 3) -> Optional[str]:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return f"{value:.{digits}f}"


def _ms(seconds: Optional[float]) -> Optional[str]:
    if seconds is None:
        return None
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def _pct(share: Optional[float]) -> Optional[str]:
    return None if share is None else f"{100 * share:.1f}%"


def _ratio(value: Optional[float]) -> Optional[str]:
    return None if value is None else f"{value:.2f}x"


def machine_info(device: Optional[torch.device] = None) -> Dict[str, Any]:
    """What the numbers were measured on: CPU model (``/proc/cpuinfo``), cores, memory, load,
    library versions, torch threads and, on CUDA, the GPU."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: Dict[str, Any] = {
        "cpu_model": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["memory_gib"] = round(psutil.virtual_memory().total / 2 ** 30, 1)
    except ImportError:  # pragma: no cover - psutil is optional
        pass
    if hasattr(os, "getloadavg"):
        info["load_average_1m_at_start"] = round(os.getloadavg()[0], 2)
    for module in ("torch_geometric", "pygmtools", "numpy", "scipy"):
        try:
            info[module] = __import__(module).__version__
        except Exception:  # pragma: no cover
            pass
    device = device or torch.device("cpu")
    info["device"] = str(device)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def _sync_fn(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_call(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1, sync: Optional[Callable[[], None]] = None,
              long_call_s: float = math.inf) -> Tuple[float, List[float], Any]:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls.

    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before starting and before stopping each clock.
    A warm-up call that takes longer than ``long_call_s`` is taken as the single measurement (its
    one-time overheads are negligible at that scale and repeating it would cost minutes). Returns
    ``(median_s, all_times_s, last_output)``.
    """
    sync = sync or (lambda: None)

    def once() -> Tuple[float, Any]:
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        return time.perf_counter() - start, out

    out = None
    for _ in range(warmup):
        elapsed, out = once()
        if elapsed > long_call_s:
            return elapsed, [elapsed], out
    times = []
    for _ in range(repeats):
        elapsed, out = once()
        times.append(elapsed)
    return statistics.median(times), times, out


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def measure_peak_memory(fn: Callable[[], Any], device: torch.device) -> Tuple[Optional[int], str]:
    """Peak memory of one call of ``fn`` in bytes, and how it was measured.

    * CUDA: ``torch.cuda.max_memory_allocated`` minus the memory allocated before the call
      (tensors only; the caching allocator's reserve is not counted).
    * CPU with psutil: the process's resident set size sampled every 0.5 ms in a thread during the
      call, peak minus the value before it, after ``gc.collect()`` and ``malloc_trim(0)`` returned
      freed memory to the system. It counts everything the call allocates (torch, numpy, scipy,
      Python objects); pages the allocator still holds from earlier calls are reused without
      showing up, so it is a lower bound of the call's working set, precise to about a page.
    * CPU without psutil: growth of ``ru_maxrss`` (the process's lifetime high-water mark): only
      a call that sets a new record shows up (``0`` otherwise).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base), "cuda max_memory_allocated delta"
    gc.collect()
    _malloc_trim()
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is optional
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fn()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(max(0, after - before) * 1024), "ru_maxrss delta (lower bound)"
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.0005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        stop.set()
        thread.join()
    peak[0] = max(peak[0], proc.memory_info().rss)
    return int(peak[0] - base), "peak RSS growth (psutil, sampled)"


class CallCounter:
    """Replace functions by counting, timing wrappers for the duration of a ``with`` block.

    ``targets`` maps a label to ``(owner, attribute)``, e.g.
    ``{"partial_hungarian": (pyg_ssgm.model, "partial_hungarian")}``: inside the block every call of
    ``owner.attribute`` (looked up at call time, as module-level names are) is counted in
    ``counts[label]`` and timed in ``seconds[label]``. Targets whose attribute does not exist are
    ignored (``missing`` lists them). The originals are restored on exit, also after an error.
    """

    def __init__(self, targets: Dict[str, Tuple[Any, str]], sync: Optional[Callable[[], None]] = None):
        self.targets = dict(targets)
        self.sync = sync or (lambda: None)
        self.counts: Dict[str, int] = {k: 0 for k in self.targets}
        self.seconds: Dict[str, float] = {k: 0.0 for k in self.targets}
        self.missing: List[str] = []
        self._saved: List[Tuple[Any, str, Any]] = []

    def reset(self) -> None:
        for key in self.counts:
            self.counts[key], self.seconds[key] = 0, 0.0

    def _wrap(self, label: str, original: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            self.sync()
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.sync()
                self.seconds[label] += time.perf_counter() - start
                self.counts[label] += 1

        wrapper.__wrapped__ = original
        return wrapper

    def __enter__(self) -> "CallCounter":
        for label, (owner, attr) in self.targets.items():
            original = getattr(owner, attr, None)
            if original is None:
                self.missing.append(label)
                continue
            self._saved.append((owner, attr, original))
            setattr(owner, attr, self._wrap(label, original))
        return self

    def __exit__(self, *exc) -> None:
        for owner, attr, original in reversed(self._saved):
            setattr(owner, attr, original)
        self._saved.clear()


def _inference_solver_targets() -> Dict[str, Tuple[Any, str]]:
    import pygmtools

    from . import model as model_module

    return {"partial_hungarian": (model_module, "partial_hungarian"), "pygmtools.hungarian": (pygmtools, "hungarian")}


def _training_solver_targets() -> Dict[str, Tuple[Any, str]]:
    import pygmtools

    from . import model as model_module
    from .matching import set_matcher

    return {
        "partial_hungarian": (model_module, "partial_hungarian"),
        "sinkhorn": (model_module, "sinkhorn"),
        "blackbox_hungarian": (model_module, "blackbox_hungarian"),
        "pygmtools.hungarian": (pygmtools, "hungarian"),
        "pygmtools.sinkhorn": (pygmtools, "sinkhorn"),
        # the completion loss's DETR matcher: scipy, one small LAP per graph (not the matching solver)
        "set_matcher.linear_sum_assignment": (set_matcher, "linear_sum_assignment"),
    }


class StageTimer:
    """Time an SSGM forward pass by stage.

    Forward pre/post hooks on ``model.features`` and ``model.encoder`` (reported together as
    ``encoder``), ``model.decoder`` and ``model.rebuilder`` accumulate their wall time, and so does
    a wrapper around the bound method ``model._consensus`` (``consensus``: the soft matching and
    alignment that seed the queries) when the model has one; the solver
    (``pyg_ssgm.model.partial_hungarian``, which calls ``pygmtools.hungarian``) is wrapped by a
    :class:`CallCounter` that also counts its calls. On CUDA every boundary synchronises. Use::

        with StageTimer(model, device) as st:
            for _ in range(r):
                st.run(lambda: model(batch, compute_loss=False))
        st.shares()  # {"solver": ..., "encoder": ..., "consensus": ..., "decoder": ..., "rebuild": ..., "other": ...}

    A stage the model does not have (no decoder without completion) has share ``None``.
    """

    MODULES = (("features", "encoder"), ("encoder", "encoder"), ("decoder", "decoder"), ("rebuilder", "rebuild"))
    METHODS = (("_consensus", "consensus"),)
    STAGES = ("solver", "encoder", "consensus", "decoder", "rebuild", "other")

    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.model, self.sync = model, _sync_fn(device)
        self.seconds: Dict[str, float] = {}
        self.total = 0.0
        self.calls = 0
        self.counter = CallCounter(_inference_solver_targets(), self.sync)
        self._handles: List[Any] = []
        self._patched: List[str] = []
        self._start: Dict[int, float] = {}

    def __enter__(self) -> "StageTimer":
        for attr, stage in self.MODULES:
            module = getattr(self.model, attr, None)
            if module is None:
                continue

            def pre(mod, args, _key=id(module)):
                self.sync()
                self._start[_key] = time.perf_counter()

            def post(mod, args, output, _key=id(module), _stage=stage):
                self.sync()
                self.seconds[_stage] += time.perf_counter() - self._start.pop(_key)

            self._handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
            self.seconds.setdefault(stage, 0.0)
        for attr, stage in self.METHODS:
            method = getattr(self.model, attr, None)
            if method is None or attr in vars(self.model):
                continue
            self.seconds.setdefault(stage, 0.0)

            def wrapper(*args, _method=method, _stage=stage, **kwargs):
                self.sync()
                start = time.perf_counter()
                try:
                    return _method(*args, **kwargs)
                finally:
                    self.sync()
                    self.seconds[_stage] += time.perf_counter() - start

            object.__setattr__(self.model, attr, wrapper)  # an instance attribute shadows the method
            self._patched.append(attr)
        self.counter.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.counter.__exit__(*exc)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for attr in self._patched:
            object.__delattr__(self.model, attr)  # the class's method is visible again
        self._patched.clear()

    def run(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` (one forward pass) and add its wall time to the total."""
        self.sync()
        start = time.perf_counter()
        out = fn()
        self.sync()
        self.total += time.perf_counter() - start
        self.calls += 1
        return out

    def shares(self) -> Dict[str, Optional[float]]:
        """Share of the total forward time per stage (:attr:`STAGES`); ``other`` is the rest
        (affinity, padding, completed-graph assembly, Python); ``None``: the model lacks the stage."""
        total = max(self.total, 1e-12)
        measured = {"solver": self.counter.seconds["partial_hungarian"], **self.seconds}
        out: Dict[str, Optional[float]] = {k: (measured[k] / total if k in measured else None)
                                           for k in self.STAGES if k != "other"}
        out["other"] = max(0.0, 1.0 - sum(v for v in out.values() if v is not None))
        return out

    def calls_per_forward(self) -> Dict[str, float]:
        return {k: v / max(self.calls, 1) for k, v in self.counter.counts.items()}


# =============================================================================================
# data for the speed tables
# =============================================================================================
def speed_instances(num_nodes: int, missing: float = 0.0, num_instances: int = 7, feature_dim: int = 32,
                    seed: int = 0) -> List:
    """``num_instances`` synthetic instances of one category whose template has exactly
    ``num_nodes`` keypoints, each keypoint missing independently with probability ``missing``
    (no region occlusion, at least 3 visible). ``feature_dim = 0`` strips the appearance
    features (geometry-only models)."""
    from .data.synthetic import SyntheticConfig, SyntheticKeypoints

    if num_nodes < 3:
        raise ConfigError(f"num_nodes must be >= 3, got {num_nodes}.")
    cfg = SyntheticConfig(num_categories=1, min_keypoints=num_nodes, max_keypoints=num_nodes, num_train=0,
                          num_val=0, num_test=num_instances, feature_dim=max(feature_dim, 1),
                          occlusion_prob=missing, region_occlusion_prob=0.0, min_visible=3, seed=seed)
    instances = SyntheticKeypoints(cfg).test
    if feature_dim == 0:
        for inst in instances:
            inst.x = None
    return instances


def _instances_for(pairs_needed: int) -> int:
    k = 2
    while k * (k - 1) // 2 < pairs_needed:
        k += 1
    return k


def _collate(pairs: Sequence) -> Any:
    from torch_geometric.data import Batch

    from .data import PairData

    return Batch.from_data_list(list(pairs), follow_batch=PairData.FOLLOW_BATCH)


def _f1(preds: Sequence[Tensor], batch) -> float:
    from .metrics import aggregate, batch_counts

    return aggregate(batch_counts([p.cpu() for p in preds], batch)).mean.f1


def _affinity_gib(batch) -> float:
    """Size of the dense float64 affinity matrix K that SM / RRWM / IPFP build for ``batch``."""
    n1 = int(batch.x_s_ptr.diff().max())
    n2 = int(batch.x_t_ptr.diff().max())
    return batch.num_graphs * float(n1 * n2) ** 2 * 8 / 2 ** 30


# =============================================================================================
# accuracy
# =============================================================================================
def _device_batches(batches: Sequence, device: torch.device) -> List:
    return list(batches) if device.type == "cpu" else [b.clone().to(device) for b in batches]


def _score(predict: Callable, batches: Sequence, dev_batches: Sequence, sync: Callable) -> Tuple[Any, float]:
    """Predict on every batch; return the aggregated report and the wall time of the predictions."""
    from .metrics import aggregate, batch_counts

    records, elapsed = [], 0.0
    for batch, dev in zip(batches, dev_batches):
        sync()
        start = time.perf_counter()
        preds = predict(dev)
        sync()
        elapsed += time.perf_counter() - start
        records += batch_counts([p.cpu() for p in preds], batch)
    return aggregate(records), elapsed


def _ssgm_variants() -> List[Tuple[str, str, bool, Dict[str, Any], str]]:
    # key, label, supervised, model overrides, labels used
    return [
        ("ssgm", "SSGM self-supervised", False, {}, "none"),
        ("ssgm_supervised", "SSGM supervised", True, {}, "correspondences"),
        ("ssgm_no_completion", "SSGM w/o completion (ablation)", False, {"completion": False}, "none"),
    ]


def run_accuracy(cfg: BenchmarkConfig, progress: Optional[bool] = None) -> Dict[str, Any]:
    """The accuracy table: every method on the same test batches (see the module docstring).

    Returns a JSON-friendly dict (``"methods"``: one entry per row) plus, under the non-JSON key
    ``"_models"``, the trained SSGM models by key (the speed part times the self-supervised one).
    """
    from tqdm.auto import tqdm

    from .baselines import ClassicalMatcher
    from .config import SSGMConfig
    from .data import RealPairs, pair_loader
    from .data.sources import load_splits
    from .trainer import TrainConfig, train

    progress = cfg.progress if progress is None else progress
    device = cfg.resolved_device()
    sync = _sync_fn(device)
    synthetic = cfg.synthetic_config()
    splits = load_splits(cfg.dataset, cfg.root, synthetic)
    if len(splits["test"]) < 2:
        raise InvalidInputError("the test split needs at least two instances of one category.")

    def batches_of(instances, max_pairs, intersection):
        pairs = RealPairs(instances, max_pairs, seed=cfg.seed, intersection=intersection)
        return pairs, list(pair_loader(pairs, cfg.batch_size))

    test_pairs, test_unf = batches_of(splits["test"], cfg.test_pairs_per_category, False)
    test_int_pairs, test_int = batches_of(splits["test"], cfg.test_pairs_per_category, True)
    assert test_pairs.index == test_int_pairs.index  # both settings score the same pairs
    fingerprint = hashlib.sha1(json.dumps(test_pairs.index).encode()).hexdigest()
    val_batches = None
    if len(splits["val"]) >= 2:
        val_batches = batches_of(splits["val"], cfg.val_pairs_per_category, False)[1]
    dev_unf, dev_int = _device_batches(test_unf, device), _device_batches(test_int, device)

    steps = len(CLASSICAL) * 2 + len(_ssgm_variants()) * 2
    bar = tqdm(total=steps, desc="accuracy", disable=not progress)
    methods: List[Dict[str, Any]] = []

    def add(key, label, mode, labels, predict, **extra):
        bar.set_postfix_str(f"evaluating {key}")
        predict(dev_unf[0])  # warm-up, untimed: lazy initialisation is not charged to the first method
        unf, elapsed = _score(predict, test_unf, dev_unf, sync)
        inter, _ = _score(predict, test_int, dev_int, sync)
        methods.append({"key": key, "label": label, "mode": mode, "labels": labels,
                        "unfiltered": unf.to_dict(), "intersection": inter.to_dict(),
                        "f1": unf.mean.f1, "precision": unf.mean.precision, "recall": unf.mean.recall,
                        "intersection_accuracy": inter.mean.recall,
                        "ms_per_pair": 1e3 * elapsed / len(test_pairs), **extra})
        bar.update(1)

    for key, (solver, label) in CLASSICAL.items():
        matcher = ClassicalMatcher(solver)
        add(key, label, "full", "none", matcher)
        calibrated = ClassicalMatcher(solver)
        threshold = None
        if val_batches is not None:
            bar.set_postfix_str(f"calibrating {key}")
            # on CPU: calibration is not timed, and the metric code reads the batches on the host
            threshold = calibrated.calibrate_threshold(val_batches)
        mode = (f"partial, threshold {threshold:.3f} (val)" if threshold is not None
                else "partial: no threshold beat full (val)" if val_batches is not None
                else "partial: no val split, = full")
        add(f"{key}_calibrated", label, mode, "none", calibrated, threshold=threshold)

    models: Dict[str, Any] = {}
    train_dir = Path(tempfile.mkdtemp(prefix="ssgm_benchmark_"))
    try:
        for key, label, supervised, overrides, labels in _ssgm_variants():
            bar.set_postfix_str(f"training {key}")
            base = TrainConfig()
            epochs = cfg.epochs or base.epochs
            train_cfg = replace(
                base, dataset=cfg.dataset, root=cfg.root, supervised=supervised, epochs=epochs, seed=cfg.seed,
                device=str(device), output_dir=str(train_dir / key), eval_every=epochs,
                val_pairs_per_category=(min(5, cfg.val_pairs_per_category or 5) if cfg.quick
                                        else base.val_pairs_per_category),
                test_pairs_per_category=1)  # its own test pass: cheap, we score on our pairs below
            model_cfg = SSGMConfig(**overrides)
            start = time.perf_counter()
            trainer, results = train(train_cfg, model_cfg, synthetic, progress=False)
            train_s = time.perf_counter() - start
            model = trainer.model.eval()
            models[key] = model
            bar.update(1)
            extra = {"train_s": train_s, "epochs": epochs, "train_config": asdict(train_cfg),
                     "model_config": trainer.model_cfg.to_dict()}
            if "completion" in results:
                extra["completion_generated_pairs"] = results["completion"]
            add(key, label, "partial (learned threshold)", labels, model.predict, **extra)
    finally:
        shutil.rmtree(train_dir, ignore_errors=True)
    bar.close()
    return {
        "dataset": cfg.dataset, "root": cfg.root, "seed": cfg.seed,
        "num_test_pairs": len(test_pairs), "test_pairs_per_category": cfg.test_pairs_per_category,
        "num_val_pairs": sum(b.num_graphs for b in val_batches) if val_batches else 0,
        "pairs_sha1": fingerprint, "methods": methods, "_models": models,
    }


def format_accuracy(acc: Dict[str, Any]) -> str:
    """The accuracy table (markdown) with its footnotes."""
    rows = []
    for m in acc["methods"]:
        rows.append([m["label"], m["mode"], m["labels"], _f(m["precision"]), _f(m["recall"]), _f(m["f1"]),
                     _f(m["intersection_accuracy"]), _ms(m["ms_per_pair"] / 1e3),
                     None if m.get("train_s") is None else f"{m['train_s']:.0f}"])
    table = format_table(["method", "matching", "labels", "P", "R", "F1", "intersection acc.", "ms/pair",
                          "train s"], rows, "lllrrrrrr")
    notes = [
        f"{acc['num_test_pairs']} real test pairs of `{acc['dataset']}` (seed {acc['seed']}, at most "
        f"{acc['test_pairs_per_category'] or 'all'} per class, pairs sha1 `{acc['pairs_sha1'][:12]}`), the same "
        "batches for every row. P / R / F1: unfiltered setting, all annotated keypoints, mean over pairs then "
        "over classes (macro). Intersection acc.: only keypoints named in both images (literature protocol), "
        "accuracy = recall.",
        "full: the solver's maximal one-to-one matching. partial, threshold t (val): pairs whose node affinity "
        f"is below t are dropped, t chosen to maximise macro F1 on {acc['num_val_pairs']} validation pairs. "
        "SSGM: partial by construction (generated nodes and a learned similarity threshold).",
        "ms/pair: wall time of the predictions on these pairs divided by their number (batches of the "
        "evaluation batch size, same process, after one untimed warm-up batch). train s: training wall time.",
        NEURAL_SOLVERS_NOTE,
    ]
    return table + "\n\n" + "\n".join(f"{i + 1}. {n}" for i, n in enumerate(notes))


# =============================================================================================
# speed
# =============================================================================================
def _train_step_fn(model: torch.nn.Module, batch) -> Callable[[], Any]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        out = model(batch, compute_loss=True)
        optimizer.zero_grad(set_to_none=True)
        out.losses["loss"].backward()
        optimizer.step()
        return out

    return step


def _measure_config(model, train_model, infer_batch, train_batch, cfg: BenchmarkConfig, device: torch.device,
                    classical: Sequence[str]) -> Dict[str, Any]:
    """All measurements of one (pairs, batch size) configuration."""
    sync = _sync_fn(device)
    B = infer_batch.num_graphs
    cpu_batch = infer_batch
    dev_batch = infer_batch if device.type == "cpu" else infer_batch.clone().to(device)
    dev_train = train_batch if device.type == "cpu" else train_batch.clone().to(device)
    row: Dict[str, Any] = {"batch_size": B,
                           "nodes_per_graph": float(torch.cat([cpu_batch.x_s_ptr.diff(),
                                                               cpu_batch.x_t_ptr.diff()]).float().mean())}
    # inference
    t, times, preds = time_call(lambda: model.predict(dev_batch), cfg.repeats, cfg.warmup, sync, cfg.long_call_s)
    row.update(infer_s=t, infer_times_s=times, infer_ms_per_pair=1e3 * t / B, pairs_per_s=B / t,
               f1_ssgm=_f1(preds, cpu_batch))
    # stage breakdown (separate, instrumented calls)
    with torch.no_grad(), StageTimer(model, device) as st:
        for _ in range(cfg.repeats):
            out = st.run(lambda: model(dev_batch, compute_loss=False))
    row["stages"] = st.shares()
    row["solver_calls_per_batch"] = st.calls_per_forward()
    row["generated_nodes_per_graph"] = float(torch.cat([out.num_generated_s, out.num_generated_t]).float().mean())
    row["infer_peak_bytes"], row["memory_method"] = measure_peak_memory(
        lambda: model.predict(dev_batch), device)
    # training step (on a copy: the benchmarked model stays as trained)
    step = _train_step_fn(train_model, dev_train)
    train_model.train()
    t, times, _ = time_call(step, cfg.repeats, cfg.warmup, sync, cfg.long_call_s)
    row.update(train_step_s=t, train_times_s=times, train_ms_per_pair=1e3 * t / train_batch.num_graphs)
    with CallCounter(_training_solver_targets(), sync) as counter:
        step()
    row["train_solver_calls_per_step"] = {k: v for k, v in counter.counts.items() if k not in counter.missing}
    row["train_peak_bytes"], _ = measure_peak_memory(step, device)
    train_model.eval()
    # classical solvers on the same batch
    from .baselines import ClassicalMatcher

    row["classical"] = {}
    gib = _affinity_gib(cpu_batch)
    for solver in classical:
        if solver in QAP_SOLVERS and gib > cfg.max_affinity_gib:
            row["classical"][solver] = {"skipped": f"K needs {gib:.2f} GiB > {cfg.max_affinity_gib} GiB"}
            continue
        matcher = ClassicalMatcher(solver)
        t, times, preds = time_call(lambda: matcher(dev_batch), cfg.repeats, cfg.warmup, sync, cfg.long_call_s)
        row["classical"][solver] = {"s": t, "times_s": times, "ms_per_pair": 1e3 * t / B, "f1": _f1(preds, cpu_batch)}
    return row


def run_speed(cfg: BenchmarkConfig, model: Optional[torch.nn.Module] = None, progress: Optional[bool] = None,
              classical: Sequence[str] = tuple(CLASSICAL)) -> Dict[str, Any]:
    """The speed tables (see the module docstring); ``model``: a trained SSGM (default: an untrained
    one with the default config and 32 appearance features, seeded by ``cfg.seed``)."""
    from tqdm.auto import tqdm

    from .config import SSGMConfig
    from .data import GeneratedPairs, PairGenerator, RealPairs
    from .model import SSGM
    from .trainer import TrainConfig

    progress = cfg.progress if progress is None else progress
    device = cfg.resolved_device()
    trained = model is not None
    if model is None:
        torch.manual_seed(cfg.seed)
        model = SSGM(SSGMConfig(in_channels=32))
    model = model.to(device).eval()
    feature_dim = model.config.in_channels
    train_model = copy.deepcopy(model)
    base_drop = TrainConfig().drop_rate
    max_b = max(cfg.batch_sizes)
    k = _instances_for(max_b)
    # Warm every code path once on a tiny problem so the first size is not charged for lazy init.
    warm = speed_instances(min(cfg.sizes), 0.0, k, feature_dim, cfg.seed + 1000)
    warm_pairs = [RealPairs(warm)[i] for i in range(2)]
    _measure_config(model, train_model, _collate(warm_pairs),
                    _collate([GeneratedPairs(warm, PairGenerator(drop_rate=base_drop), seed=cfg.seed)[i]
                              for i in range(2)]),
                    replace(cfg, repeats=1, warmup=1), device, classical)

    def pairs_for(n: int, missing: float, drop: float):
        inst = speed_instances(n, missing, k, feature_dim, cfg.seed + 1000)
        real = RealPairs(inst)
        gen = GeneratedPairs(inst, PairGenerator(drop_rate=drop), seed=cfg.seed, repeats=-(-max_b // len(inst)))
        return [real[i] for i in range(len(real))], [gen[i] for i in range(len(gen))]

    jobs = [(n, b) for n in cfg.sizes for b in cfg.batch_sizes]
    bar = tqdm(total=len(jobs) + len(cfg.drop_rates), desc="speed", disable=not progress)
    rows: List[Dict[str, Any]] = []
    for n in cfg.sizes:
        real, gen = pairs_for(n, 0.0, base_drop)
        for b in cfg.batch_sizes:
            bar.set_postfix_str(f"{n} nodes, batch {b}")
            row = _measure_config(model, train_model, _collate(real[:b]), _collate(gen[:b]), cfg, device, classical)
            rows.append({"nodes": n, **row})
            bar.update(1)
    drop_rows: List[Dict[str, Any]] = []
    for d in cfg.drop_rates:
        bar.set_postfix_str(f"{cfg.drop_size} nodes, missing {d}")
        real, gen = pairs_for(cfg.drop_size, d, d)
        row = _measure_config(model, train_model, _collate(real[:max_b]), _collate(gen[:max_b]), cfg, device,
                              classical)
        drop_rows.append({"nodes": cfg.drop_size, "drop_rate": d, **row})
        bar.update(1)
    bar.close()

    # ratios against baselines measured in this run
    for b in cfg.batch_sizes:
        same_b = [r for r in rows if r["batch_size"] == b]
        base = same_b[0]
        for r in same_b:
            r["infer_rel"] = r["infer_ms_per_pair"] / base["infer_ms_per_pair"]
            r["train_rel"] = r["train_step_s"] / base["train_step_s"]
            rr = r["classical"].get("rrwm", {})
            r["rrwm_over_ssgm"] = rr["ms_per_pair"] / r["infer_ms_per_pair"] if "ms_per_pair" in rr else None
    if drop_rows:
        for r in drop_rows:
            r["infer_rel"] = r["infer_ms_per_pair"] / drop_rows[0]["infer_ms_per_pair"]
            rr = r["classical"].get("rrwm", {})
            r["rrwm_over_ssgm"] = rr["ms_per_pair"] / r["infer_ms_per_pair"] if "ms_per_pair" in rr else None

    fits: Dict[str, Dict[str, Any]] = {}
    for b in cfg.batch_sizes:
        same_b = [r for r in rows if r["batch_size"] == b]
        series = {"SSGM inference": [(r["nodes"], r["infer_s"]) for r in same_b],
                  "SSGM training step": [(r["nodes"], r["train_step_s"]) for r in same_b],
                  "SSGM solver (Hungarian)": [(r["nodes"], r["infer_s"] * r["stages"]["solver"]) for r in same_b]}
        for solver in classical:
            series[CLASSICAL[solver][1].split(" (")[0]] = [(r["nodes"], r["classical"][solver]["s"])
                                                          for r in same_b if "s" in r["classical"][solver]]
        for label, points in series.items():
            entry: Dict[str, Any] = {"batch_size": b, "sizes": [p[0] for p in points]}
            if len(points) >= 2:
                fit = fit_exponent(*zip(*points))
                entry.update(exponent=fit.exponent, r2=fit.r2)
                (n1, t1), (n2, t2) = points[-2], points[-1]
                entry["tail_exponent"] = math.log(t2 / t1) / math.log(n2 / n1)
            fits[f"{label} | batch {b}"] = entry
    return {
        "trained_model": trained, "device": str(device), "sizes": list(cfg.sizes),
        "batch_sizes": list(cfg.batch_sizes), "repeats": cfg.repeats, "warmup": cfg.warmup,
        "train_drop_rate": base_drop, "rows": rows, "drop_rows": drop_rows, "fits": fits,
        "memory_method": rows[0]["memory_method"] if rows else None,
    }


def _mib(num_bytes: Optional[int]) -> Optional[str]:
    return None if num_bytes is None else f"{num_bytes / 2 ** 20:.1f}"


def format_speed(speed: Dict[str, Any]) -> str:
    """The speed tables (markdown) and the fitted exponents."""
    out = []
    rows = speed["rows"]
    model_note = "trained (the accuracy table's self-supervised model)" if speed["trained_model"] else "untrained"
    out.append(f"**SSGM throughput and cost** (device {speed['device']}, model {model_note}; median of "
               f"{speed['repeats']} repeats after {speed['warmup']} warm-up; x: relative to the smallest size, "
               "same batch size)\n")
    out.append(format_table(
        ["nodes", "batch", "infer ms/pair", "pairs/s", "infer x", "train ms/step", "train x", "infer peak MiB",
         "train peak MiB", "F1 (these pairs)"],
        [[r["nodes"], r["batch_size"], _ms(r["infer_ms_per_pair"] / 1e3), f"{r['pairs_per_s']:.0f}",
          _ratio(r["infer_rel"]), _ms(r["train_step_s"]), _ratio(r["train_rel"]), _mib(r["infer_peak_bytes"]),
          _mib(r["train_peak_bytes"]), _f(r["f1_ssgm"])] for r in rows]))
    out.append("\n**Where SSGM inference time goes** (share of the forward pass; solver = "
               "`partial_hungarian` -> `pygmtools.hungarian`; calls per batch counted by wrapping both)\n")
    out.append(format_table(
        ["nodes", "batch", *StageTimer.STAGES, "partial_hungarian calls/batch", "pygmtools.hungarian calls/batch"],
        [[r["nodes"], r["batch_size"], *(_pct(r["stages"].get(k)) for k in StageTimer.STAGES),
          _f(r["solver_calls_per_batch"].get("partial_hungarian"), 1),
          _f(r["solver_calls_per_batch"].get("pygmtools.hungarian"), 1)] for r in rows]))
    solvers = list(rows[0]["classical"]) if rows else []
    out.append("\n**Classical solvers on the same batches** (ms per pair; RRWM/SSGM: per-pair time ratio; "
               "F1 on these pairs, full matchings)\n")

    def cell(r, s):
        c = r["classical"][s]
        return "skip" if "skipped" in c else _ms(c["ms_per_pair"] / 1e3)

    def f1cell(r, s):
        c = r["classical"].get(s, {})
        return _f(c.get("f1"))

    out.append(format_table(
        ["nodes", "batch", "SSGM", *solvers, "RRWM/SSGM", "F1 SSGM", "F1 hungarian", "F1 rrwm"],
        [[r["nodes"], r["batch_size"], _ms(r["infer_ms_per_pair"] / 1e3), *(cell(r, s) for s in solvers),
          _ratio(r["rrwm_over_ssgm"]), _f(r["f1_ssgm"]), f1cell(r, "hungarian"), f1cell(r, "rrwm")]
         for r in rows]))
    skipped = sorted({c["skipped"].split(" > ")[1] for r in rows + speed["drop_rows"]
                      for c in r["classical"].values() if "skipped" in c})
    if skipped:
        out.append(f"\nskip: SM / RRWM / IPFP build a dense affinity matrix of (n1 n2)^2 float64 entries per pair; "
                   f"skipped where a batch's would exceed {skipped[0]}.")
    if speed["drop_rows"]:
        d0 = speed["drop_rows"][0]
        out.append(f"\n**Rising share of missing keypoints** ({d0['nodes']}-keypoint templates, batch "
                   f"{d0['batch_size']}; each keypoint missing with the given probability in each image; training "
                   "pairs generated with that drop rate; x: relative to the first row)\n")
        out.append(format_table(
            ["missing", "nodes/graph", "generated/graph", "infer ms/pair", "infer x", "train ms/step", "solver",
             "RRWM ms/pair", "RRWM/SSGM", "F1 SSGM", "F1 RRWM"],
            [[f"{r['drop_rate']:.1f}", f"{r['nodes_per_graph']:.1f}", f"{r['generated_nodes_per_graph']:.1f}",
              _ms(r["infer_ms_per_pair"] / 1e3), _ratio(r["infer_rel"]), _ms(r["train_step_s"]),
              _pct(r["stages"]["solver"]), cell(r, "rrwm") if "rrwm" in r["classical"] else None,
              _ratio(r["rrwm_over_ssgm"]), _f(r["f1_ssgm"]), f1cell(r, "rrwm")] for r in speed["drop_rows"]]))
    out.append("\n**Fitted exponent k of cost ~ n^k** (least squares on log time vs log nodes over the sizes "
               "measured; tail: slope between the two largest sizes)\n")
    out.append(format_table(
        ["cost", "batch", "sizes", "k", "r2", "tail k"],
        [[label.split(" | ")[0], e["batch_size"], ",".join(map(str, e["sizes"])), _f(e.get("exponent"), 2),
          _f(e.get("r2"), 3), _f(e.get("tail_exponent"), 2)] for label, e in speed["fits"].items()], "lrlrrr"))
    out.append(f"\nPeak memory: {speed['memory_method']} during one call (see benchmarks/README.md). Times "
               "exclude data loading and collation (each batch is built once, then timed).")
    return "\n".join(out)


# =============================================================================================
# targets
# =============================================================================================
@dataclass
class Target:
    name: str
    status: str  # PASS, FAIL or SKIP
    detail: str

    def line(self) -> str:
        return f"{self.status}  {self.name}: {self.detail}"


def check_targets(speed: Optional[Dict[str, Any]], accuracy: Optional[Dict[str, Any]] = None) -> List[Target]:
    """The issue's speed targets, evaluated on the measured numbers (never assumed)."""
    targets: List[Target] = []
    if speed is None:
        return [Target("speed targets", "SKIP", "the speed part was skipped")]
    rows, on_cpu = speed["rows"], speed["device"] == "cpu"

    # 1. batched solver calls + solver share
    configs = rows + speed["drop_rows"]
    bad = [(r["nodes"], r["batch_size"], r["solver_calls_per_batch"]) for r in configs
           if r["solver_calls_per_batch"].get("partial_hungarian") != 1
           or r["solver_calls_per_batch"].get("pygmtools.hungarian", 1) != 1]
    train_calls = {json.dumps({k: v for k, v in r["train_solver_calls_per_step"].items()
                               if not k.startswith("set_matcher")}, sort_keys=True) for r in configs}
    inference = (f"inference: 1 partial_hungarian and 1 pygmtools.hungarian call per batch in all {len(configs)} "
                 "configurations" if not bad else f"inference: not one call per batch at (nodes, batch, calls) {bad}")
    training = (f"training step: {next(iter(train_calls))} per step whatever the size and batch size"
                if len(train_calls) == 1 else f"training step: solver calls vary with size/batch: {sorted(train_calls)}")
    lsa = {r["batch_size"]: r["train_solver_calls_per_step"].get("set_matcher.linear_sum_assignment", 0)
           for r in configs}
    if any(lsa.values()):
        training += (" (not counted: the completion loss's DETR set matcher solves one small scipy LAP per graph "
                     "and side that lacks nodes, up to " + ", ".join(f"{v} at batch {b}" for b, v in sorted(lsa.items()))
                     + ")")
    targets.append(Target("Hungarian/Sinkhorn calls batched (one call per batch)",
                          "PASS" if not bad and len(train_calls) == 1 else "FAIL", f"{inference}; {training}"))
    small = [r for r in rows if 10 <= r["nodes"] <= 50]
    if not on_cpu:
        targets.append(Target("solver < 30% of inference time at 10-50 nodes (CPU)", "SKIP",
                              f"measured on {speed['device']}; run with --device cpu"))
    elif not small:
        targets.append(Target("solver < 30% of inference time at 10-50 nodes (CPU)", "SKIP", "no size in 10..50"))
    else:
        shares = ", ".join(f"{r['nodes']}n/b{r['batch_size']}: {100 * r['stages']['solver']:.1f}%" for r in small)
        ok = all(r["stages"]["solver"] < 0.30 for r in small)
        targets.append(Target("solver < 30% of inference time at 10-50 nodes (CPU)", "PASS" if ok else "FAIL",
                              shares))

    # 2. 5x faster than RRWM per pair at 20 nodes, at equal or better F1
    name = "CPU inference at 20 nodes >= 5x faster per pair than RRWM, F1 >= RRWM's"
    at20 = [r for r in rows if r["nodes"] == 20 and "ms_per_pair" in r["classical"].get("rrwm", {})]
    if not on_cpu:
        targets.append(Target(name, "SKIP", f"measured on {speed['device']}"))
    elif not at20:
        targets.append(Target(name, "SKIP", "20 nodes not measured (or RRWM skipped) in this run"))
    else:
        r = max(at20, key=lambda r: r["batch_size"])
        ratio = r["rrwm_over_ssgm"]
        f1_note = ""
        if accuracy is not None:
            by_key = {m["key"]: m for m in accuracy["methods"]}
            f1_ssgm = by_key["ssgm"]["f1"]
            f1_rrwm = max(by_key["rrwm"]["f1"], by_key["rrwm_calibrated"]["f1"])
            f1_note = (f"accuracy-table F1: SSGM {f1_ssgm:.3f} vs RRWM {f1_rrwm:.3f} (best of full/calibrated); "
                       f"on the speed pairs {r['f1_ssgm']:.3f} vs {r['classical']['rrwm']['f1']:.3f}; "
                       f"accuracy-table time: SSGM {by_key['ssgm']['ms_per_pair']:.2f} vs RRWM "
                       f"{by_key['rrwm']['ms_per_pair']:.2f} ms/pair")
        else:
            f1_ssgm, f1_rrwm = r["f1_ssgm"], r["classical"]["rrwm"]["f1"]
            f1_note = (f"F1 on the speed pairs: SSGM {f1_ssgm:.3f} vs RRWM {f1_rrwm:.3f}"
                       + ("" if speed["trained_model"] else " (untrained model)"))
        ok = ratio >= 5 and f1_ssgm >= f1_rrwm
        others = "; ".join(f"batch {x['batch_size']}: {x['rrwm_over_ssgm']:.2f}x" for x in at20 if x is not r)
        targets.append(Target(name, "PASS" if ok else "FAIL",
                              f"batch {r['batch_size']}: SSGM {r['infer_ms_per_pair']:.2f} ms/pair, RRWM "
                              f"{r['classical']['rrwm']['ms_per_pair']:.2f} ms/pair = {ratio:.2f}x"
                              + (f" ({others})" if others else "") + f"; {f1_note}"))

    # 3. no worse than quadratic up to 200 nodes
    name = "cost grows no worse than quadratically (fitted exponent <= 2)"
    ssgm_fits = {k: v for k, v in speed["fits"].items()
                 if k.startswith(("SSGM inference", "SSGM training step")) and "exponent" in v}
    if not ssgm_fits:
        targets.append(Target(name, "SKIP", "fewer than two sizes measured"))
    else:
        ok = all(v["exponent"] <= 2 for v in ssgm_fits.values())
        largest = max(speed["sizes"])
        detail = "; ".join(f"{k}: k={v['exponent']:.2f} (tail {v['tail_exponent']:.2f})" for k, v in ssgm_fits.items())
        targets.append(Target(name + f" up to {largest} nodes", "PASS" if ok else "FAIL", detail))
    return targets


# =============================================================================================
# the whole run
# =============================================================================================
def format_machine(info: Dict[str, Any]) -> str:
    keys = ["cpu_model", "logical_cores", "usable_cores", "physical_cores", "memory_gib", "torch_threads",
            "OMP_NUM_THREADS", "load_average_1m_at_start", "device", "gpu", "cuda", "torch", "torch_geometric",
            "pygmtools", "numpy", "scipy", "python", "platform"]
    return "\n".join(f"- {k}: {info[k]}" for k in keys if k in info)


def format_report(result: Dict[str, Any]) -> str:
    """The markdown document written to ``<name>.md`` and printed to the terminal."""
    parts = [f"# pyg_ssgm benchmark: {result['name']}", "",
             f"Command: `{result['command']}`  ", f"Started {result['started']}, wall time {result['wall_s']:.0f} s.",
             "", "## Machine", "", format_machine(result["machine"]), ""]
    if result.get("accuracy"):
        parts += ["## Accuracy", "", format_accuracy(result["accuracy"]), ""]
    if result.get("speed"):
        parts += ["## Speed", "", format_speed(result["speed"]), ""]
    parts += ["## Targets", "", "```"] + [Target(**t).line() for t in result["targets"]] + ["```", ""]
    return "\n".join(parts)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def run_benchmark(cfg: BenchmarkConfig, command: Optional[str] = None, write: bool = True,
                  echo: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the selected parts, print the report, write ``<output_dir>/<name>.json`` and ``.md``."""
    device = cfg.resolved_device()
    start, started = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M:%S %Z")
    machine = machine_info(device)
    accuracy = None if cfg.skip_accuracy else run_accuracy(cfg)
    models = accuracy.pop("_models") if accuracy else {}
    if accuracy:
        echo("\n" + format_accuracy(accuracy) + "\n")
    speed = None if cfg.skip_speed else run_speed(cfg, models.get("ssgm"))
    if speed:
        echo(format_speed(speed) + "\n")
    targets = check_targets(speed, accuracy)
    result = {
        "name": cfg.name, "command": command or "python -m pyg_ssgm.benchmark", "started": started,
        "wall_s": time.perf_counter() - start, "config": asdict(cfg), "machine": machine,
        "accuracy": accuracy, "speed": speed, "targets": [asdict(t) for t in targets],
    }
    echo("\n".join(t.line() for t in targets))
    echo(f"\nwall time {result['wall_s']:.0f} s")
    if write:
        out = Path(cfg.output_dir)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--output-dir {out} exists and is not a directory.")
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{cfg.name}.json").write_text(json.dumps(result, indent=2, default=_json_default))
        (out / f"{cfg.name}.md").write_text(format_report(result))
        result["files"] = [str(out / f"{cfg.name}.json"), str(out / f"{cfg.name}.md")]
        echo(f"results: {result['files'][0]} and {result['files'][1]}")
    return result


# =============================================================================================
# command line
# =============================================================================================
def _int_list(value: Optional[str], option: str) -> Optional[Tuple[int, ...]]:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated integers, got {value!r}.") from None


def _float_list(value: Optional[str], option: str) -> Optional[Tuple[float, ...]]:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated numbers, got {value!r}.") from None


def _build_command(argv: Sequence[str]):
    import click

    @click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
    @click.option("--quick", is_flag=True, help="Tiny training, few pairs, 3 repeats: both tables in minutes.")
    @click.option("--dataset", type=click.Choice(["synthetic", "willow", "pascal_voc", "spair71k", "cub"]),
                  default="synthetic", show_default=True, help="Data of the accuracy table.")
    @click.option("--root", type=click.Path(), help="Local root of a real dataset (not for synthetic).")
    @click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
    @click.option("--output-dir", default="benchmarks/results", show_default=True, type=click.Path(),
                  help="Where <dataset>_<quick|full>[_cuda].json and .md are written.")
    @click.option("--seed", type=int, default=0, show_default=True, help="Seed of training, pair subsets and "
                  "speed instances.")
    @click.option("--epochs", type=int, help="Training epochs of each SSGM variant (default: 3 with --quick, "
                  "else TrainConfig's default).")
    @click.option("--skip-accuracy", is_flag=True, help="Only the speed tables (with an untrained model).")
    @click.option("--skip-speed", is_flag=True, help="Only the accuracy table.")
    @click.option("--sizes", help="Comma-separated keypoints per graph of the speed table (default "
                  "10,20,50,100,200).")
    @click.option("--batch-sizes", help="Comma-separated batch sizes of the speed table (default 1,16; "
                  "--quick 1,8).")
    @click.option("--repeats", type=int, help="Timed repeats per measurement (default 5; --quick 3).")
    @click.option("--test-pairs-per-category", type=int, help="At most this many test pairs per class "
                  "(default: all; --quick 10).")
    @click.option("--drop-rates", help="Comma-separated shares of missing keypoints of the missing-node sweep "
                  "(default 0.1,0.3,0.5; empty string: no sweep).")
    @click.option("--drop-size", type=int, help="Keypoints per template in the missing-node sweep (default 50).")
    @click.option("--max-affinity-gib", type=float, help="Skip SM/RRWM/IPFP where the dense affinity matrix of "
                  "a batch exceeds this (default 1; --quick 0.5).")
    @click.option("--no-progress", is_flag=True, help="No progress bars.")
    def benchmark_command(quick, no_progress, sizes, batch_sizes, drop_rates, **options):
        """Accuracy and speed tables of SSGM and the classical pygmtools solvers, on the same pairs, in
        one process. Prints both tables and PASS/FAIL lines for the speed targets, and writes
        <output-dir>/<name>.json and .md with the machine description.

        \b
        Examples:
          python -m pyg_ssgm.benchmark --quick                 # minutes on 2 CPU cores
          python -m pyg_ssgm.benchmark                         # the full tables (~20-40 min on CPU)
          python -m pyg_ssgm.benchmark --dataset willow --root data/WillowObject
          python -m pyg_ssgm.benchmark --device cuda --skip-accuracy
        """
        try:
            overrides = dict(options, progress=not no_progress, sizes=_int_list(sizes, "--sizes"),
                             batch_sizes=_int_list(batch_sizes, "--batch-sizes"),
                             drop_rates=_float_list(drop_rates, "--drop-rates"))
            cfg = (BenchmarkConfig.quick_preset if quick else BenchmarkConfig.full_preset)(**overrides)
            cfg.resolved_device()
            run_benchmark(cfg, command=" ".join(["python -m pyg_ssgm.benchmark", *argv]), echo=click.echo)
        except SSGMError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            sys.exit(130)

    return benchmark_command


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m pyg_ssgm.benchmark`` (``argv``: the arguments, default ``sys.argv[1:]``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _build_command(argv).main(args=argv, prog_name="python -m pyg_ssgm.benchmark")


if __name__ == "__main__":
    main()
