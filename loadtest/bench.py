"""``make bench``: what serving on Triton buys over running the transformers pipeline yourself.

One run, one machine, one corpus (generated CoNLL-like sentences of 5 to 40 words and a few 600-word documents,
fixed seed), on the full-size benchmark model (DistilBERT with random weights: the real model's compute):

1. the transformers pipeline as the model card uses it, one text per call;
2. the pipeline with ``batch_size=32``;
3. in process: the project's tokenization, ONNX Runtime and aggregation at their best batch size (the ceiling
   of this machine at that precision);
4. the served ensemble through the real local Triton over gRPC, one text per request, at concurrency 1, 8, 32;

then 3 and 4 again with the INT8 model and with the BF16 model (the TorchScript file cast to bfloat16 at load, on
a CPU with AVX-512 BF16 or AMX), and with OpenVINO's FP32, BF16 and INT8 (NNCF) models, the BF16 one also in
NVIDIA's ``openvino`` backend when ``make backends`` has built it; the configurations against FP32 again on the
corpus' short sentences alone; and the cost of text length (10 to 2,000 words) served; and, when
``make backends`` has built it, the GPU config's model step in NVIDIA's own ``onnxruntime`` backend on CPU
(``export.configs.on_cpu``: the tokenizer pads to length groups, the backend batches equal shapes) with 1 and 2
intra-op threads, against the Python-backend runner of ``config.pbtxt``. It prints a Markdown table, checks the
targets as ratios of this run, and writes ``bench.json`` and ``bench.png``. ``--only onnxruntime-backend`` runs
only the served FP32 rows of both backends, ``--only bf16`` only the FP32 and BF16 rows, ``--only openvino`` the
FP32 and OpenVINO rows with their targets.

Last, the serving path's own ceiling (:mod:`triton_ner_loadtest.ceiling`, ``--only ceiling`` alone): the fixture
model, whose compute is small, served by ``config.pbtxt`` and by the GPU config switched to CPU at 1 to 256
clients with 1 and 8 texts per request, and the full-size model in the GPU config at 64 clients; it writes
``ceiling.md``, ``ceiling.json`` and ``ceiling.png``. Then the tail over windows (:mod:`triton_ner_loadtest.tail`,
``--only tail`` alone): p50, p99, p99.9 and the maximum of each 5 s from a fresh server's ready, over gRPC and
HTTP, with their targets; ``tail.md`` and ``tail.json``.
"""

from __future__ import annotations

import enum
import json
import os
import random
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from triton_ner import cli
from triton_ner.core import variants
from triton_ner_loadtest.bench_report import (
    CONCURRENCY,
    ORT_THREADS,
    SHORT_WORDS,
    Row,
    machine,
    markdown,
    openvino_targets,
    ort_row_name,
    plot,
    run_results,
    targets,
    write_docs,
)
from triton_ner_loadtest.checks import checks_table
from triton_ner_loadtest.exports import cached_export
from triton_ner_loadtest.memory import MemorySampler
from triton_ner_loadtest.texts import benchmark_corpus, words_text

SHORT_CONCURRENCY = (1, 32)
DEFAULT = variants.default(variants.Format.ONNX)
# (row name, variant): what is served, and measured in process; the variant's precision names its rows.
SERVED = (("served", DEFAULT), ("served", variants.INT8), ("served", variants.BF16),
          ("served openvino", variants.OPENVINO), ("served openvino", variants.OPENVINO_BF16),
          ("served openvino", variants.OPENVINO_INT8))
OPENVINO_BACKEND = ("served openvino backend", variants.OPENVINO_BF16_BACKEND)
# Served again on the short sentences alone, at SHORT_CONCURRENCY.
SHORT = (("served", DEFAULT), ("served openvino", variants.OPENVINO_BF16), ("served openvino", variants.OPENVINO_INT8))
LENGTHS = (10, 50, 200, 500, 2000)
IN_PROCESS_BATCHES = (1, 8, 32, 64)
app = cli.command()


def timed_calls(call: Callable[[list[str]], object], texts: list[str], batch: int) -> tuple[float, list[float]]:
    """Run ``call`` on consecutive batches; return the wall time and each call's latency (ms)."""
    latencies = []
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        t0 = time.perf_counter()
        call(texts[i:i + batch])
        latencies.append((time.perf_counter() - t0) * 1000)
    return time.perf_counter() - started, latencies


def length_sample(words: int) -> list[str]:
    """Texts of exactly ``words`` words, about 4,000 words in all (8 to 96 texts)."""
    return [words_text(random.Random(words * 1000 + i), words) for i in range(max(8, min(96, 4000 // words)))]


def served_run(url: str, texts: list[str], concurrency: int) -> tuple[float, list[float]]:
    """``concurrency`` gRPC clients, one text per request, until the texts are done."""
    from triton_ner.client import NerClient

    work = deque(texts)
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def user() -> None:
        with NerClient(url, retries=0, timeout=600) as client:
            while True:
                with lock:
                    if not work or errors:
                        return
                    text = work.popleft()
                t0 = time.perf_counter()
                try:
                    client.predict(text)
                except BaseException as error:  # noqa: BLE001 - reported after the run
                    errors.append(error)
                    return
                latencies.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=user) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"a served request failed: {errors[0]}")
    return time.perf_counter() - started, latencies


class Rows(str, enum.Enum):
    ALL = "all"
    ONNXRUNTIME_BACKEND = "onnxruntime-backend"  # served FP32: Python-backend runner vs NVIDIA's backend
    BF16 = "bf16"  # served FP32 (ONNX Runtime) and BF16 (TorchScript cast at load), in process and served
    OPENVINO = "openvino"  # served FP32 (ONNX Runtime) and OpenVINO's FP32, BF16 and INT8, with their targets
    CEILING = "ceiling"  # the serving path around a small model (loadtest/ceiling.py)
    TAIL = "tail"  # tail latency over windows from ready, both protocols (loadtest/tail.py)


def prepare_repository(output: Path, log: Callable[[str], None]) -> Path:
    """The benchmark model exported with its FP32 and INT8 ONNX variants, the BF16 TorchScript variant and the
    OpenVINO variants for CPU and its GPU configs (FP32 ONNX in NVIDIA's onnxruntime backend), reused when
    present."""
    from triton_ner.core.variants import Format, Precision, Target
    from triton_ner.export.assemble import ExportPlan
    from triton_ner.export.fixture import benchmark_model

    # Random weights have no real entities, only near-ties that INT8 rounding flips: 95% is the bar here; the
    # 99% bar holds on the trained fixture model (tests/integration/test_export.py).
    plan = ExportPlan(frozenset({Format.ONNX, Format.TORCHSCRIPT, Format.OPENVINO}),
                      frozenset({Precision.FP32, Precision.INT8, Precision.BF16}), Target.BOTH, min_agreement=0.95,
                      keep_going=True)
    wanted = (variants.GPU, *(variant for _, variant in SERVED if variant.config_name), OPENVINO_BACKEND[1])
    return cached_export(benchmark_model(), output, plan, tuple(v.config_name for v in wanted), log)


def onnxruntime_backend_repository(repository: Path, output: Path, threads: int) -> Path:
    """A copy of ``repository`` (hard links) whose model step's ``configs/gpu.pbtxt`` runs on CPU in NVIDIA's
    onnxruntime backend with ``threads`` intra-op threads: serve it with ``variants.GPU.config_name``."""
    from triton_ner.core import names
    from triton_ner.export.configs import on_cpu, parse, render

    shutil.rmtree(output, ignore_errors=True)
    shutil.copytree(repository, output, copy_function=os.link)
    config = output / names.MODEL / "configs" / "gpu.pbtxt"
    switched = on_cpu(parse(config.read_text()), threads)
    config.unlink()  # a hard link to the original: write a new file
    config.write_text(render(switched))
    return output


def ceiling_section(full_size: Path, repository: Path, output: Path, docs: Path, say: Callable[[str], None]
                    ) -> None:
    """The serving path's ceiling (:mod:`triton_ner_loadtest.ceiling`): its table, targets, JSON and plot, and the
    docs page of the table and plot (``docs/ceiling.md``)."""
    from triton_ner.server.installation import onnxruntime_backend
    from triton_ner_loadtest import ceiling

    fixture = ceiling.fixture_repository(repository.with_name(f"{repository.name}-fixture"),
                                         lambda m: say(f"export: {m}"))
    points = ceiling.serve_points(fixture, ceiling.CPU_DEFAULT, say)
    points += ceiling.serve_points(fixture, ceiling.NULL_MODEL, say, config_name=ceiling.with_null_model_step(fixture),
                                   loads=ceiling.NULL_LOADS)
    if onnxruntime_backend() is None:
        say("NVIDIA's onnxruntime backend is not built (make backends): no GPU-config rows in the ceiling")
    else:
        switched = onnxruntime_backend_repository(fixture, repository.with_name(f"{repository.name}-fixture-gpu"), 1)
        points += ceiling.serve_points(switched, ceiling.GPU_ON_CPU, say, config_name=variants.GPU.config_name)
        switched = onnxruntime_backend_repository(full_size, repository.with_name(f"{repository.name}-onnxruntime"), 1)
        points += ceiling.serve_points(switched, ceiling.FULL_SIZE_GPU, say, config_name=variants.GPU.config_name,
                                       loads=((64, 1),), seconds=20.0)
    found = [c.summary() for c in ceiling.targets(points)]
    table = ceiling.markdown(points) + "\n\n" + checks_table(found)
    print(table)
    (output / "ceiling.md").write_text(table + "\n")
    (output / "ceiling.json").write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "machine": machine(), "points": [p.summary() for p in points],
        "targets": found}, indent=2) + "\n")
    ceiling.plot(points, output / "ceiling.png")
    say(f"wrote {output / 'ceiling.md'}, ceiling.json and ceiling.png")
    docs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(output / "ceiling.png", docs / "ceiling.png")
    (docs / "ceiling.md").write_text(ceiling.page(table, f"{time.strftime('%Y-%m-%d')}, {machine()}"))
    say(f"wrote {docs / 'ceiling.md'} and {docs / 'ceiling.png'}")


def tail_section(repository: Path, output: Path, docs: Path, say: Callable[[str], None]) -> None:
    """Tail latency over windows (:mod:`triton_ner_loadtest.tail`) on the fixture export: table, targets, JSON and
    the docs page (``docs/tail.md``)."""
    from triton_ner_loadtest import ceiling, tail

    fixture = ceiling.fixture_repository(repository.with_name(f"{repository.name}-fixture"),
                                         lambda m: say(f"export: {m}"))
    found = tail.measure(fixture, say)
    checks = [c.summary() for c in tail.targets(found)]
    table = tail.markdown(found) + "\n\n" + checks_table(checks)
    print(table)
    (output / "tail.json").write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "machine": machine(), "windows": [asdict(w) for w in found],
        "targets": checks}, indent=2) + "\n")
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "tail.md").write_text(tail.page(table, f"{time.strftime('%Y-%m-%d')}, {machine()}"))
    say(f"wrote {output / 'tail.json'} and {docs / 'tail.md'}")


@app.command()
def main(
    texts: Annotated[int, typer.Option(min=32, help="Texts of the corpus per measurement.")] = 384,
    output: Annotated[Path, typer.Option(help="Folder for bench.json and bench.png.")] = Path("results/bench"),
    repository: Annotated[Path, typer.Option(help="Where the benchmark model is exported (reused).")]
    = Path(".cache/bench-repository"),
    seed: Annotated[int, typer.Option(help="Corpus seed.")] = 0,
    docs: Annotated[Path, typer.Option(help="Where the docs pages of a whole run and of the ceiling are written "
                                            "(bench-results.md, ceiling.md, their JSON and plots).")] = Path("docs"),
    only: Annotated[Rows, typer.Option(help="Which rows: all; onnxruntime-backend: the served FP32 rows of the "
                                            "Python-backend runner and NVIDIA's onnxruntime backend; bf16: FP32 "
                                            "and BF16 in process and served (no targets, no plot); openvino: FP32 "
                                            "and OpenVINO's FP32, BF16 and INT8, with their targets (no plot); "
                                            "ceiling: the serving path around the fixture model; tail: tail "
                                            "latency over windows from ready, gRPC and HTTP.")]
    = Rows.ALL,
) -> None:
    """Benchmark the served ensemble against the transformers pipeline and the in-process ceiling."""
    from transformers import pipeline

    from triton_ner.core import names
    from triton_ner.core.inprocess import LocalNer
    from triton_ner.core.vocabulary import load_vocabulary
    from triton_ner.server.arguments import free_ports
    from triton_ner.server.installation import built_backend, onnxruntime_backend
    from triton_ner.server.launcher import TritonServer

    def say(message: str) -> None:
        cli.say("bench", message)

    everything = only is Rows.ALL
    if only is Rows.ONNXRUNTIME_BACKEND and onnxruntime_backend() is None:
        raise cli.fail("bench", "NVIDIA's onnxruntime backend is not built: run `make backends`")
    output.mkdir(parents=True, exist_ok=True)
    if only is Rows.TAIL:
        tail_section(repository, output, docs, say)
        return
    repo = prepare_repository(repository, lambda m: say(f"export: {m}"))
    tokenizer_dir = repo / names.TEXT_STEP / "1" / names.TOKENIZER_DIR
    corpus = benchmark_corpus(texts, seed)
    rows: list[Row] = []

    def record(row: Row) -> None:
        rows.append(row)
        say(f"{row.name} {row.precision} c={row.concurrency or '-'}: {row.texts_per_s:.1f} texts/s, "
            f"p50 {row.percentile(50):.1f} ms")

    def served_rows(server: TritonServer, name: str, precision: str) -> None:
        served_run(server.grpc_url, corpus[:64], 8)  # warm-up
        for concurrency in CONCURRENCY:
            with MemorySampler(server.started.pid) as memory:
                seconds, latencies = served_run(server.grpc_url, corpus, concurrency)
            record(Row(name, precision, concurrency, len(corpus), seconds, latencies, memory.peak_mb))

    if only is Rows.CEILING:
        ceiling_section(repo, repository, output, docs, say)
        return
    if everything:
        say("transformers pipeline")
        pipe = pipeline("token-classification",
                        model=str(json.loads((repo / names.MANIFEST).read_text())["source"]),
                        aggregation_strategy="simple")
        pipe(corpus[:8])
        record(Row("pipeline", "fp32", None, len(corpus), *timed_calls(lambda b: pipe(b[0]), corpus, 1)))
        record(Row("pipeline batch 32", "fp32", None, len(corpus),
                   *timed_calls(lambda b: pipe(b, batch_size=32), corpus, 32)))
        del pipe

    openvino = everything or only is Rows.OPENVINO
    short = [text for text in corpus if len(text.split()) <= SHORT_WORDS]
    manifest = json.loads((repo / names.MANIFEST).read_text())
    refused = {name: entry["error"] for entry in manifest.get("refused", {}).values() for name in entry["config_names"]}
    left_out: dict[str, str] = {}
    for name, variant in SERVED:
        precision, config_name = variant.precision.value, variant.config_name or None
        wanted = (name == "served" and precision == "fp32") or everything or (
            only is Rows.BF16 and name == "served" and precision == "bf16") or (
            only is Rows.OPENVINO and name == "served openvino")
        if not wanted:
            continue
        if variant.config_name in refused:
            left_out[f"{name} {precision}"] = refused[variant.config_name]
            say(f"{name} {precision}: not measured, the export left it out: {refused[variant.config_name]}")
            continue
        if everything or only in (Rows.BF16, Rows.OPENVINO):
            local = LocalNer(repo / names.MODEL / "1" / variant.model_file, tokenizer_dir,
                             precision=variant.run_precision.value)
            local.predict(corpus[:32])
            for batch in IN_PROCESS_BATCHES:
                record(Row(f"{name.replace('served', 'in-process')} batch {batch}", precision, None, len(corpus),
                           *timed_calls(local.predict, corpus, batch)))
            del local
        with TritonServer(repo, free_ports(), config_name=config_name) as server:
            served_rows(server, name, precision)
            if openvino and (name, variant) in SHORT:
                for concurrency in SHORT_CONCURRENCY:
                    with MemorySampler(server.started.pid) as memory:
                        seconds, latencies = served_run(server.grpc_url, short, concurrency)
                    record(Row(f"{name} short", precision, concurrency, len(short), seconds, latencies,
                               memory.peak_mb))
            if precision == "fp32" and everything:
                tokenizer = load_vocabulary(tokenizer_dir).tokenizer
                for words in LENGTHS:
                    sample = length_sample(words)
                    tokens = sum(map(len, tokenizer(sample, add_special_tokens=False, verbose=False)["input_ids"]))
                    seconds, latencies = served_run(server.grpc_url, sample, 8)
                    record(Row(f"served fp32 c=8, words {words}", precision, 8, len(sample), seconds, latencies,
                               tokens=tokens))

    if openvino:
        name, variant = OPENVINO_BACKEND
        precision, config_name = variant.precision.value, variant.config_name
        if config_name in refused:
            left_out[f"{name} {precision}"] = refused[config_name]
            say(f"{name} {precision}: not measured, the export left it out: {refused[config_name]}")
        elif built_backend("openvino") is None:
            say("NVIDIA's openvino backend is not built (make backends): no rows for it")
        else:
            with TritonServer(repo, free_ports(), config_name=config_name) as server:
                served_rows(server, name, precision)

    if only in (Rows.BF16, Rows.OPENVINO):
        pass
    elif onnxruntime_backend() is None:
        say("NVIDIA's onnxruntime backend is not built (make backends): no rows for it")
    else:
        for threads in ORT_THREADS:
            ort_repo = onnxruntime_backend_repository(repo, repository.with_name(f"{repository.name}-onnxruntime"),
                                                      threads)
            with TritonServer(ort_repo, free_ports(), config_name=variants.GPU.config_name) as server:
                served_rows(server, ort_row_name(threads), "fp32")

    if everything:
        ceiling_section(repo, repository, output, docs, say)
        tail_section(repository, output, docs, say)

    checks = targets(rows) if everything else []
    if openvino:
        checks += openvino_targets(rows, manifest["proofs"])
    results = run_results(rows, checks, {"texts": len(corpus), "seed": seed, "words": "5-40, 3% of 600"}, left_out)
    print(markdown(results))
    (output / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    if everything:
        plot(rows, output / "bench.png")
        write_docs(output, docs)
        say(f"wrote {output / 'bench.json'}, {output / 'bench.png'} and {docs / 'bench-results.md'}")
    else:
        say(f"wrote {output / 'bench.json'}")


if __name__ == "__main__":
    app()
