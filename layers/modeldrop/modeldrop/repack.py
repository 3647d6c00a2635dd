"""Write the deployed copy of a model tarball with members added or left out, streamed end to end.

S3 GetObject body → the checked member stream of tarball.py (every safety check of the inspection,
applied again: the object is re-read, and what is re-read is what is judged) → a new tar.gz → S3
upload_fileobj from a bounded in-memory pipe (multipart above the threshold). Memory is flat in the
model's size: one tar block, one gzip window, the pipe's few chunks and s3transfer's in-flight parts.

A failure on either side (a rejection or a broken download while writing, an S3 error while uploading)
stops both: the reader side raises instead of reporting end-of-file, so s3transfer never completes an
upload of a truncated archive (it aborts the multipart upload).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import queue
import tarfile
import threading
from collections.abc import Mapping
from typing import IO, Any

from boto3.s3.transfer import TransferConfig

from modeldrop.tarball import TarballLimits, checked_members

# Deflate level of the deployed copy. Deflate is the repack's whole CPU cost: level 1 runs at ~40 MB/s
# per core, level 0 (stored) at ~500 MB/s (benchmarks/results/repack.json). OnUpload has 300 s and about
# half a vCPU, so level 1 up to 1 GiB of model (well inside the budget), stored above (model weights
# barely compress anyway; SageMaker only downloads the copy, inside AWS).
COMPRESS_LEVEL = 1
LARGE_MODEL_BYTES = 2**30


def compress_level_for(uncompressed_bytes: int) -> int:
    return COMPRESS_LEVEL if uncompressed_bytes <= LARGE_MODEL_BYTES else 0


_PIPE_CHUNK = 1024 * 1024
_PIPE_DEPTH = 8
UPLOAD_CONFIG = TransferConfig(
    multipart_threshold=16 * 2**20, multipart_chunksize=16 * 2**20, max_concurrency=4
)
# s3transfer buffers non-seekable input part by part, at most this many parts (its default: 10); boto3's
# TransferConfig does not take it as an argument but passes the attribute on.
UPLOAD_CONFIG.max_in_memory_upload_chunks = 4
_END = object()


class _Cancelled(Exception):
    pass


class _Pipe:
    """A bounded byte pipe between the tar writer (a thread) and s3transfer (the caller)."""

    def __init__(self) -> None:
        self._chunks: queue.Queue[Any] = queue.Queue(maxsize=_PIPE_DEPTH)
        self._cancelled = threading.Event()

    def put(self, item: Any) -> None:
        while not self._cancelled.is_set():
            try:
                self._chunks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Cancelled

    def get(self) -> Any:
        return self._chunks.get()

    def cancel(self) -> None:
        self._cancelled.set()


class _PipeWriter(io.RawIOBase):
    def __init__(self, pipe: _Pipe) -> None:
        super().__init__()
        self._pipe = pipe
        self._buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        while len(self._buffer) >= _PIPE_CHUNK:
            self._pipe.put(bytes(self._buffer[:_PIPE_CHUNK]))
            del self._buffer[:_PIPE_CHUNK]
        return len(data)

    def finish(self) -> None:
        if self._buffer:
            self._pipe.put(bytes(self._buffer))
            self._buffer.clear()
        self._pipe.put(_END)


class _PipeReader(io.RawIOBase):
    """What s3transfer reads; raises the writer's error instead of ending a broken stream."""

    def __init__(self, pipe: _Pipe) -> None:
        super().__init__()
        self._pipe = pipe
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        parts: list[bytes] = []
        wanted = size if size is not None and size >= 0 else None
        have = 0
        while not self._done and (wanted is None or have < wanted):
            if not self._pending:
                item = self._pipe.get()
                if item is _END:
                    self._done = True
                    break
                if isinstance(item, BaseException):
                    self._done = True
                    raise item
                self._pending = item
            take = self._pending if wanted is None else self._pending[: wanted - have]
            self._pending = self._pending[len(take) :]
            parts.append(take)
            have += len(take)
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _info(name: str, size: int, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.mode = 0o755 if directory else 0o644
    if directory:
        info.type = tarfile.DIRTYPE
    else:
        info.size = size
    return info


def write_repacked(
    source: Any,
    sink: IO[bytes] | io.RawIOBase,
    *,
    add: Mapping[str, bytes],
    leave_out: frozenset[str] | set[str] = frozenset(),
    limits: TarballLimits | None = None,
    compresslevel: int = COMPRESS_LEVEL,
) -> list[str]:
    """Copy the tarball in `source` to `sink` as tar.gz, without `leave_out`, with `add` appended.

    Member names in leave_out and add are normalised ('code/inference.py'); a member of the source
    with a name in `add` is replaced only when the caller says so by listing it in leave_out too.
    Returns the normalised names written, in order.
    """
    limits = limits or TarballLimits()
    written: list[str] = []
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0, compresslevel=compresslevel) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as out,
    ):
        directories: set[str] = set()
        for archive, member, name in checked_members(source, limits):
            if not name or name in leave_out:
                continue
            if name in add:
                raise ValueError(f"{name} is already in the tarball; list it in leave_out to replace it")
            if member.isreg():
                out.addfile(member, archive.extractfile(member))
            else:
                out.addfile(member)
            if member.isdir():
                directories.add(name)
            written.append(name)
        for name, data in add.items():
            parent = name.rpartition("/")[0]
            if parent and parent not in directories:
                out.addfile(_info(parent, 0, directory=True))
                directories.add(parent)
                written.append(parent)
            out.addfile(_info(name, len(data)), io.BytesIO(data))
            written.append(name)
    return written


def repack_to_s3(
    s3: Any,
    source_request: Mapping[str, str],
    bucket: str,
    key: str,
    *,
    add: Mapping[str, bytes],
    leave_out: frozenset[str] | set[str] = frozenset(),
    limits: TarballLimits | None = None,
    compresslevel: int = COMPRESS_LEVEL,
) -> list[str]:
    """GetObject(source_request) → write_repacked → upload to bucket/key; returns the names written."""
    pipe = _Pipe()
    result: dict[str, Any] = {}

    def produce() -> None:
        body = s3.get_object(**source_request)["Body"]
        writer = _PipeWriter(pipe)
        try:
            result["written"] = write_repacked(
                body, writer, add=add, leave_out=leave_out, limits=limits, compresslevel=compresslevel
            )
            writer.finish()
        except _Cancelled:
            pass
        except BaseException as error:  # handed to the reader, which raises it inside s3transfer
            result["error"] = error
            with contextlib.suppress(_Cancelled):
                pipe.put(error)
        finally:
            body.close()

    producer = threading.Thread(target=produce, name="modeldrop-repack", daemon=True)
    producer.start()
    try:
        s3.upload_fileobj(_PipeReader(pipe), bucket, key, Config=UPLOAD_CONFIG)
    except BaseException:
        pipe.cancel()
        producer.join()
        if "error" in result:
            raise result["error"] from None
        raise
    producer.join()
    if "error" in result:
        raise result["error"]
    written: list[str] = result["written"]
    return written
