#!/bin/sh
# The export job: MODEL (REVISION pins a Hub commit) exported with the CPU and GPU configs (EXPORT_ARGS adds
# ner-export options, e.g. "--format both --precision fp16") into /models, the volume the servers read.
# FALLBACK_TO_FIXTURE=1 exports the built-in fixture model when the Hub cannot be reached; EXPORT_FORCE=1 exports
# again when /models already holds an export made with the same arguments. Exit code: ner-export's.
set -eu
repository=${MODEL_REPOSITORY:-/models}
set -- --model "${MODEL:-dslim/distilbert-NER}" --target both ${REVISION:+--revision "$REVISION"}
if [ "${FALLBACK_TO_FIXTURE:-0}" = 1 ]; then set -- "$@" --fallback-to-fixture; fi
# shellcheck disable=SC2086  # EXPORT_ARGS is a list of options
set -- "$@" ${EXPORT_ARGS:-}
arguments="$*"
if [ -f "$repository/manifest.json" ] && [ "${EXPORT_FORCE:-0}" != 1 ] \
   && [ "$(cat "$repository/export.args" 2>/dev/null)" = "$arguments" ]; then
    echo "export: $repository already holds the export of: $arguments (EXPORT_FORCE=1 exports again)" >&2
    exit 0
fi
# ner-export proves every artifact in a folder of its own; the volume is replaced only after that, its manifest
# last, so a server never sees a half-written repository as complete.
staging=$(mktemp -d)
ner-export --output "$staging/repository" "$@"
rm -f "$repository/manifest.json"
find "$repository" -mindepth 1 -delete
mv "$staging/repository/manifest.json" "$staging/manifest.json"
cp -R "$staging/repository/." "$repository/"
printf '%s\n' "$arguments" > "$repository/export.args"
cp "$staging/manifest.json" "$repository/manifest.json"
rm -rf "$staging"
echo "export: wrote $repository" >&2
