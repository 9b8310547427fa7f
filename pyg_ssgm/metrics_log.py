"""Per-epoch metrics log: a CSV file always, TensorBoard as well when it is installed."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Optional


def _parse(row: Dict[str, str]) -> Dict[str, float]:
    values = {k: float(v) for k, v in row.items() if v != ""}
    if "epoch" in values:
        values["epoch"] = int(values["epoch"])
    return values


class MetricsLog:
    """Appends one row per epoch to ``<dir>/metrics.csv`` (columns grow as new keys appear)."""

    def __init__(self, directory: Path, tensorboard: bool = True, resume: bool = False):
        self.path = Path(directory) / "metrics.csv"
        self.rows: List[Dict[str, float]] = []
        if resume and self.path.exists():
            with open(self.path, newline="") as f:
                self.rows = [_parse(row) for row in csv.DictReader(f)]
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(Path(directory) / "tensorboard"))
            except Exception:  # tensorboard not installed: the CSV is the log
                self.writer = None

    def log(self, row: Dict[str, float]) -> None:
        # a resumed run may repeat an epoch that was logged before the interruption
        self.rows = [r for r in self.rows if r.get("epoch") != row.get("epoch")] + [row]
        keys: List[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.path)
        if self.writer is not None:
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
    with open(path, newline="") as f:
        return [_parse(row) for row in csv.DictReader(f)]
