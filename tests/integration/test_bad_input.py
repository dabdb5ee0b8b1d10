"""Bad input through the ensemble, over gRPC and HTTP: one table of cases, each with its expected outcome.

An outcome is either entities (equal to the transformers pipeline's) or a refusal: gRPC ``INVALID_ARGUMENT`` /
HTTP 400 with a message that names the problem. After every case the server is ready, a normal request still
gets the pipeline's answer, and no Python-backend stub has been restarted (same process ids).

Some refusals come from Triton itself (shapes, datatypes, payload framing), the others from our text step.
Two behaviours of Triton 2.51's front ends are recorded as they are, not as we would choose them: its HTTP
front end answers JSON it cannot parse with 500, and its gRPC front end ignores surplus ``raw_input_contents``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import struct
from dataclasses import dataclass, field

import grpc
import numpy as np
import psutil
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.executions import executions, since
from tests.parity import HARD_CASES, assert_same
from triton_ner.core import names
from triton_ner.export.configs import ServingOptions

SEED = "My name is Wolfgang and I live in Berlin"
LIMITS = ServingOptions()
MAX_BYTES = LIMITS.max_text_bytes
PROTOCOLS = ("grpc", "http")


@dataclass(frozen=True)
class Entities:
    """The request succeeds; each text's entities equal the pipeline's (``simple``)."""

    texts: tuple[str, ...]


@dataclass(frozen=True)
class Refused:
    """The request is refused: INVALID_ARGUMENT over gRPC, ``http_status`` over HTTP, ``message`` in the text."""

    message: str
    http_status: int = 400


@dataclass(frozen=True)
class Infer:
    """A request made with tritonclient, over either protocol."""

    texts: tuple[bytes | str, ...] | None = None
    array: np.ndarray | None = None  # sent as it is, with ``datatype``
    datatype: str = "BYTES"
    shape: tuple[int, ...] | None = None
    name: str = names.TEXT
    parameters: dict = field(default_factory=dict)
    extra_input: bool = False
    output: str = names.ENTITIES


@dataclass(frozen=True)
class RawGrpc:
    """A ``ModelInferRequest`` built by hand: the TEXT tensor's shape and its raw contents, framing included."""

    shape: tuple[int, ...]
    raw: tuple[bytes, ...]


@dataclass(frozen=True)
class RawHttp:
    """An HTTP body built by hand: the JSON header, binary data after it, and the header length it declares."""

    header: bytes
    binary: bytes = b""
    declared: int | None = None  # Inference-Header-Content-Length; None: the real length if binary, else none


def _framed(value: bytes) -> bytes:
    """A BYTES element as Triton frames it: 4-byte little-endian length, then the bytes."""
    return struct.pack("<I", len(value)) + value


def _http_json(inputs: list[dict], **extra) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


def _text_json(**fields) -> dict:
    return {"name": names.TEXT, "shape": [1], "datatype": "BYTES", **fields}


TOO_MANY_TOKENS = "Berlin is nice . " * 20000  # about 100,000 tokens: under the windows, over the tokens
LONG = " ".join(["Angela Merkel met Wolfgang in Berlin ."] * 150)  # 1,200 tokens, 3 windows at stride 128

# (id, request, expected outcome, protocols)
CASES: list[tuple[str, object, object, tuple[str, ...]]] = [
    # texts that are answered
    ("empty text", Infer(("",)), Entities(("",)), PROTOCOLS),
    ("whitespace texts", Infer((" ", "\n\t  \r\n")), Entities((" ", "\n\t  \r\n")), PROTOCOLS),
    ("empty beside a sentence", Infer(("", SEED, "   ")), Entities(("", SEED, "   ")), PROTOCOLS),
    ("NUL and control characters", Infer((HARD_CASES["control_chars"], "\x00\x01\x02\x1b[31m")),
     Entities((HARD_CASES["control_chars"], "\x00\x01\x02\x1b[31m")), PROTOCOLS),
    ("emoji", Infer((HARD_CASES["emoji"],)), Entities((HARD_CASES["emoji"],)), PROTOCOLS),
    ("CJK", Infer((HARD_CASES["cjk"],)), Entities((HARD_CASES["cjk"],)), PROTOCOLS),
    ("RTL", Infer((HARD_CASES["rtl"],)), Entities((HARD_CASES["rtl"],)), PROTOCOLS),
    ("zero-width and combining marks", Infer((HARD_CASES["zero_width"], HARD_CASES["combining_marks"])),
     Entities((HARD_CASES["zero_width"], HARD_CASES["combining_marks"])), PROTOCOLS),
    ("text of exactly the byte limit", Infer((SEED + " " + "x" * (MAX_BYTES - len(SEED) - 1),)),
     Entities((SEED + " " + "x" * (MAX_BYTES - len(SEED) - 1),)), PROTOCOLS),
    ("two-byte characters up to the byte limit", Infer(("é" * (MAX_BYTES // 2),)),
     Entities(("é" * (MAX_BYTES // 2),)), PROTOCOLS),
    # texts and sizes that are refused
    ("no text", Infer(()), Refused("TEXT is empty: send at least one text"), PROTOCOLS),
    ("invalid UTF-8", Infer((b"ok", b"\xff\xfe broken")), Refused("TEXT[1] is not valid UTF-8"), PROTOCOLS),
    ("UTF-8 surrogate", Infer((b"\xed\xa0\x80",)), Refused("TEXT[0] is not valid UTF-8"), PROTOCOLS),
    ("overlong UTF-8", Infer((SEED.encode(), b"\xc0\xaf")), Refused("TEXT[1] is not valid UTF-8"), PROTOCOLS),
    ("one byte over the limit", Infer((SEED, "x" * (MAX_BYTES + 1))),
     Refused(f"TEXT[1] is {MAX_BYTES + 1:,} bytes; the most per text is {MAX_BYTES:,} bytes"), PROTOCOLS),
    ("more texts than windows allowed", Infer(("Berlin",) * (LIMITS.max_batch_size + 1)),
     Refused(f"the texts need {LIMITS.max_batch_size + 1} windows of 512 tokens; the most per request is "
             f"{LIMITS.max_batch_size}"), PROTOCOLS),
    ("more windows than allowed", Infer(("Berlin " * 3000,), parameters={"stride": 508}),
     Refused(f"the most per request is {LIMITS.max_batch_size}: send fewer or shorter texts, or a smaller stride"),
     PROTOCOLS),
    ("more tokens than allowed", Infer((TOO_MANY_TOKENS,)),
     Refused(f"windows; the most per request is {LIMITS.max_tokens_per_request:,} tokens: send fewer"),
     PROTOCOLS),
    # tensors Triton refuses
    ("INT32 datatype", Infer(array=np.array([1, 2], dtype=np.int32), datatype="INT32"),
     Refused("inference input 'TEXT' data-type is 'INT32', but model 'ner' expects 'BYTES'"), PROTOCOLS),
    ("FP32 datatype", Infer(array=np.array([1.5], dtype=np.float32), datatype="FP32"),
     Refused("data-type is 'FP32', but model 'ner' expects 'BYTES'"), PROTOCOLS),
    ("rank 2", Infer(("a",), shape=(1, 1)), Refused("unexpected shape for input 'TEXT' for model 'ner'. "
                                                    "Expected [-1], got [1,1]"), PROTOCOLS),
    ("missing input", Infer(None), Refused("missing required input(s) ['TEXT']"), PROTOCOLS),
    ("misnamed input", Infer(("a",), name="text"), Refused("unexpected inference input 'text'"), PROTOCOLS),
    ("extra input", Infer(("a",), extra_input=True), Refused("Got input(s) ['FOO','TEXT']"), PROTOCOLS),
    ("unknown output", Infer(("a",), output="BOGUS"), Refused("unexpected inference output 'BOGUS'"), PROTOCOLS),
    # request parameters
    ("unknown parameter", Infer((SEED,), parameters={"foo": "bar"}),
     Refused("unknown request parameter 'foo'; the parameters are: aggregation_strategy, ignore_labels, stride"),
     PROTOCOLS),
    ("mistyped parameter name", Infer((SEED,), parameters={"aggregation-strategy": "first"}),
     Refused("unknown request parameter 'aggregation-strategy'"), PROTOCOLS),
    ("unknown strategy", Infer((SEED,), parameters={"aggregation_strategy": "bogus"}),
     Refused("aggregation_strategy 'bogus' is not one of: none, simple, first, average, max"), PROTOCOLS),
    ("empty strategy", Infer((SEED,), parameters={"aggregation_strategy": ""}),
     Refused("aggregation_strategy '' is not one of"), PROTOCOLS),
    ("strategy as a number", Infer((SEED,), parameters={"aggregation_strategy": 3}),
     Refused("aggregation_strategy 3 is not one of"), PROTOCOLS),
    ("strategy as a bool", Infer((SEED,), parameters={"aggregation_strategy": True}),
     Refused("aggregation_strategy True is not one of"), PROTOCOLS),
    ("negative stride", Infer((SEED,), parameters={"stride": -1}),
     Refused("stride -1 must be a whole number of tokens, 0 or more"), PROTOCOLS),
    ("stride not a number", Infer((SEED,), parameters={"stride": "abc"}),
     Refused("stride 'abc' must be a whole number of tokens"), PROTOCOLS),
    ("stride a superscript digit", Infer((SEED,), parameters={"stride": "²"}),
     Refused("stride '²' must be a whole number of tokens"), PROTOCOLS),
    ("stride a fraction", Infer((SEED,), parameters={"stride": 1.5}),
     Refused("stride 1.5 must be a whole number of tokens"), PROTOCOLS),
    ("stride a bool", Infer((SEED,), parameters={"stride": True}),
     Refused("stride True must be a whole number of tokens"), PROTOCOLS),
    ("stride as long as a window", Infer((SEED,), parameters={"stride": 510}),
     Refused("stride 510 must be at least 0 and less than 510"), PROTOCOLS),
    ("strategy none on a long text", Infer((SEED, LONG), parameters={"aggregation_strategy": "none"}),
     Refused("TEXT[1] is longer than the model's 512 tokens and aggregation_strategy 'none' cannot combine"),
     PROTOCOLS),
    ("ignore_labels unclosed JSON", Infer((SEED,), parameters={"ignore_labels": "[O"}),
     Refused("ignore_labels '[O' is not a JSON list of strings"), PROTOCOLS),
    ("ignore_labels a JSON object", Infer((SEED,), parameters={"ignore_labels": '{"O": 1}'}),
     Refused("must be a JSON list of strings or labels separated by commas"), PROTOCOLS),
    ("ignore_labels a list of numbers", Infer((SEED,), parameters={"ignore_labels": "[1, 2]"}),
     Refused("ignore_labels [1, 2] must be a JSON list of strings"), PROTOCOLS),
    ("ignore_labels a number", Infer((SEED,), parameters={"ignore_labels": 7}),
     Refused("ignore_labels 7 must be a JSON list of strings"), PROTOCOLS),
    ("HTTP parameter an object", RawHttp(_http_json([_text_json(data=["a"])], parameters={"stride": {"a": 1}})),
     Refused("parameter 'stride' has invalid type"), ("http",)),
    ("HTTP parameter a list", RawHttp(_http_json([_text_json(data=["a"])], parameters={"ignore_labels": ["O"]})),
     Refused("parameter 'ignore_labels' has invalid type"), ("http",)),
    # malformed payloads and shapes
    ("gRPC length prefix longer than the data", RawGrpc((1,), (struct.pack("<I", 100) + b"abc",)),
     Refused("expecting string of length 100 but only 3 bytes available"), ("grpc",)),
    ("gRPC truncated length prefix", RawGrpc((1,), (b"\x03\x00",)),
     Refused("incomplete string length indicator for inference input 'TEXT'"), ("grpc",)),
    ("gRPC elements fewer than the shape", RawGrpc((2,), (_framed(b"a"),)),
     Refused("expected 2 string elements for inference input 'TEXT' for model 'ner', got 1"), ("grpc",)),
    ("gRPC no contents", RawGrpc((1,), ()), Refused("unable to find data for input tensor 'TEXT'"), ("grpc",)),
    ("gRPC surplus contents (ignored by Triton)", RawGrpc((1,), (_framed(b"Berlin"), _framed(b"Paris"))),
     Entities(("Berlin",)), ("grpc",)),
    ("gRPC huge declared shape", RawGrpc((2 ** 40,), (_framed(b"a"),)),
     Refused("expected 1099511627776 string elements for inference input 'TEXT'"), ("grpc",)),
    ("gRPC huge two-dimensional shape", RawGrpc((2 ** 31, 2 ** 31), (_framed(b"a"),)),
     Refused("unexpected shape for input 'TEXT'"), ("grpc",)),
    ("gRPC negative shape", RawGrpc((-3,), (_framed(b"a"),)),
     Refused("unexpected number of string elements 1 for inference input 'TEXT'"), ("grpc",)),
    ("HTTP binary size larger than the data", RawHttp(_http_json([_text_json(parameters={"binary_data_size": 100})]),
                                                       _framed(b"Berlin")),
     Refused("unexpected size for input 'TEXT', expecting 90 additional bytes"), ("http",)),
    ("HTTP binary size smaller than the data", RawHttp(_http_json([_text_json(parameters={"binary_data_size": 3})]),
                                                        _framed(b"Berlin")),
     Refused("unexpected additional input data"), ("http",)),
    ("HTTP length prefix longer than the data", RawHttp(_http_json([_text_json(parameters={"binary_data_size": 7})]),
                                                         struct.pack("<I", 50) + b"abc"),
     Refused("expecting string of length 50 but only 3 bytes available"), ("http",)),
    ("HTTP header length past the body", RawHttp(_http_json([_text_json(data=["a"])]), declared=10_000),
     Refused("inference header size should be in range"), ("http",)),
    ("HTTP negative header length", RawHttp(_http_json([_text_json(data=["a"])]), b"xx", declared=-5),
     Refused("inference header size should be in range"), ("http",)),
    ("HTTP huge declared shape", RawHttp(_http_json([_text_json(shape=[10 ** 12], data=["a"])])),
     Refused("expected 1000000000000 string elements for inference input 'TEXT'"), ("http",)),
    ("HTTP rank 0", RawHttp(_http_json([_text_json(shape=[], data=["a"])])),
     Refused("Expected [-1], got []"), ("http",)),
    # Triton's HTTP front end answers JSON it cannot parse with 500; the message names the problem.
    ("HTTP malformed JSON", RawHttp(b'{"inputs": ['), Refused("failed to parse the request JSON buffer", 500),
     ("http",)),
    ("HTTP header length inside the JSON", RawHttp(_http_json([_text_json(data=["a"])]), b"xx", declared=5),
     Refused("failed to parse the request JSON buffer", 500), ("http",)),
    ("HTTP text as a JSON number", RawHttp(_http_json([_text_json(data=[5])])),
     Refused("Unable to parse JSON bytes array", 500), ("http",)),
]
CASE_IDS = [case[0] for case in CASES]
assert len(CASES) >= 40 and len(set(CASE_IDS)) == len(CASES)


def _stub_pids(triton) -> set[int]:
    """Process ids of the Python-backend stubs under the server: a restarted stub gets a new one."""
    server = psutil.Process(triton.process.pid)
    return {p.pid for p in server.children(recursive=True)
            if any("triton_python_backend_stub" in part for part in p.cmdline())}


@pytest.fixture(scope="module")
def stubs(triton):
    pids = _stub_pids(triton)
    assert len(pids) >= 3  # tokenizer, model and aggregation
    return pids


def _infer(protocol: str, url: str, request: Infer):
    module = grpcclient if protocol == "grpc" else httpclient
    inputs = []
    if request.texts is not None or request.array is not None:
        if request.array is not None:
            array = request.array
        else:
            array = np.array([t if isinstance(t, bytes) else t.encode() for t in request.texts], dtype=np.object_)
        shape = list(request.shape or array.shape)
        tensor = module.InferInput(request.name, shape, request.datatype)
        tensor.set_data_from_numpy(array.reshape(shape))
        inputs.append(tensor)
    if request.extra_input:
        extra = module.InferInput("FOO", [1], "BYTES")
        extra.set_data_from_numpy(np.array([b"a"], dtype=np.object_))
        inputs.append(extra)
    client = module.InferenceServerClient(url)
    try:
        result = client.infer(names.ENSEMBLE, inputs, outputs=[module.InferRequestedOutput(request.output)],
                              parameters=request.parameters or None)
        return "ok", [json.loads(d) for d in result.as_numpy(names.ENTITIES)]
    except InferenceServerException as error:
        return str(error.status()).removeprefix("StatusCode."), error.message()
    finally:
        client.close()


def _raw_grpc(url: str, request: RawGrpc):
    message = service_pb2.ModelInferRequest(model_name=names.ENSEMBLE)
    tensor = message.inputs.add(name=names.TEXT, datatype="BYTES")
    tensor.shape.extend(request.shape)
    message.raw_input_contents.extend(request.raw)
    with grpc.insecure_channel(url) as channel:
        try:
            answer = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(message, timeout=60)
        except grpc.RpcError as error:
            return error.code().name, error.details()
    raw = answer.raw_output_contents[0]
    documents, at = [], 0
    while at < len(raw):
        (size,) = struct.unpack_from("<I", raw, at)
        documents.append(json.loads(raw[at + 4:at + 4 + size]))
        at += 4 + size
    return "ok", documents


def _raw_http(url: str, request: RawHttp):
    headers = {"Content-Type": "application/octet-stream"}
    declared = request.declared if request.declared is not None else (len(request.header) if request.binary
                                                                        else None)
    if declared is not None:
        headers["Inference-Header-Content-Length"] = str(declared)
    connection = http.client.HTTPConnection(url, timeout=60)
    try:
        connection.request("POST", f"/v2/models/{names.ENSEMBLE}/infer", body=request.header + request.binary,
                           headers=headers)
        answer = connection.getresponse()
        body = json.loads(answer.read())
    finally:
        connection.close()
    if answer.status != 200:
        return str(answer.status), body["error"]
    return "ok", [json.loads(d) for d in body["outputs"][0]["data"]]


def send(protocol: str, triton, request) -> tuple[str, object]:
    """``("ok", entities per text)`` or ``(status, message)``: gRPC status name or HTTP status code."""
    url = triton.grpc_url if protocol == "grpc" else triton.http_url
    if isinstance(request, RawGrpc):
        return _raw_grpc(url, request)
    if isinstance(request, RawHttp):
        return _raw_http(url, request)
    return _infer(protocol, url, request)


def assert_outcome(protocol: str, outcome: tuple[str, object], expected, pipe) -> None:
    status, detail = outcome
    if isinstance(expected, Refused):
        want = "INVALID_ARGUMENT" if protocol == "grpc" else str(expected.http_status)
        assert status == want, (status, detail)
        assert expected.message in detail, detail
        return
    assert status == "ok", detail
    assert len(detail) == len(expected.texts)
    for text, got in zip(expected.texts, detail, strict=True):
        assert_same(got, pipe(text), text[:40])


def assert_still_serving(triton, stubs: set[int], pipe) -> None:
    """Ready, a normal request gets the pipeline's answer, and every stub is the one that started."""
    for protocol in PROTOCOLS:
        module = grpcclient if protocol == "grpc" else httpclient
        client = module.InferenceServerClient(triton.grpc_url if protocol == "grpc" else triton.http_url)
        assert client.is_server_ready() and client.is_model_ready(names.ENSEMBLE)
        client.close()
        assert_outcome(protocol, send(protocol, triton, Infer((SEED,))), Entities((SEED,)), pipe)
    assert _stub_pids(triton) == stubs


@pytest.mark.parametrize(("protocol", "request_", "expected"), [
    pytest.param(protocol, request, expected, id=f"{name}-{protocol}")
    for name, request, expected, protocols in CASES for protocol in protocols])
def test_bad_input(protocol, request_, expected, triton, stubs, pipelines):
    pipe = pipelines("simple")
    assert_outcome(protocol, send(protocol, triton, request_), expected, pipe)
    assert_still_serving(triton, stubs, pipe)


def test_each_case_goes_over_every_protocol_that_can_carry_it(capsys):
    """A request made with tritonclient is tried over gRPC and HTTP, a hand-built one over its own protocol, and
    each protocol meets both outcomes; the counts are printed."""
    carriers = {Infer: PROTOCOLS, RawGrpc: ("grpc",), RawHttp: ("http",)}
    assert [name for name, request, _, protocols in CASES if protocols != carriers[type(request)]] == []
    for protocol in PROTOCOLS:
        assert {type(expected) for _, _, expected, protocols in CASES if protocol in protocols} == {Entities, Refused}
    pairs = sum(len(case[3]) for case in CASES)
    with capsys.disabled():
        print(f"\nbad input: {len(CASES)} cases, {pairs} case-protocol pairs "
              f"({sum(isinstance(c[2], Refused) for c in CASES)} refusals, "
              f"{sum(isinstance(c[2], Entities) for c in CASES)} answers)")


async def _mixed(url: str, valid: list[str], invalid: list[bytes]) -> list:
    client = grpcaio.InferenceServerClient(url)

    async def one(value: bytes):
        tensor = grpcaio.InferInput(names.TEXT, [1], "BYTES")
        tensor.set_data_from_numpy(np.array([value], dtype=np.object_))
        try:
            result = await client.infer(names.ENSEMBLE, [tensor])
            return json.loads(result.as_numpy(names.ENTITIES)[0])
        except InferenceServerException as error:
            return error

    try:
        values = [v for pair in zip([t.encode() for t in valid], invalid, strict=True) for v in pair]
        return await asyncio.gather(*(one(v) for v in values))
    finally:
        await client.close()


async def _model_batch(url: str, rows: list[np.ndarray]) -> list:
    client = grpcaio.InferenceServerClient(url)

    async def one(ids: np.ndarray):
        tensors = [grpcaio.InferInput(name, list(ids.shape), "INT64") for name in (names.INPUT_IDS,
                                                                                   names.ATTENTION_MASK)]
        tensors[0].set_data_from_numpy(ids)
        tensors[1].set_data_from_numpy(np.ones_like(ids))
        try:
            return (await client.infer(names.MODEL, tensors)).as_numpy(names.LOGITS)
        except InferenceServerException as error:
            return error

    try:
        return await asyncio.gather(*(one(r) for r in rows))
    finally:
        await client.close()


def test_invalid_and_valid_requests_mixed_in_one_batch(triton, stubs, pipelines, parity_texts):
    """Sent at once, so the dynamic batcher puts them together (Triton's statistics show that requests shared
    executions): each gets its own answer or its own refusal. These refusals are the steps' input checks, made
    per request before any pooling; a failure of the pooled model run itself is
    test_variants.py's ``test_a_request_that_fails_the_pooled_run_fails_alone_in_its_dynamic_batch``."""
    pipe = pipelines("simple")
    valid = parity_texts[:16]
    before = executions(triton.grpc_url, names.TEXT_STEP)
    results = asyncio.run(_mixed(triton.grpc_url, valid, [b"\xff bad"] * 16))
    window = since(before, triton.grpc_url, names.TEXT_STEP, 32)
    assert window.inferences == 32 and window.shared(), window
    for text, got in zip(valid, results[0::2], strict=True):
        assert_same(got, pipe(text))
    for error in results[1::2]:
        assert error.status() == "StatusCode.INVALID_ARGUMENT" and "TEXT[0] is not valid UTF-8" in error.message()
    # Straight to the model step: token ids out of the vocabulary beside valid rows, refused by its input checks.
    good = np.array([[1, 5, 6, 2]], dtype=np.int64)
    bad = np.array([[101, 10 ** 9, 102, 0]], dtype=np.int64)
    before = executions(triton.grpc_url, names.MODEL)
    answers = asyncio.run(_model_batch(triton.grpc_url, [good, bad] * 8))
    window = since(before, triton.grpc_url, names.MODEL, 16)
    assert window.inferences == 16 and window.shared(), window
    for answer in answers[0::2]:
        assert isinstance(answer, np.ndarray) and answer.shape[:2] == (1, 4)
        np.testing.assert_allclose(answer, answers[0], atol=1e-5)
    for error in answers[1::2]:
        assert error.status() == "StatusCode.INVALID_ARGUMENT" and "token ids are 0 to" in error.message()
    assert_still_serving(triton, stubs, pipe)
