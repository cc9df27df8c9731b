"""External cluster catalogs, read the way users get them, as one standard table.

A catalog is defined by a small TOML file in ``catalogs/`` (one per catalog): where to get it (a
local file, a URL read through fsspec, a VizieR catalogue through astroquery, or a mock from the
simulator), which of its columns are our standard columns, and which published relation turns its
mass proxy into log10 M500c. The network is used only when the caller allows it.

Standard columns (units in ``DataFrame.attrs["units"]``; :func:`to_qtable` attaches astropy units):
``id`` (str), ``ra``, ``dec`` [deg, ICRS], ``z``, ``logm500`` [log10 Msun], ``logm500_sigma``
[dex], ``richness`` where the catalog has one, plus any ``extra`` columns the definition names.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import fsspec
import numpy as np
import pandas as pd
import tomllib
from astropy import units as u
from astropy.table import QTable, Table
from pydantic import BaseModel, ConfigDict, Field, ValidationError, validate_call

from survey_mass.crossmatch.relations import logm500_from_r500_deg, logm500_from_richness
from survey_mass.errors import UserError

log = logging.getLogger(__name__)

#: Units of the standard columns, as astropy unit strings ("" = dimensionless).
STANDARD_UNITS: dict[str, str] = {
    "id": "",
    "ra": "deg",
    "dec": "deg",
    "z": "",
    "logm500": "dex(solMass)",
    "logm500_sigma": "dex",
    "richness": "",
}
Via = Literal["auto", "local", "url", "vizier", "mock"]


class CatalogError(UserError):
    """An external catalog that cannot be read as asked; the message says how to fix it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnMass(_Strict):
    """The catalog gives the mass itself (e.g. MCXC M500, PSZ2 MSZ on VizieR, DeepPlanck)."""

    method: Literal["column"]
    column: str
    unit: Literal["log10 Msun", "Msun", "1e14 Msun"]
    sigma_column: str | None = Field(None, description="symmetric 1-sigma error, same unit")
    sigma_plus: str | None = Field(None, description="upper 1-sigma error, same unit")
    sigma_minus: str | None = Field(None, description="lower 1-sigma error, same unit")
    citation: str = ""


class R500Mass(_Strict):
    """clusterdb's angular r500 [deg], inverted to the M500 it was made from."""

    method: Literal["r500_deg"]
    column: str
    scatter_dex: float | None = Field(None, description="quoted as logm500_sigma when given")
    citation: str = ""


class RichnessMass(_Strict):
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


class Columns(_Strict):
    """Names of the catalog's own columns for our standard ones."""

    id: str
    ra: str | None = None
    dec: str | None = None
    z: str | None = None
    richness: str | None = None
    extra: dict[str, str] = Field(default_factory=dict, description="our name -> their column")


class _Access(_Strict):
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


class CatalogDefinition(_Strict):
    name: str
    title: str
    citation: str
    notes: str = ""
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


def read_catalog(
    catalog: str | Path | CatalogDefinition,
    *,
    via: Via = "auto",
    paths: Mapping[str, str | Path] | None = None,
    network: bool = False,
    mock_kwargs: Mapping | None = None,
) -> pd.DataFrame:
    """Read one external catalog into the standard columns.

    ``paths`` maps catalog names to local files that override the definitions' ``local`` (also
    used for the catalog named by ``positions_from``). ``via="auto"`` takes the local file when it
    exists, else the mock, else (only with ``network=True``) the URL, then VizieR.
    """
    definition = catalog if isinstance(catalog, CatalogDefinition) else load_definition(catalog)
    paths = dict(paths or {})
    access, raw = _fetch(definition, via, paths, network, dict(mock_kwargs or {}))
    table = _standardize(raw, access, definition)
    if definition.positions_from:
        table = _join_positions(table, definition, via, paths, network)
    return table


def _fetch(definition: CatalogDefinition, via: Via, paths: dict, network: bool, mock_kwargs: dict):
    name = definition.name
    local = _local_path(definition, paths)
    if via == "auto":
        if local is not None and local.exists():
            via = "local"
        elif definition.mock is not None:
            via = "mock"
        elif network and definition.file is not None and definition.file.url:
            via = "url"
        elif network and definition.vizier is not None:
            via = "vizier"
        else:
            raise CatalogError(_unavailable_message(definition, local))
    if via == "local":
        if definition.file is None or local is None:
            raise CatalogError(
                f"catalog {name!r} defines no local file; give one with paths={{'{name}': PATH}}"
            )
        if not local.exists():
            raise CatalogError(_unavailable_message(definition, local))
        return definition.file, _read_file(str(local), definition.file.format)
    if via == "mock":
        if definition.mock is None:
            raise CatalogError(
                f"catalog {name!r} has no mock version; read it via 'local' or 'url'"
            )
        return definition.mock, _call_mock(
            definition.mock, {**definition.mock.kwargs, **mock_kwargs}, name
        )
    if not network:
        raise CatalogError(
            f"reading catalog {name!r} via {via} needs the network; allow it (--network)"
        )
    if via == "url":
        if definition.file is None or not definition.file.url:
            raise CatalogError(f"catalog {name!r} defines no URL; try via='vizier' or a local file")
        return definition.file, _read_file(definition.file.url, definition.file.format)
    if definition.vizier is None:
        raise CatalogError(f"catalog {name!r} defines no VizieR catalogue; try via='url'")
    return definition.vizier, _read_vizier(definition.vizier.catalogue)


def _local_path(definition: CatalogDefinition, paths: dict) -> Path | None:
    given = paths.get(definition.name) or (definition.file.local if definition.file else None)
    if given is None:
        return None
    path = Path(given).expanduser()
    return path if path.is_absolute() or definition.name in paths else definition.base_dir / path


def _unavailable_message(definition: CatalogDefinition, local: Path | None) -> str:
    where = [f"no local file at {local}" if local else "no local file defined"]
    remote = []
    if definition.file is not None and definition.file.url:
        remote.append(definition.file.url)
    if definition.vizier is not None:
        remote.append(f"VizieR {definition.vizier.catalogue}")
    fix = f"give a local copy (paths={{'{definition.name}': PATH}}, CLI --local {definition.name}=PATH)"
    if remote:
        fix += f" or allow the network (--network) to fetch {' or '.join(remote)}"
    return f"catalog {definition.name!r}: {'; '.join(where)}; {fix}"


def _read_file(location: str, fmt: str) -> pd.DataFrame:
    try:
        if fmt == "parquet":
            return pd.read_parquet(location)
        with fsspec.open(location, "rb", compression="infer") as stream:
            if fmt == "csv":
                return pd.read_csv(stream)
            table = Table.read(stream, format=fmt)
    except (OSError, ValueError) as err:
        raise CatalogError(f"cannot read {location} as {fmt}: {err}") from err
    return _table_to_pandas(table)


def _read_vizier(catalogue: str) -> pd.DataFrame:
    from astroquery.vizier import Vizier

    # _RAJ2000/_DEJ2000 are VizieR's computed ICRS positions in decimal degrees, for every table.
    tables = Vizier(columns=["**", "_RAJ2000", "_DEJ2000"], row_limit=-1).get_catalogs(catalogue)
    if len(tables) == 0:
        raise CatalogError(f"VizieR returned no table for {catalogue!r}; check the catalogue ID")
    return _table_to_pandas(tables[0])


def _table_to_pandas(table: Table) -> pd.DataFrame:
    scalar = [name for name in table.colnames if table[name].ndim <= 1]
    return table[scalar].to_pandas()


def _call_mock(access: MockAccess, kwargs: dict, name: str) -> pd.DataFrame:
    module_name, _, func_name = access.callable.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except ModuleNotFoundError as err:
        raise CatalogError(
            f"mock catalog {name!r} needs {access.callable}, but module {err.name!r} is not "
            "available in this installation (the simulator's external catalogs are not built)"
        ) from err
    except AttributeError as err:
        raise CatalogError(
            f"mock catalog {name!r}: {module_name} has no function {func_name!r}"
        ) from err
    try:  # arguments arrive as TOML/JSON dicts: validated and converted to the function's types
        frame = validate_call(func)(**kwargs)
    except ValidationError as err:
        raise CatalogError(
            f"mock catalog {name!r}: {access.callable} cannot take {sorted(kwargs)}: {err}; pass its "
            "arguments as mock kwargs (the report takes spec and footprint from a mock run's provenance)"
        ) from err
    if not isinstance(frame, pd.DataFrame):
        raise CatalogError(
            f"mock catalog {name!r}: {access.callable} returned {type(frame).__name__}, not a DataFrame"
        )
    return frame


def _standardize(raw: pd.DataFrame, access: _Access, definition: CatalogDefinition) -> pd.DataFrame:
    cols = access.columns
    wanted = [
        c for c in (cols.id, cols.ra, cols.dec, cols.z, cols.richness, *cols.extra.values()) if c
    ]
    if access.mass is not None:
        mass = access.mass
        wanted += [mass.column] + [
            c
            for c in (
                getattr(mass, "sigma_column", None),
                getattr(mass, "sigma_plus", None),
                getattr(mass, "sigma_minus", None),
            )
            if c
        ]
    missing = sorted(set(wanted) - set(raw.columns))
    if missing:
        raise CatalogError(
            f"catalog {definition.name!r} has no column(s) {missing}; it has {list(raw.columns)[:40]}; "
            f"fix the column map in {definition.definition_path or 'its definition'}"
        )
    ids = raw[cols.id].astype(str).str.strip()
    if access.id_suffix:
        ids = ids.str.removesuffix(access.id_suffix)
    out = pd.DataFrame({"id": ids.to_numpy()})
    for ours in ("ra", "dec", "z", "richness"):
        theirs = getattr(cols, ours)
        if theirs:
            out[ours] = pd.to_numeric(raw[theirs], errors="coerce").to_numpy(dtype=float)
    if "z" in out:
        out.loc[~(out["z"] > 0), "z"] = np.nan  # catalogs write unknown redshifts as 0 or -1
    z = out["z"].to_numpy() if "z" in out else np.full(len(out), np.nan)
    if access.mass is not None:
        out["logm500"], out["logm500_sigma"] = _mass(raw, access.mass, z)
    for ours, theirs in cols.extra.items():
        out[ours] = raw[theirs].to_numpy()
    out.attrs.update(
        catalog=definition.name,
        title=definition.title,
        citation=definition.citation,
        notes=definition.notes,
        mass_relation=_mass_description(access.mass),
        units={c: STANDARD_UNITS[c] for c in out.columns if c in STANDARD_UNITS},
    )
    return out


def _numeric(raw: pd.DataFrame, column: str | None) -> np.ndarray | None:
    return (
        None
        if column is None
        else pd.to_numeric(raw[column], errors="coerce").to_numpy(dtype=float)
    )


def _mass(raw: pd.DataFrame, mass: ColumnMass | R500Mass | RichnessMass, z: np.ndarray):
    value = _numeric(raw, mass.column)
    n = len(raw)
    if isinstance(mass, R500Mass):
        sigma = np.full(n, np.nan if mass.scatter_dex is None else mass.scatter_dex)
        return logm500_from_r500_deg(value, z), sigma
    if isinstance(mass, RichnessMass):
        log_m = logm500_from_richness(
            value,
            z,
            log10_m0=mass.log10_m0,
            pivot=mass.pivot,
            slope=mass.slope,
            m0_per_h=mass.m0_per_h,
            mass_definition=mass.mass_definition,
            z_pivot=mass.z_pivot,
            z_slope=mass.z_slope,
        )
        scatter = np.nan if mass.scatter_ln is None else mass.scatter_ln / np.log(10)
        return log_m, np.where(np.isfinite(log_m), scatter, np.nan)
    err = _numeric(raw, mass.sigma_column)
    if err is None and mass.sigma_plus and mass.sigma_minus:
        err = 0.5 * (_numeric(raw, mass.sigma_plus) + _numeric(raw, mass.sigma_minus))
    if mass.unit == "log10 Msun":
        log_m = np.where(value > 0, value, np.nan)
        sigma = err if err is not None else np.full(n, np.nan)
    else:
        scale = 1e14 if mass.unit == "1e14 Msun" else 1.0
        positive = value > 0
        log_m = np.where(positive, np.log10(np.where(positive, value, 1.0) * scale), np.nan)
        sigma = err / (value * np.log(10)) if err is not None else np.full(n, np.nan)
    return log_m, np.where(np.isfinite(log_m), sigma, np.nan)


def _mass_description(mass) -> str:
    if mass is None:
        return "no mass in this catalog"
    if isinstance(mass, ColumnMass):
        return f"{mass.column} [{mass.unit}] as published" + (
            f" ({mass.citation})" if mass.citation else ""
        )
    if isinstance(mass, R500Mass):
        return f"M500 recovered from {mass.column} [deg] ({mass.citation or 'clusterdb inversion'})"
    return (
        f"M{mass.mass_definition} = 10^{mass.log10_m0} {'Msun/h' if mass.m0_per_h else 'Msun'} "
        f"({mass.column}/{mass.pivot:g})^{mass.slope:g}"
        + (
            f" ((1+z)/{1 + mass.z_pivot:g})^{mass.z_slope:g}"
            if mass.z_pivot is not None and mass.z_slope
            else ""
        )
        + (" -> M500c (NFW, Duffy+08 c(M,z))" if mass.mass_definition != "500c" else "")
        + f"; {mass.citation}"
    )


def name_key(ids: pd.Series) -> pd.Series:
    """Ids compared by name: case and whitespace ignored ('PSZ2 G000.04+45.13' == 'PSZ2G000.04+45.13')."""
    return ids.astype(str).str.replace(r"\s+", "", regex=True).str.upper()


def _join_positions(
    table: pd.DataFrame, definition: CatalogDefinition, via: Via, paths: dict, network: bool
) -> pd.DataFrame:
    source = read_catalog(
        definition.positions_from,
        via="mock" if via == "mock" else "auto",
        paths=paths,
        network=network,
    )
    lookup = source.assign(_key=name_key(source["id"])).drop_duplicates("_key").set_index("_key")
    keys = name_key(table["id"])
    found = keys.isin(lookup.index).to_numpy()
    attrs = dict(table.attrs)
    for col in ("ra", "dec"):
        table[col] = lookup[col].reindex(keys).to_numpy()
    if "z" not in table:
        table["z"] = lookup["z"].reindex(keys).to_numpy()
    if not found.all():
        log.warning(
            "%s: %d of %d rows have no position in %s and are dropped",
            definition.name,
            (~found).sum(),
            len(table),
            definition.positions_from,
        )
    table = table[found].reset_index(drop=True)
    attrs["units"] = {c: STANDARD_UNITS[c] for c in table.columns if c in STANDARD_UNITS}
    attrs["positions_from"] = definition.positions_from
    table.attrs = attrs
    return table


def to_qtable(frame: pd.DataFrame) -> QTable:
    """The standard table with astropy units attached, for users who work in astropy."""
    table = QTable.from_pandas(frame)
    for name, unit in frame.attrs.get("units", {}).items():
        if unit and name in table.colnames:
            table[name] = np.asarray(table[name], dtype=float) * u.Unit(unit)
    table.meta.update({k: v for k, v in frame.attrs.items() if k != "units"})
    return table
