"""A FUSE file system that forgets every write not yet fsynced when its process dies: the
power-loss half of LazyFS (`lose-unfsynced-writes`), for checklist R3.

    python -m tests.fault.lossyfs BACKING MOUNTPOINT

Reads and writes through MOUNTPOINT behave like a normal file system with a page cache: a write
is visible to every reader at once, but it reaches BACKING (the "disk") only when the file is
fsynced (fsync and fdatasync alike). Killing this process with SIGKILL and unmounting is a
power loss: BACKING holds exactly what was synced, and a new mount serves that. File creation,
renames and deletions go to BACKING at once (LazyFS models those as durable too).

LazyFS itself is not packaged for Debian or PyPI and cannot be fetched here; this is the part
of it the test needs, on mfusepy and Debian's libfuse3.
"""

from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import mfusepy as fuse


@dataclass
class Unsynced:
    """The writes and truncations of one file since its last fsync, in order."""

    ops: list[tuple[int, bytes | None]] = field(default_factory=list)  # (offset, data) or
    # (length, None) for a truncation

    def size(self, disk_size: int) -> int:
        size = disk_size
        for where, data in self.ops:
            size = where if data is None else max(size, where + len(data))
        return size

    def overlay(self, base: bytearray, offset: int) -> None:
        """Apply the pending operations to `base`, the bytes at `offset` as the disk has them."""
        end = offset + len(base)
        for where, data in self.ops:
            if data is None:
                if where < end:
                    cut = max(where - offset, 0)
                    base[cut:] = bytes(len(base) - cut)
                continue
            lo, hi = max(where, offset), min(where + len(data), end)
            if lo < hi:
                base[lo - offset:hi - offset] = data[lo - where:hi - where]


class LossyFS(fuse.Operations):  # type: ignore[misc]
    """Pass-through to a backing directory, holding unsynced data in this process only."""

    use_ns = True

    def __init__(self, backing: str) -> None:
        self.backing = backing
        self.unsynced: dict[str, Unsynced] = {}

    def _real(self, path: str) -> str:
        return os.path.join(self.backing, path.lstrip("/"))

    def _disk_size(self, path: str) -> int:
        return os.lstat(self._real(path)).st_size

    # --- metadata, straight to the backing directory (durable at once) -----------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        try:
            st = os.lstat(self._real(path))
        except FileNotFoundError:
            raise fuse.FuseOSError(errno.ENOENT) from None
        attrs = {key: getattr(st, key) for key in (
            "st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime", "st_mtime",
            "st_ctime")}
        if path in self.unsynced:
            attrs["st_size"] = self.unsynced[path].size(st.st_size)
        return attrs

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._real(path))]

    def access(self, path: str, amode: int) -> int:
        if not os.access(self._real(path), amode):
            raise fuse.FuseOSError(errno.EACCES)
        return 0

    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self._real(path), mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        os.chown(self._real(path), uid, gid)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        os.utime(self._real(path), ns=times)
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        os.mkdir(self._real(path), mode)
        self._owned_by_caller(path)
        return 0

    def _owned_by_caller(self, path: str) -> None:
        """This process runs as root: new files belong to whoever made them (PostgreSQL
        insists that its data directory is its own)."""
        uid, gid, _ = fuse.fuse_get_context()
        os.chown(self._real(path), uid, gid)

    def rmdir(self, path: str) -> int:
        os.rmdir(self._real(path))
        return 0

    def unlink(self, path: str) -> int:
        os.unlink(self._real(path))
        self.unsynced.pop(path, None)
        return 0

    def rename(self, old: str, new: str) -> int:
        os.replace(self._real(old), self._real(new))
        self.unsynced.pop(new, None)
        if old in self.unsynced:
            self.unsynced[new] = self.unsynced.pop(old)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self._real(path))
        return {key: getattr(st, key) for key in (
            "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files",
            "f_flag", "f_frsize", "f_namemax")}

    # --- file contents: the page cache lives here until fsync ---------------------------------

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        os.close(os.open(self._real(path), os.O_WRONLY | os.O_CREAT, mode))
        self._owned_by_caller(path)
        return 0

    def open(self, path: str, flags: int) -> int:
        if not os.path.exists(self._real(path)):
            raise fuse.FuseOSError(errno.ENOENT)
        if flags & os.O_TRUNC:
            self.truncate(path, 0)
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        pending = self.unsynced.get(path)
        with open(self._real(path), "rb") as disk:
            disk.seek(offset)
            base = bytearray(disk.read(size))
            disk_size = os.fstat(disk.fileno()).st_size
        if pending is None:
            return bytes(base)
        logical = pending.size(disk_size)
        base.extend(bytes(max(0, min(size, logical - offset) - len(base))))
        pending.overlay(base, offset)
        return bytes(base[:max(0, min(size, logical - offset))])

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        self.unsynced.setdefault(path, Unsynced()).ops.append((offset, bytes(data)))
        return len(data)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        self.unsynced.setdefault(path, Unsynced()).ops.append((length, None))
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        pending = self.unsynced.pop(path, None)
        if pending is None:
            return 0
        fd = os.open(self._real(path), os.O_WRONLY)
        try:
            for where, data in pending.ops:
                if data is None:
                    os.ftruncate(fd, where)
                else:
                    os.pwrite(fd, data, where)
            os.fsync(fd)
        finally:
            os.close(fd)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0  # close() is not a sync: the data stays in the "page cache"

    def release(self, path: str, fh: int) -> int:
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        return 0


def main() -> None:
    backing, mountpoint = sys.argv[1], sys.argv[2]
    fuse.FUSE(LossyFS(backing), mountpoint, foreground=True, nothreads=True, allow_other=True)


if __name__ == "__main__":
    main()
