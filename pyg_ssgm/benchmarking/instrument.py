"""Looking inside a run: :class:`CallCounter` counts and times the matching solvers' calls,
:class:`StageTimer` splits a prediction into the network's stages with :mod:`torch.profiler`."""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch.profiler import ProfilerActivity, profile

from .timing import _sync_fn

__all__ = ["CallCounter", "StageTimer", "inference_solver_targets", "training_solver_targets"]


class CallCounter:
    """Replace functions by counting, timing wrappers for the duration of a ``with`` block.

    ``targets`` maps a label to ``(owner, attribute)``, e.g.
    ``{"partial_hungarian": (pyg_ssgm.model.predictor, "partial_hungarian")}``: inside the block
    every call of ``owner.attribute`` (looked up at call time, as module-level names are) is
    counted in ``counts[label]`` and timed in ``seconds[label]``. Targets whose attribute does not
    exist are ignored (``missing`` lists them). The originals are restored on exit, also after an
    error.
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


def inference_solver_targets() -> Dict[str, Tuple[Any, str]]:
    """What a prediction solves: :class:`~pyg_ssgm.Predictor`'s ``partial_hungarian``, which calls
    ``pygmtools.hungarian`` (a :class:`CallCounter`'s targets)."""
    import pygmtools

    from ..model import predictor

    return {"partial_hungarian": (predictor, "partial_hungarian"), "pygmtools.hungarian": (pygmtools, "hungarian")}


def training_solver_targets() -> Dict[str, Tuple[Any, str]]:
    """What a training step may solve: the criterion's ``sinkhorn`` / ``blackbox_hungarian`` (as
    ``matching_loss`` says), the pygmtools solvers under them, the predictor's solver (which a
    training step does not call: the network's forward solves nothing) and the completion loss's
    DETR set matcher (scipy, one small assignment per graph: not the matching solver)."""
    import pygmtools

    from ..matching import set_matcher
    from ..model import criterion, predictor

    return {
        "partial_hungarian": (predictor, "partial_hungarian"),
        "sinkhorn": (criterion, "sinkhorn"),
        "blackbox_hungarian": (criterion, "blackbox_hungarian"),
        "pygmtools.hungarian": (pygmtools, "hungarian"),
        "pygmtools.sinkhorn": (pygmtools, "sinkhorn"),
        "set_matcher.linear_sum_assignment": (set_matcher, "linear_sum_assignment"),
    }


class StageTimer:
    """Time predictions by stage, from the ``torch.profiler.record_function`` ranges that the
    network (``ssgm.encode``, ``ssgm.consensus``, ``ssgm.decode``, ``ssgm.rebuild``,
    ``ssgm.affinity``) and the predictor (``ssgm.solver``) open; nothing of the model is patched.
    A :class:`CallCounter` on the solver functions (:func:`inference_solver_targets`) counts
    their calls. Use::

        with StageTimer(device) as st:
            for _ in range(r):
                st.run(lambda: predictor.match(batch))
        st.shares()  # {"solver": ..., "encoder": ..., ..., "affinity": ..., "other": ...}

    A stage's time is the total time of its range over the block: host time on CPU; on CUDA the
    host waits for the device only where a result is read, so it is the longer of the range's
    host time and the device time of the kernels launched inside it (an approximation there).
    The shares are read after the block (the profiler's events are collected on exit). A stage
    that never ran (the decoder of a model without completion) has share ``None``.
    """

    LABELS = {"solver": "ssgm.solver", "encoder": "ssgm.encode", "consensus": "ssgm.consensus",
              "decoder": "ssgm.decode", "rebuild": "ssgm.rebuild", "affinity": "ssgm.affinity"}
    STAGES = (*LABELS, "other")

    def __init__(self, device: torch.device = torch.device("cpu")):
        self.device, self.sync = device, _sync_fn(device)
        self.seconds: Dict[str, float] = {}
        self.total = 0.0
        self.calls = 0
        self.counter = CallCounter(inference_solver_targets(), self.sync)
        self._profiler: Optional[profile] = None

    def __enter__(self) -> "StageTimer":
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.type == "cuda" else [])
        self._profiler = profile(activities=activities)
        self._profiler.__enter__()
        self.counter.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.counter.__exit__(*exc)
        profiler, self._profiler = self._profiler, None
        profiler.__exit__(*exc)
        if exc[0] is None:
            self.seconds = self._stage_seconds(profiler)

    def _stage_seconds(self, profiler: profile) -> Dict[str, float]:
        """Seconds per stage that ran, from the profiler's events (microseconds)."""
        host: Dict[str, float] = {}
        device: Dict[str, float] = {}
        stage_of = {label: stage for stage, label in self.LABELS.items()}
        for event in profiler.key_averages():
            stage = stage_of.get(event.key)
            if stage is None:
                continue
            host[stage] = host.get(stage, 0.0) + event.cpu_time_total
            device[stage] = device.get(stage, 0.0) + getattr(event, "device_time_total", 0.0)
        return {stage: 1e-6 * max(host[stage], device[stage]) for stage in host}

    def run(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` (one prediction) and add its wall time to the total."""
        self.sync()
        start = time.perf_counter()
        out = fn()
        self.sync()
        self.total += time.perf_counter() - start
        self.calls += 1
        return out

    def shares(self) -> Dict[str, Optional[float]]:
        """Share of the total prediction time per stage (:attr:`STAGES`); ``other`` is the rest
        (node completion, padding, small heads, Python); ``None``: the stage never ran."""
        total = max(self.total, 1e-12)
        out: Dict[str, Optional[float]] = {k: (self.seconds[k] / total if k in self.seconds else None)
                                           for k in self.LABELS}
        out["other"] = max(0.0, 1.0 - sum(v for v in out.values() if v is not None))
        return out

    def calls_per_forward(self) -> Dict[str, float]:
        """Solver calls per timed prediction, by function."""
        return {k: v / max(self.calls, 1) for k, v in self.counter.counts.items()}
