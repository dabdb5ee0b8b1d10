"""The serving path's stages (``triton_ner_loadtest.stages``): each staged copy of the repository is served, its
text step does its work up to its stage and no further, and answers ``[]`` for each text."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.executions import executions
from triton_ner.core import names
from triton_ner.server.arguments import free_ports
from triton_ner.server.launcher import TritonServer
from triton_ner_loadtest.stages import STAGES, write_stage

SENTENCES = ["Angela Merkel met Emmanuel Macron in Paris on Monday.", "Airbus and the European Union in Berlin."]
NOT_UTF8 = b"\xff\xfe broken"
LONG = " ".join(["Paris"] * 2000)  # several windows: refused with aggregation_strategy none when tokenized


def infer(url: str, texts: list[bytes], **parameters) -> list | str:
    """The request's entities per text, or its error's message."""
    client = grpcclient.InferenceServerClient(url)
    tensor = grpcclient.InferInput(names.TEXT, [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=np.object_))
    try:
        found = client.infer(names.ENSEMBLE, [tensor], parameters=parameters or None).as_numpy(names.ENTITIES)
        return [value.decode() for value in found.reshape(-1)]
    except InferenceServerException as error:
        return error.message()
    finally:
        client.close()


@pytest.fixture(scope="module")
def stage_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("stages")


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_does_its_work_and_no_more(stage, repository, stage_folder, pipelines):
    assert any(pipelines("simple")(text) for text in SENTENCES), "no entity to leave out: `[]` would prove nothing"
    with TritonServer(write_stage(repository, stage, stage_folder), free_ports()) as server:
        before = executions(server.grpc_url, names.MODEL)
        assert infer(server.grpc_url, [s.encode() for s in SENTENCES]) == ["[]", "[]"]
        ran = executions(server.grpc_url, names.MODEL) - before
        unreadable = infer(server.grpc_url, [b"ok", NOT_UTF8])
        too_long = infer(server.grpc_url, [LONG.encode()], aggregation_strategy="none")
    # Each stage does what the one before it did, and one more thing: reading refuses a text that is not UTF-8,
    # tokenizing refuses a text too long for 'none', the model step runs only from the model stage on.
    reads, tokenizes, calls = (STAGES.index(stage) >= STAGES.index(s) for s in ("read", "tokenize", "model"))
    assert ("TEXT[1] is not valid UTF-8" in unreadable) == reads, unreadable
    assert ("aggregation_strategy 'none' cannot combine windows" in too_long) == tokenizes, too_long
    assert (ran.inferences > 0) == calls, ran

