"""StarGAN export: checkpoint → ONNX (FP32, FP16) + safetensors weights + TensorRT engine + manifest.

Usage: from stargan_export.bundle import build_bundle; build_bundle("200000-G.ckpt", "bundle", attributes=[...])
"""

__version__ = "0.1.0"
