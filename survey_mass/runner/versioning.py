"""Which catalog version a run writes: the current one (complete, or to repair), an unfinished
one of the same identity (resume), or a new one (first run, or ``--update`` after a change).

A run whose inputs, spec or models changed never reports "complete": without update mode it
refuses, saying what changed and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from survey_mass.catalog.paths import CatalogLayout
from survey_mass.catalog.versions import (
    Version,
    begin_version,
    list_versions,
    refuse_unversioned,
    version_layout,
)
from survey_mass.errors import UserError


class InputsChangedError(UserError):
    """The job's inputs, spec or models differ from its current catalog version's."""


@dataclass
class VersionChoice:
    layout: CatalogLayout  # the version this run writes (or found complete)
    record: dict  # its _identity.json
    fresh: bool  # begun by this run

    @property
    def name(self) -> str:
        return self.layout.root.rsplit("/", 1)[-1]

    @property
    def parent(self) -> CatalogLayout | None:
        parent = self.record.get("parent")
        return version_layout(self.layout.output, parent) if parent else None


def current(output: str) -> tuple[list[Version], Version | None]:
    refuse_unversioned(output)
    versions = list_versions(output)
    return versions, next((v for v in versions if v.current), None)


def describe_changes(old: dict, new: dict) -> list[str]:
    """What differs between two identity records, in a person's words."""
    changes = []
    for kind in sorted(set(old.get("models", {})) | set(new.get("models", {}))):
        if old.get("models", {}).get(kind) != new["models"].get(kind):
            changes.append(f"models.{kind} changed (other model bytes)")
    if old.get("columns") != new.get("columns"):
        added = sorted(set(new.get("columns", [])) - set(old.get("columns") or []))
        changes.append(
            "the catalog's columns changed (written by another survey-mass"
            + (f"; new: {', '.join(added)})" if added else ")")
        )
    spec_old, spec_new = old.get("spec", {}), new["spec"]
    changes += [
        f"{key} changed"
        for key in sorted(set(spec_old) | set(spec_new))
        if spec_old.get(key) != spec_new.get(key)
    ]
    inputs_old, inputs_new = old.get("inputs", {}), new["inputs"]
    if inputs_old.get("targets") != inputs_new["targets"]:
        changes.append("targets (footprint, catalog or columns) changed")
    cat_old, cat_new = inputs_old.get("catalog") or {}, inputs_new.get("catalog") or {}
    if cat_new and cat_old.get("digest") != cat_new.get("digest"):
        changes.append(
            f"the rows of targets.catalog changed ({cat_old.get('rows', '?')} -> "
            f"{cat_new['rows']} rows)"
        )
    return changes or ["the version's identity differs (written by another survey-mass)"]


def choose_version(
    output: str, record: dict, update: bool, run_id: str, versions, latest: Version | None
) -> VersionChoice:
    """The version for ``record`` (see the module doc); refuses a changed job without update."""
    if latest is not None and latest.identity.get("identity") == record["identity"]:
        return VersionChoice(latest.layout, latest.identity, fresh=False)
    pending = [
        v for v in versions if not v.current and v.identity.get("identity") == record["identity"]
    ]
    if pending:
        return VersionChoice(pending[-1].layout, pending[-1].identity, fresh=False)
    if latest is not None and not update:
        changes = "; ".join(describe_changes(latest.identity, record))
        raise InputsChangedError(
            f"{output}: the job changed since catalog version {latest.name} ({changes}). "
            f'Run it with --update (or mode = "update") to write version v{_next(versions)} '
            "from it, weighing only new or changed targets; or choose another output.url"
        )
    record = {**record, "parent": latest.name if latest is not None else None}
    return VersionChoice(begin_version(output, record, run_id), record, fresh=True)


def _next(versions: list[Version]) -> int:
    return max((v.number for v in versions), default=0) + 1
