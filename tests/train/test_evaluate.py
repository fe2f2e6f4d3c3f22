"""The evaluation protocol: attribute classifier, edit accuracy with oracle/identity generators, L1, localisation,
CLI."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import typer
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from stargan_train.attribute_classifier import (
    ClassifierError,
    attribute_groups,
    data_fingerprint,
    load_classifier,
    load_or_train_classifier,
    train_attribute_classifier,
)
from stargan_train.checkpoint import TrainState, capture_rng, save_checkpoint
from stargan_train.cli_eval import eval_command
from stargan_train.config import DataConfig, DiscriminatorConfig, GeneratorConfig, RunConfig
from stargan_train.counterfactual import ToyfacesTruth
from stargan_train.data.transforms import build_transform
from stargan_train.evaluate import (
    UNTRAINED_IDENTITY_L1,
    EvalError,
    Localisation,
    _test_dataset,
    create_labels,
    critic_gap_advice,
    critic_predict,
    evaluate,
    localisation_sums,
)
from stargan_train.image_quality import PSNR_CAP_DB
from stargan_train.model import Discriminator, Generator

ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
SIZE = 32
TEST_COUNT = 48


@contextmanager
def one_thread() -> Iterator[None]:
    """Tiny convs gain nothing from intra-op threads; on a busy 2-core box they lose ~10x to contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> DataConfig:
    from stargan_train.data.toyfaces import generate_toyfaces

    root = tmp_path_factory.mktemp("toyfaces")
    generate_toyfaces(root, 288, seed=0, progress=False)
    return DataConfig(
        dataset="toyfaces",
        celeba_image_dir=str(root / "images"),
        attr_path=str(root / "list_attr_celeba.txt"),
        image_size=SIZE,
        test_count=TEST_COUNT,
        num_workers=0,
    )


@pytest.fixture(scope="session")
def trained(toy_data: DataConfig):
    with one_thread():
        return train_attribute_classifier(toy_data, iters=250, batch_size=32, seed=0)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory, toy_data: DataConfig) -> Path:
    """A run dir as the trainer leaves it, with an untrained seeded 32 px generator at iteration 7."""
    torch.manual_seed(0)
    G = Generator(conv_dim=8, c_dim=5, repeat_num=1)
    D = Discriminator(image_size=SIZE, conv_dim=8, c_dim=5, repeat_num=3)
    config = RunConfig(
        generator=GeneratorConfig(conv_dim=8, c_dim=5, repeat_num=1),
        discriminator=DiscriminatorConfig(image_size=SIZE, conv_dim=8, c_dim=5, repeat_num=3),
        data=toy_data,
    )
    folder = tmp_path_factory.mktemp("run")
    save_checkpoint(folder, TrainState(7, config, G.state_dict(), D.state_dict(), {}, {}, capture_rng()))
    return folder


class IdentityGenerator(nn.Module):
    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return x.clone()


class OracleGenerator(nn.Module):
    """Ignores the input and draws a fresh real toy face with exactly the target attributes."""

    def __init__(self, data: DataConfig) -> None:
        super().__init__()
        self.transform = build_transform(data.celeba_crop_size, data.image_size, "test")
        self.rng = np.random.default_rng(123)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        from stargan_train.data.toyfaces import render_face, sample_params

        out = []
        for row in c.cpu():
            params = sample_params(self.rng, {a: int(v > 0.5) for a, v in zip(ATTRS, row)})
            rgb, _ = render_face(params)
            out.append(self.transform(Image.fromarray(rgb)))
        return torch.stack(out).to(x.device)


def test_groups_and_create_labels_follow_the_official_semantics() -> None:
    groups = attribute_groups(ATTRS)
    assert [(g.kind, g.indices) for g in groups] == [("exclusive", (0, 1, 2)), ("binary", (3,)), ("binary", (4,))]
    c_org = torch.tensor([[1.0, 0, 0, 1, 0], [0, 0, 1, 0, 1]])
    labels = create_labels(c_org, ATTRS)
    assert len(labels) == 5
    assert labels[1].tolist() == [[0, 1, 0, 1, 0], [0, 1, 0, 0, 1]]  # blond set one-hot, rest untouched
    assert labels[0].tolist() == [[1, 0, 0, 1, 0], [1, 0, 0, 0, 1]]
    assert labels[3].tolist() == [[1, 0, 0, 0, 0], [0, 0, 1, 1, 1]]  # Male flipped
    assert labels[4].tolist() == [[1, 0, 0, 1, 1], [0, 0, 1, 0, 0]]  # Young flipped
    assert c_org.tolist() == [[1, 0, 0, 1, 0], [0, 0, 1, 0, 1]]  # input not modified


def test_classifier_learns_toyfaces_attributes(trained) -> None:
    classifier, accuracy = trained
    assert set(accuracy) == set(ATTRS)
    # Chance is 50% for a binary attribute (and ~67% for "is it this hair colour" of 3): clearly above.
    for attr, acc in accuracy.items():
        assert acc >= 0.85, (attr, accuracy)
    assert np.mean(list(accuracy.values())) >= 0.9, accuracy


def test_identity_generator_scores_zero_on_flips_and_zero_l1(toy_data: DataConfig, trained) -> None:
    classifier, _ = trained
    report = evaluate(IdentityGenerator(), toy_data, classifier=classifier, num_images=40, batch_size=16)
    assert report.images_used == 40
    assert report.rec_l1 == {a: 0.0 for a in ATTRS}
    assert report.identity_l1 == 0.0
    # Unchanged image: a flipped target is hit exactly when the classifier errs on the real image.
    for attr in ("Male", "Young"):
        assert report.target_accuracy[attr] == pytest.approx(1.0 - report.classifier_accuracy[attr])
        assert report.target_accuracy[attr] <= 0.15
    # A hair "edit" is hit only on images that (per the classifier) already have that colour.
    labels = torch.stack([_test_dataset(toy_data).base[i][1] for i in range(40)])
    for k, attr in enumerate(ATTRS[:3]):
        assert abs(report.target_accuracy[attr] - float(labels[:, k].mean())) <= 0.15
    # Everything else is untouched, so "preserved" equals the classifier's accuracy on those attributes.
    assert report.preserved_accuracy["Male"] >= 0.85
    assert report.localisation["Blond_Hair"]["inside"] == 0.0
    assert report.localisation["Blond_Hair"]["images"] == int((labels[:, 1] < 0.5).sum())
    # Split by the input's own attributes: an identity "edit" to blond is right on blond inputs only.
    by_input = report.target_accuracy_by_input
    blond = by_input["Blond_Hair"]["Blond_Hair"]
    assert blond["1"]["images"] == int(labels[:, 1].sum()) and blond["0"]["images"] == 40 - blond["1"]["images"]
    assert blond["1"]["accuracy"] >= 0.85 and blond["0"]["accuracy"] <= 0.15
    for edit in ATTRS:  # each split recombines to the overall accuracy
        for attr in ATTRS:
            parts = by_input[edit][attr].values()
            assert sum(p["images"] for p in parts) == 40
            recombined = sum(p["accuracy"] * p["images"] for p in parts if p["images"]) / 40
            assert recombined == pytest.approx(report.target_accuracy[edit])
    # Nothing moved inside the hair either: the ratio is undefined, and JSON says null rather than NaN.
    d = report.to_dict()
    assert d["localisation"]["Blond_Hair"]["outside_over_inside"] is None
    json.dumps(d, allow_nan=False)


class ConstantCritic(nn.Module):
    """A discriminator whose classifier says the same thing about every image."""

    def __init__(self, logits: list[float], image_size: int = SIZE) -> None:
        super().__init__()
        self.logits = torch.tensor(logits)
        self.config = DiscriminatorConfig(image_size=image_size, conv_dim=8, c_dim=len(logits), repeat_num=3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.new_zeros(x.shape[0], 1, 2, 2), self.logits.expand(x.shape[0], -1)


def test_critic_predictions_decode_the_hair_group_like_the_classifier() -> None:
    critic = ConstantCritic([-1.0, -3.0, -0.5, 2.0, -2.0])  # all hair logits negative: the highest still wins
    assert critic_predict(critic, torch.zeros(2, 3, SIZE, SIZE), list(ATTRS)).tolist() == [[0, 0, 1, 1, 0]] * 2
    critic = ConstantCritic([4.0, 3.0, -1.0, -2.0, 0.5])  # two positive hair logits: one colour only
    assert critic_predict(critic, torch.zeros(1, 3, SIZE, SIZE), list(ATTRS)).tolist() == [[1, 0, 0, 0, 1]]


def test_critic_verdict_is_reported_and_a_gap_to_the_classifier_warned_about(toy_data: DataConfig, trained) -> None:
    classifier, _ = trained
    # An unchanged image and a critic that always answers "black hair, old, female".
    critic = ConstantCritic([5.0, -5.0, -5.0, -5.0, -5.0])
    report = evaluate(IdentityGenerator(), toy_data, classifier=classifier, num_images=40, batch_size=16, critic=critic)
    labels = torch.stack([_test_dataset(toy_data).base[i][1] for i in range(40)])
    young_inputs = float(labels[:, 4].mean())  # flipping Young targets "old" exactly on the young inputs
    male_inputs = float(labels[:, 3].mean())
    assert report.critic_target_accuracy == pytest.approx(
        {"Black_Hair": 1.0, "Blond_Hair": 0.0, "Brown_Hair": 0.0, "Male": male_inputs, "Young": young_inputs}
    )
    assert report.target_accuracy["Young"] <= 0.15 and young_inputs > 0.25  # the gap is real
    warned = [w for w in report.warnings if w.startswith("the critic accepts")]
    assert any("of the Young edits" in w for w in warned) and any("of the Black_Hair edits" in w for w in warned)
    assert not any("of the Blond_Hair edits" in w for w in warned)
    # The generator reproduces its input (identity L1 0) and the classifier reads real faces: augmentation applies.
    assert all("try --augment" in w and "train longer" not in w for w in warned), warned
    assert evaluate(IdentityGenerator(), toy_data, classifier=classifier, num_images=8).critic_target_accuracy == {}
    with pytest.raises(EvalError, match="critic classifies 3 labels at 32px"):
        evaluate(IdentityGenerator(), toy_data, classifier=classifier, num_images=4, critic=ConstantCritic([0.0] * 3))
    with pytest.raises(EvalError, match="critic classifies 5 labels at 64px"):
        evaluate(
            IdentityGenerator(),
            toy_data,
            classifier=classifier,
            num_images=4,
            critic=ConstantCritic([0.0] * 5, image_size=64),
        )


def test_an_untrained_generator_s_critic_gap_advises_training_longer(toy_data: DataConfig, trained) -> None:
    """A randomly initialised generator (identity L1 about 0.45) with the same always-"black hair" critic: the gap
    is there, but the advice is to train longer, not to augment."""
    classifier, _ = trained
    torch.manual_seed(0)
    G = Generator(conv_dim=8, c_dim=5, repeat_num=1)
    report = evaluate(
        G,
        toy_data,
        classifier=classifier,
        num_images=16,
        batch_size=16,
        critic=ConstantCritic([5.0, -5.0, -5.0, -5.0, -5.0]),
    )
    assert report.identity_l1 > UNTRAINED_IDENTITY_L1
    warned = [w for w in report.warnings if w.startswith("the critic accepts")]
    assert any("of the Black_Hair edits" in w for w in warned), report.warnings
    assert all("train longer" in w and "--augment" not in w for w in warned), warned


def test_critic_gap_advice_follows_the_numbers() -> None:
    assert "train longer" in critic_gap_advice("Young", 0.45, 1.0)
    assert "train longer" in critic_gap_advice("Young", 0.45, 0.5)  # untrained first: nothing else matters yet
    classifier = critic_gap_advice("Young", 0.05, 0.7)
    assert "classifier reads real Young images right only 70.0%" in classifier and "--augment" not in classifier
    assert "try --augment translation,cutout" in critic_gap_advice("Young", 0.05, 0.95)


def test_more_images_than_the_split_holds_are_reported_not_silent(toy_data: DataConfig, trained) -> None:
    classifier, _ = trained
    report = evaluate(IdentityGenerator(), toy_data, classifier=classifier, num_images=500, batch_size=48)
    assert (report.images_used, report.images_requested) == (TEST_COUNT, 500)
    assert report.warnings[0] == (
        f"500 test images requested but the test split holds only {TEST_COUNT}: "
        f"evaluated {TEST_COUNT} (images_used in the report)"
    )
    exact = evaluate(IdentityGenerator(), toy_data, classifier=classifier, num_images=TEST_COUNT, batch_size=48)
    assert exact.images_requested == TEST_COUNT and not any("requested" in w for w in exact.warnings)


def test_mismatched_attributes_are_refused(toy_data: DataConfig, trained) -> None:
    classifier, _ = trained
    with pytest.raises(EvalError, match="takes 3 labels"):
        evaluate(Generator(conv_dim=8, c_dim=3, repeat_num=1), toy_data, classifier=classifier, num_images=4)
    other = DataConfig(**{**toy_data.__dict__, "selected_attrs": ("Male", "Young")})
    with pytest.raises(EvalError, match="classifier was trained on"):
        evaluate(Generator(conv_dim=8, c_dim=2, repeat_num=1), other, classifier=classifier, num_images=4)
    with pytest.raises(ClassifierError, match="CelebA-style"):
        evaluate(IdentityGenerator(), DataConfig(dataset="rafd"), classifier=classifier, num_images=4)


def test_oracle_generator_scores_near_perfect(toy_data: DataConfig, trained) -> None:
    classifier, _ = trained
    report = evaluate(OracleGenerator(toy_data), toy_data, classifier=classifier, num_images=24, batch_size=12)
    assert report.mean_target_accuracy >= 0.95, report.target_accuracy
    for attr, acc in report.target_accuracy.items():
        assert acc >= 0.8, (attr, report.target_accuracy)
    assert report.mean_preserved_accuracy >= 0.85
    assert report.mean_rec_l1 > 0.1  # a fresh face is not the input: the cycle term must notice


class CounterfactualGenerator(nn.Module):
    """The perfect editor: knows each test face by its pixels and returns the same person's render with the
    target labels (`blur` > 1: that render box-blurred, a soft but otherwise right editor)."""

    def __init__(self, data: DataConfig, count: int, blur: int = 1) -> None:
        super().__init__()
        base = _test_dataset(data).base
        self.truth, _ = ToyfacesTruth.find(
            base.image_dir, crop=data.celeba_crop_size, size=data.image_size, attrs=ATTRS
        )
        self.blur = blur
        self.known = {base[k][0].numpy().tobytes(): self.truth.face_index(base.filenames[k]) for k in range(count)}

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        out = []
        for image, labels in zip(x.cpu(), c.cpu()):
            index = self.known[image.numpy().tobytes()]
            forced = {a: int(v > 0.5) for a, v in zip(ATTRS, labels.tolist())}
            y = self.truth._image(self.truth._render(index, forced)[0])
            if self.blur > 1:
                y = F.avg_pool2d(y[None], self.blur, stride=1, padding=self.blur // 2, count_include_pad=False)[0]
            self.known[y.numpy().tobytes()] = index  # the cycle G(G(x, c), c_org) asks about its own output
            out.append(y)
        return torch.stack(out).to(x.device)


def test_counterfactual_fidelity_perfect_blurred_and_identity_generators(toy_data: DataConfig, trained) -> None:
    classifier, _ = trained
    n = 12
    perfect = evaluate(
        CounterfactualGenerator(toy_data, n), toy_data, classifier=classifier, num_images=n, batch_size=6
    ).counterfactual
    blurred = evaluate(
        CounterfactualGenerator(toy_data, n, blur=3), toy_data, classifier=classifier, num_images=n, batch_size=6
    ).counterfactual
    unchanged = evaluate(IdentityGenerator(), toy_data, classifier=classifier, num_images=n, batch_size=6)
    assert set(perfect) == {"identity", *ATTRS}
    labels = torch.stack([_test_dataset(toy_data).base[i][1] for i in range(n)])
    for key, row in perfect.items():
        edited = n if key in ("identity", "Male", "Young") else int((labels[:, ATTRS.index(key)] < 0.5).sum())
        assert row["images"] == edited > 0  # hair edits to the colour a face already has are left out
        assert row["psnr"] == PSNR_CAP_DB and row["ssim"] == pytest.approx(1.0)
        assert row["psnr_outside"] == (None if key == "identity" else PSNR_CAP_DB)
        soft = blurred[key]
        assert soft["psnr"] < 40 and soft["ssim"] < 0.95
        if key != "identity":
            assert soft["psnr_outside"] < 40
    fidelity = unchanged.counterfactual
    assert fidelity["identity"]["psnr"] == PSNR_CAP_DB
    for attr in ATTRS:  # the input itself: right outside the edited region (masks are correct), wrong inside
        assert fidelity[attr]["psnr_outside"] == PSNR_CAP_DB
        assert fidelity[attr]["psnr"] < 35
    json.dumps(unchanged.to_dict(), allow_nan=False)


def test_counterfactual_scores_need_the_renderer_s_own_faces(toy_data: DataConfig, trained, tmp_path: Path) -> None:
    classifier, _ = trained
    root = tmp_path / "toy"
    shutil.copytree(Path(toy_data.celeba_image_dir).parent, root)
    data = DataConfig(
        **{
            **toy_data.__dict__,
            "celeba_image_dir": str(root / "images"),
            "attr_path": str(root / "list_attr_celeba.txt"),
        }
    )
    first = _test_dataset(data).base.filenames[0]
    with Image.open(root / "images" / first) as img:  # someone retouched one test face
        Image.eval(img, lambda v: 255 - v).save(root / "images" / first)
    report = evaluate(IdentityGenerator(), data, classifier=classifier, num_images=4, batch_size=4)
    assert report.counterfactual["identity"]["images"] == 3
    assert any("1 of 4 test images differ from their toyfaces re-render" in w for w in report.warnings)
    (root / "toyfaces.json").unlink()
    report = evaluate(IdentityGenerator(), data, classifier=classifier, num_images=4, batch_size=4)
    assert report.counterfactual == {}
    assert any("not a toyfaces folder" in w for w in report.warnings)


def test_localisation_sums_on_a_synthetic_edit() -> None:
    x = torch.zeros(2, 3, 4, 4)
    y = x.clone()
    mask = torch.zeros(2, 4, 4)
    mask[:, :2, :] = 1.0  # top half is "hair": 8 pixels per image
    y[:, :, :2, :] = 0.8  # inside: |y - x| = 0.8 in every channel
    y[0, 0, 2:, :] = 0.3  # outside, image 0, one channel: channel mean 0.1 over 8 pixels
    sums = localisation_sums(x, y, mask)
    assert sums.tolist() == pytest.approx([0.8 * 16, 16, 0.1 * 8, 16])
    loc = Localisation()
    loc.add(x, y, mask)
    d = loc.to_dict()
    assert d["inside"] == pytest.approx(0.8)
    assert d["outside"] == pytest.approx(0.05)
    assert d["outside_over_inside"] == pytest.approx(0.0625)
    assert d["images"] == 2


def test_masks_are_cropped_like_the_image(toy_data: DataConfig) -> None:
    """Hair pixels under the mask are dark for black hair and bright for blond: mask and image line up."""
    ds = _test_dataset(toy_data)
    assert ds.mask_paths is not None
    inside = {0: [], 1: []}
    for i in range(24):
        image, label, mask = ds[i]
        assert mask.shape == (SIZE, SIZE)
        hair = mask > 0.5
        for k in (0, 1):
            if label[k] > 0.5 and hair.sum() > 0:
                inside[k].append(float(image.mean(dim=0)[hair].mean()))
    assert inside[0] and inside[1]
    assert max(inside[0]) < min(inside[1])


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(eval_command)
    return app


def test_cli_json_shape_and_classifier_cache(run_dir: Path, tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(run_dir, tmp_path / "run"))  # a fresh run dir: no cached classifier yet
    args = [
        str(run_dir),
        "--num-images",
        "16",
        "--classifier-iters",
        "20",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--json",
    ]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["images_used"] == 16 and out["checkpoint_iteration"] == 7
    assert out["attrs"] == list(ATTRS)
    assert set(out["per_attribute"]) == set(ATTRS)
    for row in out["per_attribute"].values():
        assert set(row) == {"target_accuracy", "preserved_accuracy", "rec_l1", "classifier_accuracy"}
        assert 0.0 <= row["target_accuracy"] <= 1.0 and row["rec_l1"] > 0.0
    for key in (
        "mean_target_accuracy",
        "mean_preserved_accuracy",
        "mean_rec_l1",
        "identity_l1",
        "classifier_accuracy",
        "wall_time_s",
        "localisation",
        "warnings",
        "target_accuracy_by_input",
    ):
        assert key in out
    young = out["target_accuracy_by_input"]["Young"]["Young"]
    assert young["0"]["images"] + young["1"]["images"] == 16
    # The run's checkpoint holds D too: its classifier's verdict comes beside the independent one.
    assert out["critic"] == out["checkpoint"] and set(out["critic_target_accuracy"]) == set(ATTRS)
    assert set(out["localisation"]) == {"Black_Hair", "Blond_Hair", "Brown_Hair"}
    assert set(out["counterfactual"]) == {"identity", *ATTRS}  # an untrained G: far from every true face
    assert out["counterfactual"]["identity"]["images"] == 16 and out["counterfactual"]["identity"]["psnr"] < 20
    assert all(
        set(row) == {"psnr", "ssim", "psnr_outside", "images", "images_outside"}
        for row in out["counterfactual"].values()
    )
    assert out["classifier"]["cached"] is False
    sidecar = json.loads((run_dir / "eval" / "classifier.json").read_text())
    assert sidecar["attrs"] == list(ATTRS) and len(sidecar["fingerprint"]) == 64
    assert set(sidecar["accuracy"]) == set(ATTRS)
    again = json.loads(CliRunner().invoke(_app(), args).stdout)
    assert again["classifier"]["cached"] is True
    assert again["per_attribute"] == out["per_attribute"]  # same cached classifier, same generator


def test_cli_without_discriminator_weights_reports_no_critic(run_dir: Path, tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(run_dir, tmp_path / "run"))
    (run_dir / "checkpoints" / "000007-D.safetensors").unlink()  # a G file alone, as an official G without its D
    result = CliRunner().invoke(
        _app(),
        [
            str(run_dir),
            "--checkpoint",
            str(run_dir / "checkpoints" / "000007-G.safetensors"),
            "--num-images",
            "8",
            "--classifier-iters",
            "20",
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["critic"] is None and out["critic_target_accuracy"] == {}


def test_cli_says_on_stderr_when_the_split_is_smaller_than_num_images(run_dir: Path, tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(run_dir, tmp_path / "run"))
    result = CliRunner().invoke(
        _app(),
        [
            str(run_dir),
            "--num-images",
            "500",
            "--classifier-iters",
            "20",
            "--batch-size",
            "48",
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)  # stdout is still one JSON object
    assert (out["images_used"], out["images_requested"]) == (TEST_COUNT, 500)
    line = (
        f"warning: 500 test images requested but the test split holds only {TEST_COUNT}: evaluated "
        f"{TEST_COUNT} (images_used in the report)"
    )
    assert result.stderr.splitlines().count(line) == 1, result.stderr
    assert all(f"warning: {w}" in result.stderr.splitlines() for w in out["warnings"])


def test_cli_table_output(run_dir: Path) -> None:
    result = CliRunner().invoke(
        _app(), [str(run_dir), "--num-images", "8", "--classifier-iters", "20", "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    for text in (
        "Black_Hair",
        "target acc",
        "rec L1",
        "critic's",
        "input had it",
        "inside hair",
        "identity L1",
        "fidelity to the true counterfactual",
        "identity (own labels)",
        "PSNR outside",
    ):
        assert text in result.stdout


@pytest.mark.parametrize("case", ["missing", "no_checkpoints", "bad_count"])
def test_cli_bad_inputs_give_one_line_errors(tmp_path: Path, run_dir: Path, case: str) -> None:
    if case == "missing":
        args, expected = [str(tmp_path / "nope")], "run dir not found"
    elif case == "no_checkpoints":
        args, expected = [str(tmp_path)], "without checkpoints"
    else:
        args, expected = [str(run_dir), "--num-images", "0", "--classifier-iters", "20"], "must be > 0"
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_cache_is_retrained_when_the_data_changes(tmp_path: Path, toy_data: DataConfig) -> None:
    fingerprint = data_fingerprint(toy_data)
    assert fingerprint == data_fingerprint(toy_data)
    assert data_fingerprint(DataConfig(**{**toy_data.__dict__, "image_size": 64})) != fingerprint
    clf, info, reused = load_or_train_classifier(tmp_path, toy_data, iters=2, batch_size=8)
    assert not reused and info.fingerprint == fingerprint
    loaded, loaded_info = load_classifier(tmp_path / "eval")
    x = torch.zeros(2, 3, SIZE, SIZE)
    assert torch.equal(loaded.predict(x), clf.predict(x)) and loaded_info == info
    # A sidecar from other data (or a broken one) is not reused.
    (tmp_path / "eval" / "classifier.json").write_text(json.dumps({**info.__dict__, "fingerprint": "0" * 64}))
    assert load_or_train_classifier(tmp_path, toy_data, iters=2, batch_size=8)[2] is False
    (tmp_path / "eval" / "classifier.json").write_text("{not json")
    assert load_or_train_classifier(tmp_path, toy_data, iters=2, batch_size=8)[2] is False
    assert load_or_train_classifier(tmp_path, toy_data, iters=2, batch_size=8)[2] is True
    with pytest.raises(ClassifierError, match="attribute file not found"):
        data_fingerprint(DataConfig(dataset="toyfaces", attr_path=str(tmp_path / "missing.txt")))
