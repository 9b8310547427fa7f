"""Progress bars that count what they say they count, in one unit throughout."""
from __future__ import annotations

#: tqdm's layout with the rate always in ``<unit>/s``: tqdm itself flips to ``s/<unit>`` below one
#: per second, so a bar would change its unit half-way.
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"


def progress_bar(total: int, desc: str, unit: str, show: bool = True):
    """A tqdm bar over ``total`` items of ``unit`` (``"img"``, ``"pair"``), labelled ``desc``,
    cleared when done; ``show=False`` gives a silent one (same methods)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not show, leave=False, bar_format=BAR_FORMAT)


__all__ = ["progress_bar", "BAR_FORMAT"]
