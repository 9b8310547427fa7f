r"""Pictures: predicted matches, generated nodes (of generated and of real pairs), affinity / matching /
attention matrices, training curves.

matplotlib is the optional extra ``viz`` (``pip install 'pyg_ssgm[viz]'``); it is imported on first
use, and a missing matplotlib raises :class:`~pyg_ssgm.errors.MissingExtraError` naming the extra.
Every function builds a :class:`matplotlib.figure.Figure` on an Agg canvas of its own, without
``pyplot``: no window ever opens and the caller's backend and global state are left alone (in a
notebook, display the returned figure or :func:`save` it).

>>> from pyg_ssgm import viz
>>> fig = viz.plot_pair(pair, pred)          # doctest: +SKIP
>>> viz.save(fig, "pictures/pair.png")       # doctest: +SKIP

Colours used throughout: green = correct, red = wrong, orange = missed (a true partner the model
did not find), hollow = a node with no partner that the model correctly left unmatched.
"""
from .common import COLORS, save
from .completed import plot_completed_pair
from .completion import plot_completion
from .curves import plot_sweep, plot_training_curves
from .matrices import plot_matrices
from .pairs import plot_pair
from .run import run_model, write_pictures

__all__ = [
    "COLORS", "plot_pair", "plot_completion", "plot_completed_pair", "plot_matrices", "plot_training_curves",
    "plot_sweep", "save", "run_model", "write_pictures",
]
