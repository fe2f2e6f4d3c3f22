"""Names and numbers shared by export and SDK: the engine boundary's tensor names and normalisation.

Usage: from stargan_sdk.bundle.constants import INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
"""

INPUT_IMAGE = "image"  # float32 [N, 3, H, W] in [-1, 1]
INPUT_LABEL = "label"  # float32 [N, c_dim], target-domain vector
OUTPUT_IMAGE = "output"  # float32 [N, 3, H, W] in [-1, 1]
CLASSIFIER_INPUT = "image"
CLASSIFIER_OUTPUT = "logits"  # float32 [N, attributes]: the discriminator's domain logits (joint: no mask logits)

NORM_MEAN = (0.5, 0.5, 0.5)
NORM_STD = (0.5, 0.5, 0.5)

MANIFEST_NAME = "manifest.json"
GENERATOR_ONNX = "generator.onnx"
GENERATOR_FP16_ONNX = "generator.fp16.onnx"
GENERATOR_INT8_ONNX = "generator.int8.onnx"  # QDQ, per-channel weights (stargan_export.int8)
GENERATOR_PLAN = "generator.plan"
GENERATOR_WEIGHTS = "generator.safetensors"  # plain tensors for the torch-based backends (no pickle)
WEIGHTS_KIND = "safetensors"  # its artifact kind in the manifest
CLASSIFIER_ONNX = "classifier.onnx"

HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")

# uint8 at a TensorRT engine's boundary: two tiny plans beside generator.plan, chained on its stream.
# preprocess.plan: PIXELS uint8 [N, H, W, 3] -> INPUT_IMAGE; postprocess.plan: OUTPUT_IMAGE -> PIXELS uint8.
PIXELS = "pixels"
PREPROCESS_PLAN = "preprocess.plan"
POSTPROCESS_PLAN = "postprocess.plan"
UINT8_ROLES = ("preprocess", "postprocess")  # their artifacts' roles in the manifest
# The classifier as an engine (role "classifier", kind "tensorrt"), fed by preprocess.plan: uint8 crops in, logits
# out on the GPU, so a TensorRT pipeline does not wait on the CPU for the originals' estimate.
CLASSIFIER_PLAN = "classifier.plan"
