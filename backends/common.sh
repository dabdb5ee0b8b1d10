# Shared by build-onnxruntime.sh and build-pytorch.sh (sourced): messages, tool checks, and the backend, core and
# common sources of release $TAG from the archives in $SRC_ARCHIVES (else CMake fetches them from GitHub).

say() { echo "backends: $*" >&2; }
fail() { say "error: $*"; exit 1; }

# The C++ toolchain and the packages every Triton backend build needs: what is missing, in one line, or nothing.
missing_build_tools() {
    local tool missing=()
    for tool in cmake patchelf; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    command -v "${CXX:-c++}" >/dev/null || missing+=("a C++ compiler (${CXX:-c++})")
    [[ -f /usr/include/rapidjson/rapidjson.h || -n "${RapidJSON_DIR:-}" ]] || missing+=("the RapidJSON headers")
    if ((${#missing[@]})); then
        local IFS=,
        echo "no ${missing[*]} (Debian: apt-get install cmake g++ rapidjson-dev googletest patchelf)" | sed 's/,/, /g'
    fi
}

check_build_tools() {
    local missing
    missing="$(missing_build_tools)"
    [[ -z "$missing" ]] || fail "$missing"
}

# Unpack backend, core and common (and the archives named as arguments) from $SRC_ARCHIVES into $WORK/src and add
# the CMake options that make FetchContent use them, offline, to CMAKE_ARGS.
use_archived_sources() {
    local repo
    for repo in backend core common "$@"; do
        tar -xzf "$SRC_ARCHIVES/$repo.tar.gz" -C "$WORK/src" || fail "cannot unpack $SRC_ARCHIVES/$repo.tar.gz"
    done
    local gtest=/usr/src/googletest
    [[ -f "$gtest/CMakeLists.txt" ]] || fail "googletest sources are missing in $gtest (Debian: apt-get install googletest)"
    CMAKE_ARGS+=(
        -DFETCHCONTENT_FULLY_DISCONNECTED=ON
        -DFETCHCONTENT_SOURCE_DIR_REPO-COMMON="$WORK/src/common"
        -DFETCHCONTENT_SOURCE_DIR_REPO-CORE="$WORK/src/core"
        -DFETCHCONTENT_SOURCE_DIR_REPO-BACKEND="$WORK/src/backend"
        -DFETCHCONTENT_SOURCE_DIR_GOOGLETEST="$gtest"
    )
}

# Configure $1 into $WORK/cmake with CMAKE_ARGS, build target $2, one line on failure.
configure_and_build() {
    cmake -S "$1" -B "$WORK/cmake" "${CMAKE_ARGS[@]}" >"$WORK/cmake.log" 2>&1 \
        || fail "cmake configure failed, see $WORK/cmake.log: $(grep -m1 -E 'Error|error' "$WORK/cmake.log" || tail -n1 "$WORK/cmake.log")"
    cmake --build "$WORK/cmake" --target "$2" -j "$(nproc 2>/dev/null || echo 2)" >"$WORK/build.log" 2>&1 \
        || fail "compilation failed, see $WORK/build.log: $(grep -m1 -E 'error' "$WORK/build.log" || tail -n1 "$WORK/build.log")"
}
