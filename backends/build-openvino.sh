#!/usr/bin/env bash
# Build NVIDIA Triton's OpenVINO backend (r24.10, CPU) against the openvino wheel of this project's virtual environment,
# so that the local tritonserver 2.51 serves OpenVINO IR and ONNX models on CPU, into build/triton-backends/openvino/:
#   libtriton_openvino.so   the backend, its libtritonserver.so dependency renamed to the wheel's library, and a
#                           RUNPATH to the openvino wheel's libs/ (libopenvino, its TBB, the CPU plugin, the frontends)
# Sources: openvino_backend cloned from GitHub at tag r24.10 and backend, core and common by CMake FetchContent; or,
# offline, the archives of those sources in TRITON_BACKEND_SOURCES (backends/README.md).
# Quick when already built (a stamp of sources, options and libraries); --force rebuilds.
# Needs: cmake, a C++17 compiler, patchelf, patch, RapidJSON (Debian: cmake g++ rapidjson-dev googletest patchelf patch).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
SRC_ARCHIVES="${TRITON_BACKEND_SOURCES:-}"
TAG=r24.10
WORK="$ROOT/build/openvino-backend"
DEST="$ROOT/build/triton-backends/openvino"
LIB="$DEST/libtriton_openvino.so"

# shellcheck source=backends/common.sh
source "$ROOT/backends/common.sh"
[[ "${1:-}" == "--force" ]] && rm -rf "$WORK" "$DEST"

[[ -x "$PY" ]] || fail "no Python environment at $PY: run \`make setup\` first"
read -r OV_DIR OV_LIB OV_VERSION TRITON_LIB < <("$PY" - <<'PYEOF' 2>/dev/null || true
import glob, pathlib, openvino, pytriton
ov = pathlib.Path(openvino.__file__).parent
lib = sorted(glob.glob(str(ov / "libs" / "libopenvino.so.*")))
triton = sorted(glob.glob(str(pathlib.Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs" / "libtritonserver*.so")))
print(ov, lib[0] if lib else "-", openvino.__version__.split("-")[0], triton[0] if triton else "-")
PYEOF
)
[[ -n "${OV_LIB:-}" && "$OV_LIB" != - && -f "$OV_DIR/include/openvino/openvino.hpp" ]] \
    || fail "the openvino wheel's libs/libopenvino.so.* and include/ were not found (run \`make setup\`)"
[[ -n "${TRITON_LIB:-}" && "$TRITON_LIB" != - ]] || fail "the nvidia-pytriton wheel's libtritonserver*.so was not found (run \`make setup\`)"

if [[ -n "$SRC_ARCHIVES" ]]; then
    [[ -d "$SRC_ARCHIVES" ]] || fail "TRITON_BACKEND_SOURCES=$SRC_ARCHIVES is not a folder"
    SOURCE="archives $(cd "$SRC_ARCHIVES" && cat openvino_backend.tar.gz backend.tar.gz core.tar.gz common.tar.gz | sha256sum | cut -c1-16)"
else
    SOURCE="github $TAG"
fi
STAMP="$SOURCE; gpu off; openvino $OV_LIB ($OV_VERSION); triton $(basename "$TRITON_LIB"); script $(cat "$0" "$ROOT/backends/common.sh" | sha256sum | cut -c1-16)"
if [[ -f "$LIB" && -f "$DEST/.stamp" && "$(cat "$DEST/.stamp")" == "$STAMP" ]]; then
    say "already built: $LIB"
    exit 0
fi

check_build_tools
command -v patch >/dev/null || fail "patch is missing (Debian: apt-get install patch)"

say "building NVIDIA's openvino backend ($TAG, CPU) against OpenVINO $OV_VERSION in $OV_DIR from $SOURCE"
rm -rf "$WORK"
mkdir -p "$WORK/src" "$WORK/cmake/openvino/lib" "$DEST"
# The project builds OpenVINO itself in a docker image and then reads it from <build>/openvino/include and
# <build>/openvino/lib (fixed paths, not options), linking -lopenvino: the wheel's headers and library go there.
ln -sfn "$OV_DIR/include" "$WORK/cmake/openvino/include"
ln -sfn "$OV_LIB" "$WORK/cmake/openvino/lib/libopenvino.so"
CMAKE_ARGS=(
    -DCMAKE_BUILD_TYPE=Release
    -DTRITON_ENABLE_GPU=OFF
    # Required by the project's CMakeLists.txt, used only by the docker build of OpenVINO, which is not run (below).
    -DTRITON_BUILD_OPENVINO_VERSION="$OV_VERSION"
    -DTRITON_BUILD_CONTAINER_VERSION=24.10
    -DTRITON_BACKEND_REPO_TAG=$TAG -DTRITON_CORE_REPO_TAG=$TAG -DTRITON_COMMON_REPO_TAG=$TAG
)
if [[ -n "$SRC_ARCHIVES" ]]; then
    use_archived_sources openvino_backend
else
    command -v git >/dev/null || fail "git is missing (needed to fetch the sources; or set TRITON_BACKEND_SOURCES)"
    git clone --quiet --depth 1 --branch $TAG https://github.com/triton-inference-server/openvino_backend.git \
        "$WORK/src/openvino_backend" || fail "cannot clone openvino_backend $TAG from GitHub"
fi
# Patches of the r24.10 sources:
# - OpenVINO 2025.1 made ov::element::undefined an alias of ov::element::dynamic and 2026 removed it; the backend
#   uses it for "no type" and for the untyped Tensor::data(type) call, which is what dynamic means there. One switch
#   lists both, so its undefined case goes. Without this the sources do not compile against OpenVINO 2026.
# - CMakeLists.txt: the backend target depends on the docker build of OpenVINO (docker build, docker cp into
#   <build>/openvino); that dependency is dropped, the wheel's OpenVINO being in place already.
# - A parameter INFERENCE_PRECISION_HINT (f32, bf16, f16: ov::hint::inference_precision). r24.10 has only
#   HINT_BF16=YES and ignores other keys, and OpenVINO runs a model in BF16 by itself on a CPU with BF16 units (AMX,
#   AVX-512 BF16), so FP32 could not be asked for.
# - Dynamic batch: r24.10 fixes the model's batch at max_batch_size (ov::set_batch) and answers any smaller batch
#   with "expected requests with batch size '<max_batch_size>'" unless ENABLE_BATCH_PADDING pads it, which fails for
#   a dynamic sequence length ("unexpected total byte size ... expecting 0"). The batch is made dynamic instead
#   (Triton keeps it within max_batch_size) and a smaller batch runs as it is; ENABLE_BATCH_PADDING still pads.
# - Requests batched together: SetInputTensors gathers their inputs into a buffer owned by its local
#   BackendInputCollector, which frees it before the inference reads it (the first request of a merged batch came
#   back with wrong logits); the instance keeps the collector until its next execution.
sed -i '/case ov::element::undefined:/d; s/ov::element::undefined/ov::element::dynamic/g' \
    "$WORK/src/openvino_backend/src/openvino.cc" "$WORK/src/openvino_backend/src/openvino_utils.cc"
patch -d "$WORK/src/openvino_backend" -p1 --quiet --forward >"$WORK/patch.log" 2>&1 <<'PATCH' \
    || fail "the patch of openvino_backend $TAG did not apply, see $WORK/patch.log"
--- a/CMakeLists.txt
+++ b/CMakeLists.txt
@@ -219,5 +219,6 @@
 add_library(openvino-library SHARED IMPORTED GLOBAL)
 add_dependencies(openvino-library ov_target)
-add_dependencies(triton-openvino-backend openvino-library)
+# The OpenVINO of the build is in place already: no docker build of it.
+# add_dependencies(triton-openvino-backend openvino-library)
 set_target_properties(
   openvino-library
--- a/src/openvino.cc
+++ b/src/openvino.cc
@@ -265,4 +265,6 @@
           ParseParameter("COMPILATION_NUM_THREADS", params, &device_config));
       RETURN_IF_ERROR(ParseParameter("HINT_BF16", params, &device_config));
+      RETURN_IF_ERROR(
+          ParseParameter("INFERENCE_PRECISION_HINT", params, &device_config));
       RETURN_IF_ERROR(ParseParameter("NUM_STREAMS", params, &device_config));
       RETURN_IF_ERROR(
@@ -366,4 +368,9 @@
               .c_str());
     }
+  } else if (mkey.compare("INFERENCE_PRECISION_HINT") == 0) {
+    RETURN_IF_OPENVINO_ASSIGN_ERROR(
+        *ov_property,
+        ov::hint::inference_precision(ov::element::Type(*value)),
+        "reading INFERENCE_PRECISION_HINT");
   } else if (mkey.compare("NUM_STREAMS") == 0) {
     if (value->compare("auto") == 0) {
@@ -597,5 +604,6 @@
   if (MaxBatchSize()) {
     RETURN_IF_OPENVINO_ERROR(
-        ov::set_batch(ov_model_, MaxBatchSize()), "setting max batch size");
+        ov::set_batch(ov_model_, ov::Dimension::dynamic()),
+        "setting max batch size");
   }
 
@@ -900,4 +908,6 @@
 
   size_t batch_pad_size_;
+  // Owns the inputs gathered from several requests until the next execution.
+  std::unique_ptr<BackendInputCollector> collector_;
 };
 
@@ -1047,5 +1057,6 @@
       }
       if (!all_response_failed) {
-        if (total_batch_size != (size_t)max_batch_size) {
+        if (total_batch_size != (size_t)max_batch_size &&
+            model_state_->EnableBatchPadding()) {
           if (model_state_->EnableBatchPadding()) {
             batch_pad_size_ = max_batch_size - total_batch_size;
@@ -1222,8 +1233,8 @@
   RETURN_IF_ERROR(TRITONBACKEND_RequestInputCount(requests[0], &input_count));
 
-  BackendInputCollector collector(
+  collector_.reset(new BackendInputCollector(
       requests, request_count, responses, model_state_->TritonMemoryManager(),
       model_state_->EnablePinnedInput(), CudaStream(), nullptr, nullptr, 0,
-      HostPolicyName().c_str());
+      HostPolicyName().c_str()));
   for (uint32_t input_idx = 0; input_idx < input_count; input_idx++) {
     TRITONBACKEND_Input* input;
@@ -1264,5 +1275,5 @@
       char* dest = (char*)input_tensor.data(ov::element::dynamic);
       memset(dest, 0, input_tensor.get_byte_size());
-      collector.ProcessTensor(
+      collector_->ProcessTensor(
           input_name, dest, input_tensor.get_byte_size(),
           TRITONSERVER_MEMORY_CPU, 0);
@@ -1272,5 +1283,5 @@
       TRITONSERVER_MemoryType memory_type;
       int64_t memory_type_id;
-      RETURN_IF_ERROR(collector.ProcessTensor(
+      RETURN_IF_ERROR(collector_->ProcessTensor(
           input_name, nullptr, 0,
           {{TRITONSERVER_MEMORY_CPU_PINNED, 0}, {TRITONSERVER_MEMORY_CPU, 0}},
@@ -1344,5 +1355,5 @@
 {
   auto mbs = model_state_->MaxBatchSize();
-  if (mbs == 0) {
+  if (mbs == 0 || batch_pad_size_ == 0) {
     return nullptr;
   } else if (
PATCH
configure_and_build "$WORK/src/openvino_backend" triton-openvino-backend

cp "$WORK/cmake/libtriton_openvino.so" "$LIB.tmp"
# The wheel ships libtritonserver renamed; OpenVINO lives in the openvino wheel, found through the RUNPATH (OpenVINO
# finds its plugins and frontends beside its own library).
patchelf --replace-needed libtritonserver.so "$(basename "$TRITON_LIB")" "$LIB.tmp"
patchelf --set-rpath "\$ORIGIN:$OV_DIR/libs" "$LIB.tmp"
mv "$LIB.tmp" "$LIB"
echo "$STAMP" >"$DEST/.stamp"
say "built $LIB"
