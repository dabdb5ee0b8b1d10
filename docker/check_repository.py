"""Refuse to start a server container on a model repository that is not a complete export, in one line.

    check_repository.py REPOSITORY [CONFIG_NAME]

Exit 0 when REPOSITORY has the export's ``manifest.json``, every file it lists, and (with CONFIG_NAME) the
``configs/<CONFIG_NAME>.pbtxt`` variant; else print one line ``<what is missing>: <what to do>`` on stderr and
exit 1. Triton would also refuse such a repository, but only after many log lines, and an empty volume makes it
serve nothing at all. Standard library only: it runs on the image's own Python (3.10 in NVIDIA's image).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MANIFEST = "manifest.json"  # triton_ner.core.names.MANIFEST: written last by the export
EXPORT_AGAIN = "run the export again (docker compose run --rm export)"


def missing(repository: Path, config_name: str | None = None) -> str | None:
    """What keeps ``repository`` from being served, in one line, or None when nothing does."""
    manifest_path = repository / MANIFEST
    if not repository.is_dir():
        return f"{repository} does not exist: mount the exported model repository there"
    if not manifest_path.is_file():
        return f"{manifest_path} is missing, so {repository} holds no complete export: {EXPORT_AGAIN}"
    try:
        manifest = json.loads(manifest_path.read_text())
        artifacts = manifest["artifacts"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"{manifest_path} is unreadable ({type(error).__name__}: {error}): {EXPORT_AGAIN}"
    absent = sorted(name for name in artifacts if not (repository / name).is_file())
    if absent:
        more = f" and {len(absent) - 1} more" if len(absent) > 1 else ""
        return f"{repository / absent[0]}{more} listed in {MANIFEST} is missing: {EXPORT_AGAIN}"
    if config_name and not any(repository.glob(f"*/configs/{config_name}.pbtxt")):
        written = ", ".join(manifest.get("config_names", [])) or "none"
        return (f"no model in {repository} has configs/{config_name}.pbtxt (the export wrote: {written}): "
                "export with --target both, or choose an exported config")
    return None


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: check_repository.py REPOSITORY [CONFIG_NAME]", file=sys.stderr)
        return 2
    problem = missing(Path(argv[1]), argv[2] if len(argv) == 3 else None)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
