"""What a StarGAN ONNX graph may contain, checked on the protobuf before any runtime session is made.

Usage: check_graph(graph_facts(data), "generator.onnx")  # BundleError naming the first operator not allowed

A graph is data only while it is a plain feed-forward network: a `Loop` with 1e12 iterations or a huge
`ConstantOfShape` would hang or exhaust memory inside ONNX Runtime / OpenVINO before the SDK could refuse it.
The allow-list is what our exports contain (models/toyfaces-64: generator FP32/FP16 and classifier; the INT8
QDQ generator; the dynamic-batch label tiling torch may trace), nothing with control flow or computed sizes.
"""

from __future__ import annotations

from stargan_sdk.bundle.onnx_refs import GraphFacts
from stargan_sdk.errors import BundleError

ALLOWED_OPS = frozenset(
    {
        "Add",
        "Cast",
        "Concat",
        "Conv",
        "ConvTranspose",
        "Expand",
        "InstanceNormalization",
        "LeakyRelu",
        "Relu",
        "Reshape",
        "Tanh",  # the shipped generator, its FP16 graph and the classifier
        "QuantizeLinear",
        "DequantizeLinear",  # the INT8 QDQ generator
        "Constant",
        "Identity",
        "Shape",
        "Gather",
        "Unsqueeze",
        "Squeeze",
        "Tile",
        "Mul",
        "Flatten",  # label tiling
    }
)
# Largest constant of a StarGAN graph: a 3x3 conv of 256 x 256 channels (conv_dim up to 4096 allowed: 4096^2 * 16).
MAX_CONSTANT_ELEMENTS = 4096 * 4096 * 16


def check_graph(facts: GraphFacts, file: str) -> None:
    unknown = sorted(facts.ops - ALLOWED_OPS)
    if unknown:
        raise BundleError(
            f"{file} uses operator {unknown[0]!r}, which no StarGAN export contains; refused before "
            f"running it (the file was replaced or comes from another model) — re-export the bundle"
        )
    if facts.max_elements > MAX_CONSTANT_ELEMENTS:
        raise BundleError(
            f"{file} declares a constant of {facts.max_elements:,} elements, beyond any StarGAN "
            f"layer ({MAX_CONSTANT_ELEMENTS:,}); refused before allocating it — re-export the bundle"
        )
