"""``make gpu-check`` rehearsed on CPU: the dry run of every step, served with the installed local Triton and
through a serving pack (``make gpu-check-pack``) in the environment of a bare GPU machine.

A bare GPU machine has torch, transformers, tokenizers and numpy but none of tritonclient, nvidia-pytriton, grpc,
protobuf or onnx: those runs hide them and must still prove, measure and, with a pack, serve.
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
# What a bare GPU machine does not have.
ABSENT_ON_GPU_MACHINE = ("tritonclient", "pytriton", "grpc", "google.protobuf", "onnx", "typer", "rich", "locust",
                         "psutil", "matplotlib", "orjson")


@pytest.fixture(scope="module")
def serving_pack(tmp_path_factory):
    """A serving pack with the fixture model's repository, as ``make gpu-check-pack --model fixture`` writes it."""
    from triton_ner.loadtest import gpu_pack

    return gpu_pack.pack(tmp_path_factory.mktemp("pack") / "serving-pack.tar.gz", ("fixture",), log=lambda _: None)


def _dry_run(output: Path, hide: tuple[str, ...] = (), pack: Path | None = None
             ) -> tuple[subprocess.CompletedProcess, dict]:
    code = (f"import runpy, sys\nfor name in {hide!r}:\n    sys.modules[name] = None\n"
            "sys.argv[0] = 'gpu_check'\nrunpy.run_module('loadtest.gpu_check', run_name='__main__')\n")
    pack = pack or output / "no-pack.tar.gz"
    done = subprocess.run([sys.executable, "-c", code, "--dry-run", "--output", str(output), "--pack", str(pack)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=400, check=False)
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


def _check_served(results: dict, done: subprocess.CompletedProcess, triton: str) -> None:
    served, plan = results["served"], results["plan"]
    assert served["status"] == "ok" and served["config_name"] == "config" and served["triton"] == triton, served
    assert served["model_step"] == "TorchScript fp32 on cpu"
    assert [(r["concurrency"], r["texts_per_request"]) for r in served["rows"]] == [
        (c, n) for c in plan["concurrency"] for n in plan["texts_per_request"]]
    for row in served["rows"]:
        assert row["errors"] == 0 and "error" not in row, row
        assert row["requests"] > 0 and row["texts_per_s"] == row["requests"] * row["texts_per_request"] / row[
            "seconds"]
        assert row["p50_ms"] <= row["p99_ms"]
        assert row["model_average_batch"] >= 1  # windows per execution of ner_model, from Triton's statistics
        assert row["ratio_to_model_alone"] > 0 and row["model_alone"].startswith("fp32 batch ")
    assert f"| served (config.pbtxt: TorchScript fp32 on cpu, {triton}) concurrency | texts/request |" in done.stdout


def test_dry_run_proves_measures_and_serves_with_the_local_triton(tmp_path):
    done, results = _dry_run(tmp_path)
    _check_results(results, done)
    _check_served(results, done, "nvidia-pytriton wheel")


def test_dry_run_serves_through_the_pack_without_triton_installed(tmp_path, serving_pack):
    """What a bare GPU machine does: unpack, put the traced model in, serve with the packed Triton."""
    done, results = _dry_run(tmp_path, ABSENT_ON_GPU_MACHINE, serving_pack)
    _check_results(results, done)
    _check_served(results, done, "serving pack")
    assert "serving through the pack" in done.stderr


def test_dry_run_without_a_pack_or_triton_skips_serving(tmp_path):
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
    assert gpu_check.main(["--output", str(tmp_path)]) == 1
    assert json.loads((tmp_path / "gpu_check.json").read_text())["ok"] is False
    assert "| agreement | 0.5000 | ≥ 0.98 | NO |" in capsys.readouterr().out
