"""The zoo registry: where an entry is, and the resolved, verified model set of one run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from survey_mass.errors import UserError
from survey_mass.zoo.manifest import (
    MANIFEST_NAME,
    ModelIntegrityError,
    entry_version,
    verify_manifest,
)

SHIPPED_ZOO = Path(__file__).resolve().parent
#: the key of the joint combination beside the instruments
JOINT = "joint"
#: the joint entries ``models.joint = "auto"`` tries, newest first: the first fitted on the job's
#: ensembles is used
SHIPPED_JOINTS = ("joint-v2", "joint-v1")


def shipped_entries() -> list[str]:
    """Names of the entries shipped with the package."""
    return sorted(p.name for p in SHIPPED_ZOO.iterdir() if (p / MANIFEST_NAME).is_file())


def resolve_entry(name_or_path: str, extra_zoo: str | None = None) -> Path:
    """A zoo folder from a path, or a name looked up in ``extra_zoo`` then the shipped zoo."""
    candidates = [Path(name_or_path)]
    if extra_zoo:
        candidates.append(Path(extra_zoo) / name_or_path)
    candidates.append(SHIPPED_ZOO / name_or_path)
    for path in candidates:
        if (path / MANIFEST_NAME).is_file():
            return path.resolve()
    raise UserError(
        f"model ensemble {name_or_path!r} not found (looked in {[str(c) for c in candidates]}); "
        f"shipped ensembles: {shipped_entries()}; train one with `survey-mass train`"
    )


def fitted_on_mismatch(joint_manifest: dict, versions: dict[str, str]) -> list[str]:
    """Why a joint entry can't combine ``instrument -> ensemble version``; [] if it can."""
    fitted_on = joint_manifest.get("fitted_on", {})
    return [
        f"{inst}: job uses {v}, {joint_manifest['ensemble']} was fitted on "
        f"{fitted_on.get(inst, 'nothing')}"
        for inst, v in versions.items()
        if fitted_on.get(inst) != v
    ]


@dataclass(frozen=True)
class ZooEntry:
    """One resolved entry: its folder and its manifest, whose file hashes were checked."""

    kind: str  # an instrument, or JOINT
    path: str
    manifest: dict = field(repr=False, compare=False)

    @property
    def version(self) -> str:
        return entry_version(self.manifest)

    @property
    def member_sha256(self) -> list[str]:
        return [m["sha256"] for m in self.manifest["members"]]


@dataclass(frozen=True)
class ModelSet:
    """The models of one run: an ensemble per instrument and, when it applies, the joint entry."""

    ensembles: dict[str, ZooEntry]
    joint: ZooEntry | None = None

    @property
    def entries(self) -> dict[str, ZooEntry]:
        """Every entry by kind, the joint one (if any) under ``JOINT``."""
        return {**self.ensembles, **({JOINT: self.joint} if self.joint else {})}

    @property
    def combination(self) -> str:
        """How the instruments combine: the joint entry's version, or 'inverse-variance'."""
        return self.joint.version if self.joint else "inverse-variance"

    def fingerprint(self, calibrated: bool = True) -> dict[str, list[str]]:
        """kind -> member sha256s (and, when ``calibrated``, the calibration map's): what the
        outputs depend on. An uncalibrated run does not read the maps, so refitting them (as
        ``survey-mass calibrate`` does) leaves its catalog current."""
        return {
            kind: entry.member_sha256
            + (
                [entry.manifest["calibration_map"]["sha256"]]
                if calibrated and entry.manifest.get("calibration_map")
                else []
            )
            for kind, entry in self.entries.items()
        }


def _verified(kind: str, path: Path) -> ZooEntry:
    """The entry at ``path`` with every listed file hash-checked, or a UserError naming it."""
    try:
        return ZooEntry(kind, str(path), verify_manifest(path))
    except (ModelIntegrityError, ValueError, FileNotFoundError) as err:
        raise UserError(f"models.{kind}: {err}") from err


def _joint_entry(models, ensembles: dict[str, ZooEntry]) -> ZooEntry | None:
    """The joint entry for ``models.joint``, or None for the inverse-variance mean.

    A joint model is only valid for the ensembles it was fitted on: ``auto`` falls back to the
    inverse-variance mean for others, a named entry is refused.
    """
    choice = models.joint
    if choice == "inverse-variance":
        return None
    versions = {k: e.version for k, e in ensembles.items()}
    if choice == "auto":
        for name in SHIPPED_JOINTS:
            path = SHIPPED_ZOO / name
            if (path / MANIFEST_NAME).is_file():
                entry = _verified(JOINT, path)
                if not fitted_on_mismatch(entry.manifest, versions):
                    return entry
        return None
    path = resolve_entry(choice, models.zoo)
    entry = _verified(JOINT, path)
    if entry.manifest["instrument"] != JOINT:
        raise UserError(f"models.joint: {path} is a {entry.manifest['instrument']} ensemble")
    mismatch = fitted_on_mismatch(entry.manifest, versions)
    if not mismatch:
        return entry
    raise UserError(
        f"models.joint = {choice!r} cannot combine this job's ensembles ({'; '.join(mismatch)}): "
        "set models.joint = 'inverse-variance', or fit a joint entry on them "
        "(survey-mass train jobs/train_joint.toml)"
    )


def resolve_models(models, instruments: list[str]) -> ModelSet:
    """The job's ``[models]`` table resolved: each entry found and verified once, before any
    worker starts, so a tampered or half-copied model is one clear error, not one per worker."""
    ensembles = {
        inst: _verified(inst, resolve_entry(getattr(models, inst), models.zoo))
        for inst in instruments
    }
    return ModelSet(ensembles, _joint_entry(models, ensembles))


def calibrated_physics(entry: ZooEntry) -> str | None:
    """The mock physics an entry's calibration map was fitted on; None without a map."""
    fitted = entry.manifest.get("calibration_map")
    if not fitted:
        return None
    return fitted.get("universe", {}).get("physics", "v1")  # v1 universes omit the key


def refuse_other_physics(models: ModelSet, physics: str) -> None:
    """A calibration map holds only for the physics it was fitted on: weighing another mock
    physics with it would misstate masses and intervals, so such a job is refused up front."""
    for kind, entry in models.entries.items():
        fitted = calibrated_physics(entry)
        if fitted is not None and fitted != physics:
            fix = "models.joint = 'auto'" if kind == JOINT else f"the {physics} zoo entry"
            raise UserError(
                f"models.{kind} = {entry.version} is calibrated for mock physics {fitted}, but "
                f"source.mock.physics = {physics!r}: use {fix} (leave models.{kind} unset to get "
                "it), or set models.calibrated = false for the raw ensemble outputs"
            )
