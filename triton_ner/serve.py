"""``ner-serve``: run Triton on a model repository, supervised, until Ctrl-C or SIGTERM: the nvidia-pytriton wheel's
``tritonserver`` here, the image's own in the containers (``docker/entrypoint-server.sh``)."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from triton_ner import cli
from triton_ner.core import names, variants
from triton_ner.core.errors import ServerError
from triton_ner.server.arguments import RESTRICTED_APIS, GrpcTls, Ports
from triton_ner.server.launcher import EXIT_TIMEOUT, START_TIMEOUT, TritonServer

AUTO = "auto"


class _Stop(Exception):
    """SIGTERM or SIGINT arrived."""


def auto_config_name(repository: Path, cuda: bool, cpu_flags: set[str]) -> str | None:
    """The config name ``--config-name auto`` serves from what ``repository``'s export wrote
    (:func:`triton_ner.core.variants.auto`); ``None``: ``config.pbtxt``."""
    return variants.auto({path.stem for path in (repository / names.MODEL / "configs").glob("*.pbtxt")}, cuda,
                         cpu_flags)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@dataclass(frozen=True)
class ServeOptions:
    """How ``ner-serve`` runs Triton; each field is a command-line option (its metadata)."""

    model_repository: Path = field(default=cli.REPOSITORY, metadata={"help": "Exported model repository."})
    http_port: int = field(default=Ports.http, metadata={"help": "HTTP/REST port."})
    grpc_port: int = field(default=Ports.grpc, metadata={"help": "gRPC port."})
    metrics_port: int = field(default=Ports.metrics, metadata={"help": "Prometheus metrics port."})
    config_name: str | None = field(default=None, metadata={"help": (
        f"Variant to serve, if exported: {', '.join(variants.CONFIG_NAMES)}; '{AUTO}': the first exported of "
        f"{', '.join(v.config_name for v in variants.AUTO_ORDER)} that this machine has what it needs for; "
        "default: config.pbtxt (ONNX FP32).")})
    quiet: bool = field(default=False, metadata={"help": "Do not print the server's log."})
    admin_key: str | None = field(default=None, metadata={
        "envvar": "NER_ADMIN_KEY", "show_default": False,
        "help": f"Put Triton's {', '.join(RESTRICTED_APIS)} APIs behind this key: callers send the header "
                "'admin-key: KEY' (gRPC: 'triton-grpc-protocol-admin-key'). Inference, health and metadata stay "
                "open."})
    grpc_use_ssl: bool = field(default=False, metadata={
        "help": "Serve gRPC over TLS (needs --grpc-server-cert and --grpc-server-key)."})
    grpc_server_cert: Path | None = field(default=None, metadata={"help": "PEM certificate of the gRPC server."})
    grpc_server_key: Path | None = field(default=None, metadata={"help": "PEM private key of the gRPC server."})
    grpc_root_cert: Path | None = field(default=None, metadata={
        "help": "PEM CA that signs client certificates (mutual TLS)."})
    grpc_use_ssl_mutual: bool = field(default=False, metadata={
        "help": "Mutual TLS: require a client certificate signed by --grpc-root-cert (implies --grpc-use-ssl)."})
    exit_timeout: int = field(default=EXIT_TIMEOUT, metadata={
        "flags": ("--exit-timeout", "--exit-timeout-secs"), "min": 0,
        "help": "Seconds in-flight requests may take to finish after Ctrl-C or SIGTERM; a second Ctrl-C stops at "
                "once."})
    start_timeout: float = field(default=START_TIMEOUT, metadata={
        "min": 1, "help": "Seconds the models may take to load before the start counts as failed."})
    tritonserver: str | None = field(default=None, metadata={
        "envvar": "TRITONSERVER", "show_default": False,
        "help": "An installed tritonserver to run (path or name on PATH; NVIDIA's image: "
                "/opt/tritonserver/bin/tritonserver), with Triton's default backend folder; default: the "
                "nvidia-pytriton wheel's."})
    steps_python: Path | None = field(default=None, metadata={
        "envvar": "NER_STEPS_PYTHON", "show_default": False,
        "help": "The python3 of the environment the Python-backend steps run in (it needs the project's steps: "
                "pip install '.[steps]', numpy below 2 for this Triton); default: this command's own Python, or "
                "with --tritonserver the python3 first on PATH."})

    def grpc_tls(self) -> GrpcTls | None:
        """The gRPC TLS settings, or None for plain gRPC.

        Raises:
            ValueError: TLS without a certificate and its key.
        """
        if not (self.grpc_use_ssl or self.grpc_use_ssl_mutual):
            return None
        if self.grpc_server_cert is None or self.grpc_server_key is None:
            raise ValueError("--grpc-use-ssl needs --grpc-server-cert and --grpc-server-key")
        return GrpcTls(self.grpc_server_cert, self.grpc_server_key, self.grpc_root_cert, self.grpc_use_ssl_mutual)

    def server(self, config_name: str | None, triton_args: tuple[str, ...]) -> TritonServer:
        """The supervised server these options describe, serving ``config_name``."""
        return TritonServer(self.model_repository, Ports(self.http_port, self.grpc_port, self.metrics_port),
                            echo=not self.quiet, config_name=config_name, admin_key=self.admin_key or None,
                            grpc_tls=self.grpc_tls(), exit_timeout=self.exit_timeout,
                            tritonserver=self.tritonserver, extra_args=triton_args, steps_python=self.steps_python)


app = cli.command()


@app.command()
@cli.dataclass_options(ServeOptions, "options")
def main(
    triton_args: Annotated[list[str] | None, typer.Argument(
        metavar="[-- TRITONSERVER_ARGS]", show_default=False,
        help="More tritonserver arguments, after --.")] = None,
    options: ServeOptions = ServeOptions(),
) -> None:
    """Start Triton on the repository, restore a model whose Python-backend stub died, and wait until stopped."""
    config_name = options.config_name
    if config_name == AUTO:
        config_name = auto_config_name(options.model_repository, _cuda_available(), variants.cpu_flags())
        cli.say("serve", f"auto: serving {config_name or 'config'}.pbtxt")
    with cli.one_line_errors("serve", ValueError, code=cli.USAGE):
        server = options.server(config_name, tuple(triton_args or ()))
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:  # a second signal while in-flight requests finish: no more waiting, and no exception in stop()
            cli.say("serve", f"{signal.Signals(signum).name} again, killing the server")
            server.kill()
            return
        stopping = True
        raise _Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.start(options.start_timeout)
        cli.say("serve", f"ready: gRPC {server.grpc_url}, HTTP {server.http_url}, "
                f"metrics localhost:{options.metrics_port}/metrics (Ctrl-C stops)")
        # Poll rather than Popen.wait(): a signal handler must not interrupt a wait that holds its lock.
        while server.started.poll() is None:
            time.sleep(0.5)
        code = server.started.returncode
        cli.say("serve", f"tritonserver exited with code {code}")
    except ServerError as error:
        cli.say("serve", f"error: {error}")
        code = cli.FAILED
    except _Stop as signal_name:
        cli.say("serve", f"{signal_name}, stopping the server")
        code = 0
    finally:
        server.stop()
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
