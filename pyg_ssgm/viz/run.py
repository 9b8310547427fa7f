r"""Running a model for its pictures (:func:`run_model`) and writing the pictures of a split
(:func:`write_pictures`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Sequence, Union

import numpy as np
import torch

from ..errors import InvalidInputError
from .common import PathLike, _matplotlib, save
from .completion import plot_completion
from .matrices import plot_matrices
from .pairs import plot_pair

__all__ = ["run_model", "write_pictures"]


@torch.no_grad()
def run_model(predictor, pairs: Union[Any, Sequence[Any]], device: Union[str, torch.device, None] = None):
    r"""Match one pair or a list of pairs with ``predictor`` (a :class:`~pyg_ssgm.Predictor`; its
    model in eval mode, no gradients, no mirror test), with the decoder's attention.

    Returns ``(batch, prediction)``: the PyG batch and the :class:`~pyg_ssgm.Prediction`, whose
    ``output.queries_s.attention`` / ``output.queries_t.attention`` hold the query decoder's
    last-layer attention.
    """
    from torch_geometric.data import Batch

    from ..data import PairData

    pairs = [pairs] if isinstance(pairs, PairData) else list(pairs)
    if not pairs:
        raise InvalidInputError("run_model needs at least one pair.")
    model = predictor.model
    device = device or next(model.parameters()).device
    batch = Batch.from_data_list(pairs, follow_batch=PairData.FOLLOW_BATCH).to(device)
    was_training = model.training
    model.eval()
    try:
        prediction = predictor.match(batch, return_attention=True)
    finally:
        model.train(was_training)
    return batch, prediction


def _spread(n_items: int, k: int) -> List[int]:
    """``k`` indices spread evenly over ``range(n_items)`` (all of them when ``k >= n_items``)."""
    if k >= n_items:
        return list(range(n_items))
    return sorted({int(round(v)) for v in np.linspace(0, n_items - 1, k)})


def write_pictures(predictor, instances, out_dir: PathLike, num_pairs: int = 3, generator=None, seed: int = 0,
                   images: bool = True, real: bool = True, generated: bool = True, dpi: int = 100,
                   device: Union[str, torch.device, None] = None) -> List[Path]:
    r"""Pictures of a few pairs of ``instances`` (a split of a dataset) under ``out_dir``.

    * ``real``: ``real_<k>_matches.png`` and ``real_<k>_matrices.png`` for ``num_pairs`` real
      cross-instance pairs (spread over the categories), unfiltered, on the instances' images when
      they have them (``images=False``: points only);
    * ``generated``: ``generated_<k>_completion.png`` and ``generated_<k>_matches.png`` for
      ``num_pairs`` pairs made by ``generator`` (a :class:`~pyg_ssgm.data.PairGenerator`; default
      settings when ``None``), showing the nodes the model generated for what each side lacks.

    Which pairs are drawn is a pure function of ``seed``. Returns the written paths.
    """
    _matplotlib()
    from ..data import PairGenerator, cross_instance_pairs, make_pair

    instances = list(instances)
    if not instances:
        raise InvalidInputError("no instances to draw pairs from: the split is empty.")
    if num_pairs < 1:
        raise InvalidInputError(f"num_pairs must be >= 1, got {num_pairs}.")
    out_dir = Path(out_dir)
    written: List[Path] = []
    if real:
        index = cross_instance_pairs(instances, max_pairs_per_category=num_pairs, seed=seed)
        if not index:
            raise InvalidInputError("no real pair to draw: the split has no two instances of one category "
                                    "(draw generated pairs only, or pick another split).")
        for k, idx in enumerate(_spread(len(index), num_pairs)):
            i, j = index[idx]
            pair = make_pair(instances[i], instances[j])
            _, prediction = run_model(predictor, pair, device)
            imgs = (instances[i].image, instances[j].image) if images else (None, None)
            if any(isinstance(im, (str, os.PathLike)) and not Path(im).is_file() for im in imgs):
                imgs = (None, None)
            fig = plot_pair(pair, prediction.pairs[0].cpu(), images=imgs)
            if instances[i].id is not None:
                fig.axes[0].set_title(f"{fig.axes[0].get_title()}\n{instances[i].id} -> {instances[j].id}",
                                      fontsize=9)
            written.append(save(fig, out_dir / f"real_{k}_matches.png", dpi))
            written.append(save(plot_matrices(prediction, 0, gt=pair.y), out_dir / f"real_{k}_matrices.png", dpi))
    if generated:
        gen = generator or PairGenerator()
        for k, idx in enumerate(_spread(len(instances), num_pairs)):
            pair = gen(instances[idx], torch.Generator().manual_seed(seed * 1000 + k))
            batch, prediction = run_model(predictor, pair, device)
            completion = plot_completion(batch, prediction.output, 0, generated=predictor.generated_nodes(prediction))
            written.append(save(completion, out_dir / f"generated_{k}_completion.png", dpi))
            written.append(save(plot_pair(pair, prediction.pairs[0].cpu()), out_dir / f"generated_{k}_matches.png",
                                dpi))
    return written
