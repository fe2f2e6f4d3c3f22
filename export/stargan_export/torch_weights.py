"""Torch generator → `generator.safetensors`: the weights the SDK's torch and inductor backends run.

Usage: torch_to_safetensors(generator, "bundle/generator.safetensors"); weights_parity(G, path, 128, 5)

Plain tensors under the official key names (a JSON header and raw bytes), read back without unpickling
into the SDK's own copy of the architecture. The parity check runs exactly that path.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from stargan_export.parity import TOLERANCES, check, measure, sample_images, sample_labels, worst
from stargan_sdk.host.files import atomic_write


def torch_to_safetensors(generator: torch.nn.Module, path: str | Path) -> None:
    """Write the generator's state_dict (contiguous float32 CPU tensors) atomically."""
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in generator.state_dict().items()}
    atomic_write(Path(path), lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))


def weights_parity(
    model: torch.nn.Module, path: Path, image_size: int, c_dim: int, conv_dim: int, repeat_num: int
) -> dict[str, float]:
    """The SDK's module on the written file vs the training model, at batch 1 and 3."""
    from stargan_sdk.backends.torch_generator import build_generator, read_weights

    sdk_model = build_generator(read_weights(Path(path)), conv_dim, c_dim, repeat_num)
    results = []
    for n in (1, 3):
        image, label = sample_images(n, image_size, seed=20 + n), sample_labels(n, c_dim, seed=20 + n)
        x, c = torch.from_numpy(image), torch.from_numpy(label)
        with torch.inference_mode():
            results.append(measure(model.eval()(x, c).numpy(), sdk_model(x, c).numpy()))
    metrics = check(worst(*results), TOLERANCES["weights"], Path(path).name)
    out = {k: float(v) for k, v in metrics.items() if k != "finite"}
    out["max_batch_checked"] = 3.0
    return out
