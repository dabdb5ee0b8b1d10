"""``ner-serve``: run Triton on a model repository, supervised, until Ctrl-C or SIGTERM: the nvidia-pytriton wheel's
``tritonserver`` here, the image's own in the containers (``docker/entrypoint-server.sh``)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from triton_ner import cli
from triton_ner.core import names, variants
from triton_ner.server.arguments import RESTRICTED_APIS, GrpcTls, Ports
from triton_ner.server.launcher import EXIT_TIMEOUT, START_TIMEOUT, TritonServer
from triton_ner.server.logs import ServerError

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


app = cli.command()


@app.command()
def main(
    model_repository: Annotated[Path, typer.Option(help="Exported model repository.")] = cli.REPOSITORY,
    http_port: Annotated[int, typer.Option(help="HTTP/REST port.")] = Ports.http,
    grpc_port: Annotated[int, typer.Option(help="gRPC port.")] = Ports.grpc,
    metrics_port: Annotated[int, typer.Option(help="Prometheus metrics port.")] = Ports.metrics,
    config_name: Annotated[str | None, typer.Option(help=(
        f"Variant to serve, if exported: {', '.join(variants.CONFIG_NAMES)}; 'auto': the first exported of "
        f"{', '.join(v.config_name for v in variants.AUTO_ORDER)} that this machine has what it needs for; "
        "default: config.pbtxt (ONNX FP32)."))] = None,
    quiet: Annotated[bool, typer.Option(help="Do not print the server's log.")] = False,
    admin_key: Annotated[str | None, typer.Option(
        envvar="NER_ADMIN_KEY", show_default=False,
        help=f"Put Triton's {', '.join(RESTRICTED_APIS)} APIs behind this key: callers send the header "
             "'admin-key: KEY' (gRPC: 'triton-grpc-protocol-admin-key'). Inference, health and metadata stay "
             "open.")] = None,
    grpc_use_ssl: Annotated[bool, typer.Option(help="Serve gRPC over TLS (needs --grpc-server-cert and "
                                                    "--grpc-server-key).")] = False,
    grpc_server_cert: Annotated[Path | None, typer.Option(help="PEM certificate of the gRPC server.")] = None,
    grpc_server_key: Annotated[Path | None, typer.Option(help="PEM private key of the gRPC server.")] = None,
    grpc_root_cert: Annotated[Path | None, typer.Option(help="PEM CA that signs client certificates (mutual "
                                                            "TLS).")] = None,
    grpc_use_ssl_mutual: Annotated[bool, typer.Option(help="Mutual TLS: require a client certificate signed by "
                                                           "--grpc-root-cert (implies --grpc-use-ssl).")] = False,
    exit_timeout: Annotated[int, typer.Option(
        "--exit-timeout", "--exit-timeout-secs", min=0,
        help="Seconds in-flight requests may take to finish after Ctrl-C or SIGTERM; a second Ctrl-C stops at "
             "once.")] = EXIT_TIMEOUT,
    start_timeout: Annotated[float, typer.Option(min=1, help="Seconds the models may take to load before the "
                                                             "start counts as failed.")] = START_TIMEOUT,
    tritonserver: Annotated[str | None, typer.Option(
        envvar="TRITONSERVER", show_default=False,
        help="An installed tritonserver to run (path or name on PATH; NVIDIA's image: "
             "/opt/tritonserver/bin/tritonserver), with Triton's default backend folder; default: the "
             "nvidia-pytriton wheel's.")] = None,
    steps_python: Annotated[Path | None, typer.Option(
        envvar="NER_STEPS_PYTHON", show_default=False,
        help="The python3 of the environment the Python-backend steps run in (it needs the project's steps: "
             "pip install '.[steps]', numpy below 2 for this Triton); default: this command's own Python, or "
             "with --tritonserver the python3 first on PATH.")] = None,
    triton_args: Annotated[list[str] | None, typer.Argument(
        metavar="[-- TRITONSERVER_ARGS]", show_default=False,
        help="More tritonserver arguments, after --.")] = None,
) -> None:
    """Start Triton on the repository, restore a model whose Python-backend stub died, and wait until stopped."""
    if config_name == AUTO:
        config_name = auto_config_name(model_repository, _cuda_available(), variants.cpu_flags())
        cli.say("serve", f"auto: serving {config_name or 'config'}.pbtxt")
    tls = None
    if grpc_use_ssl or grpc_use_ssl_mutual:
        if grpc_server_cert is None or grpc_server_key is None:
            raise cli.fail("serve", "--grpc-use-ssl needs --grpc-server-cert and --grpc-server-key", cli.USAGE)
        tls = GrpcTls(grpc_server_cert, grpc_server_key, grpc_root_cert, grpc_use_ssl_mutual)
    server = TritonServer(model_repository, Ports(http_port, grpc_port, metrics_port), echo=not quiet,
                          config_name=config_name, admin_key=admin_key or None, grpc_tls=tls,
                          exit_timeout=exit_timeout, tritonserver=tritonserver, extra_args=tuple(triton_args or ()),
                          steps_python=steps_python)
    stopping = False

    def stop(signum, _frame):
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
        server.start(start_timeout)
        cli.say("serve", f"ready: gRPC {server.grpc_url}, HTTP {server.http_url}, "
                f"metrics localhost:{metrics_port}/metrics (Ctrl-C stops)")
        # Poll rather than Popen.wait(): a signal handler must not interrupt a wait that holds its lock.
        while server.process.poll() is None:
            time.sleep(0.5)
        code = server.process.returncode
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
