"""Catalog versions of one job output: ``OUT/v1``, ``OUT/v2``, ... and the pointer to the current.

A run whose inputs, spec or models differ from the current version's writes a new version beside
it (``survey-mass run --update``); shards it did not touch are carried over byte for byte. The
switch is one atomic write of ``OUT/collection.properties`` once the new version is complete, so a
reader sees the old version or the new one, never a mix. Old versions stay until pruned.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from survey_mass.catalog.paths import MARGIN, MASSES, CatalogLayout, current_version
from survey_mass.catalog.writer import write_bytes
from survey_mass.errors import UserError

_NAME = re.compile(r"^v(\d+)$")


@dataclass(frozen=True)
class Version:
    """One version folder of an output: complete (``_metadata`` written) or in progress."""

    name: str
    layout: CatalogLayout
    complete: bool
    current: bool
    identity: dict  # its _identity.json; {} when unreadable (then it matches nothing)

    @property
    def number(self) -> int:
        return int(self.name[1:])

    @property
    def parent(self) -> str | None:
        return self.identity.get("parent")


def _root(output: str) -> tuple:
    layout = CatalogLayout(output, output=output)
    return layout.fs, layout.root


def version_layout(output: str, name: str) -> CatalogLayout:
    """The layout of version ``name`` of ``output`` (for writing it; no pointer is followed)."""
    return CatalogLayout(f"{output.rstrip('/')}/{name}", output=output)


def read_identity(layout: CatalogLayout) -> dict:
    try:
        return json.loads(layout.fs.cat_file(layout.identity))
    except (FileNotFoundError, ValueError):
        return {}


def list_versions(output: str) -> list[Version]:
    """Every version folder of ``output``, oldest first."""
    fs, root = _root(output)
    current = current_version(output)
    names = []
    if fs.isdir(root):
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)]
    versions = []
    for name in sorted((n for n in names if _NAME.match(n)), key=lambda n: int(n[1:])):
        layout = version_layout(output, name)
        versions.append(
            Version(
                name,
                layout,
                fs.exists(layout.metadata),
                name == current,
                read_identity(layout),
            )
        )
    return versions


def is_unversioned(output: str) -> bool:
    """An output written before catalog versions: the catalog sits at its root."""
    fs, root = _root(output)
    return fs.isdir(f"{root}/{MASSES}")


def refuse_unversioned(output: str) -> None:
    if is_unversioned(output):
        raise UserError(
            f"{output} holds a catalog written before catalog versions (its masses/ sits at the "
            "top); write to a new output.url, or move its contents into OUT/v1/ to keep it"
        )


def begin_version(output: str, identity: dict, run_id: str) -> CatalogLayout:
    """A new version folder, numbered after every existing one, with its identity written first."""
    existing = list_versions(output)
    name = f"v{max((v.number for v in existing), default=0) + 1}"
    layout = version_layout(output, name)
    write_bytes(layout, layout.identity, json.dumps(identity, indent=1).encode(), run_id)
    return layout


def commit_version(layout: CatalogLayout, run_id: str) -> None:
    """Point ``OUT/collection.properties`` at the finished version ``layout``: the switch."""
    from hats.catalog.dataset.collection_properties import CollectionProperties

    name = layout.root.rsplit("/", 1)[-1]
    has_margin = layout.fs.isdir(layout.margin_dir)
    collection = CollectionProperties(
        name=json.loads(layout.fs.cat_file(layout.provenance))["job"]["name"],
        hats_primary_table_url=f"{name}/{MASSES}",
        all_margins=[f"{name}/{MARGIN}"] if has_margin else None,
        default_margin=f"{name}/{MARGIN}" if has_margin else None,
    )
    with tempfile.TemporaryDirectory() as tmp:
        collection.to_properties_file(Path(tmp))
        data = (Path(tmp) / "collection.properties").read_bytes()
    out = CatalogLayout(layout.output, output=layout.output)
    write_bytes(out, f"{out.root}/collection.properties", data, run_id)


def prune(output: str, keep: int) -> list[str]:
    """Remove all but the current version and the ``keep - 1`` newest other complete ones, and
    every unfinished version but the newest (a run may resume it); returns the names removed."""
    if keep < 1:
        raise UserError("--keep must be at least 1 (the current version is always kept)")
    versions = list_versions(output)
    complete = [v for v in versions if v.complete and not v.current]
    kept = {v.name for v in versions if v.current}
    kept |= {v.name for v in complete[max(len(complete) - (keep - 1), 0) :]}
    unfinished = [v for v in versions if not v.complete]
    if unfinished:
        kept.add(unfinished[-1].name)
    removed = [v.name for v in versions if v.name not in kept]
    fs = CatalogLayout(output, output=output).fs
    for name in removed:
        fs.rm(version_layout(output, name).root, recursive=True)
    return removed
