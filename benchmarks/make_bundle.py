"""Make a benchmark bundle of the official StarGAN architecture with seeded random weights.

Usage: python benchmarks/make_bundle.py /tmp/bundle128 --image-size 128 --max-batch 256 [--classifier]

Speed does not depend on the weights' values, so a seeded random checkpoint in the official format
(`NNN-G.ckpt`, a plain state_dict with InstanceNorm running stats) stands in for a trained one. It goes
through the same `stargan-export build` path a user's checkpoint would. `--classifier` adds the official D
(`NNN-D.ckpt`, seeded too) so the bundle carries `classifier.onnx`, whose estimate the pipeline then runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def official_checkpoint(
    folder: Path, conv_dim: int, repeat_num: int, c_dim: int, d_image_size: int | None = None
) -> Path:
    """`200000-G.ckpt` in `folder` (and `200000-D.ckpt` for `d_image_size`: the official D, 6 stride-2 layers at
    128 px)."""
    import torch

    from stargan_train.model import Discriminator, Generator

    torch.manual_seed(0)
    if d_image_size is not None:
        folder.mkdir(parents=True, exist_ok=True)
        repeat = min(6, d_image_size.bit_length() - 2)  # official 6 at 128 px; smaller images end at 2x2 too
        D = Discriminator(image_size=d_image_size, conv_dim=conv_dim, c_dim=c_dim, repeat_num=repeat)
        torch.save(D.state_dict(), folder / "200000-D.ckpt")
    G = Generator(conv_dim=conv_dim, c_dim=c_dim, repeat_num=repeat_num)
    sd = G.state_dict()
    for name, module in G.named_modules():  # the official checkpoints carry running stats: keep the format
        if isinstance(module, torch.nn.InstanceNorm2d):
            sd[f"{name}.running_mean"] = torch.zeros(module.num_features)
            sd[f"{name}.running_var"] = torch.ones(module.num_features)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(sd, folder / "200000-G.ckpt")
    return folder / "200000-G.ckpt"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--conv-dim", type=int, default=64)
    p.add_argument("--repeat-num", type=int, default=6)
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--opt-batch", type=int, default=8)
    p.add_argument("--engine", choices=("auto", "yes", "no"), default="auto")
    p.add_argument("--classifier", action="store_true", help="add classifier.onnx (a seeded official D)")
    args = p.parse_args(argv)

    from stargan_export.bundle import build_bundle

    attrs = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    with tempfile.TemporaryDirectory() as tmp:
        d_size = args.image_size if args.classifier else None
        ckpt = official_checkpoint(Path(tmp), args.conv_dim, args.repeat_num, len(attrs), d_size)
        engine = {"auto": None, "yes": True, "no": False}[args.engine]
        manifest = build_bundle(
            ckpt,
            args.out,
            attributes=attrs,
            image_size=args.image_size,
            fp16=True,
            classifier=args.classifier,
            engine=engine,
            max_batch=args.max_batch,
            opt_batch=args.opt_batch,
            progress=True,
        )
    print(f"bundle {args.out}: " + ", ".join(f"{a.file} ({a.precision})" for a in manifest.artifacts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
