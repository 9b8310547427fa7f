"""Can the decoder decide who has a partner? One trained model, scored on *validation* pairs only.

Two questions about the generated nodes, each answered without retraining (these settings change
no parameter):

* **the dustbin** (``InferenceConfig.dustbin_weight``): each node's score for staying unmatched
  grows with the existence logit of the query seeded from it; validation F1 (unfiltered, macro
  over classes) for each weight, with the generated nodes in the matching and without;
* **the count** (``ModelConfig.exist_threshold``): how many queries exist, against what the
  keypoint names say each graph lacks (exact share of pairs and of graphs, mean absolute error,
  generated per graph), beside what the matching leaves unmatched (``completion_source``
  "matching").

Writes ``<--name>.{md,json}`` (default ``generation_choices``).

    python -m pyg_ssgm train --dataset cub --root data/CUB_200_2011 --preset cub --epochs 4 --output-dir runs/cub4
    python benchmarks/generation_choices.py runs/cub4/checkpoint.pt --pairs 3 --name cub_generation_choices
"""
from pyg_ssgm.benchmarking.experiments import (Study, comma_list, score, study_parser, with_inference,
                                               with_model_settings)
from pyg_ssgm.benchmarking.tables import format_table
from pyg_ssgm.cli.common import reported
from pyg_ssgm.errors import ConfigError
from pyg_ssgm.experiment import load_model, prepare_splits
from pyg_ssgm.generation import count_measures


def main():
    parser = study_parser(__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("--pairs", type=int, default=None, help="validation pairs per class (default: all)")
    parser.add_argument("--weights", type=comma_list(float), default="0,0.25,0.5,1,2", help="dustbin weights")
    parser.add_argument("--thresholds", type=comma_list(float), default="0.5,0.3,0.2,0.1",
                        help="existence thresholds of the queries")
    parser.add_argument("--name", default="generation_choices", help="of the result files")
    args = parser.parse_args()
    predictor, settings = load_model(args.checkpoint)
    if predictor.model.decoder is None:
        raise ConfigError(f"{args.checkpoint} was trained without the decoder (completion off): nothing to choose.")
    val = prepare_splits(settings, progress=False)["val"]
    study = Study(args.name, args.output_dir)
    dustbin = []
    for generate in (False, True):
        for weight in args.weights:
            variant = with_inference(predictor, generate_at_inference=generate, dustbin_weight=weight)
            row = {"study": "dustbin", "generate_at_inference": generate, "dustbin_weight": weight,
                   **score(variant, val, args.pairs, intersection=False)}
            study.rows.append(row)
            dustbin.append([str(generate), f"{weight:g}", f"{row['f1']:.4f}", f"{row['precision']:.3f}",
                            f"{row['recall']:.3f}"])
            print(f"dustbin: generated nodes {generate}, weight {weight:g}: val F1 {row['f1']:.4f}", flush=True)
    count = []
    for threshold in args.thresholds:
        measured = count_measures(with_model_settings(predictor, exist_threshold=threshold), val, args.pairs)
        study.rows.append({"study": "count", "exist_threshold": threshold, **measured})
        for source in ("queries", "matching"):
            c = measured[source]
            count.append([f"{threshold:g}", source, f"{c['exact']:.1%}", f"{c['exact_graph']:.1%}", f"{c['mae']:.2f}",
                          f"{c['generated_mean']:.2f}"])
        print(f"count: exist_threshold {threshold:g}: queries exact {measured['queries']['exact']:.1%}", flush=True)
    lacking = study.rows[-1]
    study.write(["# Can the decoder decide who has a partner? (validation pairs only)", "", f"`{study.command}`", "",
                 f"The model: `{args.checkpoint}` (inference as trained: generated nodes "
                 f"{'on' if predictor.config.generate_at_inference else 'off'}, mirror test "
                 f"{'on' if predictor.config.mirror_test else 'off'}). Validation F1 (unfiltered, macro over classes) "
                 "for each dustbin weight:", "",
                 format_table(["generated nodes in the matching", "dustbin_weight", "val F1", "P", "R"], dustbin,
                              "lrrrr"), "",
                 f"The count on {lacking['num_pairs']} validation pairs (a graph lacks {lacking['true_mean']:.2f} named "
                 f"points on average; {lacking['true_zero']:.1%} of pairs lack none)"
                 + ("; the generated nodes are off in the matching, so what it leaves does not depend on the "
                    "threshold:" if not predictor.config.generate_at_inference else ":"), "",
                 format_table(["exist_threshold", "generated nodes", "count exact (pairs)", "(graphs)", "abs. error",
                               "generated / graph"], count, "rlrrrr")])


if __name__ == "__main__":
    with reported():
        main()
