"""``make gpu-check`` rehearsed on CPU: the dry run of every step, served with the installed local Triton, and on a
bare GPU machine's Python: numpy 2 (with scipy and scikit-learn built for it), PyTorch, transformers and
tokenizers, and nothing of Triton, served through a serving pack (``make gpu-check-pack``).
"""

import json
import math
import subprocess
from pathlib import Path

import pytest

from triton_ner_loadtest import gpu_check

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROOFS = {"device_constants", "half_constants", "fp32_logits_eager", "fp32_logits_corpus", "fp16_agreement",
          "bf16_agreement"}


@pytest.fixture(scope="module")
def serving_pack(tmp_path_factory):
    """A serving pack with the fixture model's repository, as ``make gpu-check-pack --model fixture`` writes it."""
    from triton_ner_loadtest import gpu_pack

    return gpu_pack.pack(tmp_path_factory.mktemp("pack") / "serving-pack.tar.xz", ("fixture",), log=lambda _: None)


def _dry_run(output: Path, python: Path | None = None, pack: Path | None = None
             ) -> tuple[subprocess.CompletedProcess, dict]:
    """``make gpu-check`` from the checkout: with .venv's python, or with ``python`` where no .venv is, as on a GPU
    machine as it comes (the project not installed: ``make checkout-tree``'s links)."""
    pack = pack or output / "no-pack.tar.xz"
    settings = [f"GPU_CHECK_ARGS=--dry-run --output {output} --pack {pack}"]
    if python is not None:
        settings += [f"VENV={output / 'no-venv'}", f"PYTHON={python}", f"CHECKOUT_TREE={output / 'checkout'}"]
    done = subprocess.run(["make", "--no-print-directory", "gpu-check", *settings], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=400, check=False)
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
    runners = [gpu_check.Runner(**r) for r in plan["runners"]]
    assert {r.graphs for r in runners} == {True, False} and {r.attention for r in runners} == {"sdpa", "eager"}
    cells = [(r["runner"], r["batch"], r["length"]) for r in results["model_alone"]]
    assert cells == [(r.name, b, n) for r in runners for b in plan["batches"] for n in plan["lengths"]]
    assert [r["runner"] for r in results["runners"]] == [r.name for r in runners]
    assert all(r["load_s"] > 0 and r["gpu_memory_gib"] is None for r in results["runners"])
    for row in results["model_alone"]:
        assert row["latency_ms"] > 0 and row["runs"] >= 3, row
        assert math.isclose(row["tokens_per_s"], row["batch"] * row["length"] * 1000 / row["latency_ms"])
    assert "| proof | measured | bound | holds |" in done.stdout
    assert "| model alone | batch | tokens | latency ms | sequences/s | tokens/s |" in done.stdout
    assert "Warning" not in done.stderr  # warnings are errors here too


def _check_served(results: dict, done: subprocess.CompletedProcess, triton: str) -> None:
    served, plan = results["served"], results["plan"]
    assert served["status"] == "ok" and served["config_name"] == "config" and served["triton"] == triton, served
    assert served["model_step"] == "TorchScript fp32 sdpa on cpu"
    assert served["instances"] == {"ner_text": 2, "ner_model": 2} and served["ready_s"] > 0
    assert [(r["concurrency"], r["texts_per_request"]) for r in served["rows"]] == [
        (c, n) for c in plan["concurrency"] for n in plan["texts_per_request"]]
    for row in served["rows"]:
        assert row["errors"] == 0 and "error" not in row, row
        assert row["requests"] > 0 and row["texts_per_s"] == row["requests"] * row["texts_per_request"] / row[
            "seconds"]
        assert row["p50_ms"] <= row["p99_ms"]
        assert row["model_average_batch"] >= 1  # windows per execution of ner_model, from Triton's statistics
        assert row["ratio_to_model_alone"] > 0 and row["model_alone"].startswith("fp32 sdpa batch ")
        # What limits the row: each step's compute per text and per execute, the server's and the load
        # generator's CPU per text, from Triton's statistics and /proc.
        for step in ("ner_text", "ner_model"):
            figures = row["steps"][step]
            assert figures["executions"] > 0 and figures["compute_ms_per_text"] > 0, (step, figures)
            # An execute serves at least one text; Triton's counters, read before and after the load, may hold a
            # request at each edge of the window that the load generator does not count.
            texts = row["requests"] * row["texts_per_request"]
            assert figures["executions"] <= texts + 2 * row["concurrency"], (step, figures, texts)
            assert figures["compute_ms_per_execute"] * (texts + 2 * row["concurrency"]) >= (
                figures["compute_ms_per_text"] * texts), (step, figures)
        assert row["steps"]["ner_model"]["average_batch"] == row["model_average_batch"]
        assert row["server_cpu_ms_per_text"] > 0 and set(row["server_cpu_ms_per_text_by_part"]) == {
            "tritonserver", "ner_text", "ner_model"}
        assert row["model_cpu_ms_per_text"] == row["server_cpu_ms_per_text_by_part"]["ner_model"] > 0
        assert math.isclose(row["outside_model_cpu_ms_per_text"] + row["model_cpu_ms_per_text"],
                            row["server_cpu_ms_per_text"])
        assert row["generator_cpu_ms_per_text"] > 0 and 0 < row["generator_busy"] <= 1.5
        assert math.isfinite(row["text_step_own_ms_per_text"])
        # The part that limits the row, from those figures: each part's busy share of its time.
        assert set(row["busy"]) == {"load generator", "host cores", "ner_model executes", "ner_text own work",
                                    "ner_text instances"}
        assert all(0 < share < 2 for part, share in row["busy"].items() if part != "ner_text own work"), row["busy"]
        assert 0 <= row["busy"]["ner_text own work"] < 2, row["busy"]  # a difference of two clocks, at least 0
        busiest = max((v, p) for p, v in row["busy"].items() if p != "ner_text instances")
        assert row["limit"] == (busiest[1] if busiest[0] >= gpu_check.BUSY else row["limit"]), row
        assert row["limit"] in {*row["busy"], "clients"}
    # The serving path alone: the same repository with the null model step, at the most clients.
    assert [(r["concurrency"], r["texts_per_request"]) for r in served["null_model_rows"]] == [
        (max(plan["concurrency"]), n) for n in plan["texts_per_request"]]
    for row in served["null_model_rows"]:
        assert row["errors"] == 0 and row["requests"] > 0 and row["steps"]["ner_model"]["executions"] > 0, row
        assert 0 < row["model_cpu_ms_per_text"] < row["outside_model_cpu_ms_per_text"], row
    assert f"served (config.pbtxt: TorchScript fp32 sdpa on cpu, {triton}); ready in " in done.stdout
    assert ("| server CPU ms/text | server CPU ms/text outside ner_model | ner_model CPU ms/text | load generator "
            "CPU ms/text (busy) |") in done.stdout
    assert "\n| null | 16 | 8 | " in done.stdout


def test_dry_run_proves_measures_and_serves_with_the_local_triton(tmp_path):
    done, results = _dry_run(tmp_path)
    _check_results(results, done)
    _check_served(results, done, "nvidia-pytriton wheel")


def test_dry_run_on_a_numpy2_machine_serves_through_the_pack(tmp_path, serving_pack, bare_gpu_python):
    """What a bare GPU machine does: its Python has numpy 2, which this Triton's Python backend cannot run; the
    check unpacks, puts the traced model in, makes the steps an environment with the pack's numpy 1 in front of
    the machine's packages, and serves with the packed Triton."""
    done, results = _dry_run(tmp_path, bare_gpu_python, serving_pack)
    assert results["environment"]["numpy"].startswith("2.")
    _check_results(results, done)
    _check_served(results, done, "serving pack")
    assert "the steps' environment: numpy 1." in done.stderr


def test_the_tree_and_the_pack_travel_in_60_mib(serving_pack):
    """What travels to a GPU machine: the source tree and the pack (the benchmark model's repository adds configs
    and the tokenizer, no weights)."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True).stdout
    tree = sum((PROJECT_ROOT / name).stat().st_size for name in tracked.decode().split("\0")
               if name and (PROJECT_ROOT / name).is_file())
    assert tree + serving_pack.stat().st_size < 58 * 2**20, (tree / 2**20, serving_pack.stat().st_size / 2**20)


def test_dry_run_without_a_pack_or_triton_skips_serving(tmp_path, bare_gpu_python):
    done, results = _dry_run(tmp_path, bare_gpu_python)
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
