"""Train the example estimator deployment: a LogisticRegression on 20 features (seed 002 layout).

Usage: ``python examples/sklearn/train.py [OUT_DIR] [--job classification|regression]``;
writes ``model.joblib``, ``config.yaml``, ``sample_request.json`` and ``README.md``.
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


def build(out_dir: Path, job: str = "classification", seed: int = 0) -> Path:
    """Train the model and write a complete deployment folder to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if job == "classification":
        x, y = make_classification(n_samples=2000, n_features=FEATURES, n_informative=8, random_state=seed)
        model = LogisticRegression(max_iter=1000).fit(x, y)
    else:
        x, y = make_regression(n_samples=2000, n_features=FEATURES, noise=0.1, random_state=seed)
        model = LinearRegression().fit(x, y)
    joblib.dump(model, out_dir / "model.joblib")
    (out_dir / "config.yaml").write_text(f"modelType: joblib\njob: {job}\ninputSize: {FEATURES}\n")
    sample = {"data": np.round(x[:2], 4).tolist()}
    (out_dir / "sample_request.json").write_text(json.dumps(sample))
    if (HERE / "README.md").resolve() != (out_dir / "README.md").resolve():
        shutil.copyfile(HERE / "README.md", out_dir / "README.md")
    return out_dir


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default=str(HERE / "model"))
    parser.add_argument("--job", choices=("classification", "regression"), default="classification")
    args = parser.parse_args()
    print(build(Path(args.out_dir), args.job))


if __name__ == "__main__":
    main()
