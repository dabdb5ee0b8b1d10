"""The launcher's watchdog: stops a server whose launcher is gone, however it ended (SIGKILL included).

Run by the launcher as ``python -m triton_ner.server.watchdog GROUP GRACE WORKDIR SHM_PREFIX`` (:func:`command`),
with the launcher's own interpreter and environment; it uses the standard library only. The launcher holds the only
write end of a pipe that is the watchdog's stdin. A byte means the launcher stopped the server itself: the watchdog
exits. End of file means the launcher is gone: the watchdog stops the server's process group (SIGTERM, SIGKILL after
GRACE seconds) and removes the launcher's temporary folder and the server's shared memory (files starting with
SHM_PREFIX).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import sys
import time


def signal_group(group: int, number: int) -> bool:
    """Send ``number`` to the process group; False when the group is gone."""
    try:
        os.killpg(group, number)
        return True
    except ProcessLookupError:
        return False


def stop_group(group: int, grace: float) -> None:
    """SIGTERM the group, then SIGKILL what is left after ``grace`` seconds."""
    if signal_group(group, signal.SIGTERM):
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and signal_group(group, 0):
            time.sleep(0.2)
        signal_group(group, signal.SIGKILL)


def clean(workdir: str, shm_prefix: str) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
    for path in glob.glob(shm_prefix + "*"):
        try:
            os.remove(path)
        except OSError:
            pass


def command(group: int, grace: float, workdir: str, shm_prefix: str) -> list[str]:
    """The command line that starts the watchdog on ``group``."""
    return [sys.executable, "-m", __spec__.name if __spec__ else "triton_ner.server.watchdog", str(group), str(grace),
            workdir, shm_prefix]


def main(argv: list[str] | None = None) -> int:
    group, grace, workdir, shm_prefix = (argv or sys.argv[1:])[:4]
    if sys.stdin.buffer.read(1):
        return 0
    stop_group(int(group), float(grace))
    clean(workdir, shm_prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
