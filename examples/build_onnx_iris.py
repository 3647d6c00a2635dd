"""Build the ONNX iris example: the scikit-learn model converted with skl2onnx, model.onnx.

Usage: python examples/build_onnx_iris.py DEST_DIR [--config modeldrop.json] [--with-handler]

ONNX has no SageMaker image of its own: modeldrop hosts it on the scikit-learn image. The local
SageMaker loads model.onnx directly; on AWS add --with-handler (code/inference.py + onnxruntime).
"""

from _example import run

if __name__ == "__main__":
    run(
        "build_onnx_iris",
        __doc__,
        {"with_handler": "add code/inference.py and onnxruntime in code/requirements.txt (needed on AWS)"},
    )
