#!/usr/bin/env bash
# Build NVIDIA Triton's ONNX Runtime backend (r24.10, CPU only) for the local tritonserver of the nvidia-pytriton
# wheel, into build/triton-backends/onnxruntime/:
#   libtriton_onnxruntime.so   the backend, its libtritonserver.so dependency renamed to the wheel's library
#   libonnxruntime.so.1        a link to the onnxruntime wheel's library (the backend's RUNPATH is $ORIGIN)
# Sources: git and CMake FetchContent from github.com/triton-inference-server at tag r24.10 and the ONNX Runtime
# 1.19 C API header; or, offline, the archives of those sources in TRITON_BACKEND_SOURCES (backends/README.md).
# Quick when already built (a stamp of sources, options and libraries); --force rebuilds.
# Needs: cmake, a C++17 compiler, patchelf, RapidJSON headers (Debian: cmake g++ rapidjson-dev googletest patchelf).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
SRC_ARCHIVES="${TRITON_BACKEND_SOURCES:-}"
TAG=r24.10
ORT_HEADER_URL="https://raw.githubusercontent.com/microsoft/onnxruntime/v1.19.2/include/onnxruntime/core/session/onnxruntime_c_api.h"
WORK="$ROOT/build/onnxruntime-backend"
DEST="$ROOT/build/triton-backends/onnxruntime"
LIB="$DEST/libtriton_onnxruntime.so"

# shellcheck source=backends/common.sh
source "$ROOT/backends/common.sh"
[[ "${1:-}" == "--force" ]] && rm -rf "$WORK" "$DEST"

# The two wheel libraries the backend is bound to.
[[ -x "$PY" ]] || fail "no Python environment at $PY: run \`make setup\` first"
read -r ORT_LIB TRITON_LIB < <("$PY" - <<'EOF' 2>/dev/null || true
import glob, pathlib, onnxruntime, pytriton
ort = sorted(glob.glob(str(pathlib.Path(onnxruntime.__file__).parent / "capi" / "libonnxruntime.so.1.*")))
triton = sorted(glob.glob(str(pathlib.Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs" / "libtritonserver*.so")))
print(ort[0] if ort else "-", triton[0] if triton else "-")
EOF
)
[[ -n "${ORT_LIB:-}" && "$ORT_LIB" != - ]] || fail "the onnxruntime wheel's libonnxruntime.so.1.* was not found (run \`make setup\`)"
[[ -n "${TRITON_LIB:-}" && "$TRITON_LIB" != - ]] || fail "the nvidia-pytriton wheel's libtritonserver*.so was not found (run \`make setup\`)"

if [[ -n "$SRC_ARCHIVES" ]]; then
    [[ -d "$SRC_ARCHIVES" ]] || fail "TRITON_BACKEND_SOURCES=$SRC_ARCHIVES is not a folder"
    SOURCE="archives $(cd "$SRC_ARCHIVES" && cat ./*.tar.gz onnxruntime-include/onnxruntime_c_api.h | sha256sum | cut -c1-16)"
else
    SOURCE="github $TAG"
fi
STAMP="$SOURCE; gpu off; ort $ORT_LIB; triton $(basename "$TRITON_LIB"); script $(cat "$0" "$ROOT/backends/common.sh" | sha256sum | cut -c1-16)"

link_onnxruntime() {  # refreshed on every run: cheap, and follows a recreated virtual environment
    ln -sfn "$ORT_LIB" "$DEST/libonnxruntime.so.1"
}

if [[ -f "$LIB" && -f "$DEST/.stamp" && "$(cat "$DEST/.stamp")" == "$STAMP" ]]; then
    link_onnxruntime
    say "already built: $LIB"
    exit 0
fi

check_build_tools

say "building NVIDIA's onnxruntime backend ($TAG, CPU) from $SOURCE"
rm -rf "$WORK"
mkdir -p "$WORK/src" "$WORK/onnxruntime/include" "$WORK/onnxruntime/lib" "$DEST"
ln -sfn "$ORT_LIB" "$WORK/onnxruntime/lib/libonnxruntime.so"

CMAKE_ARGS=(
    -DCMAKE_BUILD_TYPE=Release
    -DTRITON_ENABLE_GPU=OFF
    -DTRITON_ENABLE_ONNXRUNTIME_TENSORRT=OFF
    -DTRITON_ENABLE_ONNXRUNTIME_OPENVINO=OFF
    -DTRITON_ONNXRUNTIME_INCLUDE_PATHS="$WORK/onnxruntime/include"
    -DTRITON_ONNXRUNTIME_LIB_PATHS="$WORK/onnxruntime/lib"
    -DTRITON_BACKEND_REPO_TAG=$TAG -DTRITON_CORE_REPO_TAG=$TAG -DTRITON_COMMON_REPO_TAG=$TAG
)
if [[ -n "$SRC_ARCHIVES" ]]; then
    use_archived_sources onnxruntime_backend
    cp "$SRC_ARCHIVES/onnxruntime-include/onnxruntime_c_api.h" "$WORK/onnxruntime/include/"
else
    command -v git >/dev/null || fail "git is missing (needed to fetch the sources; or set TRITON_BACKEND_SOURCES)"
    command -v curl >/dev/null || fail "curl is missing (needed to fetch the ONNX Runtime C API header)"
    git clone --quiet --depth 1 --branch $TAG https://github.com/triton-inference-server/onnxruntime_backend.git \
        "$WORK/src/onnxruntime_backend" || fail "cannot clone onnxruntime_backend $TAG from GitHub"
    curl -fsSL "$ORT_HEADER_URL" -o "$WORK/onnxruntime/include/onnxruntime_c_api.h" \
        || fail "cannot download the ONNX Runtime C API header ($ORT_HEADER_URL)"
fi

configure_and_build "$WORK/src/onnxruntime_backend" triton-onnxruntime-backend

cp "$WORK/cmake/libtriton_onnxruntime.so" "$LIB.tmp"
# The wheel ships libtritonserver.so renamed; the running server has already loaded it under that soname.
patchelf --replace-needed libtritonserver.so "$(basename "$TRITON_LIB")" "$LIB.tmp"
mv "$LIB.tmp" "$LIB"
link_onnxruntime
echo "$STAMP" >"$DEST/.stamp"
say "built $LIB"
