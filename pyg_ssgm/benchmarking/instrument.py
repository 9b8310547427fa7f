"""Looking inside a run: :class:`CallCounter` counts and times the matching solvers' calls,
:class:`StageTimer` splits an SSGM forward pass into its stages."""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from .timing import _sync_fn

__all__ = ["CallCounter", "StageTimer"]


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

    from .. import model as model_module

    return {"partial_hungarian": (model_module, "partial_hungarian"), "pygmtools.hungarian": (pygmtools, "hungarian")}


def _training_solver_targets() -> Dict[str, Tuple[Any, str]]:
    import pygmtools

    from .. import model as model_module
    from ..matching import set_matcher

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
