"""The extraction's own guard, on the real filesystem: nothing is written through a link, and no link
is left that leads out of the extraction root.

It does not trust the archive checks (tarball.py judges names, before anything is on disk) nor
tarfile's data filter: the filter decides with os.path.realpath, which in non-strict mode stops
resolving at the first error and carries on by name, and Python 3.11.7 lets link chains through it
(CVE-2025-4517, CVE-2025-4330, CVE-2025-4138; fixed in CPython 3.11.13, 3.12.11, 3.13.4:
https://github.com/python/cpython/issues/135034). So:
- before a directory, file or hardlink is written, every directory on its way that exists is looked at
  with lstat (a symlink there is refused) and its real path must lie inside the root;
- symlinks are created last, after every other member, so nothing of the archive is ever written
  through one; then each is resolved on disk in strict mode (a loop or an unresolvable path is
  refused, not guessed) and must land inside the root.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnsafeOnDisk(Exception):
    """A member would be written through, or leave behind, a link out of the root; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _inside(path: str, root_real: str) -> bool:
    return os.path.commonpath([path, root_real]) == root_real


def check_parents_inside(root: Path, name: str) -> None:
    """Before `name` (relative to root) is written: no symlink and nothing outside the root on its way."""
    current = root
    deepest = root  # the deepest directory on the way that exists already
    for part in name.split("/")[:-1]:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            break  # tarfile creates it, and everything below it, as real directories
        where = str(current.relative_to(root))
        if stat.S_ISLNK(mode):
            raise UnsafeOnDisk(f"member {name!r} would be written through symlink {where!r}")
        if not stat.S_ISDIR(mode):
            raise UnsafeOnDisk(f"member {name!r} lies under {where!r}, which is not a directory")
        deepest = current
    # With no symlink on the way this holds by construction; checked anyway, once per member.
    real = os.path.realpath(deepest, strict=True)
    if not _inside(real, os.path.realpath(root, strict=True)):
        raise UnsafeOnDisk(f"member {name!r} would be written to {real!r}, outside the extraction root")
    try:
        mode = os.lstat(root / name).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise UnsafeOnDisk(f"member {name!r} would be written through the symlink already at its path")


def check_hardlink_source(root: Path, name: str, source: str) -> None:
    """A hardlink's source must be a regular file inside the root, reached without a symlink."""
    check_parents_inside(root, source)
    path = root / source
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise UnsafeOnDisk(f"hardlink {name!r} points to {source!r}, which is not on disk") from None
    if not stat.S_ISREG(mode):
        raise UnsafeOnDisk(f"hardlink {name!r} points to {source!r}, which is not a regular file on disk")


def create_symlink(root: Path, name: str, target: str) -> None:
    """Create one of the archive's symlinks (after every other member), its directories as needed.

    OSError is the filesystem's refusal (a path too long, a full disk), not a safety question.
    """
    check_parents_inside(root, name)
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(target, path)
    except FileExistsError:
        raise UnsafeOnDisk(f"symlink {name!r} would replace a member already at its path") from None


def check_symlinks_inside(root: Path, symlinks: list[tuple[str, str]]) -> None:
    """Once all the archive's symlinks exist: each (name, target as written) must land inside the root.

    Checked only then, since a link's landing changes when another link is created (a target through
    'a/b' moves when 'a/b' becomes a link).
    """
    root_real = os.path.realpath(root, strict=True)
    for name, target in symlinks:
        landing = _landing(root / name, name)
        if not _inside(landing, root_real):
            raise UnsafeOnDisk(
                f"symlink {name!r} points outside the extraction root: "
                f"{target!r} leads to {landing!r} on disk"
            )


def _landing(path: Path, name: str) -> str:
    try:
        return os.path.realpath(path, strict=True)
    except FileNotFoundError:
        # A dangling link: nothing exists past the missing name, so resolving the rest by name is exact.
        return os.path.realpath(path)
    except OSError as error:  # ELOOP, ENAMETOOLONG, ENOTDIR: the kernel itself cannot follow it
        raise UnsafeOnDisk(f"symlink {name!r} does not resolve on disk: {error.strerror}") from None
