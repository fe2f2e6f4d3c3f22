"""Ground truth for edits of toy faces: the same person re-rendered with the target labels, and the edited region.

Usage: truth, why_not = ToyfacesTruth.find(Path("data/toy/images"), crop=178, size=64, attrs=ATTRS)

`sample_params(rng, attrs)` draws the same person with only the forced attributes changed, so every
single-attribute edit of a toyfaces test image has a right answer (up to what the input cannot tell: the
new hair shade, and for Male / Young the new hair length, beard and grey strands). Index 0 of every stack is
the identity translation (the input's own labels), index i + 1 the edit of attribute i (`create_labels`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from stargan_train.data.toyfaces import HAIR_COLOURS, TOY_ATTRS, TOYFACES_VERSION, render_face, sample_params
from stargan_train.data.transforms import center_crop, resize, to_normalized_tensor
from stargan_train.samples import celeba_targets

# Semantic regions (renderer masks) an edit may rewrite, besides every pixel the two renders differ in.
# Male changes the hair's length and the beard; Young adds grey strands to the hair and lines to the skin.
EDIT_REGIONS: dict[str, tuple[str, ...]] = {
    **{h: ("hair",) for h in HAIR_COLOURS},
    "Male": ("hair", "beard"),
    "Young": ("hair", "face"),
}


@dataclass(frozen=True)
class ToyfacesTruth:
    """Re-renders test faces of one toyfaces folder (its seed and frame size) preprocessed like the dataset."""

    seed: int
    width: int
    height: int
    crop: int
    size: int
    attrs: tuple[str, ...]

    @classmethod
    def find(
        cls, image_dir: Path, *, crop: int, size: int, attrs: tuple[str, ...]
    ) -> tuple[ToyfacesTruth | None, str | None]:
        """(truth, None) for a toyfaces folder this renderer drew; else (None, why there is no ground truth)."""
        info_path = Path(image_dir).parent / "toyfaces.json"
        if not info_path.is_file():
            return None, f"no {info_path.name} beside {image_dir}: not a toyfaces folder, no counterfactual renders"
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            seed, width, height, version = (info[k] for k in ("seed", "width", "height", "version"))
        except (OSError, ValueError, KeyError, TypeError) as e:
            return None, f"{info_path} is unreadable ({e}): no counterfactual renders"
        if version != TOYFACES_VERSION:
            return None, (
                f"{info_path} was drawn by toyfaces version {version}, this renderer is version "
                f"{TOYFACES_VERSION}: no counterfactual renders"
            )
        unknown = [a for a in attrs if a not in TOY_ATTRS]
        if unknown:
            return None, f"attributes {unknown} are not drawn by toyfaces: no counterfactual renders"
        return cls(int(seed), int(width), int(height), crop, size, tuple(attrs)), None

    def face_index(self, filename: str) -> int | None:
        """generate_toyfaces names face i `{i + 1:06d}.png`; None for any other name."""
        stem = Path(filename).stem
        return int(stem) - 1 if stem.isdigit() and len(stem) == 6 and int(stem) > 0 else None

    def _render(self, index: int, forced: dict[str, int] | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return render_face(sample_params(np.random.default_rng([self.seed, 0, index]), forced), self.width, self.height)

    def _image(self, rgb: np.ndarray) -> torch.Tensor:
        return to_normalized_tensor(resize(center_crop(Image.fromarray(rgb), self.crop), self.size))

    def _region(self, full: np.ndarray) -> torch.Tensor:
        # Any output pixel the region touches counts as inside (float mask: no weight rounds away), so outside
        # it input and truth agree exactly.
        small = resize(center_crop(Image.fromarray(full.astype(np.float32), "F"), self.crop), self.size)
        return torch.from_numpy(np.asarray(small) > 0)

    def item(self, filename: str, image: torch.Tensor, c_org: torch.Tensor) -> dict[str, torch.Tensor]:
        """Truth images [E+1, 3, S, S], regions [E+1, S, S], `changed` [E+1] (the edit moves the labels) and
        `exact` (the re-rendered face equals `image`, i.e. the folder really holds this renderer's faces)."""
        n = len(self.attrs) + 1
        out = {
            "images": image.new_zeros(n, *image.shape),
            "regions": torch.zeros(n, self.size, self.size, dtype=torch.bool),
            "changed": torch.zeros(n, dtype=torch.bool),
            "exact": torch.tensor(False),
        }
        index = self.face_index(filename)
        if index is None:
            return out
        rgb, masks = self._render(index, None)
        out["images"][0] = self._image(rgb)
        out["exact"] = torch.tensor(bool(torch.equal(out["images"][0], image)))
        for i, c_trg in enumerate(celeba_targets(c_org[None].float(), self.attrs)):
            e = i + 1
            out["changed"][e] = not torch.equal(c_trg[0], c_org.float())
            if not out["changed"][e]:
                out["images"][e] = out["images"][0]
                continue
            forced = {a: int(v > 0.5) for a, v in zip(self.attrs, c_trg[0].tolist())}
            cf_rgb, cf_masks = self._render(index, forced)
            out["images"][e] = self._image(cf_rgb)
            out["regions"][e] = self._region(edit_region(self.attrs[i], rgb, masks, cf_rgb, cf_masks))
        return out


def edit_region(
    attr: str, rgb: np.ndarray, masks: dict[str, np.ndarray], cf_rgb: np.ndarray, cf_masks: dict[str, np.ndarray]
) -> np.ndarray:
    """Full-frame bool mask of what an edit of `attr` may rewrite: its semantic regions in the input or in the
    counterfactual, plus every pixel the two renders differ in (so nothing outside it is meant to change)."""
    region = np.any(rgb != cf_rgb, axis=-1)
    for name in EDIT_REGIONS[attr]:
        region |= masks[name] | cf_masks[name]
    return region


class WithTruth(Dataset):
    """Items of an evaluation dataset (image, label, mask) plus the `ToyfacesTruth.item` dict ({} without truth)."""

    def __init__(self, base: Any, truth: ToyfacesTruth | None) -> None:
        self.base, self.truth = base, truth

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        image, label, mask = self.base[index]
        if self.truth is None:
            return image, label, mask, {}
        return image, label, mask, self.truth.item(self.base.base.filenames[index], image, label)
