"""The benchmark's own arithmetic and outputs, on made-up rows (no timing is asserted anywhere)."""

import pytest

from triton_ner_loadtest.bench import length_sample, timed_calls
from triton_ner_loadtest.bench_report import (
    ORT_THREADS,
    Row,
    markdown,
    ort_row_name,
    plot,
    results_page,
    run_results,
    targets,
    write_docs,
)

CORPUS = {"texts": 100, "seed": 0, "words": "5-40"}


def rows(served_fp32=30.0, served_int8=90.0, rss=1000.0):
    made = [Row("pipeline", "fp32", None, 100, 100 / 20, [40.0] * 100),
            Row("pipeline batch 32", "fp32", None, 100, 100 / 10, [3000.0] * 4)]
    for precision, ceiling, served in (("fp32", 34.0, served_fp32), ("int8", 100.0, served_int8)):
        made += [Row("in-process batch 1", precision, None, 100, 100 / ceiling, [20.0] * 100),
                 Row("in-process batch 8", precision, None, 100, 100 / (ceiling - 1), [150.0] * 13)]
        made += [Row("served", precision, c, 100, 100 / served, [22.0 + c] * 100, rss) for c in (1, 8, 32)]
    made.append(Row("served fp32 c=8, words 10", "fp32", 8, 10, 1.0, [5.0] * 10, tokens=130))
    return made


def test_percentiles_pick_from_the_sorted_latencies():
    row = Row("x", "fp32", 1, 100, 1.0, [float(i) for i in range(100, 0, -1)])
    assert (row.percentile(50), row.percentile(99), row.percentile(100)) == (51.0, 99.0, 100.0)
    assert row.texts_per_s == 100.0
    assert row.summary()["p99_ms"] == 99.0


def test_targets_are_ratios_of_the_same_run():
    checks = {t.text: (t.measured, t.holds) for t in targets(rows())}
    assert checks["served fp32 c=32 / in-process fp32 ceiling"] == (pytest.approx(30 / 34), True)
    assert checks["served fp32 c=32 / pipeline one text per call"] == (pytest.approx(1.5), False)
    assert checks["served int8 c=32 / pipeline one text per call"] == (pytest.approx(4.5), True)
    assert checks["served int8 c=32 / served fp32 c=32"] == (pytest.approx(3.0), True)
    assert checks["served fp32 c=1 p50 - in-process single-text p50 (ms)"] == (pytest.approx(3.0), True)
    assert checks["server memory under load, config.pbtxt (MB)"] == (1000.0, True)
    assert not {t.text: t.holds for t in targets(rows(rss=2000.0))}["server memory under load, config.pbtxt (MB)"]


def test_markdown_has_every_row_and_target(tmp_path):
    made = rows()
    text = markdown(run_results(made, targets(made), CORPUS))
    assert text.count("| served | fp32 |") == 3 and "| 10 | 10.00 | 130 | 5 |" in text
    assert "| server memory under load, config.pbtxt (MB) | 1000.00 | ≤ 1536 | yes |" in text
    plot(made, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_timed_calls_covers_every_text_in_batches():
    seen = []
    seconds, latencies = timed_calls(seen.append, list("abcdefg"), 3)
    assert seen == [list("abc"), list("def"), list("g")] and len(latencies) == 3 and seconds >= 0


def test_length_samples_have_the_asked_word_count():
    sample = length_sample(50)
    assert len(sample) == 80 and {len(t.split()) for t in sample} == {50}
    assert len(length_sample(2000)) == 8


def test_onnxruntime_backend_rows_are_compared_with_the_python_runner_at_each_concurrency(tmp_path):
    made = [Row("served", "fp32", c, 100, 100 / 30, [30.0] * 100) for c in (1, 8, 32)]
    made += [Row(ort_row_name(t), "fp32", c, 100, 100 / (15 * t), [30.0] * 100) for t in ORT_THREADS
             for c in (1, 8, 32)]
    text = markdown(run_results(made, [], CORPUS))
    assert "| 8 | 30.0 | 15.0 (0.50x) | 30.0 (1.00x) |" in text
    assert "| target |" not in text and "| words per text |" not in text
    plot(rows() + made[3:], tmp_path / "bench.png")
    assert (tmp_path / "bench.png").exists()


def test_bf16_target_is_checked_when_bf16_was_served():
    made = rows() + [Row("served", "bf16", c, 100, 100 / 45.0, [20.0] * 100, 1200.0) for c in (1, 8, 32)]
    checks = {t.text: (t.measured, t.holds) for t in targets(made)}
    assert checks["served bf16 c=32 / served fp32 c=32"] == (pytest.approx(1.5), True)
    assert "served bf16 c=32 / served fp32 c=32" not in {t.text for t in targets(rows())}


def test_the_docs_page_is_written_from_the_runs_json(tmp_path):
    import json

    made = rows()
    output, docs = tmp_path / "results", tmp_path / "docs"
    output.mkdir()
    (output / "bench.json").write_text(json.dumps(run_results(made, targets(made), CORPUS)))
    plot(made, output / "bench.png")
    write_docs(output, docs)
    page = (docs / "bench-results.md").read_text()
    assert page == results_page(json.loads((docs / "bench.json").read_text()))
    assert "| server memory under load, config.pbtxt (MB) | 1000.00 | ≤ 1536 | yes |" in page
    assert "![throughput and p99 against concurrency](bench.png)" in page and (docs / "bench.png").exists()


def figures(compute_ms_per_text: float, request_ms_per_text: float, average_batch: float) -> dict:
    """A step's figures as http_load.step_figures gives them (the ones the ceiling reads)."""
    return {"compute_ms_per_text": compute_ms_per_text, "request_ms_per_text": request_ms_per_text,
            "average_batch": average_batch}


def test_the_ceiling_plot_is_written_from_made_up_points(tmp_path):
    from triton_ner.core import names
    from triton_ner_loadtest import ceiling

    def steps(c):
        return {names.TEXT_STEP: figures(0.0, 0.0, 1.5), names.MODEL: figures(0.0, 0.0, 2.0 * c)}

    points = [ceiling.Point(variant, c, texts, 100, 1.0, [5.0] * 100, steps(c))
              for variant in (ceiling.CPU_DEFAULT, ceiling.GPU_ON_CPU) for texts in ceiling.TEXTS_PER_REQUEST
              for c in ceiling.CONCURRENCY]
    ceiling.plot(points, tmp_path / "ceiling.png")
    assert (tmp_path / "ceiling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_ceilings_targets_are_checks_of_the_same_run():
    from triton_ner.core import names
    from triton_ner_loadtest import ceiling
    from triton_ner_loadtest.checks import checks_table

    cpu = {names.TEXT_STEP: 0.3, names.MODEL: 0.2, "tritonserver": 0.15}
    # The text step's calls spent 0.6 ms per text at ner_model (queued 0.1, running 0.5).
    small = {names.TEXT_STEP: figures(1.2, 1.2, 4.0), names.MODEL: figures(0.5, 0.6, 12.0)}
    full = {names.TEXT_STEP: figures(1.2, 1.2, 4.0), names.MODEL: figures(0.5, 0.6, 20.0)}
    null_cpu = {names.TEXT_STEP: 0.1, names.MODEL: 0.02, "tritonserver": 0.15}
    points = [ceiling.Point(ceiling.CPU_DEFAULT, 64, 1, 1200, 1.0, [5.0], small, 400.0, cpu),
              ceiling.Point(ceiling.FULL_SIZE_GPU, 64, 1, 10, 1.0, [5.0], full),
              ceiling.Point(ceiling.NULL_MODEL, 64, 1, 3000, 1.0, [5.0], small, 300.0, null_cpu)]
    found = {c.text.strip(): (round(c.measured, 6), c.holds) for c in ceiling.targets(points)}
    assert found["fixture model, config.pbtxt, 64 clients x 1 text: texts/s"] == (1200.0, True)
    assert found["text step's own compute, ms per text (1 text per request)"] == (0.6, False)  # 1.2 - 0.6
    assert found["text step's CPU time, ms per text (1 text per request)"] == (0.3, True)
    # Own compute, its CPU, the server's CPU, outside the model step and the model step's; NVIDIA's backend runs
    # inside tritonserver, where the two cannot be told apart.
    assert "| 0.600 | 0.300 | 0.650 | 0.450 | 0.200 |" in ceiling.markdown(points[:1])
    inside = ceiling.Point(ceiling.GPU_ON_CPU, 64, 1, 1200, 1.0, [5.0], small, 400.0,
                           {names.TEXT_STEP: 0.3, "tritonserver": 0.4})
    assert "| 0.300 | 0.700 | - | - |" in ceiling.markdown([inside])
    assert found["config.pbtxt, 64 clients x 1 text: server CPU outside the model step, ms per text"] == (0.45, False)
    assert found["null model step, 64 clients x 1 text: ner_model CPU ms per text"] == (0.02, True)
    assert found["full-size model, gpu on CPU, 64 clients: ner_model average batch"] == (20.0, True)
    assert "| full-size model, gpu on CPU, 64 clients: ner_model average batch | 20.00 | ≥ 16 | yes |" in checks_table(
        [c.summary() for c in ceiling.targets(points)])


def test_a_variant_the_export_left_out_costs_its_rows_and_targets_only(tmp_path):
    """On a CPU where INT8's proof fails, the export leaves INT8 out: the run goes on, the INT8 targets are not
    computed, every other target is, and the table says why INT8 is missing."""
    made = [r for r in rows() if r.precision != "int8"]
    checks = {t.text for t in targets(made)}
    assert not any("int8" in text for text in checks)
    assert {"served fp32 c=32 / in-process fp32 ceiling", "served fp32 c=1 / in-process batch 1",
            "server memory under load, config.pbtxt (MB)"} <= checks
    why = "model_int8.onnx: 94.86% identical against the entities of model.onnx (bound: ≥ 95%)"
    text = markdown(run_results(made, targets(made), CORPUS, {"served int8": why}))
    assert f"- served int8: {why}" in text
    plot(made, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").exists()
