"""A tarball's symlinks resolved against the archive's own namespace, as the kernel would on disk.

Run once every member is known, since links may come in any order: a target that stays inside the
root as written can leave it through another link of the archive, even one that comes after it
('x' -> 'a/b/..' is 'a' by its name, but above the root once 'a/b' -> '..' exists). So each link is
followed component by component: a component that is one of the archive's links is replaced by
where that link lands (resolved the same way, once), '..' is applied to what the walk has reached,
and anything else is taken as a directory (the worst a missing name or a file could become).
Loops, and chains of more links than the kernel follows in one lookup (MAXSYMLINKS, 40:
include/linux/namei.h), never resolve.

A hostile archive holds as many links of 4 KB as its limits allow, so the walk never rebuilds the
path it has reached: it keeps a hash of each prefix, and a name is compared only when the hash says
a link is there. Every link's target is walked once.
"""

from __future__ import annotations

import bisect
import posixpath
import secrets
from dataclasses import dataclass, field

MAX_SYMLINK_HOPS = 40
_SHOWN_CHARS = 120
_MODULUS = (1 << 61) - 1
_ROOT = 0


class LinkProblem(Exception):
    """The archive's links point outside the root, or never resolve; `reason` says which and how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def shown(name: str, limit: int = 60) -> str:
    """A name as the uploader can read it, on one line: bytes that are not UTF-8 and control characters
    as \\xNN, long names cut short."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
    return f"'{text}'" if len(text) <= limit else f"'{text[:limit]}...'"


class _Unresolvable(Exception):
    def __init__(self, what: str, links: list[str]) -> None:
        super().__init__(what)
        self.what = what
        self.links = links


@dataclass
class _Landing:
    """Where a link leads: inside (the path's components and each prefix's hash), or outside (a path
    starting with '..' or '/'); with every link followed on the way, itself first."""

    links: list[str]
    parts: list[str] = field(default_factory=list)
    hashes: list[int] = field(default_factory=list)
    outside: str | None = None


class _Resolver:
    def __init__(self, symlinks: dict[str, str]) -> None:
        self.symlinks = symlinks
        # A base drawn per archive (and str hashes salted per process): collisions cannot be planned.
        self._base = secrets.randbelow(_MODULUS - 2) + 2
        self._named: dict[int, list[str]] = {}
        for name in symlinks:
            self._named.setdefault(self._path_hash(name.split("/")), []).append(name)
        self._landings: dict[str, _Landing] = {}
        self._following: list[str] = []

    def _extend(self, prefix_hash: int, part: str) -> int:
        return (prefix_hash * self._base + (hash(part) & 0xFFFF_FFFF_FFFF_FFF) + 1) % _MODULUS

    def _path_hash(self, parts: list[str]) -> int:
        value = _ROOT
        for part in parts:
            value = self._extend(value, part)
        return value

    def link_at(self, path_hash: int, parts: list[str], end: int) -> str | None:
        """The archive's link named parts[:end] (whose hash is path_hash), if there is one."""
        names = self._named.get(path_hash)
        if not names:
            return None
        path = "/".join(parts[:end])
        return path if path in names else None

    def prefix_hashes(self, parts: list[str]) -> list[int]:
        hashes, value = [], _ROOT
        for part in parts:
            value = self._extend(value, part)
            hashes.append(value)
        return hashes

    def resolve(self, name: str) -> _Landing:
        landing = self._landings.get(name)
        if landing is not None:
            return landing
        if name in self._following:
            raise _Unresolvable("loop", [*self._following[self._following.index(name) :], name])
        if len(self._following) >= MAX_SYMLINK_HOPS:
            raise _Unresolvable("too many", [*self._following, name])
        self._following.append(name)
        try:
            landing = self._walk(name)
        finally:
            self._following.pop()
        self._landings[name] = landing
        return landing

    def _walk(self, name: str) -> _Landing:
        target = self.symlinks[name]
        links = [name]
        if target.startswith("/"):
            return _Landing(links, outside=posixpath.normpath(target))
        parts = name.split("/")[:-1]
        hashes = self.prefix_hashes(parts)
        pending = target.split("/")
        for index, part in enumerate(pending):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    return _Landing(
                        links, outside=posixpath.normpath("/".join(["..", *pending[index + 1 :]]))
                    )
                parts.pop()
                hashes.pop()
                continue
            reached = self._extend(hashes[-1] if hashes else _ROOT, part)
            parts.append(part)
            hashes.append(reached)
            link = self.link_at(reached, parts, len(parts))
            if link is None:
                continue
            through = self.resolve(link)
            links = [*links, *through.links]
            if len(links) > MAX_SYMLINK_HOPS:
                raise _Unresolvable("too many", links)
            if through.outside is not None:
                rest = pending[index + 1 :]
                return _Landing(links, outside=posixpath.normpath("/".join([through.outside, *rest])))
            parts, hashes = list(through.parts), list(through.hashes)
        return _Landing(links, parts, hashes)


def _links_text(links: list[str]) -> str:
    texts = [repr(link) for link in links]
    if len(texts) > 4:
        texts = [*texts[:2], f"... {len(texts) - 3} more ...", texts[-1]]
    return " -> ".join(texts)


def _landing_text(landing: str) -> str:
    """Where a link lands, its climb above the root counted: '..' 42 times then 'etc/passwd'."""
    parts = landing.split("/")
    ups = next((index for index, part in enumerate(parts) if part != ".."), len(parts))
    if ups <= 1:
        return shown(landing, _SHOWN_CHARS)
    rest = "/".join(parts[ups:])
    return f"'..' {ups} times" + (f" then {shown(rest, _SHOWN_CHARS)}" if rest else "")


def check_links(symlinks: dict[str, str], members: list[str]) -> None:
    """No member lies under a symlink, and every symlink lands inside the root; else LinkProblem.

    `symlinks` maps each link's name to its target as written, `members` names every member (both
    normalised, relative to the root), in archive order.
    """
    if not symlinks:
        return
    # Members under a link: all the names with a given prefix are neighbours once sorted.
    ordered = sorted(members)
    for link in symlinks:
        at = bisect.bisect_left(ordered, f"{link}/")
        if at < len(ordered) and ordered[at].startswith(f"{link}/"):
            under = next(member for member in members if member.startswith(f"{link}/"))
            raise LinkProblem(f"member {under!r} lies inside symlink {link!r}")
    resolver = _Resolver(symlinks)
    for name, target in symlinks.items():
        try:
            landing = resolver.resolve(name)
        except _Unresolvable as unresolvable:
            chain = _links_text(unresolvable.links)
            if unresolvable.what == "loop":
                raise LinkProblem(f"symlink {name!r} never resolves: the links {chain} form a loop") from None
            raise LinkProblem(
                f"symlink {name!r} never resolves: it leads through more than {MAX_SYMLINK_HOPS} links "
                f"({chain}), more than the kernel follows (MAXSYMLINKS)"
            ) from None
        if landing.outside is not None:
            through = f" through {_links_text(landing.links[1:])}" if len(landing.links) > 1 else ""
            raise LinkProblem(
                f"symlink {name!r} points outside the archive root: "
                f"{shown(target, _SHOWN_CHARS)} leads to {_landing_text(landing.outside)}{through}"
            )
