"""RemoteTranslator: the `Translator` API over a Triton server that serves a bundle (`stargan serve`).

Usage: with RemoteTranslator.load("http://127.0.0.1:8000") as t: blond = t.translate(image, Blond_Hair=1)

Moving an application from local to served is one line: `Translator.load(bundle)` becomes
`RemoteTranslator.load(url)`. Pre- and post-processing and the attribute logic run here, exactly as in
`Translator` (this class is one); the generator and the classifier run on the server (`grpc://host:8001`
or `http://host:8000`). The bundle's manifest comes from the served model's config. Thread-safe: each
thread gets its own tritonclient client (an HTTP client must not be shared between threads).
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from stargan_sdk.bundle.constants import INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
from stargan_sdk.bundle.manifest import Manifest
from stargan_sdk.errors import BackendUnavailableError, ServerError, StarGANError
from stargan_sdk.serve.models import LOGITS
from stargan_sdk.translator import Translator

PROTOCOLS = ("http", "grpc")
PIPELINE_REQUESTS = 4  # requests in flight when one call is split into several batches


def parse_url(url: str) -> tuple[str, str]:
    """("http" | "grpc", "host:port") from "grpc://host:8001", "http://host:8000" or "host:8000" (HTTP)."""
    if not isinstance(url, str) or not url:
        raise ServerError(f"expected a server URL such as http://127.0.0.1:8000, got {url!r}")
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in PROTOCOLS or not parts.hostname or parts.path.strip("/"):
        raise ServerError(f"{url!r} is not a Triton URL: use http://HOST:PORT or grpc://HOST:PORT")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        raise ServerError(f"{url!r} has no valid port (Triton listens on 8000 for HTTP and 8001 for gRPC)")
    return parts.scheme, parts.netloc


class _Clients:
    """One tritonclient client per thread, created on first use and all closed together."""

    def __init__(self, url: str, timeout: float) -> None:
        self.protocol, self.address = parse_url(url)
        try:
            if self.protocol == "http":
                import tritonclient.http as module
            else:
                import tritonclient.grpc as module
        except ImportError:
            raise BackendUnavailableError(
                "the remote client needs tritonclient: pip install 'stargan[triton]'"
            ) from None
        self.module = module
        self.timeout = timeout
        self._local = threading.local()
        # Weak: a client whose thread has ended is dropped with that thread's locals (and closes itself).
        self._all: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    def get(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            if self.protocol == "http":
                client = self.module.InferenceServerClient(
                    self.address, connection_timeout=self.timeout, network_timeout=self.timeout
                )
            else:
                client = self.module.InferenceServerClient(self.address)
            self._local.client = client
            with self._lock:
                self._all.add(client)
        return client

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a client method; the server's refusal or an unreachable server becomes a ServerError."""
        from tritonclient.utils import InferenceServerException

        try:
            return fn(*args, **kwargs)
        except InferenceServerException as e:
            raise ServerError(f"{what}: {e.message() or e}") from None
        except OSError as e:
            raise ServerError(f"{what}: cannot reach {self.protocol}://{self.address} ({e})") from None

    def infer(self, model: str, feeds: dict[str, np.ndarray], output: str) -> np.ndarray:
        m = self.module
        inputs = []
        for name, array in feeds.items():
            tensor = m.InferInput(name, list(array.shape), "FP32")
            tensor.set_data_from_numpy(np.ascontiguousarray(array, np.float32))
            inputs.append(tensor)
        client = self.get()
        extra = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}  # HTTP: set on the client
        result = self.call(
            f"{model} refused the request",
            client.infer,
            model,
            inputs,
            outputs=[m.InferRequestedOutput(output)],
            **extra,
        )
        return result.as_numpy(output)

    def close(self) -> None:
        with self._lock:
            clients = list(self._all)
            self._all.clear()
        for client in clients:
            client.close()


class RemoteGenerator:
    """The generator on the server, behind the SDK backend contract (infer on named arrays / close)."""

    name = "remote"
    thread_safe = True  # one client per thread
    checks_input_range = False  # the Translator scans the input before it is sent

    def __init__(self, clients: _Clients, model: str, max_batch: int) -> None:
        self.clients, self.model, self.max_batch = clients, model, max_batch
        self.loaded = True
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = {INPUT_IMAGE: feeds[INPUT_IMAGE], INPUT_LABEL: feeds[INPUT_LABEL]}
        return {OUTPUT_IMAGE: self.clients.infer(self.model, x, OUTPUT_IMAGE)}

    def infer_batches(self, batches: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Several batches in flight at once (the server batches and spreads them over its instances); the
        outputs in order. A few long-lived pool threads, so their clients are reused."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(PIPELINE_REQUESTS, thread_name_prefix="stargan-remote")
            pool = self._pool
        return list(pool.map(self.infer, batches))

    def close(self) -> None:
        self.loaded = False
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.clients.close()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "url": f"{self.clients.protocol}://{self.clients.address}",
            "model": self.model,
            "max_batch": self.max_batch,
        }


class RemoteClassifier:
    """The bundle's classifier on the server (`<model>_classifier`), as `AttributeClassifier.logits`."""

    def __init__(self, clients: _Clients, model: str, max_batch: int) -> None:
        self.clients, self.model, self.max_batch = clients, model, max_batch

    def logits(self, x: np.ndarray) -> np.ndarray:
        parts = [
            self.clients.infer(self.model, {INPUT_IMAGE: x[i : i + self.max_batch]}, LOGITS)
            for i in range(0, len(x), self.max_batch)
        ]
        return np.concatenate(parts)


def _model_config(clients: _Clients, model: str) -> dict[str, Any]:
    client = clients.get()
    if clients.protocol == "http":
        return clients.call(f"no model {model!r} on the server", client.get_model_config, model)
    return clients.call(f"no model {model!r} on the server", client.get_model_config, model, as_json=True)["config"]


def _model_ready(clients: _Clients, model: str) -> bool:
    """False for a model the server does not have (HTTP answers False, gRPC may answer with an error)."""
    try:
        return bool(clients.call("server error", clients.get().is_model_ready, model))
    except ServerError:
        return False


class RemoteTranslator(Translator):
    """A `Translator` whose generator and classifier run on a Triton server; use `RemoteTranslator.load`."""

    @classmethod
    def load(cls, url: str, model: str = "stargan", timeout: float = 60.0) -> RemoteTranslator:  # type: ignore[override]
        """Connect to `stargan serve` (or any Triton serving a repository from `stargan-export triton
        --backend python`) and read the served bundle's manifest. Raises ServerError when the server is
        unreachable, not ready, or does not serve `model`."""
        clients = _Clients(url, timeout)
        try:
            client = clients.get()
            if not clients.call("server not ready", client.is_server_ready):
                raise ServerError(f"the Triton server at {url} is not ready")
            config = _model_config(clients, model)
            try:
                manifest = Manifest.from_dict(json.loads(config["parameters"]["manifest"]["string_value"]))
            except (KeyError, TypeError, ValueError):
                raise ServerError(f"model {model!r} at {url} is not a served stargan bundle (no manifest)") from None
            max_batch = int(config.get("max_batch_size") or 1)
            classifier = None
            if _model_ready(clients, f"{model}_classifier"):
                classifier = RemoteClassifier(clients, f"{model}_classifier", max_batch)
        except BaseException:
            clients.close()
            raise
        translator = cls(manifest, RemoteGenerator(clients, model, max_batch), classifier)  # type: ignore[arg-type]
        translator.url = url
        return translator

    def describe(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "attributes": list(self.attributes),
            "image_size": self.image_size,
            "classifier": self.classifier is not None,
            **self.backend.describe(),
        }


__all__ = ["RemoteTranslator", "ServerError", "StarGANError", "parse_url"]
