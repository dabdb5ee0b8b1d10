"""A supervised Triton Inference Server: the ``tritonserver`` binary shipped in the nvidia-pytriton wheel, or an
installed one (NVIDIA's image, the project's containers).

The wheel carries Triton 2.51 (NGC 24.10) with its Python backend but no ONNX Runtime or LibTorch backend, so on
CPU every model of the repository runs in the Python backend; NVIDIA's ``onnxruntime``, ``pytorch`` and
``openvino`` backends of the same release are added when ``make backends`` has built them. One job per module,
each imported by its own name (this package imports none of them, so that ``python -m`` runs any of them once):

- :mod:`.launcher`: :class:`~.launcher.TritonServer`, the server's lifecycle (start, wait for readiness, drain,
  stop);
- :mod:`.preflight`: the export complete and the backends it needs built, before a start;
- :mod:`.installation`: where Triton and NVIDIA's backends come from, the backend folder, the stubs' PATH and
  libraries;
- :mod:`.environment`: the steps' Python, probed and refused in one line where the stub cannot run it;
- :mod:`.wakeup`: the scheduler wake-up fix loaded into tritonserver (a lost wake-up costs 2 ms, not 500);
- :mod:`.arguments`: ports, the admin key of the restricted APIs, gRPC TLS;
- :mod:`.repository_api`: Triton's model repository API (reload, drain, unload);
- :mod:`.processes`: the stub processes, from /proc;
- :mod:`.supervisor`: restores a model whose stub died (Triton 2.51 does not);
- :mod:`.watchdog`: stops the server when the launcher is gone;
- :mod:`.logs`: Triton's error lines, and why a start failed.
"""
