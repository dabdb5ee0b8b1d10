#!/bin/sh
# The server of both serving images: tritonserver on the exported repository, with the configs that TRITON_CONFIG
# names (the GPU image: gpu, or gpu_torchscript for the TorchScript model in NVIDIA's pytorch backend; the CPU
# image: empty for config.pbtxt, or int8, torchscript, bf16). The model repository, model config, shared memory,
# logging and trace APIs are behind the header "admin-key: $NER_ADMIN_KEY" (gRPC metadata
# "triton-grpc-protocol-admin-key"), as ner-serve --admin-key puts them. More arguments go to tritonserver.
set -eu
repository=${MODEL_REPOSITORY:-/models}
config=${TRITON_CONFIG:-}
python3 /opt/ner/check_repository.py "$repository" ${config:+"$config"} || exit 1
if [ -z "${NER_ADMIN_KEY:-}" ]; then
    echo "error: NER_ADMIN_KEY is empty: set it to the key that opens Triton's restricted APIs" >&2
    exit 1
fi
restricted=model-repository,model-config,shared-memory,logging,trace  # triton_ner.server.RESTRICTED_APIS
exec tritonserver --model-repository="$repository" ${config:+--model-config-name="$config"} \
    --exit-on-error=true --strict-readiness=true \
    --metrics-config=summary_latencies=true \
    --http-restricted-api="$restricted:admin-key=$NER_ADMIN_KEY" \
    --grpc-restricted-protocol="$restricted:admin-key=$NER_ADMIN_KEY" \
    "$@"
