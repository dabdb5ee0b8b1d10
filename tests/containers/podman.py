"""What `make compose-test` needs to run docker-compose.yml on a machine without Docker: podman with the runc
runtime, a Debian base image made with debootstrap (no image registry is reachable), and the CPU images built with
the host's CA bundle, pip configuration and local wheels mounted in (the build reaches only the package index, and
PyPI's torch is a CUDA build). None of this plumbing is in the Dockerfiles users read: it is build arguments and
``podman build -v`` mounts decided here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "docker" / "Dockerfile"
BASE_IMAGE = "localhost/ner-ci-base:bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# The images docker-compose.yml names, by Dockerfile target (its "image:" fields, with the tag).
TARGETS = {
    "export": "distilbert-ner-triton-export:0.1.0",
    "cpu": "distilbert-ner-triton-cpu:0.1.0",
    "locust": "distilbert-ner-triton-locust:0.1.0",
}
# What the test needs, by the Debian package that has it: the container engine and its runtime, the network plugins
# (dnsname: service names and aliases resolve between containers, as on a Compose network), the base image's
# builder, promtool.
PACKAGES = {"podman": "podman", "runc": "runc", "/usr/lib/cni/bridge": "containernetworking-plugins",
            "/usr/lib/cni/dnsname": "golang-github-containernetworking-plugin-dnsname",
            "debootstrap": "debootstrap", "promtool": "prometheus"}
# crun (podman's default runtime) fails here on setrlimit(RLIMIT_NOFILE); runc with no default ulimits works.
CONTAINERS_CONF = '[engine]\nruntime = "runc"\n[containers]\ndefault_ulimits = []\n'


def log(message: str) -> None:
    """A progress line on stderr (shown live by ``pytest -s`` and by make)."""
    print(f"compose-test: {message}", file=sys.stderr, flush=True)


def run(command: Sequence[str], *, timeout: float, check: bool = True, env: dict[str, str] | None = None,
        quiet: bool = False, label: str | None = None) -> subprocess.CompletedProcess:
    """``command`` with its output captured; on failure (when ``check``) an AssertionError with its last lines.
    Unless ``quiet``, one line says what ran (``label``, else the command's start), its exit code and time."""
    started = time.monotonic()
    done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, check=False,
                          env=env, cwd=PROJECT_ROOT)
    if not quiet:
        shown = label or " ".join(Path(command[0]).name if i == 0 else part for i, part in enumerate(command[:4]))
        log(f"{shown}: exit {done.returncode} in {time.monotonic() - started:.0f} s")
    if check and done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise AssertionError(f"{' '.join(command)} exited {done.returncode}:\n{tail}")
    return done


def install_tools() -> None:
    """Install with apt-get the Debian packages whose commands are missing (CI runs as root on a fresh machine)."""
    missing = sorted({package for needed, package in PACKAGES.items()
                      if not (Path(needed).exists() if needed.startswith("/") else shutil.which(needed))})
    if not missing:
        return
    assert os.geteuid() == 0, f"make compose-test needs {', '.join(missing)}: apt-get install them (as root)"
    log(f"installing {', '.join(missing)}")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], timeout=600, env=environment)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, "iptables"], timeout=1200,
        env=environment)


def engine_environment(folder: Path) -> dict[str, str]:
    """The environment of every podman and podman-compose call: runc, no default ulimits."""
    conf = folder / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def image_exists(name: str, env: dict[str, str]) -> bool:
    return run(["podman", "image", "exists", name], timeout=60, check=False, env=env, quiet=True).returncode == 0


def build_base_image(env: dict[str, str]) -> None:
    """A minimal Debian bookworm with Python 3.11, venv, libpython (which Triton's Python-backend stub links) and CA
    certificates, as ``BASE_IMAGE`` (kept between runs: a second run reuses it)."""
    if image_exists(BASE_IMAGE, env):
        return
    with tempfile.TemporaryDirectory(prefix="ner-base-") as root:
        log(f"debootstrap of {BASE_IMAGE}")
        run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,libpython3.11,ca-certificates",
             "bookworm", root, DEBIAN_MIRROR], timeout=1200)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        try:
            done = subprocess.run(["podman", "import", "-", BASE_IMAGE], stdin=tar.stdout, capture_output=True,
                                  text=True, timeout=600, check=False, env=env)
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait(timeout=600)
        assert done.returncode == 0 and tar.returncode == 0, f"podman import failed: {done.stderr}"


def _pip_configuration() -> dict[str, str]:
    """``{"section.key": value}`` of the host's pip configuration, every file and PIP_* variable merged."""
    done = run([sys.executable, "-m", "pip", "config", "list"], timeout=60, quiet=True)
    found = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        found["global." + key.removeprefix(":env:.") if key.startswith(":env:") else key] = value.strip().strip("'\"")
    return found


def build_mounts(folder: Path) -> list[str]:
    """``podman build -v`` options: the host's pip configuration (one merged pip.conf at /etc/pip.conf) and every
    local file or folder it names (CA bundle, constraints, find-links, file:// indexes), read-only at the same
    paths."""
    settings = _pip_configuration()
    sections: dict[str, dict[str, str]] = {}
    paths: set[Path] = set()
    for key, value in settings.items():
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = value
        for word in value.split():
            candidate = Path(word.removeprefix("file://"))
            if candidate.name == "simple":  # a PEP 503 index whose pages link to ../../files/...
                candidate = candidate.parent
            if candidate.is_absolute() and candidate.exists():
                paths.add(candidate)
    conf = folder / "pip.conf"
    conf.write_text("".join(f"[{section}]\n" + "".join(f"{name} = {value}\n" for name, value in values.items())
                            for section, values in sections.items()))
    mounts = ["-v", f"{conf}:/etc/pip.conf:ro"]
    for path in sorted(paths):
        mounts += ["-v", f"{path}:{path}:ro"]
    return mounts


def build_images(folder: Path, env: dict[str, str]) -> dict[str, int]:
    """Build the three CPU images of docker-compose.yml on ``BASE_IMAGE``; their sizes in bytes."""
    mounts = build_mounts(folder)
    sizes = {}
    for target, image in TARGETS.items():
        log(f"building {image}")
        run(["podman", "build", "--file", str(DOCKERFILE), "--target", target, "--tag", image,
             "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
             # torch from the host's local CPU wheels (its pip configuration's find-links), not PyTorch's index.
             "--build-arg", "TORCH_INDEX_URL=", *mounts, str(PROJECT_ROOT)], timeout=2400, env=env,
            label=f"podman build --target {target}")
        inspected = run(["podman", "image", "inspect", "--format", "{{.Size}}", image], timeout=60, env=env,
                        quiet=True)
        sizes[image] = int(inspected.stdout.strip())
    return sizes


def compose(project: str, *arguments: str, env: dict[str, str], timeout: float = 600,
            check: bool = True) -> subprocess.CompletedProcess:
    """``podman-compose`` on docker-compose.yml as project ``project``."""
    executable = Path(sys.executable).parent / "podman-compose"
    return run([str(executable), "--file", str(COMPOSE_FILE), "--project-name", project, *arguments],
               timeout=timeout, env=env, check=check, label=f"podman-compose {' '.join(arguments)[:80]}")


def leftovers(project: str, env: dict[str, str]) -> list[str]:
    """The containers, volumes and networks of ``project`` that still exist."""
    label = f"label=io.podman.compose.project={project}"
    found = []
    for kind, listing in (("container", ["ps", "--all"]), ("volume", ["volume", "ls"]),
                          ("network", ["network", "ls"])):
        done = run(["podman", *listing, "--filter", label, "--format", "{{.Names}}" if kind == "container"
                    else "{{.Name}}"], timeout=60, env=env, check=False, quiet=True)
        found += [f"{kind} {name}" for name in done.stdout.split()]
    return found


def tear_down(project: str, env: dict[str, str]) -> list[str]:
    """Remove every container, volume and network of ``project``; what could not be removed."""
    compose(project, "--profile", "cpu", "--profile", "locust", "down", "--volumes", "--remove-orphans",
            "--timeout", "10", env=env, timeout=300, check=False)
    label = f"label=io.podman.compose.project={project}"
    run(["podman", "rm", "--force", "--filter", label], timeout=120, env=env, check=False, quiet=True)
    for kind in ("volume", "network"):
        done = run(["podman", kind, "ls", "--filter", label, "--format", "{{.Name}}"], timeout=60, env=env,
                   check=False, quiet=True)
        for name in done.stdout.split():
            run(["podman", kind, "rm", "--force", name], timeout=60, env=env, check=False, quiet=True)
    return leftovers(project, env)


def metric_names(exposition: str) -> set[str]:
    """The metric names of a Prometheus text exposition (a summary's quantile series under its own name)."""
    return {match[1] for match in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[ {]", exposition, re.MULTILINE)}
