"""A power cut, modelled: only what was fsynced survives.

``PowerLossRecorder.os`` stands in for the ``os`` module inside
``strategystore._fsio``, and ``PowerLossRecorder.syncfs`` for its ``syncfs``.
They pass every call through and watch the ones that matter to durability:
creating a file or directory, fsync, syncfs, and the calls that change names
(link, replace, rename, unlink, rmdir). After each
of them it records a *cut*: what the data directory would hold if the power
failed right then, under two models.

``strict``
    LevelDB's "drop unsynced data": a file holds what it held at its last
    fsync (nothing, if it was never fsynced), and a directory holds the
    entries it had at its last fsync. Unsynced names vanish.
``eager_names``
    File systems may write a rename or a new name before the data it points
    to (ext4 without ``auto_da_alloc``, say): every current name survives,
    but a file still holds only what it held at its last fsync.

Files are known by an identity of their own rather than their inode number,
because a freed inode number is soon reused by the next temporary file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.reliability._support import is_temporary

StrPath = str | os.PathLike[str]


@dataclass(frozen=True)
class Cut:
    """The data directory as a power cut right after one call would leave it."""

    after: str
    #: Writes that had returned before the cut.
    acknowledged: int
    #: Whether a write had begun and not yet returned.
    in_flight: bool
    strict: dict[str, bytes]
    eager_names: dict[str, bytes]


class PowerLossRecorder:
    """Record what each write made durable, and the state at every possible cut.

    Args:
        root: the data directory; everything in it when the recorder starts is
            taken as durable.
        skip_dir_fsync: pretend directory fsyncs happen but drop them, to show
            the model catches a store that forgets them.
        skip_file_fsync: the same for file fsyncs.
    """

    def __init__(
        self, root: Path, *, skip_dir_fsync: bool = False, skip_file_fsync: bool = False
    ) -> None:
        self.root = root
        self.skip_dir_fsync = skip_dir_fsync
        self.skip_file_fsync = skip_file_fsync
        self.cuts: list[Cut] = []
        self.os = _RecordingOs(self)
        self._acknowledged = 0
        self._in_flight = False
        self._next_id = 0
        self._id_of_inode: dict[int, int] = {}
        self._is_dir: dict[int, bool] = {}
        self._file: dict[int, bytes] = {}
        self._dir: dict[int, dict[str, int]] = {}
        self._root = self._new_id(root.stat().st_ino, is_dir=True)
        for dirpath, dirnames, filenames in os.walk(root):
            here = self._known(Path(dirpath).stat().st_ino, is_dir=True)
            entries: dict[str, int] = {}
            for name in dirnames:
                entries[name] = self._new_id((Path(dirpath) / name).stat().st_ino, is_dir=True)
            for name in filenames:
                path = Path(dirpath) / name
                entries[name] = self._new_id(path.lstat().st_ino, is_dir=False)
                self._file[entries[name]] = path.read_bytes()
            self._dir[here] = entries

    # -- the write's progress ----------------------------------------------

    def begin(self) -> None:
        """A write is about to start."""
        self._in_flight = True

    def acknowledge(self) -> None:
        """The write that began has returned."""
        self._in_flight = False
        self._acknowledged += 1
        self._cut("return")

    # -- identities ----------------------------------------------------------

    def _new_id(self, inode: int, *, is_dir: bool) -> int:
        self._next_id += 1
        self._id_of_inode[inode] = self._next_id
        self._is_dir[self._next_id] = is_dir
        return self._next_id

    def _known(self, inode: int, *, is_dir: bool) -> int:
        found = self._id_of_inode.get(inode)
        return found if found is not None else self._new_id(inode, is_dir=is_dir)

    # -- events from the recording os ----------------------------------------

    def created(self, fd: int) -> None:
        st = os.fstat(fd)
        self._new_id(st.st_ino, is_dir=stat.S_ISDIR(st.st_mode))

    def made_dir(self, path: StrPath, dir_fd: int | None) -> None:
        st = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
        self._dir[self._new_id(st.st_ino, is_dir=True)] = {}

    def synced(self, fd: int) -> None:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            entries = {}
            with os.scandir(fd) as found:
                for entry in found:
                    is_dir = entry.is_dir(follow_symlinks=False)
                    entries[entry.name] = self._known(entry.inode(), is_dir=is_dir)
            self._dir[self._known(st.st_ino, is_dir=True)] = entries
        else:
            # The store writes through a write-only descriptor; reopen the same
            # file to read what the fsync just made durable.
            reader = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)
            try:
                self._file[self._known(st.st_ino, is_dir=False)] = os.pread(reader, st.st_size, 0)
            finally:
                os.close(reader)

    def synced_everything(self) -> None:
        """``syncfs``: every file and directory under the root is now durable."""
        for dirpath, dirnames, filenames in os.walk(self.root):
            entries: dict[str, int] = {}
            for name in dirnames:
                inode = (Path(dirpath) / name).lstat().st_ino
                entries[name] = self._known(inode, is_dir=True)
            for name in filenames:
                path = Path(dirpath) / name
                entries[name] = self._known(path.lstat().st_ino, is_dir=False)
                self._file[entries[name]] = path.read_bytes()
            self._dir[self._known(Path(dirpath).stat().st_ino, is_dir=True)] = entries
        self._cut("syncfs")

    def _cut(self, after: str) -> None:
        self.cuts.append(
            Cut(
                after=after,
                acknowledged=self._acknowledged,
                in_flight=self._in_flight,
                strict=self._strict(),
                eager_names=self._eager_names(),
            )
        )

    # -- what survives --------------------------------------------------------

    def _strict(self) -> dict[str, bytes]:
        survivors: dict[str, bytes] = {}

        def walk(directory: int, prefix: str) -> None:
            for name, child in self._dir.get(directory, {}).items():
                if self._is_dir[child]:
                    walk(child, f"{prefix}{name}/")
                else:
                    survivors[prefix + name] = self._file.get(child, b"")

        walk(self._root, "")
        return _visible(survivors)

    def _eager_names(self) -> dict[str, bytes]:
        survivors: dict[str, bytes] = {}
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                path = Path(dirpath) / name
                found = self._id_of_inode.get(path.lstat().st_ino)
                content = b"" if found is None else self._file.get(found, b"")
                survivors[path.relative_to(self.root).as_posix()] = content
        return _visible(survivors)


def _visible(files: dict[str, bytes]) -> dict[str, bytes]:
    """Leave out lock files and temporary files, which no reader looks at."""
    return {
        path: data
        for path, data in files.items()
        if not path.startswith(".locks/") and not is_temporary(path.rsplit("/", 1)[-1])
    }


def recording_syncfs(
    recorder: PowerLossRecorder, syncfs: Callable[[str], bool]
) -> Callable[[str], bool]:
    """``strategystore._syncfs.syncfs``, recorded: when it ran, everything is durable."""

    def recorded(path: str) -> bool:
        done = syncfs(path)
        if done:
            recorder.synced_everything()
        return done

    return recorded


class _RecordingOs:
    """The ``os`` module, with the calls that matter to durability recorded."""

    def __init__(self, recorder: PowerLossRecorder) -> None:
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def open(
        self, path: StrPath, flags: int, mode: int = 0o777, *, dir_fd: int | None = None
    ) -> int:
        creates = False
        if flags & os.O_CREAT:
            try:
                os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                creates = True
        fd = os.open(path, flags, mode, dir_fd=dir_fd)
        if creates:
            self._recorder.created(fd)
            self._recorder._cut("create")
        return fd

    def fsync(self, fd: int) -> None:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        skip = self._recorder.skip_dir_fsync if is_dir else self._recorder.skip_file_fsync
        if not skip:
            os.fsync(fd)
            self._recorder.synced(fd)
        self._recorder._cut("fsync")

    def mkdir(self, path: StrPath, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        os.mkdir(path, mode, dir_fd=dir_fd)
        self._recorder.made_dir(path, dir_fd)
        self._recorder._cut("mkdir")

    def replace(
        self,
        src: StrPath,
        dst: StrPath,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
    ) -> None:
        os.replace(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        self._recorder._cut("replace")

    def rename(
        self,
        src: StrPath,
        dst: StrPath,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
    ) -> None:
        os.rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        self._recorder._cut("rename")

    def link(
        self,
        src: StrPath,
        dst: StrPath,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
        follow_symlinks: bool = True,
    ) -> None:
        os.link(
            src,
            dst,
            src_dir_fd=src_dir_fd,
            dst_dir_fd=dst_dir_fd,
            follow_symlinks=follow_symlinks,
        )
        self._recorder._cut("link")

    def unlink(self, path: StrPath, *, dir_fd: int | None = None) -> None:
        os.unlink(path, dir_fd=dir_fd)
        self._recorder._cut("unlink")

    def rmdir(self, path: StrPath, *, dir_fd: int | None = None) -> None:
        os.rmdir(path, dir_fd=dir_fd)
        self._recorder._cut("rmdir")


def violations(
    cuts: list[Cut], states: list[dict[str, bytes]], model: str, *, in_flight: bool
) -> list[tuple[Cut, str, str]]:
    """Where a cut's survivors break a promise.

    ``states[k]`` is the directory after ``k`` writes returned. With
    ``in_flight=False`` this checks the files the write in flight does not
    touch: each must hold what the returned writes left. With
    ``in_flight=True`` it checks the files that write touches: each must hold
    its old or its new content, never a torn or missing one.

    Returns:
        ``(cut, path, what was found)`` for each file that breaks it.
    """
    found: list[tuple[Cut, str, str]] = []
    for cut in cuts:
        before = states[cut.acknowledged]
        after = states[cut.acknowledged + 1] if cut.in_flight else before
        touched = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
        survivors = cut.strict if model == "strict" else cut.eager_names
        for path in sorted(before.keys() | after.keys() | survivors.keys()):
            if (path in touched) != in_flight:
                continue
            if survivors.get(path) in (before.get(path), after.get(path)):
                continue
            held = survivors.get(path)
            what = "missing" if held is None else ("empty" if not held else f"{len(held)} bytes")
            found.append((cut, path, what))
    return found
