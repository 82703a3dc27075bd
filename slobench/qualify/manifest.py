"""A sha256 manifest of a results folder, so an edit made after the run is detected.

``MANIFEST.sha256`` lists every regular file of the folder in ``sha256sum`` format (``<hex>  <path>``,
sorted by relative POSIX path), so ``sha256sum -c MANIFEST.sha256`` checks it without slobench. The
manifest alone only proves that files match *a* manifest: whoever edits a file can rewrite the manifest
too. The **root digest** (sha256 of the manifest's canonical text) closes that gap: publish it with the
result (a report, a ticket, an e-mail) and ``check_manifest(root, expect=digest)`` fails on a folder
whose manifest was rewritten after an edit.

Symbolic links are refused rather than followed: a link's target can change without the folder
changing, so a sealed folder holds only plain files.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from slobench.errors import UserError
from slobench.report.results import atomic_target

MANIFEST_NAME = "MANIFEST.sha256"
_CHUNK_BYTES = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
# sha256sum writes "<hex>  <path>" (text mode) or "<hex> *<path>" (binary mode); both mean the same on POSIX.
_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks (model weights do not fit in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def normalize_digest(text: str) -> str:
    """``"sha256:3FA…"`` or ``"3fa…"`` → ``"3fa…"`` (64 lowercase hex); anything else is one UserError."""
    value = text.strip().lower()
    value = value.removeprefix("sha256:")
    if not _HEX64.fullmatch(value):
        raise UserError(f"--expect {text!r}: not a sha256 digest; give the 64 hex characters of the root digest "
                        "(with or without a 'sha256:' prefix)")
    return value


@dataclass(frozen=True)
class Manifest:
    """The files of a folder and their sha256, sorted by relative POSIX path.

    ``entries`` is a tuple of ``(relpath, sha256_hex)``; ``text()`` is the canonical ``sha256sum`` form
    and ``root_digest`` its sha256, the one value that pins the whole folder.
    """

    entries: tuple[tuple[str, str], ...]

    @property
    def digests(self) -> dict[str, str]:
        """relpath → sha256 hex."""
        return dict(self.entries)

    def text(self) -> str:
        """``<hex>  <relpath>\\n`` per file: the format ``sha256sum`` writes and ``sha256sum -c`` reads."""
        return "".join(f"{digest}  {rel}\n" for rel, digest in self.entries)

    @property
    def root_digest(self) -> str:
        """sha256 (hex) of ``text()``: equal for two folders exactly when every path and byte is equal."""
        return hashlib.sha256(self.text().encode("utf-8")).hexdigest()


def _check_name(rel: str, root: Path) -> None:
    # sha256sum escapes a name holding "\\" or a newline with a leading backslash; refusing such names
    # keeps one unambiguous format (slobench never writes them).
    if any(c in rel for c in "\n\r\\"):
        raise UserError(f"{root / rel!r}: a file name with a newline or backslash cannot be listed in "
                        f"{MANIFEST_NAME}; rename it")


def _regular_files(root: Path) -> Iterable[Path]:
    """Every regular file under ``root``; a symlink (to a file or a folder) or a device/FIFO is a UserError."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise UserError(f"{path}: is a symbolic link; a sealed results folder holds plain files only "
                                "(copy the target in its place)")
            if name in filenames and not stat.S_ISREG(mode):
                raise UserError(f"{path}: not a regular file (device, FIFO or socket); remove it from the folder")
            if name in filenames:
                yield path


def build_manifest(root: Path, *, exclude: Iterable[str] = (MANIFEST_NAME,)) -> Manifest:
    """Hash every regular file under ``root`` except the relative paths in ``exclude``.

    Refuses symlinks and special files (one UserError line each) because their content is not the folder's.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder; give the results folder to seal or check")
    skip = set(exclude)
    entries = []
    for path in _regular_files(root):
        rel = path.relative_to(root).as_posix()
        if rel in skip:
            continue
        _check_name(rel, root)
        entries.append((rel, sha256_file(path)))
    return Manifest(tuple(sorted(entries)))


def write_manifest(root: Path) -> Manifest:
    """Seal ``root``: write ``MANIFEST.sha256`` atomically (temp file, then one rename) and return it.

    Atomic so that a crash mid-write never leaves a torn manifest that would fail every later check.
    """
    manifest = build_manifest(root)
    with atomic_target(Path(root) / MANIFEST_NAME) as tmp:
        tmp.write_text(manifest.text(), encoding="utf-8")
    return manifest


def parse_manifest(text: str, *, source: str = MANIFEST_NAME) -> Manifest:
    """Read ``sha256sum`` text back; a malformed line or a repeated path is one UserError naming ``source``."""
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise UserError(f"{source} line {number}: not '<sha256>  <path>' ({line[:60]!r}); the manifest is "
                            "damaged: restore it from the original results (rewriting it would hide any edit)")
        digest, rel = match.group(1).lower(), match.group(2)
        if rel in entries:
            raise UserError(f"{source} line {number}: {rel} listed twice; the manifest is damaged: restore it "
                            "from the original results")
        entries[rel] = digest
    return Manifest(tuple(sorted(entries.items())))


def read_manifest(root: Path) -> Manifest:
    """The stored ``MANIFEST.sha256`` of ``root``; missing or unreadable is one UserError with the fix."""
    path = Path(root) / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: not found; this folder was never sealed (or its manifest was deleted): check a "
                        "folder written by `slobench qualify`, or restore its manifest") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read ({type(exc).__name__}); restore the manifest from the "
                        "original results") from None
    return parse_manifest(text, source=str(path))


def _short(digest: str) -> str:
    return f"{digest[:12]}…"


@dataclass(frozen=True)
class ManifestCheck:
    """The stored manifest against the folder as it is now, and the root digest against ``expected``.

    ``changed``/``added``/``removed`` are relative paths (sorted); ``lines()`` says one problem per line.
    """

    root: Path
    stored: Manifest  # what MANIFEST.sha256 says
    actual: Manifest  # recomputed from the files on disk
    expected: str | None  # normalised root digest the user expects, or None

    @property
    def changed(self) -> list[str]:
        stored, actual = self.stored.digests, self.actual.digests
        return sorted(rel for rel in stored.keys() & actual.keys() if stored[rel] != actual[rel])

    @property
    def added(self) -> list[str]:
        return sorted(self.actual.digests.keys() - self.stored.digests.keys())

    @property
    def removed(self) -> list[str]:
        return sorted(self.stored.digests.keys() - self.actual.digests.keys())

    @property
    def root_digest(self) -> str:
        """The recomputed root digest: the one to publish or to compare with ``--expect``."""
        return self.actual.root_digest

    @property
    def digest_matches(self) -> bool:
        """True without ``expected``; otherwise whether the files on disk give the expected root digest."""
        return self.expected is None or self.actual.root_digest == self.expected

    @property
    def ok(self) -> bool:
        return not (self.changed or self.added or self.removed) and self.digest_matches

    def lines(self) -> list[str]:
        """One line per problem, each naming the file (or the digest) and what differs; empty when ``ok``."""
        stored, actual = self.stored.digests, self.actual.digests
        out = [f"changed: {rel} (sha256 {_short(actual[rel])} ≠ manifest {_short(stored[rel])})"
               for rel in self.changed]
        out += [f"added: {rel} (not in the manifest)" for rel in self.added]
        out += [f"removed: {rel} (in the manifest, missing on disk)" for rel in self.removed]
        if not self.digest_matches:
            assert self.expected is not None
            why = ("the manifest itself was rewritten (or this folder is not the one the digest was published for)"
                   if self.stored.root_digest != self.expected else
                   "files changed since the folder was sealed")
            out.append(f"root digest {self.actual.root_digest} ≠ expected {self.expected}: {why}")
        return out


def check_manifest(root: Path, expect: str | None = None) -> ManifestCheck:
    """Recompute ``root``'s manifest and compare it with the stored one and, if given, the expected root digest.

    ``expect`` may carry a ``sha256:`` prefix; a malformed one, a missing folder or manifest, and a damaged
    manifest are each one UserError (they are not check results: there is nothing to compare).
    """
    expected = None if expect is None else normalize_digest(expect)
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder; give the results folder to check")
    stored = read_manifest(root)
    return ManifestCheck(root=root, stored=stored, actual=build_manifest(root), expected=expected)
