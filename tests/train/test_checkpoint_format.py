"""Malformed and damaged checkpoints: one-line CheckpointError from every reader (resume, export, eval), a tensor
checksum recorded at save and checked at load, and old checkpoints without one still loading."""

from __future__ import annotations

import struct
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stargan_export.cli import main as export_main
from stargan_train.checkpoint import TrainState, capture_rng, load_checkpoint, save_checkpoint
from stargan_train.checkpoint_format import tensor_digest
from stargan_train.config import DataConfig, DiscriminatorConfig, GeneratorConfig, RunConfig, TrainConfig
from stargan_train.model import Discriminator, Generator
from stargan_train.torch_load import CheckpointError
from stargan_train.weights import load_discriminator, load_generator

CONFIG = RunConfig(
    GeneratorConfig(8, 5, 1),
    DiscriminatorConfig(32, 8, 5, 3),
    DataConfig(dataset="toyfaces", image_size=32),
    TrainConfig(num_iters=10, num_iters_decay=5),
)


def _state(iteration: int = 4) -> TrainState:
    torch.manual_seed(0)
    G, D = Generator.from_config(CONFIG.generator), Discriminator.from_config(CONFIG.discriminator)
    g_opt, d_opt = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    for model, opt in ((G, g_opt), (D, d_opt)):  # Adam moments and step counters to checksum too
        sum(p.sum() for p in model.parameters()).backward()
        opt.step()
    return TrainState(
        iteration, CONFIG, G.state_dict(), D.state_dict(), g_opt.state_dict(), d_opt.state_dict(), capture_rng()
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "run"
    save_checkpoint(out, _state())
    return out


@pytest.fixture(scope="module")
def raw(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "000004.ckpt", weights_only=True)


def _write(raw: dict, folder: Path, **changes) -> Path:
    bad = {**raw, **changes}
    for key in [k for k, v in changes.items() if v is _DROP]:
        del bad[key]
    path = folder / "000004.ckpt"
    torch.save(bad, path)
    return path


_DROP = object()


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and message
    return message


def test_checkpoints_record_checksums_of_every_part(raw: dict, run_dir: Path) -> None:
    assert raw["version"] == 2
    assert raw["checksums"]["G"] == tensor_digest(raw["G"]) and set(raw["checksums"]) >= {"G", "D", "g_optim"}
    state = load_checkpoint(run_dir / "checkpoints" / "000004.ckpt")
    assert state.iteration == 4 and state.config == CONFIG


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"G": _DROP}, "'G' should be a state_dict of tensors, found missing"),
        ({"D": [1, 2]}, "'D' should be a state_dict of tensors, found a list"),
        ({"g_optim": "x"}, "'g_optim' should be an optimizer state_dict"),
        ({"rng": {}}, "'rng' should be the RNG states"),
        ({"iteration": "abc"}, "has iteration 'abc'"),
        ({"iteration": -5}, "has iteration -5"),
        ({"iteration": 10**12}, "has iteration 1000000000000"),
        ({"iteration": 4.0}, "has iteration 4.0"),
        ({"iteration": True}, "has iteration True"),
        ({"version": 999}, "has checkpoint version 999; this stargan-train reads versions 1, 2"),
        ({"version": "2"}, "has checkpoint version 2; this"),
        ({"config": {"train": {"bogus": 1}}}, "malformed run config: unknown TrainConfig field(s): bogus"),
        ({"config": "x"}, "malformed run config: a str, not an object"),
        ({"format": "other"}, "not a stargan training checkpoint"),
        ({"checksums": _DROP}, "has no tensor checksums"),
    ],
)
def test_malformed_checkpoints_are_one_line_errors_everywhere(
    raw: dict, tmp_path: Path, changes: dict, fragment: str
) -> None:
    path = _write(raw, tmp_path, **changes)
    for load in (load_checkpoint, load_generator, load_discriminator):
        with pytest.raises(CheckpointError) as info:
            load(path)
        assert fragment in _one_line(info), (load.__name__, str(info.value))


def test_changed_weights_fail_their_checksum(raw: dict, tmp_path: Path) -> None:
    G = dict(raw["G"])
    G["main.0.weight"] = G["main.0.weight"].clone()
    G["main.0.weight"].view(-1).view(torch.int32)[7] ^= 1 << 3  # one bit of one float
    path = _write(raw, tmp_path, G=G)
    for load in (load_checkpoint, load_generator):
        with pytest.raises(CheckpointError, match="the G tensors do not match their checksum") as info:
            load(path)
        _one_line(info)
    load_discriminator(path)  # D is intact: exporting only the classifier from it still works


def _flip_a_bit_in_the_largest_record(path: Path) -> None:
    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_len + extra_len  # torch stores records uncompressed
    data[start + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_the_file_is_refused_on_resume_and_export(run_dir: Path, tmp_path: Path, capsys) -> None:
    damaged = tmp_path / "run"
    save_checkpoint(damaged, _state())
    ckpt = damaged / "checkpoints" / "000004.ckpt"
    _flip_a_bit_in_the_largest_record(ckpt)
    with pytest.raises(CheckpointError, match="do not match their checksum; the file is damaged"):
        load_checkpoint(ckpt)  # what --resume reads
    st_file = damaged / "checkpoints" / "000004-G.safetensors"
    data = bytearray(st_file.read_bytes())
    data[-5] ^= 0x01  # the last tensor's bytes
    st_file.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="the tensors do not match their checksum"):
        load_generator(st_file)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"G": _DROP}, "'G' should be a state_dict of tensors"),
        ({"iteration": "abc"}, "has iteration 'abc'"),
    ],
)
def test_export_build_says_one_line(raw: dict, tmp_path: Path, capsys, changes: dict, fragment: str) -> None:
    path = _write(raw, tmp_path, **changes)
    with pytest.raises(SystemExit) as info:
        export_main(["build", str(path), "--out", str(tmp_path / "bundle")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert err.strip().count("\n") == 0 and err.startswith("error: ") and fragment in err, err


def test_safetensors_metadata_ranges(run_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    sd = load_file(str(run_dir / "checkpoints" / "000004-G.safetensors"))
    for iteration in ("-5", str(10**12)):
        save_file(sd, str(tmp_path / "x-G.safetensors"), metadata={"iteration": iteration})
        with pytest.raises(CheckpointError, match=f"has iteration {int(iteration)}:"):
            load_generator(tmp_path / "x-G.safetensors")


def test_version_1_checkpoints_without_checksums_still_load(raw: dict, tmp_path: Path) -> None:
    path = _write(raw, tmp_path, version=1, checksums=_DROP)
    assert load_checkpoint(path).iteration == 4
    assert load_generator(path).iteration == 4
    torch.save(dict(raw["G"]), tmp_path / "200000-G.ckpt")  # an official-style plain state_dict
    assert load_generator(tmp_path / "200000-G.ckpt").kind == "official"


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.sampled_from(
        ["format", "version", "iteration", "config", "G", "D", "g_optim", "d_optim", "rng", "checksums"]
    ),
    value=st.one_of(_VALUES, st.just(_DROP)),
)
def test_fuzzed_fields_load_or_fail_in_one_line(raw: dict, key: str, value: object) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = _write(raw, Path(folder), **{key: value})
        for load in (load_checkpoint, load_generator):
            try:
                load(path)
            except CheckpointError as e:
                assert "\n" not in str(e) and str(e)
