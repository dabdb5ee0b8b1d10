"""The ``gpu_torchscript`` variant loaded by NVIDIA's own ``pytorch`` (LibTorch) backend in the real local Triton.

The backend (r24.10, the server's release) is built from source against this environment's PyTorch by
``backends/build-pytorch.sh`` (NVIDIA's 24.10 image links its own PyTorch 2.5). The config goes through
``export.configs.on_cpu`` and nothing else: ``input_ids__0``/``attention_mask__1``/``logits__0``, dims,
``DISABLE_OPTIMIZED_EXECUTION``, dynamic batching, queue policy and warmup load as written, and the text step calls
the model step in length groups as on a GPU. The traced file carries no device constant, so the same file runs on
``cuda:N`` there; that last step needs a GPU.
"""

from __future__ import annotations

import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from tests.backends import ensure_built
from tests.parity import HARD_CASES, assert_same, text_with_tokens
from triton_ner.client import NerClient
from triton_ner.core import names
from triton_ner.core.errors import ServerError
from triton_ner.core.variants import Format, Precision, Target
from triton_ner.export.assemble import ExportPlan, build
from triton_ner.export.configs import on_cpu, render
from triton_ner.export.source import Checkpoint
from triton_ner.server.arguments import free_ports
from triton_ner.server.installation import built_backend
from triton_ner.server.launcher import TritonServer

CONFIG_NAME = "gpu_torchscript"


@pytest.fixture(scope="module")
def repository(checkpoint, tmp_path_factory):
    """The fixture model exported in both formats, its gpu_torchscript configs switched with on_cpu."""
    output = tmp_path_factory.mktemp("nvidia-pytorch") / "repo"
    build(Checkpoint(checkpoint, "fixture"), output,
          ExportPlan(frozenset({Format.ONNX, Format.TORCHSCRIPT}), frozenset({Precision.FP32}), Target.BOTH),
          log=lambda _: None)
    for path in output.glob(f"*/configs/{CONFIG_NAME}.pbtxt"):
        path.write_text(render(on_cpu(text_format.Parse(path.read_text(), mc.ModelConfig()))))
    return output


@pytest.mark.slow
def test_gpu_torchscript_loads_in_nvidias_pytorch_backend_and_equals_the_pipeline(repository, checkpoint,
                                                                                  parity_texts, pipelines):
    from transformers import AutoTokenizer

    ensure_built("pytorch", lambda: built_backend("pytorch"))
    long_text = text_with_tokens(AutoTokenizer.from_pretrained(checkpoint), 1200, seed=5)
    texts = parity_texts[:40] + list(HARD_CASES.values())
    with TritonServer(repository, free_ports(), config_name=CONFIG_NAME) as server:
        raw = grpcclient.InferenceServerClient(server.grpc_url)
        loaded = raw.get_model_config(names.MODEL).config
        raw.close()
        with NerClient(server.grpc_url, batch_size=4, concurrency=4) as client:
            served = client.predict(texts + [long_text])
    assert (loaded.backend, loaded.default_model_filename) == ("pytorch", "model.pt")
    assert [g.kind for g in loaded.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
    assert loaded.parameters["DISABLE_OPTIMIZED_EXECUTION"].string_value == "true"
    pipe = pipelines("simple")
    for text, got in zip(texts, served[:-1], strict=True):
        assert_same(got, pipe(text), text)
    assert_same(served[-1], pipe(long_text, stride=128), "1,200 tokens")


def test_a_config_needing_the_pytorch_backend_is_refused_in_one_line_when_it_is_not_built(repository, monkeypatch):
    from triton_ner.server import installation

    monkeypatch.setattr(installation, "built_backend", lambda name: None)
    with pytest.raises(ServerError, match=rf"^ner_model/configs/{CONFIG_NAME}.pbtxt needs NVIDIA's pytorch backend, "
                                          r"which is not built: run `make backends`$"):
        TritonServer(repository, free_ports(), config_name=CONFIG_NAME).start()

