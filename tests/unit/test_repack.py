"""repack: the deployed copy streamed from S3 to S3, with tarball.py's checks, never a truncated upload."""

from __future__ import annotations

import io
import tarfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from modeldrop import repack
from modeldrop.rejection import UploadRejected
from modeldrop.repack import repack_to_s3, write_repacked
from modeldrop.tarball import TarballLimits
from modeldrop_local.example_models import build_padded_model
from moto import mock_aws

from reliability.tarballs import file_member, special_member, tar_gz

BUCKET = "models"
REGION = "us-east-1"
ADD = {"code/inference.py": b"def model_fn(model_dir):\n    return model_dir\n"}
BIG_LIMITS = TarballLimits(max_uncompressed_bytes=2**30, max_member_bytes=2**30)


class CountingSink(io.RawIOBase):
    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.size += len(data)
        return len(data)


@pytest.fixture(scope="module")
def padded(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real 12 MiB model tarball without handler code (model.joblib + incompressible padding)."""
    return build_padded_model(tmp_path_factory.mktemp("padded"), 12, with_handler=False).read_bytes()


@pytest.fixture
def s3(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # S3's smallest part is 5 MiB: a lower threshold makes a 12 MiB model a multipart upload.
    monkeypatch.setattr(
        repack, "UPLOAD_CONFIG", TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    )
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


def repack_model(s3: Any) -> list[str]:
    """Repack models/m/model.tar.gz to deployments/m/1/model.tar.gz with ADD."""
    source = {"Bucket": BUCKET, "Key": "models/m/model.tar.gz"}
    return repack_to_s3(s3, source, BUCKET, "deployments/m/1/model.tar.gz", add=ADD, limits=BIG_LIMITS)


def names(body: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        return archive.getnames()


def test_repack_streams_a_multipart_copy_with_the_added_code(s3: Any, padded: bytes) -> None:
    # Given the model in S3
    s3.put_object(Bucket=BUCKET, Key="models/m/model.tar.gz", Body=padded)
    operations: list[str] = []
    s3.meta.events.register("before-call.s3.*", lambda model, **_: operations.append(model.name))

    # When it is repacked with a generated code/inference.py
    written = repack_model(s3)

    # Then the copy holds the original members and the code, uploaded in parts
    copy = s3.get_object(Bucket=BUCKET, Key="deployments/m/1/model.tar.gz")["Body"].read()
    assert names(copy) == ["model.joblib", "padding.bin", "code", "code/inference.py"] == written
    with tarfile.open(fileobj=io.BytesIO(copy)) as archive:
        assert archive.extractfile("code/inference.py").read() == ADD["code/inference.py"]  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(padded)) as original, tarfile.open(fileobj=io.BytesIO(copy)) as new:
        for name in ("model.joblib", "padding.bin"):
            assert new.extractfile(name).read() == original.extractfile(name).read()  # type: ignore[union-attr]
    assert operations.count("UploadPart") >= 2 and "CompleteMultipartUpload" in operations


def test_a_source_that_breaks_mid_stream_leaves_no_object(s3: Any, padded: bytes) -> None:
    # Given a source object cut in the middle (the upload side will already have sent parts)
    s3.put_object(Bucket=BUCKET, Key="models/m/model.tar.gz", Body=padded[: len(padded) * 3 // 4])

    # When it is repacked
    # Then the rejection surfaces, and neither an object nor an open multipart upload is left
    with pytest.raises(UploadRejected, match="the file ends in the middle of the stream"):
        repack_model(s3)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="deployments/")
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_the_safety_checks_of_inspection_apply(tmp_path: Path) -> None:
    # Given a tarball with a symlink out of the root
    tarball = tar_gz(
        [file_member("model.joblib", b"x"), special_member("evil", tarfile.SYMTYPE, "../../etc/passwd")]
    )

    # When repacked / Then refused with the inspection's reason
    with pytest.raises(UploadRejected, match="symlink 'evil' points outside the archive root"):
        write_repacked(io.BytesIO(tarball), CountingSink(), add=ADD)


def test_left_out_members_are_dropped_and_memory_stays_flat(padded: bytes) -> None:
    # Given the 12 MiB model
    sink = CountingSink()

    # When repacked without padding.bin, under tracemalloc
    tracemalloc.start()
    try:
        written = write_repacked(
            io.BytesIO(padded), sink, add=ADD, leave_out={"padding.bin"}, limits=BIG_LIMITS
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Then padding.bin is gone, and what was held at once is a small fraction of the model
    assert written == ["model.joblib", "code", "code/inference.py"]
    assert sink.size < 64 * 1024
    assert peak < 2 * 2**20


def test_adding_a_member_that_exists_is_refused(padded: bytes) -> None:
    with pytest.raises(ValueError, match=r"model\.joblib is already in the tarball"):
        write_repacked(io.BytesIO(padded), CountingSink(), add={"model.joblib": b""}, limits=BIG_LIMITS)


def test_models_over_a_gib_are_stored_uncompressed_to_stay_inside_the_function_timeout() -> None:
    from modeldrop.repack import LARGE_MODEL_BYTES, compress_level_for

    assert compress_level_for(LARGE_MODEL_BYTES) == 1
    assert compress_level_for(LARGE_MODEL_BYTES + 1) == 0
