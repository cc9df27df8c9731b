"""A raw catalog table mapped onto the standard columns, masses converted to log10 M500c.

Standard columns (units in ``DataFrame.attrs["units"]``; :func:`to_qtable` attaches astropy units):
``id`` (str), ``ra``, ``dec`` [deg, ICRS], ``z``, ``logm500`` [log10 Msun], ``logm500_sigma``
[dex], ``richness`` where the catalog has one, plus any ``extra`` columns the definition names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.table import QTable

from survey_mass.physics.relations import logm500_from_r500_deg, logm500_from_richness
from survey_mass.references.definitions import (
    CatalogDefinition,
    CatalogError,
    ColumnMass,
    R500Mass,
    RichnessMass,
    _Access,
)

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
        mass_definition=definition.mass_definition,
        h=definition.h,
        caveats=list(definition.caveats),
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


def to_qtable(frame: pd.DataFrame) -> QTable:
    """The standard table with astropy units attached, for users who work in astropy."""
    table = QTable.from_pandas(frame)
    for name, unit in frame.attrs.get("units", {}).items():
        if unit and name in table.colnames:
            table[name] = np.asarray(table[name], dtype=float) * u.Unit(unit)
    table.meta.update({k: v for k, v in frame.attrs.items() if k != "units"})
    return table
