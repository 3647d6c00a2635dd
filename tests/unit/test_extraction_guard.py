"""The extraction's own guard on the real filesystem, on its own and inside safe_extract with the
archive's namespace check switched off (each of the two guards must hold without the other)."""

from __future__ import annotations

import io
import os
import sys
import tarfile
from pathlib import Path

import pytest
from modeldrop import tarball
from modeldrop.extraction_guard import (
    UnsafeOnDisk,
    check_hardlink_source,
    check_parents_inside,
    check_symlinks_inside,
    create_symlink,
)
from modeldrop.rejection import UploadRejected
from modeldrop.tarball import MemberNotWritten, safe_extract

from tests.unit.test_tarball import MODEL, OneWayStream, directory, make_tarball, pax_named, symlink


def create_symlinks_inside(root: Path, links: list[tuple[str, str]]) -> None:
    """What safe_extract does once every other member is written: create the links, then check them."""
    for name, target in links:
        create_symlink(root, name, target)
    check_symlinks_inside(root, links)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root").mkdir()
    return tmp_path / "root"


@pytest.mark.parametrize("order", ["link first", "link last"])
def test_a_link_that_leaves_through_another_link_is_refused_whatever_the_order(
    root: Path, order: str
) -> None:
    # Given 'a/b' -> '..' (the root) and 'x' -> 'a/b/..' (the root's parent once 'a/b' exists)
    links = [("x", "a/b/.."), ("a/b", "..")]
    if order == "link last":
        links.reverse()

    # When both are created
    with pytest.raises(UnsafeOnDisk) as caught:
        create_symlinks_inside(root, links)

    # Then 'x' is refused, naming where it really lands
    assert caught.value.reason == (
        f"symlink 'x' points outside the extraction root: 'a/b/..' leads to {str(root.parent)!r} on disk"
    )


def test_links_forming_a_loop_are_refused(root: Path) -> None:
    with pytest.raises(UnsafeOnDisk) as caught:
        create_symlinks_inside(root, [("a", "b"), ("b", "a")])
    assert caught.value.reason == "symlink 'a' does not resolve on disk: Too many levels of symbolic links"


def test_links_inside_and_dangling_ones_are_left_alone(root: Path) -> None:
    (root / "model.joblib").write_bytes(b"weights")
    create_symlinks_inside(root, [("alias", "model.joblib"), ("later", "not/yet/there")])
    assert (root / "alias").read_bytes() == b"weights"
    assert os.readlink(root / "later") == "not/yet/there"


def test_a_dangling_link_that_would_climb_out_is_refused(root: Path) -> None:
    with pytest.raises(UnsafeOnDisk) as caught:
        create_symlinks_inside(root, [("x", "missing/../../outside")])
    assert caught.value.reason == (
        f"symlink 'x' points outside the extraction root: 'missing/../../outside' leads to "
        f"{str(root.parent / 'outside')!r} on disk"
    )


def test_nothing_is_written_through_a_symlink_already_on_disk(root: Path, tmp_path: Path) -> None:
    # Given a symlink on disk to a directory outside the root (however it got there)
    (tmp_path / "outside").mkdir()
    (root / "alias").symlink_to(tmp_path / "outside")

    # Then a member under it, or at its path, is refused before anything is written
    with pytest.raises(UnsafeOnDisk) as caught:
        check_parents_inside(root, "alias/evil.py")
    assert caught.value.reason == "member 'alias/evil.py' would be written through symlink 'alias'"
    with pytest.raises(UnsafeOnDisk) as caught:
        check_parents_inside(root, "alias")
    assert caught.value.reason == "member 'alias' would be written through the symlink already at its path"


def test_a_hardlink_source_must_be_a_regular_file_reached_without_a_link(root: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("outside")
    (root / "alias").symlink_to(tmp_path / "secret")
    with pytest.raises(UnsafeOnDisk) as caught:
        check_hardlink_source(root, "copy", "alias")
    assert caught.value.reason == "member 'alias' would be written through the symlink already at its path"
    with pytest.raises(UnsafeOnDisk) as caught:
        check_hardlink_source(root, "copy", "nothing")
    assert caught.value.reason == "hardlink 'copy' points to 'nothing', which is not on disk"


def test_safe_extract_holds_without_the_archive_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the archive's namespace check switched off, and the link chain it would have refused
    monkeypatch.setattr(tarball, "check_links", lambda symlinks, members: None)
    data = make_tarball(MODEL, symlink("x", "a/b/.."), directory("a"), symlink("a/b", ".."))
    dest = tmp_path / "model"

    # When extracted
    with pytest.raises(UploadRejected) as caught:
        safe_extract(OneWayStream(data), dest)

    # Then the on-disk guard refuses it, and nothing of the archive is left
    assert caught.value.reason == (
        f"symlink 'x' points outside the extraction root: 'a/b/..' leads to {str(tmp_path)!r} on disk"
    )
    assert list(dest.iterdir()) == []


@pytest.mark.skipif(sys.version_info >= (3, 11, 13), reason="CPython 3.11.13 fixed the data filter")
def test_the_interpreters_data_filter_alone_lets_the_chain_out(tmp_path: Path) -> None:
    # Why the guard exists: Python 3.11.7's tarfile data filter checks each link as it comes
    # (CVE-2025-4517 class, https://github.com/python/cpython/issues/135034)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, kind, target in [
            ("x", tarfile.SYMTYPE, "a/b/.."),
            ("a", tarfile.DIRTYPE, ""),
            ("a/b", tarfile.SYMTYPE, ".."),
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            archive.addfile(info)
    buffer.seek(0)
    (tmp_path / "root").mkdir()
    with tarfile.open(fileobj=buffer) as archive:
        archive.extractall(tmp_path / "root", filter="data")
    assert os.path.realpath(tmp_path / "root" / "x") == str(tmp_path)


def test_a_symlink_in_a_directory_no_member_names_is_created_with_it(tmp_path: Path) -> None:
    data = make_tarball(MODEL, symlink("sub/alias.joblib", "../model.joblib"))
    safe_extract(OneWayStream(data), tmp_path / "m")
    assert (tmp_path / "m" / "sub" / "alias.joblib").read_bytes() == b"payload"


def test_a_member_the_filesystem_refuses_is_named_in_one_line(tmp_path: Path) -> None:
    # Given a name within PATH_MAX on its own (16 components of 250 bytes: 4015 bytes) that is over it
    # once joined to the extraction directory
    name = "/".join(["d" * 250] * 16)
    dest = tmp_path / ("x" * 100)
    # When extracted
    with pytest.raises(MemberNotWritten) as caught:
        safe_extract(OneWayStream(make_tarball(MODEL, pax_named(name))), dest)
    # Then the error names the member (cut short) and the filesystem's reason, and nothing is left
    assert str(caught.value) == f"could not write member '{'d' * 60}...': File name too long"
    assert list(dest.iterdir()) == []
