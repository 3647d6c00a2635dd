"""Build the ONNX iris example: the scikit-learn model converted with skl2onnx, model.onnx.

Usage: python examples/build_onnx_iris.py DEST_DIR [--config modeldrop.json]

ONNX has no SageMaker image of its own: modeldrop hosts it on the scikit-learn image, which needs
code/inference.py and onnxruntime in code/requirements.txt to load it; the tarball carries both.
"""

from _example import run

if __name__ == "__main__":
    run("build_onnx_iris", __doc__)
