#!/usr/bin/env bash
# Build NVIDIA's pytorch (LibTorch) backend, release r24.10, for CPU, against the PyTorch wheel of this project's
# virtual environment, so that the local tritonserver 2.51 loads the gpu_torchscript configs switched to CPU.
# Sources: pytorch_backend cloned from GitHub at tag r24.10 and backend, core and common by CMake FetchContent; or,
# offline, the archives of those sources in TRITON_BACKEND_SOURCES (backends/README.md).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
SRC_ARCHIVES="${TRITON_BACKEND_SOURCES:-}"
TAG=r24.10
WORK="$ROOT/build/pytorch-backend"
DEST="$ROOT/build/triton-backends/pytorch"
LIB="$DEST/libtriton_pytorch.so"

# shellcheck source=backends/common.sh
source "$ROOT/backends/common.sh"
[[ "${1:-}" == "--force" ]] && rm -rf "$WORK" "$DEST"

[[ -x "$PY" ]] || fail "no Python environment at $PY: run \`make setup\` first"
read -r TORCH_DIR TRITON_LIB PY_INCLUDE < <("$PY" - <<'PYEOF' 2>/dev/null || true
import glob, pathlib, sysconfig, torch, pytriton
triton = sorted(glob.glob(str(pathlib.Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs" / "libtritonserver*.so")))
print(pathlib.Path(torch.__file__).parent, triton[0] if triton else "-", sysconfig.get_paths()["include"])
PYEOF
)
[[ -n "${TORCH_DIR:-}" && -f "$TORCH_DIR/lib/libtorch.so" ]] || fail "the torch wheel's libtorch.so was not found (run \`make setup\`)"
[[ -n "${TRITON_LIB:-}" && "$TRITON_LIB" != - ]] || fail "the nvidia-pytriton wheel's libtritonserver*.so was not found (run \`make setup\`)"
[[ -f "$PY_INCLUDE/Python.h" ]] || fail "Python.h is missing in $PY_INCLUDE (the torch headers include it)"

if [[ -n "$SRC_ARCHIVES" ]]; then
    [[ -d "$SRC_ARCHIVES" ]] || fail "TRITON_BACKEND_SOURCES=$SRC_ARCHIVES is not a folder"
    SOURCE="archives $(cd "$SRC_ARCHIVES" && cat pytorch_backend.tar.gz backend.tar.gz core.tar.gz common.tar.gz | sha256sum | cut -c1-16)"
else
    SOURCE="github $TAG"
fi
STAMP="$SOURCE; gpu off; torch $TORCH_DIR; triton $(basename "$TRITON_LIB"); script $(cat "$0" "$ROOT/backends/common.sh" | sha256sum | cut -c1-16)"
if [[ -f "$LIB" && -f "$DEST/.stamp" && "$(cat "$DEST/.stamp")" == "$STAMP" ]]; then
    say "already built: $LIB"
    exit 0
fi

check_build_tools

say "building NVIDIA's pytorch backend ($TAG, CPU) against $TORCH_DIR from $SOURCE"
rm -rf "$WORK"
mkdir -p "$WORK/src" "$DEST"
CMAKE_ARGS=(
    -DCMAKE_BUILD_TYPE=Release
    -DTRITON_ENABLE_GPU=OFF
    -DTRITON_PYTORCH_ENABLE_TORCHVISION=OFF
    -DTRITON_PYTORCH_INCLUDE_PATHS="$TORCH_DIR/include;$TORCH_DIR/include/torch/csrc/api/include"
    -DTRITON_PYTORCH_LIB_PATHS="$TORCH_DIR/lib"
    -DPython3_INCLUDE_DIR="$PY_INCLUDE"
    -DTRITON_BACKEND_REPO_TAG=$TAG -DTRITON_CORE_REPO_TAG=$TAG -DTRITON_COMMON_REPO_TAG=$TAG
)
if [[ -n "$SRC_ARCHIVES" ]]; then
    use_archived_sources pytorch_backend
else
    command -v git >/dev/null || fail "git is missing (needed to fetch the sources; or set TRITON_BACKEND_SOURCES)"
    git clone --quiet --depth 1 --branch $TAG https://github.com/triton-inference-server/pytorch_backend.git \
        "$WORK/src/pytorch_backend" || fail "cannot clone pytorch_backend $TAG from GitHub"
fi
configure_and_build "$WORK/src/pytorch_backend" triton-pytorch-backend

cp "$WORK/cmake/libtriton_pytorch.so" "$LIB.tmp"
# The wheel ships libtritonserver renamed; LibTorch lives in the torch wheel, found through the RUNPATH.
patchelf --replace-needed libtritonserver.so "$(basename "$TRITON_LIB")" "$LIB.tmp"
patchelf --set-rpath "\$ORIGIN:$TORCH_DIR/lib" "$LIB.tmp"
mv "$LIB.tmp" "$LIB"
echo "$STAMP" >"$DEST/.stamp"
say "built $LIB"
