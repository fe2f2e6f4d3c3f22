"""A Ray Data job driver for tests/sdk/test_ray_job.py, run in its own process inside a private network namespace.

Usage: python tests/sdk/ray_driver.py '{"case": "job", "src": ..., "dst": ..., "bundle": ..., ...}'  -> JSON on stdout

Ray's own servers listen on every interface and have no loopback-only setting, so the tests start Ray only inside
a network namespace that has nothing but loopback (`unshare -rn`); this script is what runs there.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import ray
from ray import cloudpickle

CHANGES = {"Blond_Hair": 1}


class DiesOnce:
    """A Translator whose first engine call kills its actor's process (as a lost node or an OOM kill would)."""

    def __init__(self, translator, marker: str) -> None:
        self.translator, self.marker, self.space = translator, marker, translator.space

    def edit_rgb(self, *args, **kwargs):
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # one actor dies, once
        except FileExistsError:
            return self.translator.edit_rgb(*args, **kwargs)
        os.close(fd)
        os._exit(1)


def load_dying(bundle: str, backend: str, marker: str) -> DiesOnce:
    from stargan_sdk import Translator

    return DiesOnce(Translator.load(bundle, backend=backend), marker)


def run(args: dict) -> dict:
    from stargan_sdk.cli.ray_cli import Location, pending_inputs, run_job
    from stargan_sdk.pipeline.ray_job import edit_dataset

    src, dst = Location.parse(args["src"]), Location.parse(args["dst"])
    files, _ = pending_inputs(src, dst, skip_existing=False)
    options = {
        "batch_size": 2,
        "concurrency": args.get("concurrency", 1),
        "actor_cpus": 0.5,
        "backend": "onnxruntime",
        "mode": args.get("mode", "whole"),
    }
    if args["case"] == "job":
        return run_job(files, src, dst, Path(args["bundle"]), CHANGES, **options)
    # "kill": one actor dies during its first engine call; Ray Data restarts it and retries the batch
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the actors cannot import this script
    ds = ray.data.read_binary_files(files, include_paths=True)
    edited = edit_dataset(
        ds, args["bundle"], CHANGES, load=functools.partial(load_dying, marker=args["marker"]), **options
    )
    rows = list(edited.iter_rows())
    for r in rows:
        if not r["error"]:
            dst.write(r["name"], bytes(r["data"]))
    return {"paths": sorted(r["path"] for r in rows), "errors": [r["error"] for r in rows if r["error"]]}


if __name__ == "__main__":
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        print(json.dumps(run(json.loads(sys.argv[1]))))
    finally:
        ray.shutdown()
