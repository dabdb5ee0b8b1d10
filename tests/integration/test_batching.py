"""Requests of different lengths are batched together at the model step, and padding changes no result.

On the full-size benchmark model (random weights, the real model's compute): batches form when the model step
is the slowest, as in production. The tiny fixture model answers faster than the tokenizer can feed it.
"""

import random
import threading

import pytest
import tritonclient.grpc as grpcclient

from tests.parity import assert_same
from triton_ner.client import ClientError, NerClient
from triton_ner.core import names
from triton_ner.export import corpus

CLIENTS = 16
REQUESTS_PER_CLIENT = 6


def _mixed_texts(count: int, seed: int) -> list[str]:
    """Single sentences to paragraphs of 8 sentences (about 10 to 150 tokens), shuffled."""
    rng = random.Random(seed)
    return [" ".join(corpus.texts(rng.choice([1, 1, 2, 4, 8]), seed=seed * 1000 + i)) for i in range(count)]


def _model_counts(url: str) -> tuple[int, int]:
    client = grpcclient.InferenceServerClient(url)
    stats = client.get_inference_statistics(names.MODEL).model_stats[0]
    client.close()
    return stats.inference_count, stats.execution_count


@pytest.mark.slow
def test_sixteen_clients_with_mixed_lengths_are_batched_and_exact(server_of, pipeline_of):
    triton = server_of("benchmark")
    texts = _mixed_texts(CLIENTS * REQUESTS_PER_CLIENT, seed=3)
    pipe = pipeline_of("benchmark")
    want = [pipe(text) for text in texts]
    got: dict[int, list] = {}
    refused: list[str] = []
    barrier = threading.Barrier(CLIENTS)

    def user(k: int) -> None:
        with NerClient(triton.grpc_url) as client:
            barrier.wait()
            for i in range(k, len(texts), CLIENTS):
                got[i] = client.predict(texts[i])
                if i % 10 == 0:  # bad requests among the good ones change nothing for the others
                    try:
                        client.predict(texts[i], aggregation_strategy="wrong")
                    except ClientError as error:
                        refused.append(str(error))

    inferences, executions = _model_counts(triton.grpc_url)
    threads = [threading.Thread(target=user, args=(k,)) for k in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    inferences, executions = (after - before for after, before in zip(_model_counts(triton.grpc_url),
                                                                          (inferences, executions), strict=True))
    average_batch = inferences / executions
    print(f"model step: {inferences} windows in {executions} executions, average batch {average_batch:.1f}")
    assert inferences == len(texts)  # every text here fits one window
    assert average_batch > 1.5  # batches form; two model-step processes (cpu_instances) share the 16 clients
    assert len(refused) == len(range(0, len(texts), 10))
    for i, text in enumerate(texts):
        assert_same(got[i], want[i], text)
