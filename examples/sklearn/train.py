"""Train the example estimator (seed 002 layout): a LogisticRegression on 20 features, saved with joblib.

Usage: ``python examples/sklearn/train.py [--out PATH] [--job classification|regression]`` writes the model
file (default ``examples/sklearn/build/model.joblib``), to stage with the ``sklearn_estimator/`` folder.
:func:`build` writes a whole deployment folder (model, config, sample request) for the runtime's tests.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression

FEATURES = 20
HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = HERE / "build" / "model.joblib"


def train(job: str = "classification", seed: int = 0):
    """The fitted model and the first rows of its training data."""
    if job == "classification":
        x, y = make_classification(n_samples=2000, n_features=FEATURES, n_informative=8, random_state=seed)
        return LogisticRegression(max_iter=1000).fit(x, y), x
    x, y = make_regression(n_samples=2000, n_features=FEATURES, noise=0.1, random_state=seed)
    return LinearRegression().fit(x, y), x


def save_model(path: Path, job: str = "classification", seed: int = 0) -> Path:
    """Train and write the model file only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(train(job, seed)[0], path)
    return path


def build(out_dir: Path, job: str = "classification", seed: int = 0) -> Path:
    """Train the model and write a complete deployment folder to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, x = train(job, seed)
    joblib.dump(model, out_dir / "model.joblib")
    (out_dir / "config.yaml").write_text(f"modelType: joblib\njob: {job}\ninputSize: {FEATURES}\n")
    (out_dir / "sample_request.json").write_text(json.dumps({"data": np.round(x[:2], 4).tolist()}))
    shutil.copyfile(HERE / "sklearn_estimator" / "README.md", out_dir / "README.md")
    return out_dir


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_MODEL), help="model file to write")
    parser.add_argument("--job", choices=("classification", "regression"), default="classification")
    args = parser.parse_args()
    print(save_model(Path(args.out), args.job))


if __name__ == "__main__":
    main()
