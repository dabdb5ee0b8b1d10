"""The scheduler wake-up fix: ``wakeup.c`` built beside this file, loaded into ``tritonserver`` with ``LD_PRELOAD``.

Triton's dynamic batcher can lose the wake-up that an instance's completion sends when the model has a queue
policy (every step of this project's exports has one), and then leaves the queued requests waiting up to 500 ms
with every instance idle (``wakeup.c`` says where). The library ends the scheduler threads' condition-variable
waits every 2 ms, which such a wait allows, so a lost wake-up costs at most that. ``make setup`` and the images
build it (``python -m triton_ner.server.wakeup``); the launcher loads it when it is built and says in one line when
it is not.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).with_name("wakeup.c")
LIBRARY = Path(__file__).with_name("libner_wakeup.so")
MISSING = ("the scheduler wake-up fix is not built (python -m triton_ner.server.wakeup builds it with a C "
           "compiler; make setup does): under load Triton may leave a request queued up to 0.5 s")


def library() -> Path | None:
    """The built library, or None."""
    return LIBRARY if LIBRARY.is_file() else None


def build(compiler: str | None = None) -> Path:
    """Compile ``wakeup.c`` into :data:`LIBRARY` with ``compiler`` (default: ``cc`` or ``gcc`` on PATH)."""
    compiler = compiler or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler (cc or gcc) on PATH")
    partial = LIBRARY.with_suffix(".partial")
    done = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(partial), str(SOURCE), "-ldl"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{compiler} failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    partial.replace(LIBRARY)
    return LIBRARY


def preload(environment: dict[str, str]) -> dict[str, str]:
    """``environment`` with the library first in ``LD_PRELOAD`` (unchanged when it is not built)."""
    found = library()
    if found is None:
        return environment
    others = [p for p in environment.get("LD_PRELOAD", "").split(":") if p and p != str(found)]
    return environment | {"LD_PRELOAD": ":".join([str(found), *others])}


def main(argv: list[str] | None = None) -> int:
    """Build the library beside this module, or put a library built elsewhere there (``--built FILE``: an image
    whose compiler is in another stage)."""
    parser = argparse.ArgumentParser(prog="python -m triton_ner.server.wakeup", description=main.__doc__)
    parser.add_argument("--built", type=Path, help="A library built from wakeup.c elsewhere, to put in place.")
    args = parser.parse_args(argv)
    try:
        if args.built:
            shutil.copyfile(args.built, LIBRARY)
            print(f"wakeup: installed {LIBRARY}")
        else:
            print(f"wakeup: built {build()}")
    except (OSError, RuntimeError) as error:
        print(f"wakeup: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
