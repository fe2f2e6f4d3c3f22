"""The uint8 boundary graphs on ONNX Runtime CPU equal the host's Normalizer byte for byte, for any pixels,
generator outputs (inside and outside [-1, 1], and at rounding boundaries) and normalisation.

Usage: pytest -q tests/export/test_uint8_graphs.py
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from stargan_export.uint8_graphs import postprocess_graph, preprocess_graph
from stargan_sdk.images.imaging import Normalizer

SIZE = 8
NORMS = [((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]


def session(model) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module", params=range(len(NORMS)), ids=["stargan", "imagenet"])
def graphs(request):
    mean, std = NORMS[request.param]
    pre, post = session(preprocess_graph(SIZE, mean, std)), session(postprocess_graph(SIZE, mean, std))
    return Normalizer(mean, std), pre, post


pixels = hnp.arrays(np.uint8, st.tuples(st.integers(1, 3), st.just(SIZE), st.just(SIZE), st.just(3)))
outputs = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 3), st.just(3), st.just(SIZE), st.just(SIZE)),
    elements=st.floats(-1.5, 1.5, width=32) | st.sampled_from([-1.0, 1.0, 0.0, 0.5, -0.5]),
)


@settings(max_examples=60, deadline=None)
@given(images=pixels)
def test_preprocess_equals_the_host(graphs, images: np.ndarray) -> None:
    norm, pre, _ = graphs
    np.testing.assert_array_equal(pre.run(["image"], {"pixels": images})[0], norm.preprocess(images))


@settings(max_examples=60, deadline=None)
@given(y=outputs)
def test_postprocess_equals_the_host(graphs, y: np.ndarray) -> None:
    norm, _, post = graphs
    got = post.run(["pixels"], {"output": y})[0]
    assert got.dtype == np.uint8 and got.shape == (len(y), SIZE, SIZE, 3)
    np.testing.assert_array_equal(got, norm.postprocess(y))  # outside [-1, 1] too: clipped the same way


def test_postprocess_rounds_halves_up_at_every_level(graphs) -> None:
    """Every uint8 level and the half-way points between them, where round-half-up and round-to-even differ."""
    norm, _, post = graphs
    levels = np.arange(0, 255.5, 0.5, dtype=np.float32)  # 0, 0.5, 1, ..., 255
    y = ((levels.reshape(1, 1, 1, -1) - norm.out_shift) / norm.out_scale).astype(np.float32)
    y = np.broadcast_to(y, (1, 3, 1, levels.size)).reshape(1, 3, -1)[..., : SIZE * SIZE].reshape(1, 3, SIZE, SIZE)
    np.testing.assert_array_equal(post.run(["pixels"], {"output": np.ascontiguousarray(y)})[0], norm.postprocess(y))


def test_round_trip_is_exact_for_every_pixel_value(graphs) -> None:
    norm, pre, post = graphs
    images = np.arange(SIZE * SIZE * 3 * 4, dtype=np.int64).reshape(4, SIZE, SIZE, 3) % 256
    images = images.astype(np.uint8)
    x = pre.run(["image"], {"pixels": images})[0]
    np.testing.assert_array_equal(post.run(["pixels"], {"output": x})[0], images)
