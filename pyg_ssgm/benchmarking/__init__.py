"""The benchmark's parts, one job a module; ``python -m pyg_ssgm benchmark`` runs them
(:func:`run_benchmark`), and the studies under ``benchmarks/`` are tables over :mod:`.experiments`.

* :mod:`.config`: :class:`BenchmarkConfig` (quick / full presets) and the classical methods compared.
* :mod:`.fit`: power-law fits of cost against size (:func:`fit_exponent`).
* :mod:`.timing`: wall time, peak memory and the machine description.
* :mod:`.instrument`: counting and timing solver calls (:class:`CallCounter`) and prediction
  stages (:class:`StageTimer`, from the profiler's ``ssgm.*`` ranges).
* :mod:`.scoring`: F1 of a batch and reports over fixed batches.
* :mod:`.experiments`: train a variant, score it, write a study (the scripts' shared helper).
* :mod:`.accuracy`: the accuracy table (:func:`run_accuracy`).
* :mod:`.speed`: the speed tables (:func:`run_speed`), their instances (:func:`speed_instances`)
  and the timed training step (:func:`training_step`).
* :mod:`.targets`: the speed targets as PASS / FAIL lines (:func:`check_targets`).
* :mod:`.tables`, :mod:`.report`: markdown tables, the report and the ``.json`` / ``.md`` files.
* :mod:`.run`: both tables and the targets in one run (:func:`run_benchmark`).
"""
from .accuracy import run_accuracy
from .config import CLASSICAL, QAP_SOLVERS, BenchmarkConfig
from .fit import PowerFit, fit_exponent
from .instrument import CallCounter, StageTimer, inference_solver_targets, training_solver_targets
from .report import NEURAL_SOLVERS_NOTE, format_accuracy, format_report, format_speed, write_report
from .run import run_benchmark
from .scoring import batch_f1, score_batches
from .speed import run_speed, speed_instances, training_step
from .tables import format_table
from .targets import Target, check_targets
from .timing import machine_info, measure_peak_memory, time_call

__all__ = [
    "BenchmarkConfig", "CLASSICAL", "QAP_SOLVERS", "PowerFit", "fit_exponent", "machine_info", "time_call",
    "measure_peak_memory", "CallCounter", "StageTimer", "inference_solver_targets", "training_solver_targets",
    "batch_f1", "score_batches", "run_accuracy", "run_speed", "speed_instances", "training_step", "Target",
    "check_targets", "format_table", "format_accuracy", "format_speed", "format_report", "write_report",
    "NEURAL_SOLVERS_NOTE", "run_benchmark",
]
