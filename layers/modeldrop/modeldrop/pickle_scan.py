"""What a pickle (or an uncompressed joblib file) names, read from its opcodes without executing any.

The modules and attributes a pickle imports when loaded (GLOBAL, STACK_GLOBAL, INST) decide whether an
image can load it: `numpy._core.*` exists only from numpy 1.26 on (numpy 2 writes it), and scikit-learn's
BaseEstimator.__getstate__ stores `_sklearn_version` in every estimator's state (scikit-learn
sklearn/base.py). Both are read here from the opcode stream, which is walked with pickletools' opcode table
(the one pickletools.genops uses) instead of genops itself for two reasons:
  - genops reads every argument whole: a 1 GB array pickled as one BINBYTES8 would be read into memory.
    Here a long argument is skipped in chunks, and the opcode bytes read are bounded (`budget`);
  - joblib writes each numpy array's raw bytes into the file right after the BUILD of its
    NumpyArrayWrapper, outside the pickle's opcodes (joblib/numpy_pickle.py NumpyArrayWrapper.write_array:
    an alignment byte, padding, then the data; a nested pickle for object arrays). genops would read them
    as opcodes; here the wrapper's state (shape, dtype) is followed on a shadow stack and the bytes skipped.
Nothing is imported or called: the shadow stack holds only strings, numbers, tuples, dicts and markers.

A compressed joblib file (joblib.dump(..., compress=...)) is not decompressed: its compressor is named
(joblib/compressor.py prefixes) and the caller says it could not be read.
"""

from __future__ import annotations

import pickletools
import re
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from pydantic import BaseModel

# Opcode bytes read at most (long arguments and joblib's array data are skipped, not counted): a scikit-learn
# model's opcodes are kilobytes; a pickle of millions of Python objects is read only this far.
DEFAULT_BUDGET = 4 * 1024 * 1024
# Arguments up to this size are kept (strings, small bytes); longer ones are skipped unread.
_KEEP_ARGUMENT = 64 * 1024
_SKIP_CHUNK = 1024 * 1024
_MAX_LINE = 64 * 1024
# joblib/compressor.py: the magic numbers joblib's compressors write first (a pickle starts with PROTO 0x80).
JOBLIB_COMPRESSORS = (
    (b"ZF", "zlib (joblib < 0.9.3)"),
    (b"\x78", "zlib"),
    (b"\x1f\x8b", "gzip"),
    (b"BZ", "bz2"),
    (b"\xfd\x37\x7a\x58\x5a", "xz"),
    (b"\x5d\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
)
SKLEARN_VERSION_KEY = "_sklearn_version"
# The artifacts read as pickles (joblib files are pickles with arrays written between the opcodes).
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
_OPCODES = {op.code.encode("latin-1"): op for op in pickletools.opcodes}


class PickleFacts(BaseModel):
    """What one pickle names, as far as it was read."""

    # "module.attribute" for every global the pickle would import, sorted.
    globals: list[str] = []
    # The `_sklearn_version` values of the estimators in it.
    sklearn_versions: list[str] = []
    # The joblib compressor when the file is compressed (then nothing else was read).
    compression: str | None = None
    # Why the opcodes were not read to their STOP (None: read whole).
    incomplete: str | None = None

    def names_module(self, prefix: str) -> bool:
        """Whether a global lies in module `prefix` or under it."""
        return any(name == prefix or name.startswith(prefix + ".") for name in self.globals)


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _Unfollowable(Exception):
    """The stream stops making sense as a pickle here; what was found so far stands."""


@dataclass(frozen=True)
class _Global:
    module: str
    name: str


@dataclass
class _Object:
    """An instance or a call result on the shadow stack: what built it, and its BUILD state."""

    maker: Any
    args: Any = None
    state: Any = None


class _Mark:
    pass


_MARK = _Mark()
_OPAQUE = object()


@dataclass
class _Reader:
    stream: _Readable | IO[bytes]
    budget: int
    used: int = 0

    def _charge(self, size: int) -> None:
        self.used += size
        if self.used > self.budget:
            raise _Unfollowable(f"stopped after {self.budget} bytes of pickle opcodes")

    def read(self, size: int) -> bytes:
        self._charge(size)
        data = self.stream.read(size)
        if len(data) != size:
            raise _Unfollowable("the pickle ends before its STOP opcode")
        return data

    def readline(self) -> bytes:
        line = b""
        while not line.endswith(b"\n"):
            byte = self.read(1)
            line += byte
            if len(line) > _MAX_LINE:
                raise _Unfollowable("a text argument longer than 64 KiB")
        return line

    def skip(self, size: int) -> None:
        """Read past `size` bytes without keeping them (not charged to the budget)."""
        while size > 0:
            chunk = self.stream.read(min(size, _SKIP_CHUNK))
            if not chunk:
                raise _Unfollowable("the pickle ends inside an argument or an array's data")
            size -= len(chunk)


# pickletools ArgumentDescriptor.n for arguments with a length prefix: (prefix bytes, signed).
_LENGTH_PREFIX = {
    pickletools.TAKEN_FROM_ARGUMENT1: (1, False),
    pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
    pickletools.TAKEN_FROM_ARGUMENT4U: (4, False),
    pickletools.TAKEN_FROM_ARGUMENT8U: (8, False),
}


def _argument(op: pickletools.OpcodeInfo, reader: _Reader) -> Any:
    descriptor = op.arg
    if descriptor is None:
        return None
    if descriptor.n in _LENGTH_PREFIX:
        width, signed = _LENGTH_PREFIX[descriptor.n]
        size = int.from_bytes(reader.read(width), "little", signed=signed)
        if size < 0:
            raise _Unfollowable(f"negative length in {op.name}")
        if size > _KEEP_ARGUMENT:
            reader.skip(size)
            return _OPAQUE
        raw = reader.read(size)
        if descriptor.name.startswith("unicodestring"):
            return raw.decode("utf-8", "surrogatepass")
        if descriptor.name.startswith("string"):
            return raw.decode("latin-1")
        if descriptor.name.startswith("long"):
            return int.from_bytes(raw, "little", signed=True)
        return raw
    # Fixed-size and newline-terminated arguments: pickletools' own reader, over the bounded reader.
    return descriptor.reader(reader)  # type: ignore[arg-type]  # the readers only call read and readline


@dataclass
class _Machine:
    reader: _Reader
    facts: PickleFacts
    stack: list[Any] = field(default_factory=list)
    memo: dict[int, Any] = field(default_factory=dict)

    def pop_mark(self) -> list[Any]:
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index] is _MARK:
                items = self.stack[index + 1 :]
                del self.stack[index:]
                return items
        raise _Unfollowable("MARK missing")

    def pop(self) -> Any:
        if not self.stack:
            raise _Unfollowable("stack underflow")
        return self.stack.pop()

    def name_global(self, module: Any, name: Any) -> _Global | object:
        if not isinstance(module, str) or not isinstance(name, str):
            return _OPAQUE
        qualified = f"{module}.{name}"
        if qualified not in self.facts.globals:
            self.facts.globals.append(qualified)
        return _Global(module, name)

    def set_items(self, target: Any, items: list[Any]) -> None:
        for key, value in zip(items[::2], items[1::2], strict=False):
            known = self.facts.sklearn_versions
            if key == SKLEARN_VERSION_KEY and isinstance(value, str) and value not in known:
                known.append(value)
            if isinstance(target, dict):
                try:
                    target[key] = value
                except TypeError:
                    continue  # an unhashable shadow key (a list): the real one was hashable, nothing to learn

    def run(self) -> None:
        """Execute opcodes on the shadow stack until STOP."""
        while True:
            code = self.reader.read(1)
            op = _OPCODES.get(code)
            if op is None:
                raise _Unfollowable(f"unknown opcode {code!r}")
            arg = _argument(op, self.reader)
            if self.step(op.name, arg):
                return

    def step(self, name: str, arg: Any) -> bool:
        """One opcode on the shadow stack (one branch per opcode family); True at STOP."""
        stack = self.stack
        if name == "STOP":
            return True
        if name in ("PROTO", "FRAME", "READONLY_BUFFER", "NEXT_BUFFER"):
            if name == "NEXT_BUFFER":
                stack.append(_OPAQUE)
        elif name == "MARK":
            stack.append(_MARK)
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        elif name in _VALUE_OPCODES:
            stack.append(arg)
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = int(name[-1])
            items = [self.pop() for _ in range(count)][::-1]
            stack.append(tuple(items))
        elif name == "TUPLE":
            stack.append(tuple(self.pop_mark()))
        elif name in ("EMPTY_LIST", "EMPTY_SET"):
            stack.append([])
        elif name in ("LIST", "FROZENSET"):
            stack.append(self.pop_mark())
        elif name == "APPEND":
            value = self.pop()
            if stack and isinstance(stack[-1], list):
                stack[-1].append(value)
        elif name in ("APPENDS", "ADDITEMS"):
            items = self.pop_mark()
            if stack and isinstance(stack[-1], list):
                stack[-1].extend(items)
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name == "DICT":
            target: dict[Any, Any] = {}
            self.set_items(target, self.pop_mark())
            stack.append(target)
        elif name == "SETITEM":
            value, key = self.pop(), self.pop()
            self.set_items(stack[-1] if stack else None, [key, value])
        elif name == "SETITEMS":
            items = self.pop_mark()
            self.set_items(stack[-1] if stack else None, items)
        elif name == "POP":
            self.pop()
        elif name == "DUP":
            stack.append(stack[-1] if stack else _OPAQUE)
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "GLOBAL":
            module, _, attribute = str(arg).partition(" ")
            stack.append(self.name_global(module, attribute))
        elif name == "STACK_GLOBAL":
            attribute, module = self.pop(), self.pop()
            stack.append(self.name_global(module, attribute))
        elif name == "INST":
            module, _, attribute = str(arg).partition(" ")
            stack.append(_Object(self.name_global(module, attribute), tuple(self.pop_mark())))
        elif name == "OBJ":
            items = self.pop_mark()
            stack.append(_Object(items[0] if items else _OPAQUE, tuple(items[1:])))
        elif name in ("REDUCE", "NEWOBJ"):
            args, maker = self.pop(), self.pop()
            stack.append(_Object(maker, args))
        elif name == "NEWOBJ_EX":
            _kwargs, args, maker = self.pop(), self.pop(), self.pop()
            stack.append(_Object(maker, args))
        elif name == "BUILD":
            state = self.pop()
            built = stack[-1] if stack else None
            if isinstance(built, _Object):
                built.state = state
                if _is_joblib_array(built.maker):
                    self.pop()
                    stack.append(self.skip_joblib_array(state))
        elif name in ("PERSID", "EXT1", "EXT2", "EXT4"):
            stack.append(_OPAQUE)
        elif name == "BINPERSID":
            self.pop()
            stack.append(_OPAQUE)
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(self.memo.get(int(arg), _OPAQUE))
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[int(arg)] = stack[-1] if stack else _OPAQUE
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = stack[-1] if stack else _OPAQUE
        else:
            raise _Unfollowable(f"opcode {name} not followed")
        return False

    def skip_joblib_array(self, state: Any) -> object:
        """Read past the array data joblib wrote after this NumpyArrayWrapper (see the module docstring)."""
        if not isinstance(state, dict):
            raise _Unfollowable("a joblib array wrapper without its state")
        shape, dtype = state.get("shape"), state.get("dtype")
        if not isinstance(shape, tuple) or not all(isinstance(size, int) for size in shape):
            raise _Unfollowable("a joblib array of unknown shape")
        itemsize, has_object = _dtype_layout(dtype)
        if has_object:
            # Object arrays are a nested pickle (protocol 5) in place of the data.
            _Machine(self.reader, self.facts).run()
            return _OPAQUE
        if state.get("numpy_array_alignment_bytes") is not None:
            padding = self.reader.read(1)[0]
            self.reader.skip(padding)
        count = 1
        for size in shape:
            count *= size
        self.reader.skip(count * itemsize)
        return _OPAQUE


_VALUE_OPCODES = frozenset(
    {
        "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
        "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
        "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
    }
)  # fmt: skip


def _is_joblib_array(maker: Any) -> bool:
    # joblib.numpy_pickle (and scikit-learn's old vendored sklearn.externals.joblib.numpy_pickle).
    return (
        isinstance(maker, _Global)
        and maker.name == "NumpyArrayWrapper"
        and maker.module.endswith("numpy_pickle")
    )


_TYPESTR_SIZE = re.compile(r"^[<>|=]?[A-Za-z]+(\d+)$")


def _dtype_layout(dtype: Any) -> tuple[int, bool]:
    """(itemsize, holds objects) of a numpy dtype as pickled: numpy.dtype(typestr, align, copy) with the
    state (version, byteorder, subarray, names, fields, elsize, alignment, flags) of dtype.__reduce__."""
    if not (isinstance(dtype, _Object) and isinstance(dtype.args, tuple) and dtype.args):
        raise _Unfollowable("a joblib array of unknown dtype")
    typestr = dtype.args[0]
    if not isinstance(typestr, str):
        raise _Unfollowable("a joblib array of unknown dtype")
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    elsize = state[5] if len(state) > 5 and isinstance(state[5], int) else -1
    flags = state[7] if len(state) > 7 and isinstance(state[7], int) else 0
    # NPY_ITEM_REFCOUNT (bit 0 of the dtype flags): the items hold Python objects.
    has_object = typestr.lstrip("<>|=").startswith("O") or bool(flags & 1)
    if elsize > 0:
        return elsize, has_object
    match = _TYPESTR_SIZE.match(typestr)
    if match is None:
        raise _Unfollowable(f"a joblib array of dtype {typestr!r}")
    return int(match[1]), has_object


def joblib_compression(head: bytes) -> str | None:
    """The joblib compressor whose magic number `head` starts with; None for a pickle."""
    if head[:1] == b"\x80":  # PROTO: a pickle of protocol 2 or newer
        return None
    return next((name for prefix, name in JOBLIB_COMPRESSORS if head.startswith(prefix)), None)


def scan_pickle(stream: _Readable | IO[bytes], budget: int = DEFAULT_BUDGET) -> PickleFacts:
    """Read a pickle or joblib file's opcodes from `stream` (strictly forward) and say what it names.

    Never raises for what the bytes hold (a truncated or foreign file is `incomplete`, with the reason);
    errors of the stream itself (the tarball's decompression) propagate.
    """
    facts = PickleFacts()
    head = stream.read(8)
    compression = joblib_compression(head)
    if compression is not None:
        return facts.model_copy(update={"compression": compression})
    reader = _Reader(_Prefixed(head, stream), budget)
    try:
        _Machine(reader, facts).run()
    except _Unfollowable as stop:
        facts.incomplete = str(stop)
    except (ValueError, IndexError, TypeError, OverflowError) as error:
        # pickletools' readers raise ValueError on a malformed argument.
        facts.incomplete = f"not a readable pickle ({type(error).__name__}: {error})"
    facts.globals.sort()
    return facts


class _Prefixed:
    """`head` (already read to recognise the format) followed by the rest of `stream`."""

    def __init__(self, head: bytes, stream: _Readable | IO[bytes]) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            taken, self._head = self._head, b""
            return taken + self._stream.read()
        if self._head:
            taken, self._head = self._head[:size], self._head[size:]
            if len(taken) < size:
                taken += self._stream.read(size - len(taken))
            return taken
        return self._stream.read(size)
