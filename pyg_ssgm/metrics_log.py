"""Per-epoch metrics log: a CSV file always, TensorBoard as well when it is installed."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Dict, List, Optional

from .errors import MetricsLogError
from .files import write_text_atomic


def _read_rows(path: Path) -> List[Dict[str, float]]:
    """The rows of ``path`` as dicts of floats, or a :class:`MetricsLogError` naming the file and
    the line when it is not such a table (the file is left untouched)."""
    def fail(problem: str) -> MetricsLogError:
        return MetricsLogError(f"{path} is not a readable metrics log ({problem}). Move it aside to resume "
                               "without its earlier rows, or start a new --output-dir.")

    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise fail(f"not UTF-8 text at offset {e.start}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = []
    try:
        for row in reader:
            if None in row or None in row.values():  # more or fewer cells than the header has
                raise ValueError("it does not have one value per column")
            values = {k: float(v) for k, v in row.items() if v != ""}
            if "epoch" in values:
                values["epoch"] = int(values["epoch"])
            rows.append(values)
    except (csv.Error, ValueError, OverflowError) as e:
        raise fail(f"line {reader.line_num}: {e}") from None
    return rows


class MetricsLog:
    """Appends one row per epoch to ``<dir>/metrics.csv`` (columns grow as new keys appear)."""

    def __init__(self, directory: Path, tensorboard: bool = True, resume: bool = False):
        self.path = Path(directory) / "metrics.csv"
        self.rows: List[Dict[str, float]] = []
        if resume and self.path.exists():
            self.rows = _read_rows(self.path)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(Path(directory) / "tensorboard"))
            except Exception:  # tensorboard not installed: the CSV is the log
                self.writer = None

    def log(self, row: Dict[str, float], tensorboard: bool = True) -> None:
        """Write ``row``, replacing an earlier row of the same epoch (a resumed run may repeat an
        epoch, or complete a row logged in part); ``tensorboard=False`` writes the CSV only."""
        self.rows = [r for r in self.rows if r.get("epoch") != row.get("epoch")] + [row]
        keys: List[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.path, text.getvalue())
        if tensorboard and self.writer is not None:
            for key, value in row.items():
                if key != "epoch":
                    self.writer.add_scalar(key, value, int(row.get("epoch", 0)))
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(path: Path) -> Optional[List[Dict[str, float]]]:
    """The rows of a ``metrics.csv`` as dicts of floats (``None`` when the file is absent)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.exists():
        return None
    return _read_rows(path)
