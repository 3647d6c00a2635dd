"""Build the scikit-learn iris example: model.joblib (LogisticRegression) at the root.

Usage: python examples/build_sklearn_iris.py DEST_DIR [--config modeldrop.json]
"""

from _example import run

if __name__ == "__main__":
    run("build_sklearn_iris", __doc__)
