"""The bundle's classifier on a torch backend's GPU: `classifier.onnx` (a Conv chain) run by torch on that device.

Usage: clf = TorchClassifier.from_bundle(bundle, torch, torch.device("cuda", 0)); logits = clf.logits_uint8(u8)

On ONNX Runtime's CPU the classifier costs about as much per image as everything else the pipeline does on the
host (the official D at 128 px: 11 ms an image on 2 cores, about 700 images/s on 16), so a GPU backend that
leaves it there caps at that rate. Here it runs where the generator runs, from uint8 crops normalised on the device.
The graph is read without onnx (`bundle.onnx_graph`); a graph with any other operator is refused with the
reason (`ClassifierGraphError`) and the CPU classifier stays.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from stargan_sdk.backends.torch_uint8 import normalise, to_device
from stargan_sdk.bundle.constants import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.bundle.onnx_graph import Graph, Node, read_graph
from stargan_sdk.errors import BundleError, ImageInputError
from stargan_sdk.images.imaging import Normalizer

OPS = ("Conv", "LeakyRelu", "Relu", "Reshape", "Flatten")


class ClassifierGraphError(BundleError):
    """The classifier graph is not one this module runs (it then stays on ONNX Runtime)."""


def _conv(torch: Any, node: Node, weights: dict[str, Any]) -> Callable[[Any], Any]:
    a = node.attributes
    missing = [name for name in node.inputs[1:] if name and name not in weights]
    if len(node.inputs) < 2 or missing:
        raise ClassifierGraphError(f"Conv {node.outputs[0]}: its weights are not float32 constants of the file")
    w = weights[node.inputs[1]]
    b = weights[node.inputs[2]] if len(node.inputs) > 2 and node.inputs[2] else None
    pads = tuple(a.get("pads", (0,) * 4))
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"") or len(pads) != 4 or pads[:2] != pads[2:]:
        raise ClassifierGraphError(f"Conv {node.outputs[0]}: only explicit symmetric 2-D padding is run, got {pads}")
    if tuple(a.get("kernel_shape", w.shape[2:])) != tuple(w.shape[2:]):
        raise ClassifierGraphError(f"Conv {node.outputs[0]}: kernel_shape differs from its weight's shape")
    stride, dilation, groups = tuple(a.get("strides", (1, 1))), tuple(a.get("dilations", (1, 1))), a.get("group", 1)
    conv = torch.nn.functional.conv2d
    return lambda x: conv(x, w, b, stride, pads[:2], dilation, groups)


def _reshape(node: Node, consts: dict[str, np.ndarray]) -> Callable[[Any], Any]:
    if node.inputs[1] not in consts:
        raise ClassifierGraphError(f"Reshape {node.outputs[0]}: its shape is computed, not a constant")
    shape = [int(d) for d in consts[node.inputs[1]]]
    keep_zero = bool(node.attributes.get("allowzero", 0))
    return lambda x: x.reshape([x.shape[i] if d == 0 and not keep_zero else d for i, d in enumerate(shape)])


def _step(torch: Any, node: Node, weights: dict[str, Any], consts: dict[str, np.ndarray]) -> Callable[[Any], Any]:
    if node.op == "Conv":
        return _conv(torch, node, weights)
    if node.op == "LeakyRelu":
        slope = float(node.attributes.get("alpha", 0.01))
        return lambda x: torch.nn.functional.leaky_relu(x, slope)
    if node.op == "Relu":
        return torch.relu
    if node.op == "Reshape":
        return _reshape(node, consts)
    axis = int(node.attributes.get("axis", 1))  # Flatten
    return lambda x: x.reshape(int(np.prod(x.shape[:axis])), -1)


def chain_forward(torch: Any, graph: Graph, device: Any) -> Callable[[Any], Any]:
    """The graph as one function of its image input (float32 NCHW on `device`) returning its logits; the
    weights are copied to `device` once. Raises ClassifierGraphError for anything but a chain of `OPS`."""
    if graph.inputs != [CLASSIFIER_INPUT] or graph.outputs != [CLASSIFIER_OUTPUT]:
        raise ClassifierGraphError(f"classifier graph has inputs {graph.inputs} and outputs {graph.outputs}")
    other = sorted({n.op for n in graph.nodes} - set(OPS))
    if other:
        raise ClassifierGraphError(f"classifier graph has operators this GPU path does not run: {', '.join(other)}")
    weights = {k: torch.from_numpy(v).to(device) for k, v in graph.initializers.items() if v.dtype == np.float32}
    steps, current = [], CLASSIFIER_INPUT
    for node in graph.nodes:  # ONNX stores nodes in topological order; a chain reads what the last one wrote
        if not node.inputs or node.inputs[0] != current or len(node.outputs) != 1:
            raise ClassifierGraphError(f"classifier graph is not a chain at its {node.op} {node.outputs[:1]}")
        steps.append(_step(torch, node, weights, graph.initializers))
        current = node.outputs[0]
    if current != CLASSIFIER_OUTPUT:
        raise ClassifierGraphError(f"classifier chain ends at {current!r}, not its output {CLASSIFIER_OUTPUT!r}")

    def forward(x: Any) -> Any:
        for step in steps:
            x = step(x)
        return x

    return forward


class TorchClassifier:
    """The classifier's logits computed by torch on `device`, in FP32 (TF32 off for its calls, as ONNX Runtime and
    classifier.plan compute: an estimate then differs from the CPU's only where a logit is ~0).

    Args:
        graph: the verified classifier graph (`read_graph`).
        torch: the torch module; device: where to run (the generator's CUDA device).
        normalizer: the bundle's normalisation, applied on the device to uint8 input.
        lock: held for each call: the generator backend's own lock, so that the process-wide TF32 switch is
            flipped only while no generator call of that backend runs (and no CUDA graph is being captured).
    """

    uint8_on_device = True  # `logits_uint8` normalises where it runs: the caller hands it uint8 crops

    def __init__(self, graph: Graph, torch: Any, device: Any, normalizer: Normalizer, lock: Any | None = None) -> None:
        self._torch, self.device = torch, device
        self._lock = lock if lock is not None else threading.Lock()
        self._forward = chain_forward(torch, graph, device)
        self._scale, self._shift = (torch.from_numpy(a).to(device) for a in (normalizer.scale, normalizer.shift))

    @classmethod
    def from_bundle(cls, bundle: Bundle, torch: Any, device: Any, lock: Any | None = None) -> TorchClassifier:
        """The bundle's classifier (checksum verified); ClassifierGraphError where it is not a Conv chain."""
        art = bundle.manifest.artifact(role="classifier", kind="onnx")
        if art is None:
            raise ClassifierGraphError("the bundle has no classifier")
        norm = Normalizer.of_manifest(bundle.manifest)
        return cls(read_graph(bundle.verified(art).read_bytes()), torch, device, norm, lock)

    def _run(self, x: Any) -> np.ndarray:
        cudnn = self._torch.backends.cudnn
        with self._lock:
            tf32, cudnn.allow_tf32 = cudnn.allow_tf32, False
            try:
                return self._forward(x).float().cpu().numpy()
            finally:
                cudnn.allow_tf32 = tf32

    def close(self) -> None:
        """Free the weights on the device (the Translator's close)."""
        self._forward = self._scale = self._shift = None

    def logits(self, images: np.ndarray) -> np.ndarray:
        """float32 [N, k] logits for normalised float32 [N, 3, H, W] images (as ONNX Runtime's `logits`)."""
        with self._torch.inference_mode():
            return self._run(to_device(self._torch, np.asarray(images, np.float32), self.device))

    def logits_uint8(self, images: np.ndarray) -> np.ndarray:
        """float32 [N, k] logits for uint8 [N, S, S, 3] RGB crops, normalised on the device with the host's
        arithmetic (`Normalizer.preprocess`: one multiply and one add in float32)."""
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            got = f"{images.dtype}{list(images.shape)}" if isinstance(images, np.ndarray) else type(images).__name__
            raise ImageInputError(f"the classifier takes uint8 crops [N, S, S, 3], got {got}")
        with self._torch.inference_mode():
            u8 = to_device(self._torch, images, self.device)
            return self._run(normalise(self._torch, u8, self._scale, self._shift).contiguous())

    def describe(self) -> str:
        return f"torch on {self.device}"
