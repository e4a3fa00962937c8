"""Example data shipped with the package (see README.md in this folder)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from ..data import RunTable, load_runs


def example_path() -> Path:
    """Path of the bundled synthetic table."""
    return Path(str(resources.files(__package__) / "synthetic_mixtures.csv"))


def load_example() -> RunTable:
    """The bundled synthetic table as a RunTable (7 domains, 3 targets; held-out runs have model_size > 1.3e9)."""
    return load_runs(pd.read_csv(example_path()), weights="weight_*", N="model_size", D="n_tokens", targets="*_loss")
