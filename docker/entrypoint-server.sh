#!/bin/sh
# The server of both serving images: ner-serve, which runs the image's own tritonserver on the exported repository
# (MODEL_REPOSITORY) with the configs that TRITON_CONFIG names (the GPU image: gpu, or gpu_torchscript for the
# TorchScript model in NVIDIA's pytorch backend; the CPU image: empty for config.pbtxt, int8, openvino_bf16,
# openvino_int8, or auto: openvino_bf16 on a CPU with BF16 instructions when exported), and supervises it:
# it refuses an incomplete export in one line, restores a model whose Python-backend stub died, and on SIGTERM
# drains the ensemble before Triton stops. The model repository, model config, shared memory, logging and trace
# APIs are behind the header "admin-key: $NER_ADMIN_KEY" (gRPC metadata "triton-grpc-protocol-admin-key").
# The arguments go to ner-serve (--http-port, --exit-timeout-secs, ...); after --, to tritonserver.
set -eu
if [ -z "${NER_ADMIN_KEY:-}" ]; then
    echo "error: NER_ADMIN_KEY is empty: set it to the key that opens Triton's restricted APIs" >&2
    exit 1
fi
config=${TRITON_CONFIG:-}
exec ner-serve --tritonserver=tritonserver --model-repository="${MODEL_REPOSITORY:-/models}" \
    ${config:+--config-name="$config"} "$@"
