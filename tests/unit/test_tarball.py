"""Streaming tarball checks: every rejection with its exact reason, tar bombs, non-seekable streams."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
import tracemalloc
from pathlib import Path

import pytest
from modeldrop.archive_links import check_links
from modeldrop.frameworks import Framework
from modeldrop.rejection import RejectionCode, UploadRejected
from modeldrop.tarball import (
    TarballLimits,
    inspect_tarball,
    safe_extract,
)


class OneWayStream:
    """A non-seekable, read-only byte stream like botocore's StreamingBody; counts what was read."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._data.read(size)
        self.bytes_read += len(chunk)
        return chunk


class Zeros:
    """An endless source of zero bytes that never holds more than one chunk."""

    def read(self, size: int = -1) -> bytes:
        return bytes(max(size, 0))


def file_member(name: str, data: bytes = b"payload") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special_member(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, b""


def make_tarball(*members: tuple[tarfile.TarInfo, bytes], tar_format: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tar_format) as archive,
    ):
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def rejection(data: bytes, limits: TarballLimits | None = None) -> str:
    with pytest.raises(UploadRejected) as caught:
        inspect_tarball(OneWayStream(data), limits)
    assert caught.value.code is RejectionCode.TARBALL
    return caught.value.reason


MODEL = file_member("model.joblib")


# --- accepted tarballs -------------------------------------------------------------------------


def test_accepts_artifacts_code_and_config_from_a_one_way_stream() -> None:
    # Given a tarball built with a leading ./ (as `tar -C dir -czf x .` does) and a modeldrop.json
    data = make_tarball(
        special_member(".", tarfile.DIRTYPE),
        file_member("./model.joblib", b"x" * 100),
        special_member("./code", tarfile.DIRTYPE),
        file_member("./code/inference.py", b"def model_fn(d): ..."),
        file_member("./code/requirements.txt", b"numpy\n"),
        file_member("./modeldrop.json", b'{"memory_mb": 2048}'),
    )
    stream = OneWayStream(data)

    # When it is inspected from a stream that cannot seek
    report = inspect_tarball(stream)

    # Then the report describes it and the config bytes are returned
    assert report.members == [
        "model.joblib",
        "code",
        "code/inference.py",
        "code/requirements.txt",
        "modeldrop.json",
    ]
    assert report.member_count == 6
    assert report.artifacts == ["model.joblib"]
    assert report.framework is Framework.SKLEARN
    assert report.has_inference_code is True
    assert report.has_requirements is True
    assert report.config_bytes == b'{"memory_mb": 2048}'
    assert report.uncompressed_bytes == 100 + 20 + 6 + 19
    assert stream.bytes_read == len(data)


def test_accepts_a_stream_that_returns_short_reads() -> None:
    # Given a network-like stream that hands out a few bytes at a time
    class Trickle(OneWayStream):
        def read(self, size: int = -1) -> bytes:
            return super().read(min(size, 7) if size > 0 else 7)

    data = make_tarball(file_member("model.joblib", bytes(range(256)) * 50))

    # When inspected, then it is read to the end and accepted
    assert inspect_tarball(Trickle(data)).uncompressed_bytes == 256 * 50


def test_accepts_concatenated_gzip_members_and_zero_padding() -> None:
    # Given a tar split over two gzip members (as `cat a.gz b.gz` makes) followed by zero padding
    tar_bytes = gzip.decompress(make_tarball(MODEL, file_member("code/inference.py")))
    data = gzip.compress(tar_bytes[:700]) + gzip.compress(tar_bytes[700:]) + bytes(4096)

    # When inspected, then both members are read as one stream
    assert inspect_tarball(OneWayStream(data)).members == ["model.joblib", "code/inference.py"]


def test_accepts_inference_code_without_a_recognisable_artifact() -> None:
    # Given only custom code and an opaque weights file
    data = make_tarball(file_member("weights.bin"), file_member("code/inference.py"))

    # When inspected
    report = inspect_tarball(OneWayStream(data))

    # Then it is accepted with no framework detected
    assert report.artifacts == []
    assert report.framework is None
    assert report.has_inference_code is True
    assert report.config_bytes is None


def test_accepts_links_that_stay_inside_the_root() -> None:
    # Given a symlink and a hardlink to a model file inside the archive
    data = make_tarball(
        file_member("models/v1/model.onnx"),
        special_member("model.onnx", tarfile.SYMTYPE, "models/v1/model.onnx"),
        special_member("copy.onnx", tarfile.LNKTYPE, "models/v1/model.onnx"),
    )

    # When inspected
    report = inspect_tarball(OneWayStream(data))

    # Then all three count as ONNX artifacts
    assert report.artifacts == ["models/v1/model.onnx", "model.onnx", "copy.onnx"]
    assert report.framework is Framework.ONNX


# --- rejections ----------------------------------------------------------------------------------


def test_rejects_an_empty_object() -> None:
    assert rejection(b"") == "empty object: the uploaded object has no bytes"


def test_rejects_data_that_is_not_gzip() -> None:
    assert rejection(b"PK\x03\x04 this is a zip file") == (
        "not a gzip file: model.tar.gz must be a gzip-compressed tar archive (tar -czf model.tar.gz ...)"
    )


def test_rejects_a_plain_uncompressed_tar_with_a_hint() -> None:
    # Given an uncompressed tar archive
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info, data = MODEL
        archive.addfile(info, io.BytesIO(data))

    # Then the reason says how to fix it
    assert rejection(buffer.getvalue()) == (
        "not gzip-compressed: this is a plain tar archive; compress it with gzip (tar -czf model.tar.gz ...)"
    )


def test_rejects_gzip_that_does_not_hold_a_tar() -> None:
    assert rejection(gzip.compress(b"just some text, not a tar archive\n" * 30)) == (
        "not a tar archive: the gzip data does not hold a tar archive (invalid header)"
    )


def test_rejects_gzip_of_nothing() -> None:
    assert rejection(gzip.compress(b"")) == "empty tarball: the gzip data decompresses to nothing"


def test_rejects_a_tar_without_members() -> None:
    assert rejection(make_tarball()) == "empty tarball: the archive has no files"


def test_rejects_truncated_gzip() -> None:
    data = make_tarball(file_member("model.joblib", bytes(range(256)) * 400))
    assert rejection(data[: len(data) // 2]) == (
        "corrupt gzip data: the file ends in the middle of the stream"
    )


def test_rejects_corrupt_gzip() -> None:
    data = bytearray(make_tarball(file_member("model.joblib", bytes(range(256)) * 400)))
    data[20:60] = b"\xff" * 40
    assert rejection(bytes(data)).startswith("corrupt gzip data: Error -3 while decompressing data")


@pytest.mark.parametrize("name", ["/etc/cron.d/evil", "/model.joblib"])
def test_rejects_absolute_paths(name: str) -> None:
    assert rejection(make_tarball(MODEL, file_member(name))) == f"absolute path not allowed: {name!r}"


@pytest.mark.parametrize("name", ["../evil.py", "code/../../evil.py", "./../x"])
def test_rejects_parent_components(name: str) -> None:
    assert rejection(make_tarball(MODEL, file_member(name))) == f"path escapes the archive root: {name!r}"


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "../code/../../outside"])
def test_rejects_symlinks_pointing_outside(target: str) -> None:
    data = make_tarball(MODEL, special_member("code/link", tarfile.SYMTYPE, target))
    assert rejection(data) == f"symlink 'code/link' points outside the archive root: {target!r}"


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside"])
def test_rejects_hardlinks_pointing_outside(target: str) -> None:
    data = make_tarball(MODEL, special_member("link", tarfile.LNKTYPE, target))
    assert rejection(data) == f"hardlink 'link' points outside the archive root: {target!r}"


def test_rejects_hardlinks_to_members_not_yet_in_the_archive() -> None:
    data = make_tarball(MODEL, special_member("link", tarfile.LNKTYPE, "later.bin"))
    assert rejection(data) == (
        "hardlink 'link' points to 'later.bin', which is not an earlier regular file in the archive"
    )


def test_rejects_members_written_through_a_symlinked_directory() -> None:
    # Given a symlink to a directory inside the root, then a file "under" that symlink
    data = make_tarball(
        MODEL,
        special_member("sub", tarfile.DIRTYPE),
        special_member("alias", tarfile.SYMTYPE, "sub"),
        file_member("alias/x.txt"),
    )
    assert rejection(data) == "member 'alias/x.txt' lies inside symlink 'alias'"


# --- link chains: every symlink is followed through the archive's own links, in any order ----------


def symlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return special_member(name, tarfile.SYMTYPE, target)


def directory(name: str) -> tuple[tarfile.TarInfo, bytes]:
    return special_member(name, tarfile.DIRTYPE)


def chain(length: int, last_target: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    """l01 -> l02 -> ... -> l<length> -> last_target."""
    names = [f"l{index:02d}" for index in range(1, length + 1)]
    return [symlink(name, target) for name, target in zip(names, [*names[1:], last_target], strict=True)]


def test_rejects_a_link_through_a_link_in_archive_order() -> None:
    # Given 'a/b' -> '..' (the root: inside) and then 'x' -> 'a/b/..', whose name normalises to 'a'
    # but which lands above the root on disk
    data = make_tarball(MODEL, directory("a"), symlink("a/b", ".."), symlink("x", "a/b/.."))
    assert rejection(data) == (
        "symlink 'x' points outside the archive root: 'a/b/..' leads to '..' through 'a/b'"
    )


def test_rejects_a_link_that_comes_before_the_directory_it_goes_through() -> None:
    # Given the same two links with 'x' first, before 'a' and 'a/b' exist in the archive
    data = make_tarball(MODEL, symlink("x", "a/b/.."), directory("a"), symlink("a/b", ".."))
    assert rejection(data) == (
        "symlink 'x' points outside the archive root: 'a/b/..' leads to '..' through 'a/b'"
    )


def test_rejects_a_member_that_comes_before_the_symlink_it_would_lie_in() -> None:
    data = make_tarball(MODEL, file_member("alias/x.txt"), symlink("alias", "sub"))
    assert rejection(data) == "member 'alias/x.txt' lies inside symlink 'alias'"


def test_rejects_a_link_that_climbs_to_an_absolute_file_through_a_deep_link() -> None:
    # Given 'd/d/d/l' -> '../../..' (the root) and 'x' -> 'd/d/d/l/../../../../etc/passwd', which is
    # 'etc/passwd' inside the root by its name, but /etc/passwd on disk once l is followed
    data = make_tarball(MODEL, symlink("d/d/d/l", "../../.."), symlink("x", "d/d/d/l/../../../../etc/passwd"))
    assert rejection(data) == (
        "symlink 'x' points outside the archive root: 'd/d/d/l/../../../../etc/passwd' leads to "
        "'..' 4 times then 'etc/passwd' through 'd/d/d/l'"
    )


def test_rejects_links_forming_a_loop() -> None:
    data = make_tarball(MODEL, symlink("a", "b"), symlink("b", "a"))
    assert rejection(data) == "symlink 'a' never resolves: the links 'a' -> 'b' -> 'a' form a loop"


def test_rejects_links_that_loop_through_a_longer_path() -> None:
    # Given 'a' -> 'b/f' and 'b' -> 'a': 'a' is defined through itself (the kernel answers ELOOP)
    data = make_tarball(MODEL, symlink("a", "b/f"), symlink("b", "a"))
    assert rejection(data) == "symlink 'a' never resolves: the links 'a' -> 'b' -> 'a' form a loop"


def test_rejects_a_chain_of_40_links_that_leaves_through_its_last_link() -> None:
    # Given a chain of 40 links, each inside as written: l01 -> ... -> l39 -> 'deep/up/..', where
    # 'deep/up' -> '..' (the root), so the last step goes to the root's parent
    data = make_tarball(MODEL, directory("deep"), symlink("deep/up", ".."), *chain(39, "deep/up/.."))
    assert rejection(data) == (
        "symlink 'l01' points outside the archive root: 'l02' leads to '..' through "
        "'l02' -> 'l03' -> ... 36 more ... -> 'deep/up'"
    )


def test_accepts_a_chain_of_40_links_that_stays_inside() -> None:
    # The kernel follows 40 links in one lookup (MAXSYMLINKS): such a chain opens fine
    report = inspect_tarball(OneWayStream(make_tarball(MODEL, *chain(40, "model.joblib"))))
    assert len(report.files) == 41


def test_rejects_a_chain_of_41_links() -> None:
    assert rejection(make_tarball(MODEL, *chain(41, "model.joblib"))) == (
        "symlink 'l01' never resolves: it leads through more than 40 links ('l01' -> 'l02' -> ... "
        "38 more ... -> 'l41'), more than the kernel follows (MAXSYMLINKS)"
    )


def test_the_most_links_a_tarball_may_hold_are_checked_in_seconds() -> None:
    # Given as many long links as the limits allow: 1,000 of 2,047 components (4 KB) each and 10,000
    # members of 4 KB, then a chain of 40 links whose every hop adds 2,000 components
    deep = "/".join(["a"] * 2047)
    many = {f"l{index}": deep for index in range(TarballLimits().max_symlinks)}
    members = [*many, *(f"m{index}/{deep}" for index in range(9000))]
    growing = {f"x{index}": f"x{index + 1}/" + "/".join(["b"] * 2000) for index in range(39)}
    growing["x39"] = "."
    # When their landings are checked, Then it takes seconds (a walk that rebuilt each path it
    # reached would take hours)
    started = time.perf_counter()
    check_links(many, members)
    check_links(growing, list(growing))
    assert time.perf_counter() - started < 20


def test_rejects_more_symlinks_than_the_limit() -> None:
    data = make_tarball(MODEL, *(symlink(f"l{index}", "model.joblib") for index in range(3)))
    assert rejection(data, TarballLimits(max_symlinks=2)) == "too many symlinks: more than 2 in the archive"


def test_accepts_a_link_through_a_link_that_stays_inside() -> None:
    # Given 'a/b' -> 'c/d' and 'x' -> 'a/b/../..': on disk a/b/.. is a/c, and a/c/.. is a
    data = make_tarball(MODEL, symlink("x", "a/b/../.."), directory("a"), symlink("a/b", "c/d"))
    assert inspect_tarball(OneWayStream(data)).files == ["model.joblib", "x", "a/b"]


def test_rejects_a_hardlink_whose_target_names_a_parent() -> None:
    # '..' in a hardlink's target is applied on disk after whatever link lies on the way
    data = make_tarball(MODEL, special_member("h", tarfile.LNKTYPE, "sub/../model.joblib"))
    assert rejection(data) == (
        "hardlink 'h' points to 'sub/../model.joblib', which is not an earlier regular file in the archive"
    )


# --- names a filesystem cannot hold -------------------------------------------------------------


def pax_named(name: str) -> tuple[tarfile.TarInfo, bytes]:
    """A member whose name comes from a pax record (the only way a NUL or any length gets through)."""
    info, data = file_member("placeholder")
    info.pax_headers = {"path": name}
    return info, data


def test_rejects_a_name_holding_a_nul_byte() -> None:
    assert rejection(make_tarball(MODEL, pax_named("code/evil\0.py"))) == (
        "member name holds a NUL byte: 'code/evil\\x00.py'"
    )


def test_rejects_a_name_that_is_not_utf8() -> None:
    # Given a GNU-format member whose name holds the bytes 0xff 0xfe
    info, data = file_member("code/\udcff\udcfe.py")  # how tarfile spells undecodable bytes
    assert rejection(make_tarball(MODEL, (info, data), tar_format=tarfile.GNU_FORMAT)) == (
        "member name is not valid UTF-8: 'code/\\xff\\xfe.py'"
    )


def test_rejects_a_component_over_name_max() -> None:
    assert rejection(make_tarball(MODEL, pax_named(f"code/{'n' * 256}.py"))) == (
        f"member name has a component of 259 bytes: '{'n' * 60}...'; a file name may have at most "
        "255 bytes (NAME_MAX)"
    )


def test_accepts_a_component_of_exactly_name_max() -> None:
    name = f"code/{'é' * 126}abc"  # 126 x 2 bytes + 3 = 255 bytes
    assert name in inspect_tarball(OneWayStream(make_tarball(MODEL, file_member(name)))).files


def test_rejects_a_path_over_path_max() -> None:
    name = "/".join(["d" * 255] * 16)  # 16 x 255 + 15 slashes = 4095 bytes: one too many with a NUL
    name = f"{name}x"[:4096]
    assert rejection(make_tarball(MODEL, pax_named(name))) == (
        f"member name is 4096 bytes long: '{'d' * 60}...'; a path may have at most 4095 bytes (PATH_MAX)"
    )


def test_rejects_a_link_target_the_filesystem_cannot_hold() -> None:
    info, _ = symlink("code/link", "placeholder")
    info.pax_headers = {"linkpath": "model\0.joblib"}
    assert rejection(make_tarball(MODEL, (info, b""))) == (
        "link target of 'code/link' holds a NUL byte: 'model\\x00.joblib'"
    )


def test_accepts_a_symlink_to_a_symlink() -> None:
    data = make_tarball(
        MODEL,
        special_member("alias.joblib", tarfile.SYMTYPE, "model.joblib"),
        special_member("alias2.joblib", tarfile.SYMTYPE, "alias.joblib"),
    )
    assert inspect_tarball(OneWayStream(data)).artifacts == ["model.joblib", "alias.joblib", "alias2.joblib"]


def test_rejects_duplicate_members() -> None:
    assert rejection(make_tarball(MODEL, file_member("./model.joblib"))) == (
        "duplicate member: 'model.joblib' appears more than once"
    )


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (tarfile.CHRTYPE, "device file not allowed: 'dev/null'"),
        (tarfile.BLKTYPE, "device file not allowed: 'dev/null'"),
        (tarfile.FIFOTYPE, "fifo not allowed: 'dev/null'"),
    ],
)
def test_rejects_devices_and_fifos(kind: bytes, reason: str) -> None:
    assert rejection(make_tarball(MODEL, special_member("dev/null", kind))) == reason


def test_rejects_a_tarball_without_model_or_code() -> None:
    data = make_tarball(file_member("README.md"), file_member("data.csv"))
    assert rejection(data) == (
        "no model artifact: found no model file (.joblib, .pkl, .pickle, xgboost-model, .ubj, .bst, "
        ".onnx, .pt, .pth, saved_model.pb) and no code/inference.py"
    )


def test_rejects_more_members_than_the_limit() -> None:
    data = make_tarball(*(file_member(f"part-{i}.pkl") for i in range(11)))
    assert rejection(data, TarballLimits(max_members=10)) == (
        "too many members: more than 10 files and directories in the archive"
    )


def test_rejects_a_member_larger_than_the_member_limit() -> None:
    data = make_tarball(file_member("model.joblib", b"x" * 2048))
    assert rejection(data, TarballLimits(max_member_bytes=1024)) == (
        "member too large: 'model.joblib' is 2048 bytes uncompressed; the limit is 1024 bytes"
    )


def test_rejects_too_many_bytes_in_total() -> None:
    data = make_tarball(file_member("a.pkl", b"x" * 600), file_member("b.pkl", b"y" * 600))
    assert rejection(data, TarballLimits(max_uncompressed_bytes=1000)) == (
        "too large uncompressed: more than 1000 bytes once decompressed (tar bomb?)"
    )


def test_rejects_a_real_tar_bomb_before_decompressing_it() -> None:
    # Given 256 MiB of zeros that compress to well under 1% of that
    bomb_bytes = 256 * 2**20
    info = tarfile.TarInfo("model.joblib")
    info.size = bomb_bytes
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as archive,
    ):
        archive.addfile(info, Zeros())
    data = buffer.getvalue()
    assert len(data) < bomb_bytes // 500
    stream = OneWayStream(data)

    # When it is inspected with a 1 MiB limit
    with pytest.raises(UploadRejected) as caught:
        inspect_tarball(stream, TarballLimits(max_uncompressed_bytes=2**20))

    # Then it is refused from the header, having read only the first chunk of the stream
    assert caught.value.reason == (
        "too large uncompressed: more than 1048576 bytes once decompressed (tar bomb?)"
    )
    assert stream.bytes_read < len(data) // 3


def test_rejects_metadata_bombs_in_pax_headers() -> None:
    # Given a tiny file whose pax header carries 3 MiB of metadata
    info, data = file_member("model.joblib")
    info.pax_headers = {"comment": "z" * (3 * 2**20)}
    tarball = make_tarball((info, data))

    # Then the decompressed stream itself is capped
    assert rejection(tarball, TarballLimits(max_uncompressed_bytes=1024, max_members=1)) == (
        "too large uncompressed: more than 1024 bytes once decompressed (tar bomb?)"
    )


def test_rejects_an_oversized_config() -> None:
    data = make_tarball(MODEL, file_member("modeldrop.json", b"{" + b" " * 100 + b"}"))
    assert rejection(data, TarballLimits(max_config_bytes=64)) == (
        "modeldrop.json is 102 bytes; the limit is 64 bytes"
    )


def test_rejects_a_config_that_is_a_link() -> None:
    data = make_tarball(
        MODEL, file_member("real.json"), special_member("modeldrop.json", tarfile.SYMTYPE, "real.json")
    )
    assert rejection(data) == "modeldrop.json must be a regular file"


def test_broken_source_streams_are_not_rejections() -> None:
    # Given a stream whose connection breaks mid-way (not the uploader's fault)
    class BrokenStream(OneWayStream):
        def read(self, size: int = -1) -> bytes:
            if self.bytes_read:
                raise ConnectionResetError("connection reset by peer")
            return super().read(16)

    # Then the transport error propagates unchanged, so the caller can retry
    with pytest.raises(ConnectionResetError):
        inspect_tarball(BrokenStream(make_tarball(MODEL, file_member("b.pkl", bytes(range(256)) * 64))))


# --- safe_extract ------------------------------------------------------------------------------


def test_safe_extract_writes_the_files_and_reports(tmp_path: Path) -> None:
    # Given a valid tarball with a link inside the root
    data = make_tarball(
        file_member("./model.joblib", b"weights"),
        file_member("./code/inference.py", b"# handlers"),
        special_member("./alias.joblib", tarfile.SYMTYPE, "model.joblib"),
        file_member("./modeldrop.json", b"{}"),
    )

    # When extracted from a one-way stream
    report = safe_extract(OneWayStream(data), tmp_path / "model")

    # Then the files are on disk, the link resolves inside, and the report matches inspect_tarball's
    # but for what only OnUpload reads on the way (the pickles' opcodes, the handler code's source)
    assert (tmp_path / "model" / "model.joblib").read_bytes() == b"weights"
    assert (tmp_path / "model" / "code" / "inference.py").read_bytes() == b"# handlers"
    assert (tmp_path / "model" / "alias.joblib").resolve() == (tmp_path / "model" / "model.joblib").resolve()
    inspected = inspect_tarball(OneWayStream(data))
    assert set(inspected.pickles) == {"model.joblib"}
    assert inspected.code_sources == {"code/inference.py": b"# handlers"}
    assert report == inspected.model_copy(update={"pickles": {}, "code_sources": {}})
    assert report.config_bytes == b"{}"


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (file_member("../escape.txt"), "path escapes the archive root: '../escape.txt'"),
        (
            special_member("evil", tarfile.SYMTYPE, "/etc"),
            "symlink 'evil' points outside the archive root: '/etc'",
        ),
        (special_member("null", tarfile.CHRTYPE), "device file not allowed: 'null'"),
    ],
)
def test_safe_extract_rejects_and_leaves_nothing_behind(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes], reason: str
) -> None:
    # Given a tarball whose bad member comes after a good one
    data = make_tarball(file_member("model.joblib"), member)
    dest = tmp_path / "model"

    # When extraction is attempted
    with pytest.raises(UploadRejected) as caught:
        safe_extract(OneWayStream(data), dest)

    # Then the reason is specific, nothing escaped and nothing partial remains
    assert caught.value.reason == reason
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()


def test_safe_extract_recreates_hardlinks_inside(tmp_path: Path) -> None:
    data = make_tarball(
        file_member("v1/model.joblib", b"weights"),
        special_member("model.joblib", tarfile.LNKTYPE, "v1/model.joblib"),
    )
    safe_extract(OneWayStream(data), tmp_path / "m")
    assert (tmp_path / "m" / "model.joblib").read_bytes() == b"weights"
    assert (tmp_path / "m" / "model.joblib").stat().st_ino == (
        tmp_path / "m" / "v1" / "model.joblib"
    ).stat().st_ino


def test_safe_extract_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("keep me")
    with pytest.raises(ValueError, match="extraction directory is not empty"):
        safe_extract(OneWayStream(make_tarball(MODEL)), tmp_path)
    assert (tmp_path / "old.txt").read_text() == "keep me"


def test_safe_extract_rejects_a_tarball_without_model_and_cleans_up(tmp_path: Path) -> None:
    with pytest.raises(UploadRejected, match="no model artifact"):
        safe_extract(OneWayStream(make_tarball(file_member("notes.txt"))), tmp_path / "m")
    assert list((tmp_path / "m").iterdir()) == []


def test_safe_extract_without_the_model_rule_extracts_weights_only_but_keeps_the_safety_checks(
    tmp_path: Path,
) -> None:
    # Given a weights-only archive (the SageMaker SDK ships the code apart, as sourcedir.tar.gz)
    report = safe_extract(
        OneWayStream(make_tarball(file_member("weights.npy"))), tmp_path / "m", require_model=False
    )
    # Then it is extracted as SageMaker would, while a traversal is still refused
    assert (tmp_path / "m" / "weights.npy").is_file()
    assert report.artifacts == []
    with pytest.raises(UploadRejected, match="escapes"):
        safe_extract(
            OneWayStream(make_tarball(MODEL, file_member("../evil"))), tmp_path / "n", require_model=False
        )


def test_windows_drive_paths_are_absolute() -> None:
    assert rejection(make_tarball(MODEL, file_member("C:/Windows/evil.dll"))) == (
        "absolute path not allowed: 'C:/Windows/evil.dll'"
    )


def test_names_are_normalised_before_duplicate_checks() -> None:
    assert rejection(make_tarball(file_member("code/inference.py"), file_member("code/./inference.py"))) == (
        "duplicate member: 'code/inference.py' appears more than once"
    )


def test_inspection_memory_stays_flat_however_big_the_model() -> None:
    # Given a valid 64 MiB model (zeros, so the tarball itself is small)
    info = tarfile.TarInfo("model.joblib")
    info.size = 64 * 2**20
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as archive,
    ):
        archive.addfile(info, Zeros())
    stream = OneWayStream(buffer.getvalue())

    # When it is inspected while Python allocations are traced
    tracemalloc.start()
    try:
        report = inspect_tarball(stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Then all 64 MiB went through, with at most a few chunks in memory at any time
    assert report.uncompressed_bytes == 64 * 2**20
    assert peak < 2 * 2**20
