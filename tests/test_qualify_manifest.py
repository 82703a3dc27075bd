"""The results-folder manifest: every edit, addition and deletion is named, and --expect catches a rewrite."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from slobench.errors import UserError
from slobench.qualify.manifest import (
    MANIFEST_NAME,
    build_manifest,
    check_manifest,
    normalize_digest,
    parse_manifest,
    write_manifest,
)


@pytest.fixture
def sealed(tmp_path: Path) -> Path:
    """A small results folder, sealed: a summary, probes and a nested figure."""
    (tmp_path / "summary.json").write_text('{"capacity_rps": 3.2}\n')
    (tmp_path / "probes.csv").write_text("rate,attainment\n1.0,0.99\n")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "curve.html").write_text("<html></html>\n")
    write_manifest(tmp_path)
    return tmp_path


def test_manifest_text_is_sorted_sha256sum_format(sealed: Path) -> None:
    text = (sealed / MANIFEST_NAME).read_text()
    figure, probes, summary = (hashlib.sha256(b).hexdigest() for b in
                               (b"<html></html>\n", b"rate,attainment\n1.0,0.99\n", b'{"capacity_rps": 3.2}\n'))
    assert text.splitlines() == [f"{figure}  figures/curve.html", f"{probes}  probes.csv", f"{summary}  summary.json"]
    manifest = build_manifest(sealed)
    assert manifest.root_digest == hashlib.sha256(text.encode()).hexdigest()
    assert parse_manifest(text) == manifest


def test_an_intact_folder_passes(sealed: Path) -> None:
    manifest = build_manifest(sealed)
    result = check_manifest(sealed, expect=manifest.root_digest)
    assert result.ok and result.lines() == []
    assert check_manifest(sealed, expect="sha256:" + manifest.root_digest.upper()).ok


def test_an_edited_file_is_named(sealed: Path) -> None:
    (sealed / "summary.json").write_text('{"capacity_rps": 9.9}\n')
    result = check_manifest(sealed)
    assert not result.ok
    assert result.changed == ["summary.json"]
    [line] = result.lines()
    assert line.startswith("changed: summary.json (sha256 ") and "≠ manifest" in line


def test_an_added_file_is_named(sealed: Path) -> None:
    (sealed / "figures" / "extra.csv").write_text("x\n")
    result = check_manifest(sealed)
    assert not result.ok
    assert result.lines() == ["added: figures/extra.csv (not in the manifest)"]


def test_a_deleted_file_is_named(sealed: Path) -> None:
    (sealed / "probes.csv").unlink()
    result = check_manifest(sealed)
    assert not result.ok
    assert result.lines() == ["removed: probes.csv (in the manifest, missing on disk)"]


def test_a_manifest_rewritten_after_an_edit_passes_alone_but_fails_with_expect(sealed: Path) -> None:
    published = build_manifest(sealed).root_digest
    (sealed / "summary.json").write_text('{"capacity_rps": 9.9}\n')
    write_manifest(sealed)  # the tamperer reseals
    assert check_manifest(sealed).ok
    result = check_manifest(sealed, expect=published)
    assert not result.ok and not result.changed
    [line] = result.lines()
    assert line.startswith(f"root digest {result.root_digest} ≠ expected {published}")
    assert "the manifest itself was rewritten" in line


def test_an_edit_under_an_intact_manifest_fails_expect_as_changed_files(sealed: Path) -> None:
    published = build_manifest(sealed).root_digest
    (sealed / "probes.csv").write_text("rate,attainment\n1.0,1.0\n")
    lines = check_manifest(sealed, expect=published).lines()
    assert lines[0].startswith("changed: probes.csv")
    assert lines[1].endswith("files changed since the folder was sealed")


@pytest.mark.parametrize("bad", ["", "abc", "sha256:" + "g" * 64, "0" * 63, "md5:" + "0" * 64])
def test_a_bad_expect_string_is_one_user_error(sealed: Path, bad: str) -> None:
    with pytest.raises(UserError, match="not a sha256 digest"):
        check_manifest(sealed, expect=bad)


def test_normalize_digest_accepts_the_prefix_and_upper_case() -> None:
    assert normalize_digest(" SHA256:" + "AB" * 32 + "\n") == "ab" * 32


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("x")
    os.symlink(tmp_path / "real.txt", tmp_path / "link.txt")
    with pytest.raises(UserError, match=r"link\.txt: is a symbolic link"):
        build_manifest(tmp_path)


def test_a_symlinked_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    os.symlink(tmp_path / "d", tmp_path / "alias")
    with pytest.raises(UserError, match="alias: is a symbolic link"):
        build_manifest(tmp_path)


def test_a_missing_manifest_is_one_line_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    with pytest.raises(UserError, match=f"{MANIFEST_NAME}: not found") as err:
        check_manifest(tmp_path)
    assert "\n" not in str(err.value)


def test_a_malformed_manifest_is_one_line_naming_the_file_and_line(sealed: Path) -> None:
    path = sealed / MANIFEST_NAME
    path.write_text(path.read_text() + "not a manifest line\n")
    with pytest.raises(UserError, match=f"{MANIFEST_NAME} line 4: not '<sha256>  <path>'") as err:
        check_manifest(sealed)
    assert "\n" not in str(err.value) and "restore" in str(err.value)


def test_a_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a folder"):
        check_manifest(tmp_path / "nope")


def test_write_leaves_no_temporary_file(sealed: Path) -> None:
    assert sorted(p.name for p in sealed.iterdir()) == [MANIFEST_NAME, "figures", "probes.csv", "summary.json"]


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="no sha256sum binary")
def test_sha256sum_checks_the_manifest(sealed: Path) -> None:
    ok = subprocess.run(["sha256sum", "-c", "--quiet", MANIFEST_NAME], cwd=sealed, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (sealed / "probes.csv").write_text("edited\n")
    bad = subprocess.run(["sha256sum", "-c", "--quiet", MANIFEST_NAME], cwd=sealed, capture_output=True, text=True)
    assert bad.returncode != 0 and "probes.csv: FAILED" in bad.stdout
