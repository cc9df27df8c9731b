"""What a ``catalogs/*.toml`` entry may say, and where those entries are found.

The models are strict so that a misspelt key in a definition fails loudly at load time instead of
silently reading the wrong column.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import tomllib
from pydantic import Field, ValidationError

from survey_mass.errors import UserError
from survey_mass.spec.base import FrozenStrictModel


class CatalogError(UserError):
    """An external catalog that cannot be read as asked; the message says how to fix it."""


class ColumnMass(FrozenStrictModel):
    """The catalog gives the mass itself (e.g. MCXC M500, PSZ2 MSZ on VizieR, DeepPlanck)."""

    method: Literal["column"]
    column: str
    unit: Literal["log10 Msun", "Msun", "1e14 Msun"]
    sigma_column: str | None = Field(None, description="symmetric 1-sigma error, same unit")
    sigma_plus: str | None = Field(None, description="upper 1-sigma error, same unit")
    sigma_minus: str | None = Field(None, description="lower 1-sigma error, same unit")
    citation: str = ""


class R500Mass(FrozenStrictModel):
    """clusterdb's angular r500 [deg], inverted to the M500 it was made from."""

    method: Literal["r500_deg"]
    column: str
    scatter_dex: float | None = Field(None, description="quoted as logm500_sigma when given")
    citation: str = ""


class RichnessMass(FrozenStrictModel):
    """A richness-mass power law (see relations.logm500_from_richness)."""

    method: Literal["richness"]
    column: str
    log10_m0: float
    pivot: float
    slope: float
    m0_per_h: bool
    mass_definition: Literal["500c", "200c", "200m"] = "500c"
    z_pivot: float | None = None
    z_slope: float = 0.0
    scatter_ln: float | None = Field(None, description="ln-scatter of M at fixed richness")
    citation: str


MassSpec = Annotated[ColumnMass | R500Mass | RichnessMass, Field(discriminator="method")]

#: Mass definitions a catalog's standard ``logm500`` column may hold (overdensity and reference
#: density: c = critical, m = mean matter). Only like is compared with like (references/masses.py).
MassDefinition = Literal["M500c", "M200c", "M200m", "Mvir"]


class Columns(FrozenStrictModel):
    """Names of the catalog's own columns for our standard ones."""

    id: str
    ra: str | None = None
    dec: str | None = None
    z: str | None = None
    richness: str | None = None
    extra: dict[str, str] = Field(default_factory=dict, description="our name -> their column")


class _Access(FrozenStrictModel):
    columns: Columns
    mass: MassSpec | None = None
    id_suffix: str | None = Field(None, description="suffix stripped from ids, e.g. '.fits'")


class FileAccess(_Access):
    format: Literal["csv", "parquet", "fits", "votable"] = "csv"
    local: str | None = Field(
        None, description="path; relative paths start at the folder holding catalogs/"
    )
    url: str | None = Field(
        None, description="any fsspec URL, fetched only when the network is allowed"
    )


class VizierAccess(_Access):
    catalogue: str = Field(description="VizieR table, e.g. J/A+A/594/A27/psz2")


class MockAccess(_Access):
    callable: str = Field(description="module:function returning a DataFrame")
    kwargs: dict = Field(default_factory=dict)


class CombineAccess(FrozenStrictModel):
    """A catalog built from other catalogs: one row per cluster, duplicates resolved by priority."""

    sources: list[str] = Field(min_length=2, description="catalog names, highest priority first")
    radius_arcmin: float = Field(1.5, gt=0, description="rows closer than this are one cluster")
    rule: str = Field(description="why the priority is what it is (shown in reports)")


class CatalogDefinition(FrozenStrictModel):
    name: str
    title: str
    citation: str
    notes: str = ""
    mass_definition: MassDefinition = Field(
        "M500c", description="what the standard logm500 column holds, after the mass relation"
    )
    h: float = Field(
        0.7, gt=0.2, lt=1.5, description="H0/100 the masses are quoted for (M scales as 1/h)"
    )
    caveats: list[str] = Field(
        default_factory=list, description="what a comparison must keep in mind"
    )
    combine: CombineAccess | None = None
    file: FileAccess | None = None
    vizier: VizierAccess | None = None
    mock: MockAccess | None = None
    positions_from: str | None = Field(
        None, description="catalog whose positions are joined by name (for catalogs without RA/Dec)"
    )
    definition_path: Path | None = Field(None, exclude=True)

    @property
    def base_dir(self) -> Path:
        """Folder that relative ``local`` paths start from: the parent of ``catalogs/``."""
        return self.definition_path.parent.parent if self.definition_path else Path.cwd()


def catalog_dirs() -> list[Path]:
    """Where definitions are looked up: $SURVEY_MASS_CATALOGS, ./catalogs, then the repository's."""
    dirs = [Path(p) for p in os.environ.get("SURVEY_MASS_CATALOGS", "").split(os.pathsep) if p]
    dirs += [Path.cwd() / "catalogs", Path(__file__).resolve().parents[2] / "catalogs"]
    seen, unique = set(), []
    for d in dirs:
        if d.is_dir() and d.resolve() not in seen:
            seen.add(d.resolve())
            unique.append(d)
    return unique


def available_catalogs() -> dict[str, Path]:
    """Catalog name -> its definition file (first folder of :func:`catalog_dirs` wins)."""
    found: dict[str, Path] = {}
    for d in catalog_dirs():
        for path in sorted(d.glob("*.toml")):
            found.setdefault(path.stem, path)
    return found


def load_definition(name_or_path: str | Path) -> CatalogDefinition:
    """A catalog definition by name (``psz2``) or by the path of its TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        known = available_catalogs()
        if str(name_or_path) not in known:
            raise CatalogError(
                f"unknown catalog {str(name_or_path)!r}; known: {', '.join(sorted(known)) or 'none'} "
                f"(definitions are read from {', '.join(map(str, catalog_dirs())) or './catalogs'})"
            )
        path = known[str(name_or_path)]
    try:
        data = tomllib.loads(path.read_text())
        return CatalogDefinition(**data, definition_path=path)
    except FileNotFoundError as err:
        raise CatalogError(f"catalog definition {path} does not exist") from err
    except (tomllib.TOMLDecodeError, ValidationError) as err:
        raise CatalogError(f"catalog definition {path} is invalid: {err}") from err
