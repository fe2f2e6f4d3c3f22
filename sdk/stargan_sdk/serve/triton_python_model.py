"""Triton python-backend model that runs the SDK; a repository's `model.py` re-exports `TritonPythonModel`.

Usage (model.py in a Triton repository): from stargan_sdk.serve.triton_python_model import TritonPythonModel

Triton runs this inside its python backend stub, one process per model instance. The model's config
parameters say which role it serves (generator, classifier, edit), where the bundle is (relative to the
model folder) and which SDK backend runs it. Each request gets its own response or its own error: a client's
mistake as INVALID_ARG (HTTP 400, gRPC INVALID_ARGUMENT), anything else as INTERNAL.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from stargan_sdk.serve.models import ClassifierModel, EditModel, GeneratorModel, Refusal
from stargan_sdk.translator import Translator

ROLES = {"generator": GeneratorModel, "classifier": ClassifierModel, "edit": EditModel}


def _own_cores(args: dict[str, Any], config: dict[str, Any]) -> None:
    """Give each of several CPU instances its own slice of the allowed cores, before the backend starts its
    threads. OpenVINO pins its threads to cores; left alone, two single-thread instances were measured
    sharing core 0 while core 1 idled."""
    count = sum(int(g.get("count", 1)) for g in config.get("instance_group", []))
    if args.get("model_instance_kind") != "CPU" or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    index = int(str(args.get("model_instance_name", "0")).rsplit("_", 1)[-1])
    cpus = sorted(os.sched_getaffinity(0))
    size = max(1, len(cpus) // count)
    start = (index * size) % len(cpus)
    os.sched_setaffinity(0, cpus[start : start + size])


class TritonPythonModel:
    """The python backend's model interface: initialize / execute / finalize."""

    def initialize(self, args: dict[str, Any]) -> None:
        import triton_python_backend_utils as pb_utils  # exists only inside Triton's python stub

        self._pb = pb_utils
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        bundle = Path(args["model_repository"]) / params["bundle"]
        gpu = args.get("model_instance_kind") == "GPU"
        device = int(args.get("model_instance_device_id", 0)) if gpu else 0
        self._inputs = [t["name"] for t in config["input"]]
        _own_cores(args, config)
        options: dict[str, Any] = {"threads": int(params["threads"])} if params.get("threads") else {}  # CPU backends
        if params.get("precision"):  # `stargan serve --precision`
            options["precision"] = params["precision"]
        self._translator = Translator.load(
            bundle,
            backend=params.get("backend", "auto"),
            device=device,
            max_batch=int(config["max_batch_size"]),
            **options,
        )
        self._model = ROLES[params["role"]](self._translator)
        self._model.warm_up(int(config["max_batch_size"]))  # before Triton reports the model ready

    def execute(self, requests: list[Any]) -> list[Any]:
        pb = self._pb
        feeds = []
        for request in requests:
            tensors = {name: pb.get_input_tensor_by_name(request, name) for name in self._inputs}
            feeds.append({name: t.as_numpy() for name, t in tensors.items() if t is not None})
        responses = []
        for result in self._model.run(feeds):
            if isinstance(result, str):
                code = pb.TritonError.INVALID_ARG if isinstance(result, Refusal) else pb.TritonError.INTERNAL
                responses.append(pb.InferenceResponse(error=pb.TritonError(result, code)))
            else:
                responses.append(pb.InferenceResponse([pb.Tensor(k, v) for k, v in result.items()]))
        return responses

    def finalize(self) -> None:
        self._translator.close()
