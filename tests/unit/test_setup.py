"""``make setup`` on a machine without the backends' build tools: one quiet line says what is skipped."""

import os
import subprocess
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_setup_without_the_build_tools_says_what_is_skipped_in_one_line(tmp_path):
    # This machine's commands, but cmake and patchelf.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        for tool in Path(folder).iterdir() if Path(folder).is_dir() else []:
            if tool.name not in ("cmake", "patchelf") and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    done = subprocess.run(["make", "--no-print-directory", "setup"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=600, check=False, env={**os.environ, "PATH": str(bin_dir)})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert lines == ["setup: NVIDIA's onnxruntime, pytorch and openvino backends are not built, no cmake, patchelf "
                     "(Debian: apt-get install cmake g++ rapidjson-dev googletest patchelf): the Python-backend "
                     "configs work without them"], lines
