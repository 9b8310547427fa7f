"""How many CPU threads torch may use: a policy that does not collapse on a shared machine.

torch's default takes every core for its intra-op pool. The models here are small (tens of
nodes, width 64), so a second thread buys little even on an idle machine, while on a machine
shared with other busy processes every parallel region waits at its barrier for a thread that is
not running, and a run slows down many times over (a training run on 2 cores took 4 min 44 s
idle, more than 1 h 45 min with a load of 7-12, and 18 min with one thread). The policy
(``threads=0``, "auto"):

* the cores this process may run on (``os.sched_getaffinity``), less the load of everything
  else (the 1-minute load average, rounded), at least 1;
* at most :data:`AUTO_MAX_THREADS`, past which these small models gain nothing.

An explicit ``threads=N`` (``--threads N``) is used as given, up to the usable cores: more threads
than cores only make them wait for each other (``--threads 1000`` made a tiny run 5 times slower
and loaded the machine to 120), so a larger ``N`` is capped at the cores with a printed note
rather than refused (a setting written on a larger machine still runs here, e.g. a resumed run's
``config.json``). ``OMP_NUM_THREADS`` set by the user counts as explicit too.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

import torch

from .errors import ConfigError

#: Upper bound of the automatic choice (measured: benchmarks/results/threads.md).
AUTO_MAX_THREADS = 4


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_threads(load: Optional[float] = None, cores: Optional[int] = None) -> int:
    """The automatic choice (see the module docstring) for a machine with ``cores`` usable cores
    and a 1-minute load average ``load`` (both read from the machine when not given)."""
    cores = usable_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # pragma: no cover - no load average on this platform
            load = 0.0
    return max(1, min(AUTO_MAX_THREADS, cores - int(round(load))))


def apply_thread_policy(threads: int = 0) -> int:
    """Set torch's intra-op threads: ``threads`` if > 0, else ``OMP_NUM_THREADS`` if the user set
    it, else :func:`auto_threads`; an explicit number above :func:`usable_cores` is capped there,
    with a note on stderr. Returns the number set."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise ConfigError(f"threads must be a non-negative integer (0: automatic), got {threads!r}.")
    source = f"threads={threads}"  # what asked for them, for the note ("" for the automatic choice)
    if threads == 0:
        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        if env.isdigit() and int(env) > 0:
            threads, source = int(env), f"OMP_NUM_THREADS={env}"
        else:
            threads, source = auto_threads(), ""
    cores = usable_cores()
    if source and threads > cores:
        print(f"note: {source} asks for more threads than the {cores} cores this process may use; using {cores}.",
              file=sys.stderr)
        threads = cores
    torch.set_num_threads(threads)
    return threads


__all__ = ["apply_thread_policy", "auto_threads", "usable_cores", "AUTO_MAX_THREADS"]
