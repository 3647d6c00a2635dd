"""Hostile model.tar.gz files, each built for real (tarfile, zlib, zipfile) from a working iris model
plus the one thing that makes it hostile."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3


@dataclass(frozen=True)
class Hostile:
    """A hostile upload: its bytes come from build(workdir); expected is what should be recorded."""

    name: str
    description: str
    expected: str
    build: Callable[[Path], bytes]
    # "rejected": OnUpload refuses it; "failed": accepted, the endpoint does not come up (Failed or
    # TimedOut); "deployed": valid after all, it goes InService; "final": any final status with a reason.
    outcome: str
    # Words the reason must hold (the refusal names what it refused), when the expectation names them.
    reason_has: str = ""


def _members(tarball: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(tarball, "r:gz") as archive:
        return [
            (member, archive.extractfile(member).read() if member.isfile() else None)  # type: ignore[union-attr]
            for member in archive.getmembers()
        ]


def tar_gz(
    members: list[tuple[tarfile.TarInfo, bytes | None]], tar_format: int = tarfile.PAX_FORMAT
) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tar_format) as archive:
        for member, data in members:
            archive.addfile(member, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    member.mode = 0o644
    return member, data


def special_member(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = linkname
    if kind == tarfile.CHRTYPE:
        member.devmajor, member.devminor = 1, 3  # /dev/null's numbers
    return member, None


def escaping_tarball(path: Path) -> Path:
    """The smallest hostile upload, written to path: one member, ../escaped.txt, that climbs out of the
    archive root (OnUpload rejects it: "path escapes the archive root: '../escaped.txt'")."""
    path.write_bytes(tar_gz([file_member("../escaped.txt", b"x")]))
    return path


class HostileTarballs:
    """Builders that need the good model (its members) and the canary directory (what must stay empty)."""

    def __init__(self, iris_tarball: Path, canary_dir: Path) -> None:
        self.iris = _members(iris_tarball)
        self.iris_bytes = iris_tarball.read_bytes()
        self.canary = canary_dir
        self.model_only = [(m, d) for m, d in self.iris if m.name == "model.joblib"]

    def with_extra(self, *extra: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
        return tar_gz([*self.iris, *extra])

    def with_code(self, inference_py: str, requirements: str | None = None) -> bytes:
        """A custom-code model (no recognised artifact): code/inference.py plus weights."""
        members: list[tuple[tarfile.TarInfo, bytes | None]] = [
            file_member("weights.json", b"[0]"),
            file_member("code/inference.py", inference_py.encode()),
        ]
        if requirements is not None:
            members.append(file_member("code/requirements.txt", requirements.encode()))
        return tar_gz(members)

    def with_config(self, config: bytes) -> bytes:
        return tar_gz([*self.iris, file_member("modeldrop.json", config)])

    def cases(self) -> list[Hostile]:
        canary = str(self.canary).lstrip("/")
        deep_dots = "code/a/b/" + "../" * 40 + canary + "/dotdot.txt"
        return [
            Hostile(
                "symlink-out",
                f"code/evil → /{canary}/secret (a symlink out of the archive)",
                "Rejected naming the link; nothing written outside",
                lambda _: self.with_extra(special_member("code/evil", tarfile.SYMTYPE, f"/{canary}/secret")),
                "rejected",
            ),
            Hostile(
                "hardlink-out",
                f"code/hard hard-linked to /{canary}/secret",
                "Rejected naming the link; nothing written outside",
                lambda _: self.with_extra(special_member("code/hard", tarfile.LNKTYPE, f"/{canary}/secret")),
                "rejected",
            ),
            Hostile(
                "dotdot-deep",
                "a member named code/a/b/" + "../" * 3 + "… (40 x ..) /canary/dotdot.txt",
                "Rejected naming the member; nothing written outside",
                lambda _: self.with_extra(file_member(deep_dots, b"escaped")),
                "rejected",
            ),
            Hostile(
                "absolute-path",
                f"a member named /{canary}/absolute.txt",
                "Rejected naming the member; nothing written outside",
                lambda _: self.with_extra(file_member(f"/{canary}/absolute.txt", b"escaped")),
                "rejected",
            ),
            Hostile(
                "device-file",
                "a character device member code/null (1, 3)",
                "Rejected naming the device",
                lambda _: self.with_extra(special_member("code/null", tarfile.CHRTYPE)),
                "rejected",
            ),
            Hostile(
                "fifo",
                "a FIFO member code/pipe",
                "Rejected naming the FIFO",
                lambda _: self.with_extra(special_member("code/pipe", tarfile.FIFOTYPE)),
                "rejected",
            ),
            Hostile(
                "100k-members",
                "100,000 one-byte members next to the model",
                "Rejected: more members than MaxTarballMembers (10,000)",
                lambda _: tar_gz([*self.iris, *(file_member(f"tiny/{i}", b"x") for i in range(100_000))]),
                "rejected",
            ),
            Hostile(
                "concatenated-gzip",
                "two gzip members back to back (the tar split across them), as `cat a.gz b.gz`",
                "valid gzip (RFC 1952 allows members in sequence): deployed InService",
                lambda _: _concatenated_gzip(self.iris),
                "deployed",
            ),
            Hostile(
                "truncated-gzip",
                "the iris tarball cut at half its length",
                "Rejected: truncated",
                lambda _: self.iris_bytes[: len(self.iris_bytes) // 2],
                "rejected",
            ),
            Hostile(
                "trailing-garbage",
                "the iris tarball followed by 4 KB of non-gzip bytes",
                "a final status: Rejected with the reason, or deployed (tar stops at its end-of-archive "
                "blocks, as the images' extraction does)",
                lambda _: self.iris_bytes + b"\xde\xad\xbe\xef" * 1024,
                "final",
            ),
            Hostile(
                "zip-named-tar-gz",
                "a zip archive of the same files, uploaded as model.tar.gz",
                "Rejected: not gzip",
                lambda _: _zip_of(self.iris),
                "rejected",
            ),
            Hostile(
                "empty-object",
                "a 0-byte object, put with boto3 put_object(Body=b'') "
                "(Expect: 100-continue, Content-Length: 0)",
                'the put answered at once (no read timeout); Rejected: "empty object"',
                lambda _: b"",
                "rejected",
                "empty object",
            ),
            *self.link_chain_cases(),
            *self.name_cases(),
            Hostile(
                "config-oversize",
                "modeldrop.json of 100 KB (limit 64 KB)",
                "Rejected naming the size limit",
                lambda _: self.with_config(json.dumps({"environment": {"PAD": "x" * 100_000}}).encode()),
                "rejected",
            ),
            Hostile(
                "config-deeply-nested",
                "modeldrop.json nesting 20,000 arrays (40 KB, under the size limit)",
                "Rejected with a reason (not a crash of OnUpload)",
                lambda _: self.with_config(b'{"environment": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"),
                "rejected",
            ),
            Hostile(
                "config-not-utf8",
                'modeldrop.json holding bytes 0xff 0xfe ({"framework": "\\xff\\xfe"})',
                "Rejected: not UTF-8",
                lambda _: self.with_config(b'{"framework": "\xff\xfe"}'),
                "rejected",
            ),
            Hostile(
                "model-fn-raises",
                "code/inference.py whose model_fn raises RuntimeError",
                "Failed with the exception in the reason; the worker is gone",
                lambda _: self.with_code(_inference("raise RuntimeError('model_fn refuses to load')")),
                "failed",
            ),
            Hostile(
                "model-fn-exits",
                "code/inference.py whose model_fn calls sys.exit(3)",
                "Failed with the exit in the reason",
                lambda _: self.with_code(_inference("import sys\n    sys.exit(3)")),
                "failed",
            ),
            Hostile(
                "model-fn-8gb",
                "code/inference.py whose model_fn fills 8 GB (b'x' * 8 GiB)",
                "Failed: over MemorySizeInMB (the worker is killed, the cloud is not)",
                lambda _: self.with_code(_inference("block = b'x' * (8 * 1024**3)\n    return block")),
                "failed",
            ),
            Hostile(
                "model-fn-sleeps",
                "code/inference.py whose model_fn sleeps forever",
                "TimedOut or Failed (start-up timeout) with the reason; nothing else waits on it",
                lambda _: self.with_code(_inference("import time\n    time.sleep(10**9)")),
                "failed",
            ),
            Hostile(
                "model-fn-forks",
                "code/inference.py whose model_fn forks a child that sleeps 10 minutes",
                "serves (forking is allowed) and the child does not outlive the cloud",
                lambda _: self.with_code(
                    _inference(_FORK_BODY.format(pid_file=str(self.canary.parent / "fork.pid")))
                ),
                "deployed",
            ),
            Hostile(
                "requirements-missing-package",
                "code/requirements.txt naming modeldrop-no-such-package==9.9.9",
                "Failed naming the package pip could not install",
                lambda _: self.with_code(_inference("return 0"), "modeldrop-no-such-package==9.9.9\n"),
                "failed",
            ),
        ]

    def link_chain_cases(self) -> list[Hostile]:
        """Links that stay inside as written, one by one, and leave the root together."""
        up = chain_to(str(self.canary / "secret"))
        loop = [
            special_member("code/a", tarfile.SYMTYPE, "b"),
            special_member("code/b", tarfile.SYMTYPE, "a"),
        ]
        forty = [
            special_member(f"code/l{i:02d}", tarfile.SYMTYPE, f"l{i + 1:02d}" if i < 39 else "d/up/..")
            for i in range(1, 40)
        ]
        return [
            Hostile(
                "link-through-link",
                "code/x → 'd/…/l/../…/canary/secret', inside by its name, through the link d/…/l → the root "
                "(40 levels deep: its '..'s climb out)",
                "Rejected naming the link and where it leads; nothing written outside",
                lambda _: self.with_extra(*up),
                "rejected",
                "symlink 'code/x' points outside the archive root",
            ),
            Hostile(
                "link-before-its-target",
                "the same two links, code/x first, before the link and the directories it goes through",
                "Rejected naming the link and where it leads; nothing written outside",
                lambda _: self.with_extra(*reversed(up)),
                "rejected",
                "symlink 'code/x' points outside the archive root",
            ),
            Hostile(
                "link-loop",
                "code/a → b and code/b → a",
                "Rejected: the links form a loop",
                lambda _: self.with_extra(*loop),
                "rejected",
                "form a loop",
            ),
            Hostile(
                "link-chain-40",
                "a chain of 40 links code/l01 → l02 → … → l39 → 'd/up/..', with code/d/up → '..'",
                "Rejected naming the first link and where the chain leads",
                lambda _: self.with_extra(
                    special_member("code/d", tarfile.DIRTYPE),
                    special_member("code/d/up", tarfile.SYMTYPE, "../.."),
                    *forty,
                ),
                "rejected",
                "symlink 'code/l01' points outside the archive root",
            ),
        ]

    def direct_cases(self) -> list[Hostile]:
        """For the local SageMaker's own extraction, with no OnUpload in front of it."""
        up = chain_to(str(self.canary / "secret"))
        return [
            Hostile(
                "link-through-link",
                "code/x → the canary through the link d/…/l → the root (as above)",
                "Failed naming the link; no link to the canary left on disk",
                lambda _: self.with_extra(*reversed(up)),
                "failed",
                "symlink 'code/x' points outside the archive root",
            ),
            Hostile(
                "path-over-path-max-on-disk",
                "a member path of 4015 bytes (16 x 250): legal alone, over PATH_MAX under the local model "
                "directory",
                "Failed in one sentence naming the member (the filesystem's refusal, not a traceback)",
                lambda _: self.with_extra(pax_named("/".join(["q" * 250] * 16))),
                "failed",
                "could not write member 'qqqq",
            ),
        ]

    def name_cases(self) -> list[Hostile]:
        """Member names a filesystem cannot hold (Linux include/uapi/linux/limits.h)."""
        return [
            Hostile(
                "name-nul",
                "a member whose pax path holds a NUL byte: code/evil\\0.py",
                "Rejected naming the NUL",
                lambda _: self.with_extra(pax_named("code/evil\0.py")),
                "rejected",
                "holds a NUL byte",
            ),
            Hostile(
                "name-component-256",
                "a member with a 256-byte name component",
                "Rejected naming NAME_MAX",
                lambda _: self.with_extra(pax_named("code/" + "n" * 256)),
                "rejected",
                "NAME_MAX",
            ),
            Hostile(
                "name-path-4096",
                "a member path of 4096 bytes (16 components of 255 bytes)",
                "Rejected naming PATH_MAX",
                lambda _: self.with_extra(pax_named(("/".join(["p" * 255] * 16) + "x")[:4096])),
                "rejected",
                "PATH_MAX",
            ),
            Hostile(
                "name-not-utf8",
                "a member name holding the bytes 0xff 0xfe (GNU format)",
                "Rejected: not valid UTF-8",
                lambda _: tar_gz([*self.iris, file_member("code/\udcff\udcfe.py", b"x")], tarfile.GNU_FORMAT),
                "rejected",
                "not valid UTF-8",
            ),
        ]


LINK_DEPTH = 40


def chain_to(outside: str) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """code/x reaches `outside` through another link, although each target stays inside as written.

    code/d/…/d/l (40 directories deep) → '../'*40: the root. code/x → 'd/…/d/l' + '/..' * 41 + outside:
    by name that is the root plus `outside`; on disk, l is the root and 41 '..' climb above it.
    """
    deep = "/".join(["d"] * LINK_DEPTH)
    return [
        special_member(f"code/{deep}/l", tarfile.SYMTYPE, "/".join([".."] * (LINK_DEPTH + 1))),
        special_member("code/x", tarfile.SYMTYPE, f"{deep}/l" + "/.." * (LINK_DEPTH + 2) + outside),
    ]


def pax_named(name: str) -> tuple[tarfile.TarInfo, bytes]:
    """A one-byte member whose name comes from a pax record (how a NUL or any length gets through)."""
    member, data = file_member("placeholder", b"x")
    member.pax_headers = {"path": name}
    return member, data


def _inference(model_fn_body: str) -> str:
    return (
        "import json\n\n"
        "def model_fn(model_dir):\n"
        f"    {model_fn_body}\n\n"
        "def input_fn(body, content_type):\n    return json.loads(body)\n\n"
        "def predict_fn(data, model):\n    return [0 for _ in data]\n\n"
        "def output_fn(prediction, accept):\n    return json.dumps(prediction)\n"
    )


_FORK_BODY = (
    "import os, time\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        time.sleep(600)\n"
    "        os._exit(0)\n"
    "    with open({pid_file!r}, 'a') as out:\n"
    "        out.write(str(pid) + '\\n')\n"
    "    return 0"
)


def _concatenated_gzip(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for member, data in members:
            archive.addfile(member, io.BytesIO(data) if data is not None else None)
    tar = raw.getvalue()
    half = (len(tar) // 2) // 512 * 512
    return _gzip(tar[:half]) + _gzip(tar[half:])


def _gzip(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def _zip_of(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members:
            if data is not None:
                archive.writestr(member.name, data)
    return buffer.getvalue()


def write_gzip_bomb(path: Path, inference_py: bytes, size: int = GIB) -> Path:
    """model.joblib of `size` zero bytes (plus a handler), streamed: ~4.5 MB of gzip for 1 GiB."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    with path.open("wb") as out:
        code, code_data = file_member("code/inference.py", inference_py)
        out.write(compressor.compress(code.tobuf(tarfile.PAX_FORMAT) + code_data))
        out.write(compressor.compress(bytes(-len(code_data) % 512)))
        bomb = tarfile.TarInfo("model.joblib")
        bomb.size = size
        bomb.mode = 0o644
        out.write(compressor.compress(bomb.tobuf(tarfile.PAX_FORMAT)))
        for _ in range(size // len(zeros)):
            out.write(compressor.compress(zeros))
        out.write(compressor.compress(bytes(size % len(zeros) + (-size % 512) + 1024)))
        out.write(compressor.flush())
    return path
