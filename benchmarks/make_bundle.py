"""Make a benchmark bundle of the official StarGAN architecture with seeded random weights.

Usage: python benchmarks/make_bundle.py /tmp/bundle128 --image-size 128 --max-batch 256

Speed does not depend on the weights' values, so a seeded random checkpoint in the official format
(`NNN-G.ckpt`, a plain state_dict with InstanceNorm running stats) stands in for a trained one. It goes
through the same `stargan-export build` path a user's checkpoint would.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def official_checkpoint(folder: Path, conv_dim: int, repeat_num: int, c_dim: int) -> Path:
    import torch

    from stargan_train.model import Generator

    torch.manual_seed(0)
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
    args = p.parse_args(argv)

    from stargan_export.bundle import build_bundle

    attrs = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = official_checkpoint(Path(tmp), args.conv_dim, args.repeat_num, len(attrs))
        engine = {"auto": None, "yes": True, "no": False}[args.engine]
        manifest = build_bundle(
            ckpt,
            args.out,
            attributes=attrs,
            image_size=args.image_size,
            fp16=True,
            engine=engine,
            max_batch=args.max_batch,
            opt_batch=args.opt_batch,
            progress=True,
        )
    print(f"bundle {args.out}: " + ", ".join(f"{a.file} ({a.precision})" for a in manifest.artifacts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
