"""Build the XGBoost iris example: a Booster saved as xgboost-model (UBJSON).

Usage: python examples/build_xgboost_iris.py DEST_DIR [--config modeldrop.json]
"""

from _example import run

if __name__ == "__main__":
    run("build_xgboost_iris", __doc__)
