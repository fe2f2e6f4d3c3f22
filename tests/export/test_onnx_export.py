"""FP32 ONNX generator: structure, ONNX Runtime vs torch (per-instance InstanceNorm), dynamic batch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from stargan_export.errors import ExportError
from stargan_export.onnx_export import MAX_OPSET, MIN_OPSET, check_opset
from stargan_export.parity import ort_session, sample_images, sample_labels
from stargan_sdk.bundle.constants import GENERATOR_ONNX

TINY_SIZE, MAX_BATCH = 32, 16  # as tests/export/conftest.py builds the session bundle


def _torch(generator, image: np.ndarray, label: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return generator(torch.from_numpy(image), torch.from_numpy(label)).numpy()


def test_graph_structure(tiny_bundle, tiny_generator):
    model = onnx.load(str(tiny_bundle / GENERATOR_ONNX), load_external_data=False)
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    n_norms = sum(isinstance(m, torch.nn.InstanceNorm2d) for m in tiny_generator.modules())
    assert ops.count("InstanceNormalization") == n_norms == 9  # 3 encoder + 2x2 residual + 2 decoder
    assert "BatchNormalization" not in ops
    assert model.opset_import[0].version == 17
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert not list(tiny_bundle.glob("*.data"))  # self-contained: no external-data side files
    names = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in list(model.graph.input) + list(model.graph.output)
    }
    assert names == {
        "image": ["N", 3, TINY_SIZE, TINY_SIZE],
        "label": ["N", 5],
        "output": ["N", 3, TINY_SIZE, TINY_SIZE],
    }


@pytest.mark.parametrize("batch", [1, 2, 5, MAX_BATCH])
def test_onnxruntime_matches_torch_at_every_batch(tiny_bundle, tiny_generator, batch):
    session = ort_session(tiny_bundle / GENERATOR_ONNX)
    image, label = sample_images(batch, TINY_SIZE, seed=batch), sample_labels(batch, 5, seed=batch)
    out = session.run(["output"], {"image": image, "label": label})[0]
    assert out.shape == (batch, 3, TINY_SIZE, TINY_SIZE)
    assert np.abs(out - _torch(tiny_generator, image, label)).max() <= 1e-4


def test_statistics_are_per_instance(tiny_bundle):
    """An image's output must not depend on its batch neighbours (no batch or running statistics)."""
    session = ort_session(tiny_bundle / GENERATOR_ONNX)
    image, label = sample_images(4, TINY_SIZE, seed=3), sample_labels(4, 5, seed=3)
    image[1:] = np.clip(image[1:] * 3.0 + 0.5, -1, 1)  # neighbours with very different statistics
    batch = session.run(["output"], {"image": image, "label": label})[0]
    alone = session.run(["output"], {"image": image[:1], "label": label[:1]})[0]
    assert np.abs(batch[:1] - alone).max() <= 1e-5


def test_label_changes_output(tiny_bundle):
    session = ort_session(tiny_bundle / GENERATOR_ONNX)
    image = sample_images(1, TINY_SIZE)
    a = session.run(["output"], {"image": image, "label": np.zeros((1, 5), np.float32)})[0]
    b = session.run(["output"], {"image": image, "label": np.ones((1, 5), np.float32)})[0]
    assert np.abs(a - b).mean() > 1e-3


@pytest.mark.parametrize("opset", [MIN_OPSET - 1, MAX_OPSET + 1, 7])
def test_unsupported_opset_is_rejected(opset):
    with pytest.raises(ExportError, match=f"unsupported opset {opset}: choose one in {MIN_OPSET}..{MAX_OPSET}"):
        check_opset(opset)
