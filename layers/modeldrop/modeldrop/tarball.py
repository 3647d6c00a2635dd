"""Streaming inspection and safe extraction of model tarballs (model.tar.gz).

Both OnUpload (reading straight from an S3 StreamingBody) and the local SageMaker (extracting to
disk) run the same checks, member by member, as the bytes arrive: nothing is buffered whole, and
a tar bomb is refused as soon as a header declares more than the limits allow, before its data is
decompressed. Decompression is done here rather than by tarfile so that the total decompressed
stream (headers and padding included) is capped too.

Every rejection is an `UploadRejected` (code tarball) whose `reason` is written for the person who
uploaded the file. Errors of the underlying stream (a broken S3 connection) are not rejections and propagate.
"""

from __future__ import annotations

import io
import posixpath
import re
import shutil
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol

from pydantic import BaseModel, ConfigDict, Field

from modeldrop.archive_links import LinkProblem, check_links
from modeldrop.archive_links import shown as _shown
from modeldrop.extraction_guard import (
    UnsafeOnDisk,
    check_hardlink_source,
    check_parents_inside,
    check_symlinks_inside,
    create_symlink,
)
from modeldrop.frameworks import Framework, artifact_framework, detect_framework
from modeldrop.pickle_scan import PICKLE_SUFFIXES, PickleFacts, scan_pickle
from modeldrop.rejection import RejectionCode, UploadRejected

CONFIG_MEMBER = "modeldrop.json"
INFERENCE_CODE_MEMBER = "code/inference.py"
REQUIREMENTS_MEMBER = "code/requirements.txt"
# The library versions a model was saved with, written by `modeldrop package` next to the handler code
# (code/ ships on the images that need a handler; modeldrop_local/packaging.py says why not in
# modeldrop.json).
LIBRARIES_MEMBER = "code/modeldrop-libraries.json"
CODE_PREFIX = "code/"
# code/**/*.py kept for the syntax check against the image's Python (modeldrop.code_checks), up to this each.
MAX_CODE_FILE_BYTES = 1024 * 1024

_GZIP_MAGIC = b"\x1f\x8b"
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_TAR_MAGIC_OFFSET = 257
_RAW_CHUNK = 64 * 1024
# Tar metadata (headers, long-name and pax records, padding) allowed on top of the file data.
_METADATA_ALLOWANCE_PER_MEMBER = 3 * 512
_METADATA_ALLOWANCE = 1024 * 1024 + 10240
# What a Linux filesystem can hold (include/uapi/linux/limits.h): a name component of at most NAME_MAX
# bytes, a path of fewer than PATH_MAX bytes (PATH_MAX counts the terminating NUL).
NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4096


def _rejected(reason: str) -> UploadRejected:
    """The tarball cannot be deployed; `reason` tells the uploader why."""
    return UploadRejected(RejectionCode.TARBALL, reason)


class MemberNotWritten(Exception):
    """A member passed every check but the filesystem refused it on extraction (a path too long once
    joined to the extraction directory, a full disk): named here, since the OSError alone names a path."""

    def __init__(self, name: str, error: OSError) -> None:
        super().__init__(f"could not write member {_shown(name)}: {error.strerror or error}")
        self.member = name


class TarballLimits(BaseModel):
    """Upper bounds that keep a hostile or broken tarball from exhausting memory, disk or time."""

    model_config = ConfigDict(frozen=True)

    max_members: int = Field(default=10_000, ge=1)
    max_uncompressed_bytes: int = Field(default=6 * 1024**3, ge=1)
    max_member_bytes: int = Field(default=6 * 1024**3, ge=1)
    max_config_bytes: int = Field(default=64 * 1024, ge=1)
    # Each symlink is followed through the archive's others at the end (archive_links.py); a model
    # needs a few, and this bounds that work.
    max_symlinks: int = Field(default=1000, ge=0)


class TarballReport(BaseModel):
    """What a tarball holds, as learned while streaming it."""

    members: list[str]
    # The members that are not directories (regular files and links), in archive order.
    files: list[str] = []
    member_count: int
    uncompressed_bytes: int
    artifacts: list[str]
    framework: Framework | None
    has_inference_code: bool
    has_requirements: bool
    config_bytes: bytes | None = None
    libraries_bytes: bytes | None = None
    # What each pickle artifact names (OnUpload's inspection only; extraction leaves it empty).
    pickles: dict[str, PickleFacts] = {}
    # code/**/*.py up to MAX_CODE_FILE_BYTES each, for the syntax check (OnUpload's inspection only),
    # and the ones left unread for their size.
    code_sources: dict[str, bytes] = {}
    code_too_large: list[str] = []


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _DecompressedTooLarge(Exception):
    pass


class _GunzipStream(io.RawIOBase):
    """Decompresses (possibly multi-member) gzip from a readable, never holding more than one chunk.

    Raises _DecompressedTooLarge as soon as more than `cap` bytes have come out.
    """

    def __init__(self, raw: _Readable, cap: int) -> None:
        super().__init__()
        self._raw = raw
        self._cap = cap
        self._produced = 0
        self._decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def start(self) -> None:
        """Read the first chunk; reject what is empty or not gzip before tarfile sees it."""
        # Network streams may return short reads: gather enough to recognise the format.
        first = b""
        while len(first) < 512:
            chunk = self._raw.read(_RAW_CHUNK)
            if not chunk:
                break
            first += chunk
        if not first:
            raise _rejected("empty object: the uploaded object has no bytes")
        if not first.startswith(_GZIP_MAGIC):
            if len(first) > _TAR_MAGIC_OFFSET + 5 and first[_TAR_MAGIC_OFFSET:].startswith(b"ustar"):
                raise _rejected(
                    "not gzip-compressed: this is a plain tar archive; "
                    "compress it with gzip (tar -czf model.tar.gz ...)"
                )
            raise _rejected(
                "not a gzip file: model.tar.gz must be a gzip-compressed tar archive "
                "(tar -czf model.tar.gz ...)"
            )
        self._pending = first

    def read(self, size: int = -1, /) -> bytes:
        want = size if size and size > 0 else _RAW_CHUNK
        while True:
            decompressor = self._decompressor
            if decompressor.unconsumed_tail:
                data = decompressor.unconsumed_tail
            elif self._pending:
                data, self._pending = self._pending, b""
            else:
                data = self._raw.read(_RAW_CHUNK)
                if not data:
                    if not decompressor.eof:
                        raise _rejected("corrupt gzip data: the file ends in the middle of the stream")
                    return b""
            if decompressor.eof:
                if not data.strip(b"\0"):
                    continue  # zero padding after the last member, which gzip tools accept
                # Concatenated gzip members decompress to one stream, as gunzip does.
                decompressor = self._decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                out = decompressor.decompress(data, want)
            except zlib.error as error:
                raise _rejected(f"corrupt gzip data: {error}") from None
            if decompressor.eof:
                self._pending = decompressor.unused_data
            if out:
                self._produced += len(out)
                if self._produced > self._cap:
                    raise _DecompressedTooLarge
                return out

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _normalise(name: str) -> str:
    """The member path relative to the root, with leading './' removed; '' for the root itself."""
    name = posixpath.normpath(name) if name else "."
    return "" if name == "." else name


def _check_path(raw_name: str) -> None:
    if raw_name.startswith("/") or _WINDOWS_DRIVE.match(raw_name):
        raise _rejected(f"absolute path not allowed: {raw_name!r}")
    if ".." in raw_name.split("/"):
        raise _rejected(f"path escapes the archive root: {raw_name!r}")


def _escapes(target: str) -> bool:
    normal = posixpath.normpath(target)
    return normal == ".." or normal.startswith("../") or normal.startswith("/")


def _check_name(name: str, what: str) -> None:
    """Refuse a name no filesystem can hold, before anything joins it to a path.

    tarfile decodes names as UTF-8 with surrogateescape (pax records: UTF-8 first), so bytes that are
    not UTF-8 arrive as lone surrogates; a NUL can only arrive through a pax record.
    """
    if "\0" in name:
        raise _rejected(f"{what} holds a NUL byte: {_shown(name)}")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise _rejected(f"{what} is not valid UTF-8: {_shown(name)}") from None
    if len(encoded) >= PATH_MAX_BYTES:
        raise _rejected(
            f"{what} is {len(encoded)} bytes long: {_shown(name)}; a path may have at most "
            f"{PATH_MAX_BYTES - 1} bytes (PATH_MAX)"
        )
    for component in name.split("/"):
        if len(component.encode("utf-8")) > NAME_MAX_BYTES:
            raise _rejected(
                f"{what} has a component of {len(component.encode('utf-8'))} bytes: {_shown(component)}; "
                f"a file name may have at most {NAME_MAX_BYTES} bytes (NAME_MAX)"
            )


class _Scanner:
    """Applies every check to each member in archive order and builds the report."""

    def __init__(self, limits: TarballLimits) -> None:
        self.limits = limits
        self.members: list[str] = []
        self.count = 0
        self.total = 0
        self.regular_files: set[str] = set()
        # Each symlink's target as written, for the namespace-wide check at the end.
        self.symlinks: dict[str, str] = {}
        self.seen: set[str] = set()
        # Everything that is not a directory (regular files and links), in archive order.
        self.files: list[str] = []
        self.has_inference_code = False
        self.has_requirements = False
        self.config_bytes: bytes | None = None
        self.libraries_bytes: bytes | None = None
        self.pickles: dict[str, PickleFacts] = {}
        self.code_sources: dict[str, bytes] = {}
        self.code_too_large: list[str] = []

    def check(self, member: tarfile.TarInfo) -> str:
        """Validate one member; returns its normalised name ('' for the root directory)."""
        limits = self.limits
        self.count += 1
        if self.count > limits.max_members:
            raise _rejected(
                f"too many members: more than {limits.max_members} files and directories in the archive"
            )
        raw_name = member.name
        _check_name(raw_name, "member name")
        if member.issym() or member.islnk():
            _check_name(member.linkname, f"link target of {_shown(raw_name)}")
        _check_path(raw_name)
        name = _normalise(raw_name)
        if name == "":
            if not member.isdir():
                raise _rejected(f"invalid member name: {raw_name!r}")
            return name
        if name in self.seen:
            raise _rejected(f"duplicate member: {name!r} appears more than once")
        self.seen.add(name)
        if member.ischr() or member.isblk():
            raise _rejected(f"device file not allowed: {name!r}")
        if member.isfifo():
            raise _rejected(f"fifo not allowed: {name!r}")
        if member.issym():
            if member.linkname.startswith("/") or _escapes(
                posixpath.join(posixpath.dirname(name), member.linkname)
            ):
                raise _rejected(f"symlink {name!r} points outside the archive root: {member.linkname!r}")
            if len(self.symlinks) >= limits.max_symlinks:
                raise _rejected(f"too many symlinks: more than {limits.max_symlinks} in the archive")
            self.symlinks[name] = member.linkname
        elif member.islnk():
            target = _normalise(member.linkname)
            if member.linkname.startswith("/") or _escapes(target):
                raise _rejected(f"hardlink {name!r} points outside the archive root: {member.linkname!r}")
            # By its exact name: '..' in it would be applied on disk after any symlink on the way.
            if ".." in member.linkname.split("/") or target not in self.regular_files:
                raise _rejected(
                    f"hardlink {name!r} points to {member.linkname!r}, "
                    "which is not an earlier regular file in the archive"
                )
        elif member.issparse():
            raise _rejected(f"sparse file not allowed: {name!r}")
        elif member.isreg():
            if member.size > limits.max_member_bytes:
                raise _rejected(
                    f"member too large: {name!r} is {member.size} bytes uncompressed; "
                    f"the limit is {limits.max_member_bytes} bytes"
                )
            self.total += member.size
            if self.total > limits.max_uncompressed_bytes:
                raise _rejected(self.too_large_reason())
            self.regular_files.add(name)
        elif not member.isdir():
            raise _rejected(f"unsupported member type: {name!r}")

        if name == CONFIG_MEMBER:
            if not member.isreg():
                raise _rejected(f"{CONFIG_MEMBER} must be a regular file")
            if member.size > limits.max_config_bytes:
                raise _rejected(
                    f"{CONFIG_MEMBER} is {member.size} bytes; the limit is {limits.max_config_bytes} bytes"
                )
        if not member.isdir():
            self.files.append(name)
            if name == INFERENCE_CODE_MEMBER:
                self.has_inference_code = True
            elif name == REQUIREMENTS_MEMBER:
                self.has_requirements = True
        self.members.append(name)
        return name

    def too_large_reason(self) -> str:
        return (
            f"too large uncompressed: more than {self.limits.max_uncompressed_bytes} bytes "
            "once decompressed (tar bomb?)"
        )

    def report(self, require_model: bool = True) -> TarballReport:
        if not self.members:
            raise _rejected("empty tarball: the archive has no files")
        try:
            # Members under a symlink, and links that leave through other links: the whole archive
            # is needed (any order); safe_extract creates no symlink before this.
            check_links(self.symlinks, self.members)
        except LinkProblem as problem:
            raise _rejected(problem.reason) from None
        artifacts = [name for name in self.files if artifact_framework(name) is not None]
        if require_model and not artifacts and not self.has_inference_code:
            raise _rejected(
                "no model artifact: found no model file (.joblib, .pkl, .pickle, xgboost-model, .ubj, "
                ".bst, .onnx, .pt, .pth, saved_model.pb) and no code/inference.py"
            )
        return TarballReport(
            members=self.members,
            files=self.files,
            member_count=self.count,
            uncompressed_bytes=self.total,
            artifacts=artifacts,
            framework=detect_framework(artifacts),
            has_inference_code=self.has_inference_code,
            has_requirements=self.has_requirements,
            config_bytes=self.config_bytes,
            libraries_bytes=self.libraries_bytes,
            pickles=self.pickles,
            code_sources=self.code_sources,
            code_too_large=self.code_too_large,
        )


def _open(fileobj: _Readable | IO[bytes], limits: TarballLimits) -> tarfile.TarFile:
    cap = limits.max_uncompressed_bytes + limits.max_members * _METADATA_ALLOWANCE_PER_MEMBER
    stream = _GunzipStream(fileobj, cap + _METADATA_ALLOWANCE)
    stream.start()
    try:
        # Closed by the caller's `with`; tarfile stream mode reads it strictly in order. Names are
        # UTF-8 whatever the locale, bytes that are not kept as surrogates for _check_name to refuse.
        archive = tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
    except tarfile.ReadError as error:
        if str(error) == "empty file":
            raise _rejected("empty tarball: the gzip data decompresses to nothing") from None
        raise _rejected(f"not a tar archive: the gzip data does not hold a tar archive ({error})") from None
    return archive


def checked_members(
    fileobj: _Readable | IO[bytes], limits: TarballLimits, scanner: _Scanner | None = None
) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo, str]]:
    """Stream a tarball member by member, each one checked before it is yielded.

    Yields (archive, member, normalised name); the caller may read a regular member's data with
    archive.extractfile(member) before asking for the next one (stream mode: strictly in order).
    Every problem is an UploadRejected. modeldrop.json and code/modeldrop-libraries.json are read
    into `scanner` (when given) for the caller's report.
    """
    scanner = scanner or _Scanner(limits)
    try:
        archive = _open(fileobj, limits)
        with archive:
            for member in archive:
                name = scanner.check(member)
                yield archive, member, name
    except _DecompressedTooLarge:
        raise _rejected(scanner.too_large_reason()) from None
    except tarfile.ReadError as error:
        raise _rejected(f"corrupt tarball: {error}") from None
    except tarfile.TarError as error:
        raise _rejected(f"corrupt tarball: {error}") from None


def _read_small(archive: tarfile.TarFile, member: tarfile.TarInfo, name: str, limit: int) -> bytes:
    extracted = archive.extractfile(member)
    if extracted is None:
        raise _rejected(f"{name} must be a regular file")
    return extracted.read(limit + 1)


def _scan(
    fileobj: _Readable | IO[bytes], limits: TarballLimits, dest: Path | None, require_model: bool = True
) -> TarballReport:
    scanner = _Scanner(limits)
    deferred_symlinks: list[tuple[str, str]] = []
    for archive, member, name in checked_members(fileobj, limits, scanner):
        if dest is not None:
            if member.issym():
                deferred_symlinks.append((name, member.linkname))
            elif name:
                _extract_member(archive, member, name, dest)
            if name == CONFIG_MEMBER:
                scanner.config_bytes = (dest / CONFIG_MEMBER).read_bytes()
            elif name == LIBRARIES_MEMBER and member.isreg():
                scanner.libraries_bytes = (dest / LIBRARIES_MEMBER).read_bytes()
        elif name == CONFIG_MEMBER:
            scanner.config_bytes = _read_small(archive, member, CONFIG_MEMBER, limits.max_config_bytes)
        elif name == LIBRARIES_MEMBER and member.isreg():
            scanner.libraries_bytes = _read_small(archive, member, LIBRARIES_MEMBER, limits.max_config_bytes)
        elif member.isreg():
            _read_for_checks(archive, member, name, scanner)
    report = scanner.report(require_model)
    if dest is not None:
        try:
            for name, target in deferred_symlinks:
                try:
                    create_symlink(dest, name, target)
                except OSError as error:
                    raise MemberNotWritten(name, error) from error
            check_symlinks_inside(dest, deferred_symlinks)
        except UnsafeOnDisk as unsafe:
            raise _rejected(unsafe.reason) from None
    return report


def _read_for_checks(archive: tarfile.TarFile, member: tarfile.TarInfo, name: str, scanner: _Scanner) -> None:
    """In the same single pass: a pickle's opcodes (not its array data), and the handler code's source."""
    lowered = name.lower()
    if lowered.endswith(PICKLE_SUFFIXES):
        extracted = archive.extractfile(member)
        if extracted is not None:
            scanner.pickles[name] = scan_pickle(extracted)
    elif name.startswith(CODE_PREFIX) and lowered.endswith(".py"):
        if member.size > MAX_CODE_FILE_BYTES:
            scanner.code_too_large.append(name)
        else:
            scanner.code_sources[name] = _read_small(archive, member, name, MAX_CODE_FILE_BYTES)


def _extract_member(archive: tarfile.TarFile, member: tarfile.TarInfo, name: str, dest: Path) -> None:
    """Write one directory, regular file or hardlink (symlinks wait until the end: extraction_guard)."""
    # The data filter checks again, but it is not trusted alone (see extraction_guard).
    try:
        check_parents_inside(dest, name)
        if member.islnk():
            check_hardlink_source(dest, name, _normalise(member.linkname))
        archive.extract(member, path=dest, filter="data")
    except UnsafeOnDisk as unsafe:
        raise _rejected(unsafe.reason) from None
    except tarfile.FilterError as error:
        raise _rejected(f"unsafe member {member.name!r}: {error}") from None
    except OSError as error:
        raise MemberNotWritten(name, error) from error


def inspect_tarball(fileobj: _Readable | IO[bytes], limits: TarballLimits | None = None) -> TarballReport:
    """Stream a model tarball from any readable (an S3 StreamingBody) and report on it, or reject it."""
    return _scan(fileobj, limits or TarballLimits(), None)


def safe_extract(
    fileobj: _Readable | IO[bytes],
    dest_dir: Path | str,
    limits: TarballLimits | None = None,
    *,
    require_model: bool = True,
) -> TarballReport:
    """Extract a model tarball into dest_dir (new or empty) with the same checks as inspect_tarball.

    require_model=False keeps every safety check but drops OnUpload's "a model file or
    code/inference.py" rule: SageMaker itself extracts any archive (weights only, with the code in a
    separate sourcedir.tar.gz, is valid), and whether the container can serve it is its own question.
    On rejection nothing that was extracted is left behind.
    """
    dest = Path(dest_dir)
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"extraction directory is not empty: {dest}")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        return _scan(fileobj, limits or TarballLimits(), dest, require_model)
    except BaseException:
        for child in dest.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        raise
