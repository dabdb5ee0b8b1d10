"""A supervised Triton Inference Server: the ``tritonserver`` binary shipped in the nvidia-pytriton wheel, or an
installed one (NVIDIA's image, the project's containers).

The wheel carries Triton 2.51 (NGC 24.10) with its Python backend but no ONNX Runtime or LibTorch backend, so on
CPU every model of the repository runs in the Python backend; NVIDIA's ``onnxruntime`` and ``pytorch`` backends
of the same release are added when ``make backends`` has built them. One job per module:

- :mod:`.launcher`: :class:`TritonServer`, the server's lifecycle (start, wait for readiness, drain, stop);
- :mod:`.preflight`: the export complete and the backends it needs built, before a start;
- :mod:`.runtime`: where Triton and NVIDIA's backends come from, the backend folder, the stubs' PATH and libraries;
- :mod:`.environment`: the steps' Python, probed and refused in one line where the stub cannot run it;
- :mod:`.wakeup`: the scheduler wake-up fix loaded into tritonserver (a lost wake-up costs 2 ms, not 500);
- :mod:`.arguments`: ports, the admin key of the restricted APIs, gRPC TLS;
- :mod:`.repository`: Triton's model repository API (reload, drain, unload);
- :mod:`.processes`: the stub processes, from /proc;
- :mod:`.supervisor`: restores a model whose stub died (Triton 2.51 does not);
- :mod:`.watchdog`: stops the server when the launcher is gone;
- :mod:`.logs`: Triton's error lines, and why a start failed.
"""

from triton_ner.server.arguments import (ADMIN_HEADER, GRPC_RESTRICTED_PREFIX, RESTRICTED_APIS, GrpcTls, Ports,
                                         admin_headers, free_ports, restricted_api_args)
from triton_ner.server.launcher import EXIT_TIMEOUT, START_TIMEOUT, TritonServer
from triton_ner.server.logs import ServerError, start_failure
from triton_ner.server.preflight import backends_needed, check_repository
from triton_ner.server.processes import SHM_DIR, SHM_PREFIX, child_processes, stub_processes
from triton_ner.server.installation import (BUILT_BACKENDS, backend_directory, built_backend, onnxruntime_backend,
                                       server_environment, triton_dirs)
from triton_ner.server.supervisor import RELOAD_PARAMETER

__all__ = ["ADMIN_HEADER", "BUILT_BACKENDS", "EXIT_TIMEOUT", "GRPC_RESTRICTED_PREFIX", "RELOAD_PARAMETER",
           "RESTRICTED_APIS", "SHM_DIR", "SHM_PREFIX", "START_TIMEOUT", "GrpcTls", "Ports", "ServerError",
           "TritonServer", "admin_headers", "backend_directory", "backends_needed", "built_backend",
           "check_repository", "child_processes", "free_ports", "onnxruntime_backend", "restricted_api_args",
           "server_environment", "start_failure", "stub_processes", "triton_dirs"]
