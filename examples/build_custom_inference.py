"""Build the custom-handler example: model.joblib plus code/inference.py (JSON in and out).

Usage: python examples/build_custom_inference.py DEST_DIR [--config modeldrop.json]
"""

from _example import run

if __name__ == "__main__":
    run("build_custom_inference", __doc__)
