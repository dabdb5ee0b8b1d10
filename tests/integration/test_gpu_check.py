"""``make gpu-check`` rehearsed on CPU: the dry run of every step, and the lent GPU machine's environment.

The lent machine has torch, transformers, tokenizers and numpy but none of tritonclient, nvidia-pytriton, grpc,
protobuf or onnx (and possibly no typer): the second run hides those and must still prove and measure.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from triton_ner.loadtest import gpu_check

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROOFS = {"device_constants", "fp32_logits_eager", "fp32_logits_corpus", "fp16_agreement", "bf16_agreement"}
# What the lent GPU machine does not have; typer too, which sends the CLI to its argparse fallback.
ABSENT_ON_GPU_MACHINE = ("tritonclient", "pytriton", "grpc", "google.protobuf", "onnx", "typer", "rich", "locust",
                         "psutil", "matplotlib")


def _dry_run(output: Path, hide: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess, dict]:
    code = (f"import runpy, sys\nfor name in {hide!r}:\n    sys.modules[name] = None\n"
            "sys.argv[0] = 'gpu_check'\nrunpy.run_module('loadtest.gpu_check', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", code, "--dry-run", "--output", str(output)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done, json.loads((output / "gpu_check.json").read_text())


def _check_results(results: dict, done: subprocess.CompletedProcess) -> None:
    assert results["dry_run"] is True and results["ok"] is True and results["failures"] == []
    assert results["environment"]["device"] == "cpu" and results["model"]["name"] == "fixture"
    assert {p["key"] for p in results["proofs"]} == PROOFS
    for proof in results["proofs"]:
        assert proof["ok"] and proof["error"] is None, proof
        assert proof["measured"] <= proof["bound"] if not proof["at_least"] else proof["measured"] >= proof["bound"]
    assert [f["precision"] for f in results["precisions"]] == list(gpu_check.PRECISIONS)
    plan = results["plan"]
    cells = [(r["precision"], r["batch"], r["length"]) for r in results["model_alone"]]
    assert cells == [(p, b, n) for p in gpu_check.PRECISIONS for b in plan["batches"] for n in plan["lengths"]]
    for row in results["model_alone"]:
        assert row["latency_ms"] > 0 and row["runs"] >= 3, row
        assert math.isclose(row["tokens_per_s"], row["batch"] * row["length"] * 1000 / row["latency_ms"])
    assert "| proof | measured | bound | holds |" in done.stdout
    assert "| model alone | batch | tokens | latency ms | sequences/s | tokens/s |" in done.stdout
    assert "Warning" not in done.stderr  # warnings are errors here too


@pytest.mark.integration
def test_dry_run_proves_measures_and_serves(tmp_path):
    done, results = _dry_run(tmp_path)
    _check_results(results, done)
    served = results["served"]
    if not gpu_check.served_available():
        assert served["status"] == gpu_check.SKIPPED_NO_TRITON
        return
    assert served["status"] == "ok" and served["config_name"] == "config", served
    assert [r["concurrency"] for r in served["rows"]] == list(results["plan"]["concurrency"])
    for row in served["rows"]:
        assert row["texts"] == results["plan"]["served_texts"] and row["texts_per_s"] > 0
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    assert served["model_step"] == "TorchScript fp32 on cpu" and served["cuda_variant_exported"] is True
    assert "| served (config.pbtxt: TorchScript fp32 on cpu) concurrency | texts/s |" in done.stdout


@pytest.mark.integration
def test_dry_run_without_what_the_gpu_machine_lacks(tmp_path):
    done, results = _dry_run(tmp_path, ABSENT_ON_GPU_MACHINE)
    _check_results(results, done)
    assert results["served"] == {"status": gpu_check.SKIPPED_NO_TRITON, "rows": []}
    assert f"served: {gpu_check.SKIPPED_NO_TRITON}" in done.stdout


def test_a_proof_holds_only_with_a_finite_figure_within_its_bound():
    assert gpu_check.Proof("k", "Δ", 1e-4, 1e-3, at_least=False).ok
    assert not gpu_check.Proof("k", "Δ", 2e-3, 1e-3, at_least=False).ok
    assert not gpu_check.Proof("k", "Δ", float("nan"), 1e-3, at_least=False).ok
    assert not gpu_check.Proof("k", "agreement", 0.97, 0.98, at_least=True).ok
    assert not gpu_check.Proof("k", "agreement", None, 0.98, at_least=True, error="RuntimeError: cuda").ok
    assert gpu_check.Proof("k", "Δ", float("nan"), 1e-3, at_least=False).summary()["measured"] is None


def test_a_failed_proof_is_a_non_zero_exit_with_the_json_written(tmp_path, monkeypatch, capsys):
    failed = {"dry_run": True, "plan": {"model": "fixture"}, "seconds": 1.0, "ok": False,
              "environment": {"torch": "x", "transformers": "y"},
              "proofs": [gpu_check.Proof("fp16_agreement", "agreement", 0.5, 0.98, True).summary()],
              "served": {"status": gpu_check.SKIPPED_NO_TRITON, "rows": []},
              "failures": ["proof: agreement: 0.5"]}
    monkeypatch.setattr(gpu_check, "run_check", lambda *args, **kwargs: failed)
    assert gpu_check.main(tmp_path) == 1
    assert json.loads((tmp_path / "gpu_check.json").read_text())["ok"] is False
    assert "| agreement | 0.5000 | ≥ 0.98 | NO |" in capsys.readouterr().out
