"""A supervised Triton Inference Server: the ``tritonserver`` binary shipped in the nvidia-pytriton wheel, or an
installed one (NVIDIA's image, the project's containers).

The wheel carries Triton 2.51 (NGC 24.10) with its Python backend but no ONNX Runtime or LibTorch backend,
so on CPU every model of the repository runs in the Python backend. NVIDIA's ``onnxruntime`` and ``pytorch``
backends of the same release are added when ``make backends`` has built them (``backends/``): then the GPU
configs, switched to CPU, run as on NVIDIA's image. With the wheel, :class:`TritonServer` assembles a backend
folder with the stub matching this interpreter, starts the server with the environment it needs, waits for
readiness and stops it (and every stub process) on exit. A supervisor thread restores a model whose stub
process died, which Triton 2.51 does not do; the containers' entrypoint runs the image's own ``tritonserver``
under it for that.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from threading import Event, Thread

from triton_ner.core import names
from triton_ner.health import wait_ready

# Where backends/build-onnxruntime.sh puts NVIDIA's backends (one folder per backend).
BUILT_BACKENDS = Path(__file__).resolve().parents[1] / "build" / "triton-backends"


# Triton's error log lines: 'E1128 15:45:59.716243 27138 model_lifecycle.cc:642] "message"'.
_ERROR_LINE = re.compile(r"E\d{4} \d\d:\d\d:\d\d")
_ERROR_MESSAGE = re.compile(r'E\d{4} [\d:.]+ +\d+ [^ ]+\] "?(?P<message>.*?)"?$')
# Said on every machine without a GPU: not a reason for anything.
_NOT_A_REASON = ("CudaDriverHelper has not been initialized",)
# The Python backend's shared-memory regions are /dev/shm/<prefix><uuid>; this is its default prefix, to which the
# launcher adds a token of each server so that what a killed server leaves can be found and removed.
SHM_PREFIX = "triton_python_backend_shm_region_"
SHM_DIR = Path("/dev/shm")
EXIT_TIMEOUT = 30  # seconds Triton waits for in-flight requests after SIGTERM (its default)
START_TIMEOUT = 180.0  # seconds the models may take to load before a start counts as failed
SUPERVISE_INTERVAL = 0.5  # seconds between two looks of the supervisor at the stub processes
RELOAD_PARAMETER = "supervisor_reload"  # config parameter the supervisor changes to have Triton reload a model
RELOAD_RETRY = 5  # seconds before the supervisor loads a model again after a failed reload


class ServerError(RuntimeError):
    """The server could not be started; the message says why in one line, ``log`` holds Triton's last lines."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


def start_failure(lines: list[str]) -> str | None:
    """Why Triton did not start, in one line, from its output: the first model that failed to load (Triton names
    the model, the backend's message the file), else the first error; without the Python traceback the Python
    backend appends."""
    messages = [match["message"].split("\\n")[0].strip() for match in map(_ERROR_MESSAGE.match, lines)
                if match and not match["message"].startswith(_NOT_A_REASON)]
    return next((m for m in messages if m.startswith("failed to load")), messages[0] if messages else None)


def check_repository(repository: Path, config_name: str | None = None) -> None:
    """Refuse, naming the file, an export that is incomplete or damaged where Triton would not say which file:
    the manifest missing or not JSON, a file it lists missing, a JSON file (the tokenizer's) that does not parse,
    no ``configs/<config_name>.pbtxt``. A damaged model or config file is left to Triton, whose error names it.
    An empty volume, which Triton would serve as a server without models, is refused the same way."""
    manifest = repository / names.MANIFEST
    if not manifest.exists():
        raise ServerError(f"{repository} has no exported model ({names.MANIFEST} is missing): run the export first")
    try:
        exported = json.loads(manifest.read_text())
        artifacts = exported["artifacts"]
    except (ValueError, KeyError, TypeError) as error:
        raise ServerError(f"{manifest} is damaged ({type(error).__name__}: {error}): run the export again") from None
    for name in artifacts:
        path = repository / name
        if not path.is_file():
            raise ServerError(f"{path} is missing (listed in {names.MANIFEST}): run the export again")
        if path.suffix == ".json":
            try:
                json.loads(path.read_bytes())
            except ValueError as error:
                raise ServerError(f"{path} is damaged (not JSON: {error}): run the export again") from None
    if config_name and not list(repository.glob(f"*/configs/{config_name}.pbtxt")):
        written = ", ".join(exported.get("config_names", [])) or "none"
        raise ServerError(f"no model in {repository} has configs/{config_name}.pbtxt (the export wrote: {written}): "
                          "export that variant first")


# Run by a second interpreter, the watchdog: the launcher holds the only write end of a pipe that is its stdin.
# A byte means the launcher stopped the server itself. End of file means the launcher is gone, however it ended
# (SIGKILL included): then the watchdog stops the server's process group (SIGTERM, SIGKILL after the exit
# timeout) and removes the launcher's temporary folder and the server's shared memory.
_WATCHDOG = r"""
import glob, os, shutil, signal, sys, time
group, grace, workdir, shm = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
if sys.stdin.buffer.read(1):
    sys.exit()
def signal_group(number):
    try:
        os.killpg(group, number)
        return True
    except ProcessLookupError:
        return False
if signal_group(signal.SIGTERM):
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and signal_group(0):
        time.sleep(0.2)
    signal_group(signal.SIGKILL)
shutil.rmtree(workdir, ignore_errors=True)
for path in glob.glob(shm + "*"):
    try:
        os.remove(path)
    except OSError:
        pass
"""


# Triton's APIs that change or reveal the server rather than serve it (load and unload models, read configs, map
# shared memory, change logging and tracing): behind the admin key when one is set. Inference, health, metadata
# and statistics stay open.
RESTRICTED_APIS = ("model-repository", "model-config", "shared-memory", "logging", "trace")
ADMIN_HEADER = "admin-key"
# Triton's gRPC endpoint reads a restricted protocol's key from the metadata key "triton-grpc-protocol-<key>".
GRPC_RESTRICTED_PREFIX = "triton-grpc-protocol-"
_HEADER_VALUE = re.compile(r"[!-~]+")  # printable ASCII, no spaces: valid as an HTTP header and gRPC metadata


def admin_headers(key: str, protocol: str = "http") -> dict[str, str]:
    """The header that opens the restricted APIs of a server started with ``admin_key=key``."""
    return {(GRPC_RESTRICTED_PREFIX if protocol == "grpc" else "") + ADMIN_HEADER: key}


def _post(url: str, headers: dict[str, str], timeout: float = 5, body: bytes = b"") -> bytes:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def child_processes(pid: int) -> list[tuple[int, str, list[str]]]:
    """The child processes of ``pid`` from /proc: (pid, state, command line); a zombie has state "Z" and no
    command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]  # the name may hold ")"
            if int(parent) == pid:
                found.append((int(entry.name), state, (entry / "cmdline").read_bytes().decode().split("\0")))
        except (OSError, ValueError):
            pass  # gone meanwhile
    return found


def stub_processes(server_pid: int, children: list[tuple[int, str, list[str]]] | None = None) -> dict[int, str]:
    """The live Python-backend stubs of the server ``server_pid``: process id -> model name; among ``children``
    when given (what :func:`child_processes` listed). A stub's first argument is ``<repository>/<model>/1/model.py``."""
    children = child_processes(server_pid) if children is None else children
    return {pid: Path(args[1]).parts[-3] for pid, state, args in children
            if state != "Z" and len(args) > 1 and args[1].endswith("/1/model.py")}


def _kill_stub(server_pid: int, pid: int) -> bool:
    """SIGKILL ``pid`` if it is still a live stub of the server ``server_pid``; False if it is not (it left).

    The process is pinned by a pidfd before the check, so a number reused after the stub left is not signalled.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        if pid not in stub_processes(server_pid):
            return False
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(pidfd)


def restricted_api_args(key: str, apis: tuple[str, ...] = RESTRICTED_APIS) -> list[str]:
    """``tritonserver`` arguments that put ``apis`` behind the header ``admin-key: <key>`` on HTTP and gRPC."""
    if not _HEADER_VALUE.fullmatch(key):
        raise ServerError("the admin key must be printable ASCII without spaces")
    apis = ",".join(apis)
    return [f"--http-restricted-api={apis}:{ADMIN_HEADER}={key}",
            f"--grpc-restricted-protocol={apis}:{ADMIN_HEADER}={key}"]


@dataclass(frozen=True)
class GrpcTls:
    """gRPC over TLS: the server's certificate and key; for mutual TLS, the CA that signs client certificates.

    Triton's HTTP endpoint has no TLS: put a proxy in front of it, or use gRPC.
    """

    server_cert: Path
    server_key: Path
    root_cert: Path | None = None
    mutual: bool = False

    def args(self) -> list[str]:
        """The ``tritonserver`` arguments; :class:`ServerError` names a file that is missing."""
        if self.mutual and self.root_cert is None:
            raise ServerError("mutual TLS needs the CA of the client certificates (--grpc-root-cert)")
        files = {"--grpc-server-cert": self.server_cert, "--grpc-server-key": self.server_key,
                 "--grpc-root-cert": self.root_cert}
        for option, path in files.items():
            if path is not None and not Path(path).is_file():
                raise ServerError(f"{option} {path}: no such file")
        return ["--grpc-use-ssl=true", *(f"{option}={Path(path).resolve()}" for option, path in files.items() if path),
                *(["--grpc-use-ssl-mutual=true"] if self.mutual else [])]


@dataclass(frozen=True)
class Ports:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002


def free_ports() -> Ports:
    """Three ports free on loopback now (for tests)."""
    sockets = [socket.socket() for _ in range(3)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return Ports(*(s.getsockname()[1] for s in sockets))
    finally:
        for s in sockets:
            s.close()


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def _pytriton_dirs(runtime: Path | None = None) -> tuple[Path, Path]:
    """The folders of Triton (``tritonserver/``: binary, Python backend, stubs) and of its libraries: the
    nvidia-pytriton wheel's, or those of ``runtime``, a folder laid out as the wheel's (``make gpu-check-pack``)."""
    if runtime is not None:
        if not (runtime / "pytriton" / "tritonserver").is_dir():
            raise ServerError(f"{runtime} is not a Triton runtime folder (no pytriton/tritonserver in it)")
        return runtime / "pytriton" / "tritonserver", runtime / "nvidia_pytriton.libs"
    try:
        import pytriton
    except ImportError as error:
        raise ServerError("nvidia-pytriton is not installed: run `make setup`") from error
    package = Path(pytriton.__file__).parent
    return package / "tritonserver", package.parent / "nvidia_pytriton.libs"


NVIDIA_BACKENDS = ("onnxruntime", "pytorch")


def built_backend(name: str) -> Path | None:
    """The folder of NVIDIA's backend ``name`` built by ``make backends``, or None when it is not built."""
    folder = BUILT_BACKENDS / name
    return folder if (folder / f"libtriton_{name}.so").exists() and (folder / ".stamp").exists() else None


def onnxruntime_backend() -> Path | None:
    """The folder of NVIDIA's ``onnxruntime`` backend built by ``make backends``, or None when it is not built."""
    folder = built_backend("onnxruntime")
    return folder if folder and (folder / "libonnxruntime.so.1").exists() else None


def backend_directory(root: Path, runtime: Path | None = None) -> Path:
    """A backend folder under ``root``: the Python backend with the stub for this interpreter (from the wheel, or
    from ``runtime``), and NVIDIA's ``onnxruntime`` and ``pytorch`` backends when they are built."""
    triton_dir, _ = _pytriton_dirs(runtime)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = triton_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise ServerError(f"the Triton Python backend has no stub for Python {version}")
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        raise ServerError(f"the Python backend's stub embeds libpython, and {sys.executable} has none (it was "
                          "built without --enable-shared): use a Python with a shared libpython")
    python = root / "python"
    python.mkdir(parents=True, exist_ok=True)
    for source in (triton_dir / "backends" / "python" / "libtriton_python.so",
                   triton_dir / "backends" / "python" / "triton_python_backend_utils.py", stub):
        link = python / source.name
        if not link.exists():
            link.symlink_to(source)
    for name in NVIDIA_BACKENDS:
        folder = onnxruntime_backend() if name == "onnxruntime" else built_backend(name)
        if folder and not (root / name).exists():
            (root / name).symlink_to(folder, target_is_directory=True)
    return root


def backends_needed(model_repository: Path, config_name: str | None = None) -> dict[str, str]:
    """The backend each model of the repository asks for, by ``<model>/<config file>``.

    The file is the one Triton loads: ``configs/<config_name>.pbtxt`` when the model has it, else
    ``config.pbtxt``. A file that does not parse is left for Triton to report.
    """
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    found = {}
    for model in sorted(p for p in model_repository.iterdir() if p.is_dir()):
        path = model / "configs" / f"{config_name}.pbtxt" if config_name else None
        if path is None or not path.exists():
            path = model / "config.pbtxt"
        if not path.exists():
            continue
        config = mc.ModelConfig()
        try:
            text_format.Parse(path.read_text(), config)
        except (text_format.ParseError, UnicodeDecodeError):
            continue
        backend = config.backend or {"onnxruntime_onnx": "onnxruntime", "pytorch_libtorch": "pytorch"}.get(
            config.platform, "")
        if backend:
            found[str(path.relative_to(model_repository))] = backend
    return found


def server_environment(runtime: Path | None = None) -> dict[str, str]:
    """The environment the stubs need to run this interpreter's packages.

    The stub embeds libpython: the interpreter's own LIBDIR must come first, or the stub loads the system's
    older libpython and ``import ssl`` fails with ``undefined symbol``. ``bin`` of this environment first on
    PATH makes the stub find this virtual environment's site-packages. With a ``runtime`` folder, which serves
    from a checkout that may not be installed, the folder holding ``triton_ner`` goes on PYTHONPATH.
    """
    _, libs = _pytriton_dirs(runtime)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if runtime is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[1]),
                                                        env.get("PYTHONPATH")) if p)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (sysconfig.get_config_var("LIBDIR"), str(libs), env.get("LD_LIBRARY_PATH")) if p)
    return env


class TritonServer:
    """A running ``tritonserver`` on a model repository; use as a context manager.

    Args:
        model_repository: The repository folder.
        ports: HTTP, gRPC and metrics ports.
        log: A file for the server's output; by default its last lines are kept to explain a failed start.
        echo: Also print the server's output on stderr as it comes.
        config_name: A variant of the repository (``int8``, ``torchscript``, ...): each model loads
            ``configs/<name>.pbtxt`` if it has one, else its ``config.pbtxt``.
        extra_args: More ``tritonserver`` arguments.
        admin_key: Put :data:`RESTRICTED_APIS` behind the header ``admin-key: <key>`` (gRPC:
            ``triton-grpc-protocol-admin-key``); Triton reads it from its command line, so other local users
            can see it in the process list.
        grpc_tls: Serve gRPC over TLS, or mutual TLS.
        exit_timeout: Seconds in-flight requests may take to finish when the server stops.
        tritonserver: An installed ``tritonserver`` to run instead of the wheel's (NVIDIA's image:
            ``/opt/tritonserver/bin/tritonserver``), with this process's environment and Triton's default backend
            folder (``/opt/tritonserver/backends``; ``--backend-directory=...`` in ``extra_args`` changes it).
        runtime: A folder laid out as the nvidia-pytriton wheel's (``pytriton/tritonserver`` and
            ``nvidia_pytriton.libs``; ``make gpu-check-pack`` writes one) to run instead of the installed wheel,
            with the Python backend only.

    The server runs in a process group of its own, watched by a small second process: if the launcher dies
    (SIGKILL, a crash), the watchdog stops the server and its stubs and removes what they left, so no server
    is orphaned on its ports.
    """

    def __init__(self, model_repository: str | Path, ports: Ports = Ports(), log: Path | None = None,
                 echo: bool = False, config_name: str | None = None, extra_args: tuple[str, ...] = (),
                 admin_key: str | None = None, grpc_tls: GrpcTls | None = None, exit_timeout: int = EXIT_TIMEOUT,
                 tritonserver: str | Path | None = None, runtime: Path | None = None):
        self.model_repository = Path(model_repository).resolve()
        self.config_name = config_name
        self.ports = ports
        self.log = log
        self.echo = echo
        self.extra_args = extra_args
        self.admin_key = admin_key
        self.grpc_tls = grpc_tls
        self.exit_timeout = exit_timeout
        self.tritonserver = tritonserver
        self.runtime = runtime
        # The model repository API unloads the ensemble on stop (see drain()); without an admin key it is behind a
        # key of this launcher alone, since in explicit model control it could unload models.
        self._repository_key = admin_key or secrets.token_urlsafe(16)
        self.shm_prefix = f"{SHM_PREFIX}ner-{secrets.token_hex(4)}-"
        self.process: subprocess.Popen | None = None
        self._tail: deque[str] = deque(maxlen=40)
        self._errors: deque[str] = deque(maxlen=10)
        self._drainer: Thread | None = None
        self._workdir: tempfile.TemporaryDirectory | None = None
        self._log_file = None
        self._watchdog: subprocess.Popen | None = None
        self._watch_pipe: int | None = None
        self._supervisor: Thread | None = None
        self._stopping = Event()
        self._reloads = 0
        self._replaced = 0  # copies swapped out after a stub died, which Triton 2.51 never releases
        self.died: str | None = None  # how the server ended, if it ended while serving

    @property
    def http_url(self) -> str:
        return f"localhost:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"localhost:{self.ports.grpc}"

    def binary(self) -> Path:
        """The ``tritonserver`` to run: the one given (a path, or a name on PATH), else the wheel's."""
        if self.tritonserver is None:
            binary = _pytriton_dirs(self.runtime)[0] / "bin" / "tritonserver"
        else:
            found = shutil.which(self.tritonserver)
            binary = Path(found or self.tritonserver)
        if not binary.is_file():
            raise ServerError(f"no tritonserver at {binary}")
        return binary

    def command(self, backends: Path | None) -> list[str]:
        """The server's command line; ``backends``: the backend folder, or None for the installation's own."""
        return [
            str(self.binary()),
            f"--model-repository={self.model_repository}",
            *([f"--backend-directory={backends}"] if backends else []),
            f"--http-port={self.ports.http}",
            f"--grpc-port={self.ports.grpc}",
            f"--metrics-port={self.ports.metrics}",
            "--exit-on-error=true",
            "--log-info=true",
            "--model-control-mode=explicit",  # so that stop() can unload the ensemble first
            "--load-model=*",
            f"--exit-timeout-secs={self.exit_timeout}",
            "--metrics-config=summary_latencies=true",  # p50/p90/p99 per model on /metrics (the dashboards')
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
            built = {"onnxruntime": onnxruntime_backend(), "pytorch": built_backend("pytorch")}
            for path, backend in backends_needed(self.model_repository, self.config_name).items():
                if backend in built and built[backend] is None:
                    raise ServerError(f"{path} needs NVIDIA's {backend} backend, which is not built: "
                                      "run `make backends`")
        for name, port in vars(self.ports).items():
            if _port_in_use(port):
                raise ServerError(f"the {name} port {port} is already in use: choose another one")
        self.command(None)  # a bad key or a missing certificate is refused before anything is made
        self._workdir = tempfile.TemporaryDirectory(prefix="ner-triton-")
        try:
            backends = None if self.tritonserver else backend_directory(Path(self._workdir.name) / "backends",
                                                                        self.runtime)
            environment = dict(os.environ) if self.tritonserver else server_environment(self.runtime)
            self._log_file = open(self.log, "w") if self.log else None  # noqa: SIM115 (closed in stop)
            out = self._log_file or subprocess.PIPE
            # A session of its own: stop() and the watchdog reach every stub process through the process group,
            # and Ctrl-C in a terminal reaches the launcher only, which stops the server in order.
            self.process = subprocess.Popen(self.command(backends), env=environment, stdout=out,
                                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
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

    def _watch(self) -> None:
        """Start the watchdog on the server's process group (see ``_WATCHDOG``)."""
        read, self._watch_pipe = os.pipe()  # both ends non-inheritable: no other child holds the write end
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(self.process.pid), str(self.exit_timeout + 5),
                 self._workdir.name, str(SHM_DIR / self.shm_prefix)],
                stdin=read, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        finally:
            os.close(read)

    def _supervise(self) -> None:
        """Restore each model whose stub process died (killed, crashed) while the server runs.

        Triton 2.51's Python backend does not restart a dead stub: the instance fails every request routed to it
        while the model still says it is ready. A stub that died stays a zombie child of tritonserver (one that
        Triton stops is waited for), so a known stub turned zombie is one that died.

        The replaced copy is never unloaded: each request that failed on the dead instance leaks the response
        factory the backend made for it (python_backend's ``ProcessRequests`` returns on the stub's error before
        deleting it), and a factory holds the model. Its surviving stubs would stay, idle and holding a copy of
        the model, until the server stops, one more per death; so, once the ensemble requests that began on the
        old copy have had the exit timeout to finish (what a stop grants them), the supervisor stops them.
        """
        known = stub_processes(self.process.pid)  # every stub seen alive and not yet handled -> its model
        retiring: set[int] = set()  # stubs of a replaced copy, which Triton stops: their exit is no death
        idle: dict[int, tuple[str, float]] = {}  # a replaced copy's surviving stub -> its model, when to stop it
        retry: dict[str, float] = {}  # a model whose reload failed -> when to try again
        while not self._stopping.wait(SUPERVISE_INTERVAL) and self.process.poll() is None:
            children = child_processes(self.process.pid)
            zombies = {pid for pid, state, _ in children if state == "Z"}
            for model in sorted({known[pid] for pid in zombies & known.keys()}):
                stubs = {pid for pid, name in known.items() if name == model}
                ready = self._ready_in_index(model) if time.monotonic() >= retry.get(model, 0) else None
                if ready is None:  # no answer, or waiting to try again: look again next time
                    continue
                if ready:
                    print(f"server: the stub of {model} (pid {', '.join(map(str, sorted(zombies & stubs)))}) died; "
                          f"reloading {model}", file=sys.stderr, flush=True)
                    if not self.reload(model):  # the old copy still serves, with one instance fewer
                        retry[model] = time.monotonic() + RELOAD_RETRY
                        continue
                    self._replaced += 1
                    idle.update(dict.fromkeys(stubs - zombies, (model, time.monotonic() + self.exit_timeout)))
                retiring |= stubs  # replaced, or unloaded on purpose (repository API): its stubs just left
                retry.pop(model, None)
            for pid, (model, due) in list(idle.items()):
                if time.monotonic() >= due:
                    del idle[pid]
                    if _kill_stub(self.process.pid, pid):
                        print(f"server: stopped the idle stub (pid {pid}) of the replaced copy of {model}",
                              file=sys.stderr, flush=True)
            # From this look's list: a stub that died since stays known, and is a zombie at the next look.
            present = {pid for pid, _, _ in children}
            known = {pid: name for pid, name in (known | stub_processes(self.process.pid, children)).items()
                     if pid in present and pid not in retiring}
        if not self._stopping.is_set():
            self._report_exit()

    def _report_exit(self) -> None:
        """Say on stderr, once, that tritonserver exited while it was meant to serve: how, and its last lines."""
        if self._drainer:
            self._drainer.join(2)  # the output up to the exit
        code = self.process.returncode
        how = f"was killed by signal {-code} ({signal.strsignal(-code)})" if code < 0 else f"exited with code {code}"
        self.died = f"tritonserver (pid {self.process.pid}) {how} while serving"
        print(f"server: {self.died}; its last lines:\n{self._last_lines()}", file=sys.stderr, flush=True)

    def _index(self) -> list[dict]:
        """Triton's repository index: every model with its ``state``; OSError or ValueError when it does not
        answer."""
        return json.loads(self._repository("index"))

    def _ready_in_index(self, model: str) -> bool | None:
        """Whether the repository index says ``model`` is READY; None when the server does not answer."""
        try:
            return any(entry["name"] == model and entry.get("state") == "READY" for entry in self._index())
        except (OSError, ValueError, KeyError):
            return None

    def _repository(self, action: str, model: str | None = None, timeout: float = 5, body: bytes = b"") -> bytes:
        """POST to Triton's model repository API with the launcher's key: ``index``, or ``load``/``unload``
        of ``model``."""
        path = f"models/{model}/{action}" if model else action
        return _post(f"http://{self.http_url}/v2/repository/{path}", admin_headers(self._repository_key), timeout,
                     body)

    def _wait_index(self, settled: Callable[[list[dict]], bool], deadline: float) -> bool:
        """Poll the repository index until ``settled(models)`` holds; False at the deadline (``time.monotonic``)."""
        while time.monotonic() < deadline:
            if settled(self._index()):
                return True
            time.sleep(0.1)
        return False

    def reload(self, model: str, timeout: float = 180.0) -> bool:
        """Load ``model`` again beside the serving copy (new stub processes) and swap it in.

        Triton loads a model whose configuration changed in the background and unloads the old copy only after the
        new one is ready, so the ensemble keeps serving; unloading first would wait for the requests queued on the
        dead instance with the whole ensemble down, and loading an unchanged model changes nothing. So the
        served configuration goes back with one parameter more, counting the reloads. True when the new copy is
        ready within ``timeout`` seconds."""
        self._reloads += 1
        headers = admin_headers(self._repository_key)
        try:
            request = urllib.request.Request(f"http://{self.http_url}/v2/models/{model}/config", headers=headers)
            with urllib.request.urlopen(request, timeout=5) as response:
                config = json.loads(response.read())
            config.setdefault("parameters", {})[RELOAD_PARAMETER] = {"string_value": str(self._reloads)}
            body = json.dumps({"parameters": {"config": json.dumps(config)}}).encode()
            self._repository("load", model, timeout=timeout, body=body)
            return True
        except (OSError, ValueError) as error:  # refused (HTTPError), no answer, or not JSON
            print(f"server: reloading {model} failed: {error}", file=sys.stderr, flush=True)
            return False

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
            if _ERROR_LINE.match(line):
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
            lines, errors = everything[-40:], [line for line in everything if _ERROR_LINE.match(line)][-10:]
        return "\n".join([line for line in errors if line not in lines] + lines)

    def _wait_ready(self, timeout: float) -> None:
        if wait_ready(self.http_url, timeout, alive=lambda: self.process.poll() is None):
            return
        if self.process.poll() is not None:
            if self._drainer:
                self._drainer.join(2)  # the output up to the exit, the reason included
            raise self._failure(f"tritonserver exited with code {self.process.returncode}")
        raise self._failure(f"tritonserver was not ready after {timeout:.0f} s")

    def drain(self, timeout: float | None = None) -> bool:
        """Unload the ensemble and wait until it is unloaded: requests in flight finish, new ones are refused
        (gRPC UNAVAILABLE, HTTP 503), and no request is left between two steps. True when drained in time.

        SIGTERM alone is not enough for an ensemble: Triton then stops every model's scheduler at once, so a
        request between two steps is refused half-way ("Server is stopping").
        """
        deadline = time.monotonic() + (self.exit_timeout if timeout is None else timeout)
        try:
            self._repository("unload", names.ENSEMBLE)
            return self._wait_index(lambda index: all(model.get("state") != "UNLOADING" and not (
                model["name"] == names.ENSEMBLE and model.get("state") == "READY") for model in index), deadline)
        except OSError:
            pass  # a server that does not answer any more has nothing left to drain
        return False

    def _unload_all(self, deadline: float) -> bool:
        """Unload every model still loaded and wait until none is loaded or unloading: the requests they run,
        direct calls of a step included, finish first. False if that is not done by ``deadline``."""
        try:
            for model in self._index():
                if model.get("state") == "READY":
                    self._repository("unload", model["name"])
            return self._wait_index(lambda index: all(model.get("state") not in ("READY", "UNLOADING")
                                                      for model in index), deadline)
        except (OSError, ValueError):
            return False

    def stop(self, timeout: float | None = None) -> None:
        """Drain the ensemble (:meth:`drain`, within the exit timeout), SIGTERM the server and wait for it
        (``timeout`` seconds at most, by default the exit timeout and 5 s), then make sure no stub process of its
        group and no shared memory of its stubs is left, and remove the temporary folder. Safe to call at any
        point.

        After a stub died, Triton 2.51 would wait out the whole exit timeout on SIGTERM for the replaced copy it
        never releases (see :meth:`_supervise`) and exit 1. So then every model is unloaded first, which lets what
        is in flight finish, and the server, left holding nothing that serves, is killed.
        """
        self._stop_supervising()  # first: the stubs that exit from here on are not to be restored
        if self.process is not None:
            if self.process.poll() is None:
                deadline = time.monotonic() + self.exit_timeout
                self.drain()
                if self._replaced and self._unload_all(deadline):
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
            self._watchdog.wait()
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        if self._workdir:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
