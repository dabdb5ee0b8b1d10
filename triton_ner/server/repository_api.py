"""Triton's model repository API behind the launcher's key: the index, reloading a model beside its serving copy,
draining the ensemble, unloading everything. Why each is done so: docs/operations.md ("Stopping drains",
"A killed stub")."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Callable

from triton_ner.core import names
from triton_ner.server.arguments import admin_headers, post
from triton_ner.server.supervisor import RELOAD_PARAMETER


class RepositoryApi:
    def __init__(self, http_url: str, key: str):
        self.http_url = http_url
        self.key = key
        self.reloads = 0

    def post(self, action: str, model: str | None = None, timeout: float = 5, body: bytes = b"") -> bytes:
        """``index``, or ``load``/``unload`` of ``model``."""
        path = f"models/{model}/{action}" if model else action
        return post(f"http://{self.http_url}/v2/repository/{path}", admin_headers(self.key), timeout, body)

    def index(self) -> list[dict]:
        """Every model with its ``state``; OSError or ValueError when the server does not answer."""
        return json.loads(self.post("index"))

    def ready(self, model: str) -> bool | None:
        """Whether the index says ``model`` is READY; None when the server does not answer."""
        try:
            return any(entry["name"] == model and entry.get("state") == "READY" for entry in self.index())
        except (OSError, ValueError, KeyError):
            return None

    def wait(self, settled: Callable[[list[dict]], bool], deadline: float) -> bool:
        """Poll the index until ``settled(models)`` holds; False at the deadline (``time.monotonic``)."""
        while time.monotonic() < deadline:
            if settled(self.index()):
                return True
            time.sleep(0.1)
        return False

    def reload(self, model: str, timeout: float = 180.0) -> bool:
        """Load ``model`` again beside its serving copy, its served configuration with one parameter more
        (:data:`RELOAD_PARAMETER`, counting reloads), which Triton swaps in once ready. True when it is ready
        within ``timeout`` seconds."""
        self.reloads += 1
        try:
            request = urllib.request.Request(f"http://{self.http_url}/v2/models/{model}/config",
                                             headers=admin_headers(self.key))
            with urllib.request.urlopen(request, timeout=5) as response:
                config = json.loads(response.read())
            config.setdefault("parameters", {})[RELOAD_PARAMETER] = {"string_value": str(self.reloads)}
            self.post("load", model, timeout, json.dumps({"parameters": {"config": json.dumps(config)}}).encode())
            return True
        except (OSError, ValueError) as error:  # refused (HTTPError), no answer, or not JSON
            print(f"server: reloading {model} failed: {error}", file=sys.stderr, flush=True)
            return False

    def drain(self, deadline: float) -> bool:
        """Unload the ensemble and wait until it is unloaded: requests in flight finish, new ones are refused,
        none is left between two steps. True when drained by ``deadline``."""
        try:
            self.post("unload", names.ENSEMBLE)
            return self.wait(lambda index: all(model.get("state") != "UNLOADING" and not (
                model["name"] == names.ENSEMBLE and model.get("state") == "READY") for model in index), deadline)
        except OSError:
            return False  # a server that does not answer any more has nothing left to drain

    def unload_all(self, deadline: float) -> bool:
        """Unload every model still loaded and wait until none is loaded or unloading (what they run finishes
        first). False if that is not done by ``deadline``."""
        try:
            for model in self.index():
                if model.get("state") == "READY":
                    self.post("unload", model["name"])
            return self.wait(lambda index: all(model.get("state") not in ("READY", "UNLOADING")
                                               for model in index), deadline)
        except (OSError, ValueError):
            return False
