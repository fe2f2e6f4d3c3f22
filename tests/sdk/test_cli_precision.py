"""`--precision` on `stargan info`, `ui` and `serve`: what runs, on the shipped bundle (its INT8 model is 51.7 dB),
as an AVX2-only or a BF16 CPU reports itself (STARGAN_CPU_CAPABILITIES), never as this machine happens to be."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from procs import free_ports
from stargan_sdk.backends.openvino import CAPABILITIES_ENV
from stargan_sdk.cli.stargan import app

pytest.importorskip("openvino", reason="openvino is not installed (pip install 'stargan[openvino]')")

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "toyfaces-64"
runner = CliRunner()


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("capabilities", "flag", "precision", "why"),
    [
        ("FP32,INT8", "auto", "int8", "auto: no BF16 on this CPU; the INT8 model's PSNR 51.7 dB >= 40 dB"),
        ("FP32,INT8", "fp32", "fp32", "requested precision='fp32'"),
        ("FP32,INT8", "bf16", None, "this CPU has no BF16 support"),
        ("FP32,INT8,BF16", "auto", "bf16", "auto: the CPU reports BF16"),
        ("FP32,INT8,BF16", "int8", "int8", "requested precision='int8'"),
    ],
)
def test_info_says_what_each_precision_runs(
    monkeypatch: pytest.MonkeyPatch, capabilities: str, flag: str, precision: str | None, why: str
) -> None:
    monkeypatch.setenv(CAPABILITIES_ENV, capabilities)
    result = runner.invoke(app, ["info", str(SHIPPED), "--json", "--precision", flag])
    assert result.exit_code == 0, result.output
    cpu = json.loads(result.stdout)["cpu_precision"]
    assert cpu["requested"] == flag and cpu["precision"] == precision and cpu["reason"].startswith(why)
    text = runner.invoke(app, ["info", str(SHIPPED), "--precision", flag])
    assert f"CPU precision ({flag}): {precision or 'refused'}" in " ".join(text.stdout.split())


def test_info_refuses_an_unknown_precision_in_one_line() -> None:
    assert "--precision must be one of auto, fp32, bf16, int8, got 'fp16'" in _one_error_line(
        runner.invoke(app, ["info", str(SHIPPED), "--precision", "fp16"])
    )


@pytest.mark.parametrize(("flag", "expected"), [(None, "int8"), ("fp32", "fp32")])
def test_ui_runs_the_bundle_at_the_precision_asked(
    monkeypatch: pytest.MonkeyPatch, flag: str | None, expected: str
) -> None:
    pytest.importorskip("gradio", reason="stargan ui needs the ui extra")
    import stargan_sdk.ui.page

    served: list[dict] = []
    monkeypatch.setattr(stargan_sdk.ui.page, "serve", lambda t, **kw: served.append(t.describe()))
    monkeypatch.setenv(CAPABILITIES_ENV, "FP32,INT8")
    args = ["ui", str(SHIPPED), "--backend", "openvino", "--port", str(free_ports(1)[0])]
    result = runner.invoke(app, args + (["--precision", flag] if flag else []))
    assert result.exit_code == 0, result.output
    assert [(s["backend"], s["precision"]) for s in served] == [("openvino", expected)]


def test_ui_with_url_leaves_the_precision_to_the_server() -> None:
    line = _one_error_line(runner.invoke(app, ["ui", "--url", "http://127.0.0.1:9", "--precision", "int8"]))
    assert "with --url, pass it to `stargan serve`" in line


def test_serve_refuses_a_precision_the_bundle_cannot_run_before_starting(bundle: Path, tmp_path: Path) -> None:
    """The tiny test bundle has no INT8 model: refused by the local load, in one line, with nothing started."""
    ports = free_ports(3)
    line = _one_error_line(
        runner.invoke(
            app,
            [
                "serve",
                str(bundle),
                "--backend",
                "openvino",
                "--precision",
                "int8",
                "--workdir",
                str(tmp_path),
                "--http-port",
                str(ports[0]),
                "--grpc-port",
                str(ports[1]),
                "--metrics-port",
                str(ports[2]),
            ],
        )
    )
    assert "no INT8 generator" in line and "stargan-export quantize" in line
    assert list(tmp_path.iterdir()) == []


def test_served_models_load_the_precision_serve_was_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository `stargan serve --precision int8` writes: each model instance (TritonPythonModel, run here with a
    stand-in for Triton's utilities module) loads its bundle at that precision."""
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs the triton extra")
    from google.protobuf import json_format, text_format

    from stargan_sdk.serve.triton_python_model import TritonPythonModel
    from stargan_sdk.serve.triton_repo import write_python_repository

    if os.environ.get("ONEDNN_MAX_CPU_ISA"):  # make test's AVX2 pass: oneDNN has no BF16 kernels to claim then
        pytest.skip("claims BF16, which ONEDNN_MAX_CPU_ISA rules out; the default pass runs it")
    monkeypatch.setenv(CAPABILITIES_ENV, "FP32,INT8,BF16")  # auto would pick BF16: int8 must come from the flag
    model_dir = write_python_repository(
        SHIPPED,
        tmp_path / "repo",
        backend="openvino",
        max_batch=2,
        kind="cpu",
        threads=1,
        link_bundle=True,
        precision="int8",
    )
    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.parameters["precision"].string_value == "int8"
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", types.ModuleType("triton_python_backend_utils"))
    model = TritonPythonModel()
    model.initialize(
        {
            "model_config": json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True)),
            "model_repository": str(model_dir),
            "model_instance_kind": "CPU",
            "model_instance_name": "stargan_0",
        }
    )
    try:
        info = model._translator.describe()
        assert (info["backend"], info["precision"], info["file"]) == ("openvino", "int8", "generator.int8.onnx")
    finally:
        model.finalize()
