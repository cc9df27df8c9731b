"""Zoo manifests: what an ensemble folder holds, and sha256 checks before any file is loaded.

A zoo entry is a folder with one ``manifest.json`` beside its member files. The manifest is written
last, so a folder without one is an unfinished entry. Every member file is hashed on write and
checked on load: a changed byte means the folder is refused, never silently used.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

from survey_mass.constants import INSTRUMENTS

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
_RESERVED = ("manifest_version", "ensemble", "instrument", "members")
#: what a zoo entry weighs: one instrument, or the joint combination of them
ENTRY_KINDS = (*INSTRUMENTS, "joint")


class ModelIntegrityError(RuntimeError):
    """A zoo member is missing or its bytes differ from the sha256 its manifest recorded."""


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _member_path(directory: Path, member: dict) -> Path:
    """The member's file inside ``directory``; names that could leave the folder are refused."""
    name = member.get("file")
    if not isinstance(name, str) or not name:
        raise ValueError(f"manifest member {member!r} in {directory} has no 'file' name")
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in name:
        raise ValueError(
            f"manifest member file {name!r} in {directory} must be a relative path inside the folder"
        )
    return directory / pure


def write_manifest(
    directory: str | os.PathLike,
    ensemble_name: str,
    instrument: str,
    members: list[dict],
    **fields: Any,
) -> Path:
    """Hash every member's ``file`` and write ``manifest.json`` atomically; returns its path.

    ``members`` are dicts with at least ``file`` (relative to ``directory``, already written);
    their other keys (fold, z range, metrics) are kept. ``fields`` are extra top-level entries
    (inputs, preprocessing, source, ...) and must be JSON-serialisable.
    """
    directory = Path(directory)
    if instrument not in ENTRY_KINDS:
        raise ValueError(f"instrument {instrument!r} is not one of {ENTRY_KINDS}")
    if not members:
        raise ValueError(f"ensemble {ensemble_name!r} needs at least one member")
    clash = sorted(set(fields) & set(_RESERVED))
    if clash:
        raise ValueError(f"extra manifest fields {clash} clash with reserved keys {_RESERVED}")
    hashed = []
    for member in members:
        path = _member_path(directory, member)
        if not path.is_file():
            raise FileNotFoundError(
                f"member file {path} does not exist: write it before the manifest"
            )
        hashed.append({**member, "sha256": sha256_file(path)})
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "ensemble": ensemble_name,
        "instrument": instrument,
        "members": hashed,
        **fields,
    }
    target = directory / MANIFEST_NAME
    tmp = directory / f".{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, target)
    return target


def rewrite_manifest(directory: str | os.PathLike, manifest: dict, **updates: Any) -> Path:
    """Write ``manifest`` again with some top-level fields replaced (members are re-hashed)."""
    fields = {k: v for k, v in manifest.items() if k not in _RESERVED}
    return write_manifest(
        directory,
        manifest["ensemble"],
        manifest["instrument"],
        manifest["members"],
        **{**fields, **updates},
    )


def read_manifest(directory: str | os.PathLike) -> dict:
    """The parsed manifest of a zoo folder, with its required keys checked (hashes are not)."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"no {MANIFEST_NAME} in {directory}: not a zoo entry, or its writing did not finish"
        )
    manifest = json.loads(path.read_text())
    missing = [k for k in _RESERVED if k not in manifest]
    if missing:
        raise ValueError(f"{path} lacks required keys {missing}")
    if manifest["manifest_version"] != MANIFEST_VERSION:
        raise ValueError(
            f"{path} has manifest_version {manifest['manifest_version']}, this code reads "
            f"{MANIFEST_VERSION}: rebuild the entry or upgrade survey-mass"
        )
    return manifest


def entry_version(manifest: dict) -> str:
    """``name@sha8`` of an entry (its first member's hash): what catalogs record as the model."""
    return f"{manifest['ensemble']}@{manifest['members'][0]['sha256'][:8]}"


def verify_manifest(directory: str | os.PathLike) -> dict:
    """Read the manifest and check the sha256 of every file it lists; returns it if all match.

    Those are the members and any top-level ``{"file", "sha256"}`` entry (``metrics``,
    ``band_classifier``): a metrics file edited by hand is refused like a changed model.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    extras = [v for v in manifest.values() if isinstance(v, dict) and {"file", "sha256"} <= set(v)]
    for member in [*manifest["members"], *extras]:
        path = _member_path(directory, member)
        expected = member.get("sha256")
        if not path.is_file():
            raise ModelIntegrityError(f"zoo file {path} listed in the manifest is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelIntegrityError(
                f"zoo file {path} fails its integrity check: expected sha256 {expected}, "
                f"actual {actual}; the file was changed or corrupted, rebuild the zoo entry"
            )
    return manifest
