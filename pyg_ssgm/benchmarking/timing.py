"""Measuring one call: wall time (:func:`time_call`), peak memory (:func:`measure_peak_memory`),
and what the numbers were measured on (:func:`machine_info`)."""
from __future__ import annotations

import ctypes
import gc
import math
import os
import platform
import resource
import statistics
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

__all__ = ["machine_info", "time_call", "measure_peak_memory"]


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
              long_call_s: float = math.inf, min_time_s: float = 0.0,
              max_repeats: int = 1000) -> Tuple[float, List[float], Any]:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls, and more calls
    (up to ``max_repeats``) until the timed calls add up to ``min_time_s``: a call of a few
    milliseconds is at the mercy of the machine's jitter, and the median of many is steadier
    (as ``timeit`` sizes its loops).

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
    times: List[float] = []
    while len(times) < repeats or (sum(times) < min_time_s and len(times) < max_repeats):
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
