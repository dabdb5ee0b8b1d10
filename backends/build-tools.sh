#!/usr/bin/env bash
# Whether this machine can build NVIDIA's backends (make setup asks before it tries): exits 1 with one line naming
# what is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=backends/common.sh
source "$ROOT/backends/common.sh"
missing="$(missing_build_tools)"
[[ -z "$missing" ]] || { echo "$missing"; exit 1; }
