"""The launcher: one ``tritonserver`` on a model repository, started, supervised, drained and stopped."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from threading import Event, Thread
from typing import TextIO

from triton_ner.core.errors import ServerError
from triton_ner.health import wait_ready
from triton_ner.server import environment, installation, wakeup, watchdog
from triton_ner.server.arguments import RESTRICTED_APIS, GrpcTls, Ports, port_in_use, restricted_api_args
from triton_ner.server.logs import ERROR_LINE, start_failure
from triton_ner.server.preflight import backends_needed, check_repository
from triton_ner.server.processes import SHM_DIR, SHM_PREFIX
from triton_ner.server.repository_api import RepositoryApi
from triton_ner.server.supervisor import supervise

EXIT_TIMEOUT = 30  # seconds Triton waits for in-flight requests after SIGTERM (its default)
START_TIMEOUT = 180.0  # seconds the models may take to load before a start counts as failed
# The latency summaries' quantiles on /metrics, quantile:rank error: what the dashboards read (p50, p99) and p90.
SUMMARY_QUANTILES = "0.5:0.05,0.9:0.01,0.99:0.005"


@dataclass(eq=False, repr=False)
class TritonServer:
    """A running ``tritonserver`` on a model repository; use as a context manager.

    Args:
        model_repository: The repository folder.
        ports: HTTP, gRPC and metrics ports.
        log: A file for the server's output; by default its last lines are kept to explain a failed start.
        echo: Also print the server's output on stderr as it comes.
        config_name: A variant of the repository (``int8``, ``torchscript``, ...): each model loads
            ``configs/<name>.pbtxt`` if it has one, else its ``config.pbtxt``.
        extra_args: More ``tritonserver`` arguments (paths in them absolute: the server runs in a working folder
            of its own).
        admin_key: Put :data:`RESTRICTED_APIS` behind the header ``admin-key: <key>`` (gRPC:
            ``triton-grpc-protocol-admin-key``); Triton reads it from its command line, so other local users
            can see it in the process list.
        grpc_tls: Serve gRPC over TLS, or mutual TLS.
        exit_timeout: Seconds in-flight requests may take to finish when the server stops.
        tritonserver: An installed ``tritonserver`` to run instead of the wheel's (NVIDIA's image:
            ``/opt/tritonserver/bin/tritonserver``), with this process's environment and Triton's default backend
            folder (``/opt/tritonserver/backends``; ``--backend-directory=...`` in ``extra_args`` changes it).
        runtime: A folder laid out as the nvidia-pytriton wheel's (``make gpu-check-pack`` writes one) to run
            instead of the installed wheel, with the Python backend only.
        steps_python: The ``python3`` of the environment the Python-backend steps run in (default: this
            interpreter's); with ``tritonserver``, the ``python3`` first on ``PATH``. Refused before the start when
            the stub cannot run the steps there (:mod:`triton_ner.server.environment`).

    The server runs in a process group of its own, watched by :mod:`triton_ner.server.watchdog`, so that no server
    is orphaned on its ports if the launcher dies; and in a working folder of its own, since the stubs put their
    working folder first on their ``sys.path``: started in a checkout, they would import its ``triton_ner``
    instead of the steps' environment's.
    """

    model_repository: Path
    ports: Ports = Ports()
    log: Path | None = None
    echo: bool = False
    config_name: str | None = None
    extra_args: tuple[str, ...] = ()
    admin_key: str | None = None
    grpc_tls: GrpcTls | None = None
    exit_timeout: int = EXIT_TIMEOUT
    tritonserver: str | Path | None = None
    runtime: Path | None = None
    steps_python: Path | None = None

    def __post_init__(self) -> None:
        self.model_repository = Path(self.model_repository).resolve()
        # Absolute, for a server in a working folder of its own; steps_python not resolved (see environment).
        self.runtime = Path(self.runtime).absolute() if self.runtime else None
        self.steps_python = Path(self.steps_python).absolute() if self.steps_python else None
        # The model repository API unloads the ensemble on stop (see drain()); without an admin key it is behind a
        # key of this launcher alone, since in explicit model control it could unload models.
        self._repository_key = self.admin_key or secrets.token_urlsafe(16)
        self.repository = RepositoryApi(self.http_url, self._repository_key)
        self.shm_prefix = f"{SHM_PREFIX}ner-{secrets.token_hex(4)}-"
        self.process: subprocess.Popen | None = None
        self._tail: deque[str] = deque(maxlen=40)
        self._errors: deque[str] = deque(maxlen=10)
        self._drainer: Thread | None = None
        self._workdir: tempfile.TemporaryDirectory | None = None
        self._log_file: TextIO | None = None
        self._watchdog: subprocess.Popen | None = None
        self._watch_pipe: int | None = None
        self._supervisor: Thread | None = None
        self._stopping = Event()
        self._replaced = 0  # copies swapped out after a stub died, which Triton 2.51 never releases
        self.died: str | None = None  # how the server ended, if it ended while serving

    @property
    def started(self) -> subprocess.Popen:
        """The server's process, once :meth:`start` has started it (``process`` is None before and after)."""
        if self.process is None:
            raise ServerError("the server is not started")
        return self.process

    @property
    def _work(self) -> tempfile.TemporaryDirectory:
        """The server's working folder, once :meth:`start` has made it."""
        assert self._workdir is not None, "the server is not started"
        return self._workdir

    @property
    def http_url(self) -> str:
        return f"localhost:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"localhost:{self.ports.grpc}"

    def binary(self) -> Path:
        """The ``tritonserver`` to run: the one given (a path, or a name on PATH), else the wheel's."""
        if self.tritonserver is None:
            binary = installation.triton_dirs(self.runtime)[0] / "bin" / "tritonserver"
        else:
            found = shutil.which(self.tritonserver)
            binary = Path(found).absolute() if found else Path(self.tritonserver)
        if not binary.is_file():
            raise ServerError(f"no tritonserver at {binary}")
        return binary

    def command(self, backends: Path | None) -> list[str]:
        """The server's command line; ``backends``: the backend folder, or None for the installation's own."""
        return [
            str(self.binary()),
            f"--model-repository={self.model_repository}",
            *([f"--backend-directory={backends}"] if backends else []),
            f"--http-port={self.ports.http}", f"--grpc-port={self.ports.grpc}", f"--metrics-port={self.ports.metrics}",
            "--exit-on-error=true",
            "--log-info=true",
            "--model-control-mode=explicit",  # so that stop() can unload the ensemble first
            "--load-model=*",
            f"--exit-timeout-secs={self.exit_timeout}",
            "--metrics-config=summary_latencies=true",  # p50/p90/p99 per model on /metrics (the dashboards')
            # Triton's default quantiles add p95 and p99.9 and keep every one but p50 and p90 within 0.1%: each
            # observation then costs enough to raise p99 under load (docs/operations.md).
            f"--metrics-config=summary_quantiles={SUMMARY_QUANTILES}",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            *([f"--model-config-name={self.config_name}"] if self.config_name else []),
            *restricted_api_args(self._repository_key, RESTRICTED_APIS if self.admin_key else ("model-repository",)),
            *(self.grpc_tls.args() if self.grpc_tls else []),
            *self.extra_args,
        ]

    def start(self, timeout: float = START_TIMEOUT) -> TritonServer:
        """Start the server and wait until ``/v2/health/ready`` answers; raise :class:`ServerError` if not."""
        check_repository(self.model_repository, self.config_name)
        self.binary()  # the wheel, or the binary given, is there
        if self.tritonserver is None and self.runtime is None:  # an installation has its own backends
            built = {name: installation.nvidia_backend(name) for name in installation.NVIDIA_BACKENDS}
            for path, backend in backends_needed(self.model_repository, self.config_name).items():
                if backend in built and built[backend] is None:
                    raise ServerError(f"{path} needs NVIDIA's {backend} backend, which is not built: "
                                      "run `make backends`")
        for name, port in vars(self.ports).items():
            if port_in_use(port):
                raise ServerError(f"the {name} port {port} is already in use: choose another one")
        self.command(None)  # a bad key or a missing certificate is refused before anything is made
        python = self._check_steps_python()
        self._workdir = tempfile.TemporaryDirectory(prefix="ner-triton-")
        try:
            backends = None if self.tritonserver else installation.backend_directory(
                Path(self._workdir.name) / "backends", self.runtime, python)
            environment = (dict(os.environ) if self.tritonserver
                           else installation.server_environment(self.runtime, python))
            if self.tritonserver and self.steps_python:
                environment["PATH"] = os.pathsep.join([str(Path(self.steps_python).parent), environment["PATH"]])
            environment = wakeup.preload(environment)
            if wakeup.library() is None:
                print(f"server: {wakeup.MISSING}", file=sys.stderr, flush=True)
            self._log_file = open(self.log, "w") if self.log else None  # noqa: SIM115 (closed in stop)
            out = self._log_file or subprocess.PIPE
            # A session of its own: stop() and the watchdog reach every stub process through the process group,
            # and Ctrl-C in a terminal reaches the launcher only, which stops the server in order.
            self.process = subprocess.Popen(self.command(backends), env=environment, stdout=out,
                                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                            cwd=self._work.name)
            self._watch()
            if out is subprocess.PIPE:
                self._drainer = Thread(target=self._drain, daemon=True)
                self._drainer.start()
            self._wait_ready(timeout)
            self._stopping.clear()
            self._supervisor = Thread(target=self._supervise, daemon=True)
            self._supervisor.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _check_steps_python(self) -> environment.StepsPython | None:
        """Probe the Python the stubs will run and refuse it when the stub cannot run the steps there (numpy 2
        under a Python backend that predates it, the project not importable). An installed ``tritonserver`` is
        checked when its stub is in the backend folder it will use."""
        if self.tritonserver is None:
            python = environment.probe(self.steps_python)
            environment.check(python, installation.stub(self.runtime, python.version))
            return python
        folders = [a.split("=", 1)[1] for a in self.extra_args if a.startswith("--backend-directory=")]
        backends = Path(folders[-1] if folders else installation.INSTALLED_BACKENDS)
        stub = backends / "python" / "triton_python_backend_stub"
        found = self.steps_python or shutil.which("python3")
        if stub.is_file() and found:
            environment.check(environment.probe(Path(found)), stub)
        return None

    def _watch(self) -> None:
        """Start the watchdog on the server's process group (:mod:`triton_ner.server.watchdog`)."""
        read, self._watch_pipe = os.pipe()  # both ends non-inheritable: no other child holds the write end
        try:
            self._watchdog = subprocess.Popen(
                watchdog.command(self.started.pid, self.exit_timeout + 5, self._work.name,
                                 str(SHM_DIR / self.shm_prefix)),
                stdin=read, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        finally:
            os.close(read)

    def _supervise(self) -> None:
        """The supervisor's loop (:mod:`triton_ner.server.supervisor`) while the server runs; then, if the server
        ended on its own, say so."""
        process = self.started
        self._replaced = supervise(process.pid, lambda: process.poll() is None, self._stopping,
                                   self.repository.ready, self.reload, self.exit_timeout,
                                   lambda message: print(f"server: {message}", file=sys.stderr, flush=True))
        if not self._stopping.is_set():
            self._report_exit()

    def _report_exit(self) -> None:
        """Say on stderr, once, that tritonserver exited while it was meant to serve: how, and its last lines."""
        if self._drainer:
            self._drainer.join(2)  # the output up to the exit
        code = self.started.returncode
        how = f"was killed by signal {-code} ({signal.strsignal(-code)})" if code < 0 else f"exited with code {code}"
        self.died = f"tritonserver (pid {self.started.pid}) {how} while serving"
        print(f"server: {self.died}; its last lines:\n{self._last_lines()}", file=sys.stderr, flush=True)

    def reload(self, model: str, timeout: float = 180.0) -> bool:
        """Load ``model`` again beside its serving copy (new stub processes) and swap it in (:mod:`.repository`)."""
        return self.repository.reload(model, timeout)

    def _stop_supervising(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()  # a reload under way finishes first: stop() then drains a whole ensemble
            self._supervisor = None

    def kill(self) -> None:
        """SIGKILL the server and its stubs now (a second Ctrl-C); :meth:`stop` still cleans up after."""
        self._stopping.set()  # not joined: kill() must not wait for a reload under way
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _drain(self) -> None:
        assert self.process and self.process.stdout
        for line in self.process.stdout:
            self._tail.append(line.rstrip())
            if ERROR_LINE.match(line):
                self._errors.append(line.rstrip())
            if self.echo:
                sys.stderr.write(line)

    def _failure(self, what: str) -> ServerError:
        """A one-line error: ``what`` happened, and the first reason Triton logged."""
        lines = list(self._errors) + list(self._tail)
        if self.log and self.log.exists():
            lines = self.log.read_text(errors="replace").splitlines()
        reason = start_failure(lines) or (self._tail[-1] if self._tail else None)
        return ServerError(f"{what}: {reason}" if reason else what, log=self._last_lines())

    def _last_lines(self) -> str:
        """Triton's error lines (a model that failed to load says why there, long before the end), then the
        last lines of its output."""
        lines, errors = list(self._tail), list(self._errors)
        if self.log and self.log.exists():
            everything = self.log.read_text(errors="replace").splitlines()
            lines, errors = everything[-40:], [line for line in everything if ERROR_LINE.match(line)][-10:]
        return "\n".join([line for line in errors if line not in lines] + lines)

    def _wait_ready(self, timeout: float) -> None:
        if wait_ready(self.http_url, timeout, alive=lambda: self.started.poll() is None):
            return
        if self.started.poll() is not None:
            if self._drainer:
                self._drainer.join(2)  # the output up to the exit, the reason included
            raise self._failure(f"tritonserver exited with code {self.started.returncode}")
        raise self._failure(f"tritonserver was not ready after {timeout:.0f} s")

    def drain(self, timeout: float | None = None) -> bool:
        """Unload the ensemble and wait until it is unloaded (the exit timeout, or ``timeout`` seconds): requests
        in flight finish, new ones are refused (gRPC UNAVAILABLE, HTTP 503), none is cut between two steps, which
        SIGTERM alone would do. True when drained in time."""
        return self.repository.drain(time.monotonic() + (self.exit_timeout if timeout is None else timeout))

    def stop(self, timeout: float | None = None) -> None:
        """Drain the ensemble (:meth:`drain`), SIGTERM the server and wait for it (``timeout`` seconds, by default
        the exit timeout and 5 s), then leave no stub process, shared memory or temporary folder. Safe to call at
        any point. After a copy was replaced, every model is unloaded and the server killed instead (Triton 2.51
        would wait out the exit timeout: docs/operations.md, "A killed stub")."""
        self._stop_supervising()  # first: the stubs that exit from here on are not to be restored
        if self.process is not None:
            if self.process.poll() is None:
                deadline = time.monotonic() + self.exit_timeout
                self.drain()
                if self._replaced and self.repository.unload_all(deadline):
                    print(f"server: every model unloaded; stopping tritonserver at once, as Triton 2.51 would wait "
                          f"out the exit timeout for the {self._replaced} cop{'y' if self._replaced == 1 else 'ies'} "
                          "replaced after a stub died", file=sys.stderr, flush=True)
                    self.kill()
                else:
                    self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(self.exit_timeout + 5 if timeout is None else timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.kill()  # the stubs, which outlive a killed server
            if self.process.stdout:
                self.process.stdout.close()
            self.process = None
        for path in SHM_DIR.glob(f"{self.shm_prefix}*"):  # what stubs leave when the server is killed
            path.unlink(missing_ok=True)
        if self._watch_pipe is not None:
            os.write(self._watch_pipe, b"s")  # stopped here: the watchdog exits without touching anything
            os.close(self._watch_pipe)
            self._watch_pipe = None
            if self._watchdog is not None:
                self._watchdog.wait()
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        if self._workdir:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
