"""Reading checkpoints of earlier versions of this project: the joint discriminator with 15 logits.

Usage: state = upgrade_train_state(state); sd, run = upgrade_discriminator(sd, run)  # no-ops for current files

Until issue 19 a joint (`both`) run built its discriminator with one logit per label entry, mask included:
5 + 8 + 2 = 15. The official joint D, and ours now, has 5 + 8 = 13 (the mask tells the generator which half
of the label to read; there is nothing to classify). The training losses only ever read logits 0-4 (CelebA
batches) and 5-12 (RaFD batches), so the two mask rows of `conv2.weight` never received a gradient: their
Adam moments are zero and the weights are still their random initialisation. Dropping them is exact: the 13
remaining logits and every later training step are the same as before, so old runs resume, fine-tune and
export with the current layout without a conversion step.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import TYPE_CHECKING

import torch

from stargan_train.config import RunConfig, classifier_dim, label_dim

if TYPE_CHECKING:  # checkpoint imports this module when it loads one
    from stargan_train.checkpoint import TrainState

CLASSIFIER_WEIGHT = "conv2.weight"


def is_legacy_joint(run: RunConfig | None) -> bool:
    """A joint run whose config gives D one logit per label entry (the mask included)."""
    return (
        run is not None
        and run.data.dataset == "both"
        and run.discriminator.c_dim == label_dim(run.data) != classifier_dim(run.data)
    )


def upgrade_run_config(run: RunConfig | None) -> RunConfig | None:
    if not is_legacy_joint(run):
        return run
    assert run is not None
    return dataclasses.replace(
        run, discriminator=dataclasses.replace(run.discriminator, c_dim=classifier_dim(run.data))
    )


def upgrade_discriminator(
    sd: dict[str, torch.Tensor], run: RunConfig | None
) -> tuple[dict[str, torch.Tensor], RunConfig | None]:
    """D's state_dict and the run config with the mask logits dropped (unchanged unless `is_legacy_joint`)."""
    if not is_legacy_joint(run):
        return sd, run
    upgraded = upgrade_run_config(run)
    assert upgraded is not None
    return _drop_rows(sd, upgraded.discriminator.c_dim), upgraded


def upgrade_train_state(state: TrainState) -> TrainState:
    """A `checkpoint.TrainState` with D, D's Adam moments and the config upgraded (unchanged when current)."""
    if not is_legacy_joint(state.config):
        return state
    k = classifier_dim(state.config.data)
    names = list(state.D)  # D has no buffers: its state_dict order is its parameter order, as in d_optim
    index = names.index(CLASSIFIER_WEIGHT)
    d_optim = copy.copy(state.d_optim)
    d_optim["state"] = dict(d_optim["state"])
    if index in d_optim["state"]:
        d_optim["state"][index] = {
            key: (v[:k].clone() if isinstance(v, torch.Tensor) and v.dim() == 4 else v)
            for key, v in d_optim["state"][index].items()
        }
    return dataclasses.replace(
        state, config=upgrade_run_config(state.config), D=_drop_rows(state.D, k), d_optim=d_optim
    )


def _drop_rows(sd: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    out = dict(sd)
    out[CLASSIFIER_WEIGHT] = sd[CLASSIFIER_WEIGHT][:k].clone()
    return out
