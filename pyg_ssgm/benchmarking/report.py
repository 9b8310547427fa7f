"""The report: the accuracy and speed tables as markdown with their footnotes, the whole document
(:func:`format_report`) and the ``.json`` / ``.md`` files of a run (:func:`write_report`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
from torch import Tensor

from ..errors import ConfigError
from .config import PUBLISHED, PUBLISHED_PARTIAL
from .instrument import StageTimer
from .tables import _f, _mib, _ms, _pct, _ratio, format_table
from .targets import Target

__all__ = ["NEURAL_SOLVERS_NOTE", "format_accuracy", "format_generation_tables", "format_speed", "format_report",
           "write_report"]


NEURAL_SOLVERS_NOTE = (
    "pygmtools' neural solvers (PCA-GM, IPCA-GM, CIE, NGM) are not in the table: they need pretrained "
    "weights that pygmtools downloads from the internet on first use, and this benchmark runs offline "
    "(nothing is downloaded at run time). Training them from scratch here would be a different baseline "
    "from the published one.")


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
    validated = [(m["label"], m["validation"]) for m in acc["methods"] if m.get("validation")]
    if validated:
        notes.append("Validation split (the same validation pairs, scored after training; the settings were "
                      "chosen there, never on these test pairs), unfiltered F1 / intersection acc.: " + "; ".join(
                          f"{label} {v['val_f1']:.3f} / {v.get('val_intersection_acc', float('nan')):.3f}"
                          for label, v in validated) + ".")
    completion = [(m["label"], m["completion_generated_pairs"]) for m in acc["methods"]
                  if m.get("completion_generated_pairs")]
    if completion:
        notes.append("Completion on generated pairs of the test images (ground truth by construction): " + "; ".join(
            f"{label}: missing-node count exact on {100 * c['count_accuracy']:.1f} % of pairs "
            f"({100 * c.get('count_accuracy_graph', float('nan')):.1f} % of graphs), position error "
            f"{c.get('position_error', float('nan')):.3f} graph radii" for label, c in completion) + ".")
    if acc.get("outliers") or acc.get("extra_drop"):
        notes.append(
            f"Harder data (pyg_ssgm.data.perturb, every split, training included, seeded per image): "
            f"{acc.get('outliers', 0)} unnamed outlier point(s) per image, uniform in "
            + ("the whole image" if acc.get("outlier_region") == "image" else "the bounding box of its keypoints")
            + f" (no partner); {100 * acc.get('extra_drop', 0.0):.0f} % of the annotated keypoints removed "
            "per image. Image features, where a row uses them, are sampled at the outliers too.")
    out = table + "\n\n" + "\n".join(f"{i + 1}. {n}" for i, n in enumerate(notes))
    generation = format_generation_tables(acc)
    if generation:
        out += "\n\n" + generation
    partial = PUBLISHED_PARTIAL.get(acc["dataset"]) if acc.get("outliers") else None
    if partial:
        out += ("\n\n**Published anchor** (partial matching with outliers, F1 as reported, quoted, not measured "
                "here; a different outlier protocol)\n\n" + format_table(
                    ["method", "labels", "features", "F1 (%)", "note"], [list(p) for p in partial], "lllrl"))
    published = None if partial else PUBLISHED.get(acc["dataset"])
    if published:
        out += ("\n\n**Published anchors** (intersection accuracy as the papers report it, quoted, not measured "
                "here; their protocols differ in details)\n\n" + format_table(
                    ["method", "labels", "features", "intersection acc.", "note"],
                    [[m, labels, feats, f"{a / 100:.3f}", note] for m, labels, feats, a, note in published],
                    "lllrl"))
    return out


def format_generation_tables(acc: Dict[str, Any]) -> str:
    """What the trained rows generate on the same real test pairs (:mod:`pyg_ssgm.generation`):
    the count, the place of hidden keypoints beside the transfer baselines, and the matching F1
    with the generated nodes on / off at inference and trained without; empty when no row has
    generation measures."""
    rows = [m for m in acc["methods"] if m.get("generation")]
    if not rows:
        return ""
    out = ["**Generated nodes on the real test pairs** (the names say what each graph lacks; "
           "`pyg_ssgm.generation`, docs/evaluation.md)", ""]
    count = []
    for m in rows:
        c = m["generation"]["count"]
        # the per-node score each source's decision cuts: the queries' existence, the matching's affinity
        for source, score in (("queries", "queries"), ("matching", "affinity")):
            if source in c:
                count.append([m["label"], source, _pct(c[source]["exact"]), _pct(c[source]["exact_graph"]),
                              _f(c[source]["mae"], 2), _f(c[source]["generated_mean"], 2), _f(c["true_mean"], 2),
                              _f(c.get("auroc", {}).get(score))])
    out += [format_table(["method", "generated nodes", "count exact (pairs)", "(graphs)", "abs. error",
                          "generated / graph", "lacking / graph", "AUROC of its per-node score"], count,
                         "llrrrrrr"), ""]
    keys = sorted({k for m in rows for k in m["generation"].get("place", {})}, key=lambda k: int(k.split("=")[1]))
    if keys:
        place, placed = [], [m for m in rows if m["generation"].get("place")]
        for i, m in enumerate(placed):
            measured = m["generation"]["place"]
            for name, first in measured[keys[0]].items():
                # the same hidden points and RRWM's matches in every row: RRWM's rows once
                if not isinstance(first, dict) or ("rrwm" in name and i > 0):
                    continue
                cells = [cell for k in keys for cell in (_f(measured[k].get(name, {}).get("pck@0.05")),
                                                         _f(measured[k].get(name, {}).get("pck@0.1")),
                                                         _pct(measured[k].get(name, {}).get("found")))]
                place.append(["RRWM" if "rrwm" in name else m["label"], name, *cells])
        sizes = ", ".join(f"{k.split('=')[1]} hidden: {placed[0]['generation']['place'][k]['num_pairs']} pairs"
                          for k in keys)
        headers = ["method", "placed by"] + [h for k in keys for h in (f"PCK@0.05 ({k})", f"PCK@0.1 ({k})",
                                                                     f"found ({k})")]
        out += [f"Place of keypoints hidden from the target ({sizes}; PCK of the largest side of the target's "
                "keypoint box; found: a generated node stands for the hidden point's source partner, a miss "
                "otherwise):", "", format_table(headers, place, "ll" + "r" * (len(headers) - 2)), ""]
    by_key = {m["key"]: m for m in acc["methods"]}
    main = by_key.get("ssgm")
    flipped = next((m for k, m in by_key.items() if k.startswith("ssgm_generated_")), None)
    if main and flipped:
        on, off = (flipped, main) if flipped["key"].endswith("_on") else (main, flipped)
        without = by_key.get("ssgm_no_completion")
        out.append(f"Matching F1 of {main['label']}: generated nodes on at inference {on['f1']:.3f}, off "
                   f"{off['f1']:.3f}" + (f", trained without them {without['f1']:.3f}" if without else "") + ".")
    return "\n".join(out).rstrip()


def format_speed(speed: Dict[str, Any]) -> str:
    """The speed tables (markdown) and the fitted exponents."""
    out = []
    rows = speed["rows"]
    model_note = "trained (the accuracy table's self-supervised model)" if speed["trained_model"] else "untrained"
    out.append(f"**SSGM throughput and cost** (device {speed['device']}, model {model_note}; median of "
               f"{speed['repeats']} repeats, more until the timed calls add up to "
               f"{speed.get('min_time_s', 0):g} s, after {speed['warmup']} warm-up; x: relative to the smallest size, "
               "same batch size)\n")
    out.append(format_table(
        ["nodes", "batch", "infer ms/pair", "pairs/s", "infer x", "train ms/step", "train x", "infer peak MiB",
         "train peak MiB", "F1 (these pairs)"],
        [[r["nodes"], r["batch_size"], _ms(r["infer_ms_per_pair"] / 1e3), f"{r['pairs_per_s']:.0f}",
          _ratio(r["infer_rel"]), _ms(r["train_step_s"]), _ratio(r["train_rel"]), _mib(r["infer_peak_bytes"]),
          _mib(r["train_peak_bytes"]), _f(r["f1_ssgm"])] for r in rows]))
    out.append("\n**Where SSGM inference time goes** (share of one prediction, from the profiler's `ssgm.*` "
               "ranges; solver = `partial_hungarian` -> `pygmtools.hungarian`; calls per batch counted by wrapping "
               "both)\n")
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

    f1_solvers = [s for s in ("hungarian", "rrwm", "ipfp") if s in solvers]
    out.append(format_table(
        ["nodes", "batch", "SSGM", *solvers, "RRWM/SSGM", "F1 SSGM", *(f"F1 {s}" for s in f1_solvers)],
        [[r["nodes"], r["batch_size"], _ms(r["infer_ms_per_pair"] / 1e3), *(cell(r, s) for s in solvers),
          _ratio(r["rrwm_over_ssgm"]), _f(r["f1_ssgm"]), *(f1cell(r, s) for s in f1_solvers)]
         for r in rows]))

    def mib(value):
        return None if value is None else f"{value / 2 ** 20:.1f}"

    out.append("\n**Peak memory of one batch's inference** (MiB, same batches)\n")
    out.append(format_table(
        ["nodes", "batch", "SSGM", *solvers],
        [[r["nodes"], r["batch_size"], mib(r["infer_peak_bytes"]),
          *("skip" if "skipped" in r["classical"][s] else mib(r["classical"][s].get("peak_bytes")) for s in solvers)]
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


def write_report(result: Dict[str, Any], output_dir: str, name: str) -> List[str]:
    """Write ``result`` to ``<output_dir>/<name>.json`` and :func:`format_report` of it to ``<name>.md``;
    returns both paths."""
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output-dir {out} exists and is not a directory.")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=_json_default))
    (out / f"{name}.md").write_text(format_report(result))
    return [str(out / f"{name}.json"), str(out / f"{name}.md")]
