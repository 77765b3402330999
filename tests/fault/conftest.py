"""The live vault of the load tests, reused under faults; and the lossy mount on which a
power loss is simulated (tests/fault/lossyfs.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.load.conftest import live

__all__ = ["live"]

ROOT = Path(__file__).resolve().parents[2]


def fuse_missing() -> str | None:
    """Why a FUSE file system cannot be mounted here, or None."""
    if os.geteuid() != 0:
        return "mounting the lossy file system for other users' processes needs root"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse on this machine"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (Debian package fuse3)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"mfusepy cannot load libfuse: {exc}"
    return None


class LossyMount:
    """The lossy file system over `disk`, mounted at `path`."""

    def __init__(self, disk: Path, path: Path, log: Path) -> None:
        self.disk, self.path, self.log = disk, path, log
        self.process: subprocess.Popen[bytes] | None = None

    def mount(self) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.fault.lossyfs", str(self.disk), str(self.path)],
                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log,
                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not os.path.ismount(self.path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the lossy file system did not mount: see {self.log}")
            time.sleep(0.05)

    def power_loss(self) -> None:
        """Everything not fsynced is gone; the mount comes back with what the disk holds.

        Every process with a file open on the mount must be gone (or have let go) first.
        """
        self.unmount()
        self.mount()

    def unmount(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True,
                       check=False)


@pytest.fixture
def lossy(tmp_path: Path) -> Iterator[LossyMount]:
    """A fresh lossy mount. It lives under /tmp, open to all, because PostgreSQL (running as
    its own user) cannot reach into pytest's private tmp_path."""
    missing = fuse_missing()
    if missing:
        pytest.skip(missing)
    base = Path(tempfile.mkdtemp(prefix="cmr-lossy-"))
    base.chmod(0o755)
    disk, path = base / "disk", base / "mnt"
    disk.mkdir(mode=0o777)
    disk.chmod(0o777)
    path.mkdir()
    mount = LossyMount(disk, path, tmp_path / "lossyfs.log")
    mount.mount()
    try:
        yield mount
    finally:
        mount.unmount()
        shutil.rmtree(base, ignore_errors=True)
