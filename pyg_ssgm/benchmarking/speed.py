"""The speed tables (:func:`run_speed`): SSGM inference and training-step cost, stage shares,
solver calls, peak memory and the classical solvers on synthetic instances of exactly ``n``
keypoints (:func:`speed_instances`), with power-law fits (see :mod:`pyg_ssgm.benchmarking.run`)."""
from __future__ import annotations

import copy
import math
from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..errors import ConfigError
from .config import CLASSICAL, QAP_SOLVERS, BenchmarkConfig
from .fit import fit_exponent
from .instrument import CallCounter, StageTimer, training_solver_targets
from .scoring import batch_f1
from .timing import _sync_fn, measure_peak_memory, time_call

__all__ = ["speed_instances", "training_step", "run_speed"]


def speed_instances(num_nodes: int, missing: float = 0.0, num_instances: int = 7, feature_dim: int = 32,
                    seed: int = 0) -> List:
    """``num_instances`` synthetic instances of one category whose template has exactly
    ``num_nodes`` keypoints, each keypoint missing independently with probability ``missing``
    (no region occlusion, at least 3 visible). ``feature_dim = 0`` strips the appearance
    features (geometry-only models)."""
    from ..data.synthetic import SyntheticConfig, SyntheticKeypoints

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

    from ..data import PairData

    return Batch.from_data_list(list(pairs), follow_batch=PairData.FOLLOW_BATCH)


def _affinity_gib(batch) -> float:
    """Size of the dense float64 affinity matrix K that SM / RRWM / IPFP build for ``batch``."""
    n1 = int(batch.x_s_ptr.diff().max())
    n2 = int(batch.x_t_ptr.diff().max())
    return batch.num_graphs * float(n1 * n2) ** 2 * 8 / 2 ** 30


def training_step(model: torch.nn.Module, criterion: torch.nn.Module, batch) -> Callable[[], Any]:
    """One timed training step on ``batch`` as a function of no argument: the network's training
    forward, the criterion's losses, backward and an Adam step (learning rate 1e-4) on ``model``'s
    parameters (give it a copy to keep the original as it is). Returns the losses."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        losses = criterion(model(batch), batch)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        return losses

    return step


def _measure_config(parts: Tuple, train_model, infer_batch, train_batch, cfg: BenchmarkConfig,
                    device: torch.device, classical: Sequence[str]) -> Dict[str, Any]:
    """All measurements of one (pairs, batch size) configuration; ``parts``: the benchmarked
    ``(model, criterion, predictor)``, ``train_model`` the copy of the model that the training
    steps change."""
    _, criterion, predictor = parts
    sync = _sync_fn(device)
    B = infer_batch.num_graphs
    cpu_batch = infer_batch
    dev_batch = infer_batch if device.type == "cpu" else infer_batch.clone().to(device)
    dev_train = train_batch if device.type == "cpu" else train_batch.clone().to(device)
    row: Dict[str, Any] = {"batch_size": B,
                           "nodes_per_graph": float(torch.cat([cpu_batch.x_s_ptr.diff(),
                                                               cpu_batch.x_t_ptr.diff()]).float().mean())}
    # inference
    t, times, preds = time_call(lambda: predictor(dev_batch), cfg.repeats, cfg.warmup, sync, cfg.long_call_s,
                                cfg.min_time_s)
    row.update(infer_s=t, infer_times_s=times, infer_ms_per_pair=1e3 * t / B, pairs_per_s=B / t,
               f1_ssgm=batch_f1(preds, cpu_batch))
    # stage breakdown (separate, profiled calls; one orientation: the mirror test repeats the same stages)
    with StageTimer(device) as st:
        for _ in range(cfg.repeats):
            out = st.run(lambda: predictor.match(dev_batch)).output
    row["stages"] = st.shares()
    row["solver_calls_per_batch"] = st.calls_per_forward()
    row["generated_nodes_per_graph"] = float(torch.cat([out.num_generated_s, out.num_generated_t]).float().mean())
    row["infer_peak_bytes"], row["memory_method"] = measure_peak_memory(lambda: predictor(dev_batch), device)
    # training step (on a copy: the benchmarked model stays as trained)
    step = training_step(train_model, criterion, dev_train)
    train_model.train()
    t, times, _ = time_call(step, cfg.repeats, cfg.warmup, sync, cfg.long_call_s, cfg.min_time_s)
    row.update(train_step_s=t, train_times_s=times, train_ms_per_pair=1e3 * t / train_batch.num_graphs)
    with CallCounter(training_solver_targets(), sync) as counter:
        step()
    row["train_solver_calls_per_step"] = {k: v for k, v in counter.counts.items() if k not in counter.missing}
    row["train_peak_bytes"], _ = measure_peak_memory(step, device)
    train_model.eval()
    # classical solvers on the same batch
    from ..baselines import ClassicalMatcher

    row["classical"] = {}
    gib = _affinity_gib(cpu_batch)
    for solver in classical:
        if solver in QAP_SOLVERS and gib > cfg.max_affinity_gib:
            row["classical"][solver] = {"skipped": f"K needs {gib:.2f} GiB > {cfg.max_affinity_gib} GiB"}
            continue
        matcher = ClassicalMatcher(solver)
        t, times, preds = time_call(lambda: matcher(dev_batch), cfg.repeats, cfg.warmup, sync, cfg.long_call_s,
                                    cfg.min_time_s)
        peak, _ = measure_peak_memory(lambda: matcher(dev_batch), device)
        row["classical"][solver] = {"s": t, "times_s": times, "ms_per_pair": 1e3 * t / B,
                                    "f1": batch_f1(preds, cpu_batch), "peak_bytes": peak}
    return row


def run_speed(cfg: BenchmarkConfig, trained: Optional[Tuple] = None, progress: Optional[bool] = None,
              classical: Sequence[str] = tuple(CLASSICAL)) -> Dict[str, Any]:
    """The speed tables (see the module docstring). ``trained``: a trained SSGM as ``(model,
    criterion, predictor)`` (e.g. a :class:`~pyg_ssgm.trainer.Trainer`'s); default: an untrained
    one with the default settings and 32 appearance features, seeded by ``cfg.seed``."""
    from tqdm.auto import tqdm

    from ..config import ModelConfig, Settings
    from ..data import GeneratedPairs, PairGenerator, RealPairs
    from ..data.partiality import FALLBACK_DROP_RATE
    from ..experiment import build_model

    progress = cfg.progress if progress is None else progress
    device = cfg.resolved_device()
    trained_model = trained is not None
    if trained is None:
        torch.manual_seed(cfg.seed)
        trained = build_model(Settings(model=ModelConfig(in_channels=32)))
    model = trained[0].to(device).eval()
    feature_dim = model.config.in_channels
    train_model = copy.deepcopy(model)
    base_drop = FALLBACK_DROP_RATE  # the drop where names say nothing; the embedded data's is the same
    max_b = max(cfg.batch_sizes)
    k = _instances_for(max_b)
    # Warm every code path once on a tiny problem so the first size is not charged for lazy init.
    warm = speed_instances(min(cfg.sizes), 0.0, max(k, 3), feature_dim, cfg.seed + 1000)  # >= 2 real pairs
    warm_pairs = [RealPairs(warm)[i] for i in range(2)]
    _measure_config(trained, train_model, _collate(warm_pairs),
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
            row = _measure_config(trained, train_model, _collate(real[:b]), _collate(gen[:b]), cfg, device,
                                  classical)
            rows.append({"nodes": n, **row})
            bar.update(1)
    drop_rows: List[Dict[str, Any]] = []
    for d in cfg.drop_rates:
        bar.set_postfix_str(f"{cfg.drop_size} nodes, missing {d}")
        real, gen = pairs_for(cfg.drop_size, d, d)
        row = _measure_config(trained, train_model, _collate(real[:max_b]), _collate(gen[:max_b]), cfg, device,
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
        "trained_model": trained_model, "device": str(device), "sizes": list(cfg.sizes),
        "batch_sizes": list(cfg.batch_sizes), "repeats": cfg.repeats, "warmup": cfg.warmup,
        "min_time_s": cfg.min_time_s,
        "train_drop_rate": base_drop, "rows": rows, "drop_rows": drop_rows, "fits": fits,
        "memory_method": rows[0]["memory_method"] if rows else None,
    }
