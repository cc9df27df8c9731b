"""Masses made comparable: one mass definition on both sides, one Hubble constant, astropy units.

Every standard table says what its ``logm500`` column holds (``attrs["mass_definition"]``, e.g.
``"M500c"``) and for which h = H0/100 it is quoted (``attrs["h"]``); both come from the catalog's
definition (catalogs/*.toml; tables without them, like our own mass catalogs, are M500c for
h = 0.7, ``constants.COSMOLOGY``). Masses inferred from distances scale as 1/h, so a mass quoted for
h is ``M h / h_ref`` for h_ref. Two different mass definitions are never compared silently:
:func:`comparable_log_masses` refuses, naming both catalogs and the fix, unless a documented
conversion (:data:`CONVERSIONS`) is asked for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from astropy import units as u

from survey_mass.constants import HUBBLE_H
from survey_mass.references.definitions import CatalogError

#: The h every comparison is made at (the project's cosmology, H0 = 70).
REFERENCE_H = HUBBLE_H
DEFAULT_DEFINITION = "M500c"
#: Documented conversions between mass definitions, by the name a caller asks for.
CONVERSIONS = {
    "nfw_duffy08": "NFW profile with the Duffy et al. 2008 c(M, z) relation (colossus), "
    "M200c / M200m / Mvir -> M500c; physics.relations",
}
_COLOSSUS = {"M200c": "200c", "M200m": "200m", "Mvir": "vir"}
_LOG_MSUN = u.dex(u.Msun)


class MassDefinitionError(CatalogError):
    """Two catalogs whose masses mean different things, compared without a conversion."""


def mass_convention(frame: pd.DataFrame) -> tuple[str, float]:
    """(mass definition, h) of a standard table; M500c and h = 0.7 when it does not say."""
    return (
        str(frame.attrs.get("mass_definition") or DEFAULT_DEFINITION),
        float(frame.attrs.get("h") or REFERENCE_H),
    )


def check_log_mass_unit(frame: pd.DataFrame, name: str, column: str = "logm500") -> None:
    """Refuse a mass column whose declared unit is not log10 of a mass (astropy's dex(Msun))."""
    unit = frame.attrs.get("units", {}).get(column)
    if unit is None:
        return
    try:
        ok = u.Unit(unit).is_equivalent(_LOG_MSUN)
    except ValueError:
        ok = False
    if not ok:
        raise MassDefinitionError(
            f"{name}: column {column!r} has unit {unit!r}, not a log10 mass (dex(solMass)); "
            "fix the mass unit in its catalog definition"
        )


def log_mass_at_h(log_mass, h_from: float, h_to: float = REFERENCE_H) -> np.ndarray:
    """log10 M [Msun] quoted for ``h_from`` re-expressed for ``h_to`` (M scales as 1/h)."""
    mass = u.Dex(np.asarray(log_mass, dtype=float), _LOG_MSUN).physical
    converted = (mass * (h_from / h_to)).to(u.Msun)
    return np.log10(converted.to_value(u.Msun))


def to_m500c(log_mass, z, definition: str) -> np.ndarray:
    """log10 M500c from log10 M_definition [Msun] with :data:`CONVERSIONS` ``nfw_duffy08``."""
    log_mass = np.asarray(log_mass, dtype=float)
    if definition == DEFAULT_DEFINITION:
        return log_mass
    from survey_mass.physics.relations import _log_ratio_to_500c

    zz = np.nan_to_num(np.asarray(z, dtype=float), nan=0.2)
    ok = np.isfinite(log_mass)
    out = np.full(log_mass.shape, np.nan)
    ratio = _log_ratio_to_500c(_COLOSSUS[definition])
    out[ok] = log_mass[ok] + ratio(np.column_stack([log_mass[ok], zz[ok]]))
    return out


def comparable_log_masses(
    left: pd.DataFrame,
    right: pd.DataFrame,
    left_name: str,
    right_name: str,
    *,
    column: str = "logm500",
    conversion: str | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Both tables' log10 masses in one definition, at h = :data:`REFERENCE_H`, and what was done.

    Refuses (:class:`MassDefinitionError`) when the definitions differ and no conversion is asked
    for, or when the conversion asked for is not one of :data:`CONVERSIONS`.
    """
    (def_l, h_l), (def_r, h_r) = mass_convention(left), mass_convention(right)
    check_log_mass_unit(left, left_name, column)
    check_log_mass_unit(right, right_name, column)
    if conversion is not None and conversion not in CONVERSIONS:
        raise MassDefinitionError(
            f"unknown mass conversion {conversion!r} for {left_name} against {right_name}; "
            f"documented ones: {', '.join(CONVERSIONS)}"
        )
    target = def_l
    if def_l != def_r:
        if conversion is None:
            raise MassDefinitionError(_refusal(left_name, def_l, right_name, def_r))
        target = DEFAULT_DEFINITION
    masses = []
    for frame, definition, h in ((left, def_l, h_l), (right, def_r, h_r)):
        values = frame[column].to_numpy(dtype=float)
        if definition != target:
            z = frame["z"].to_numpy(float) if "z" in frame else np.full(len(frame), np.nan)
            values = to_m500c(values, z, definition)
        masses.append(log_mass_at_h(values, h))
    info = {
        "mass_definition": target,
        "h": REFERENCE_H,
        "h_conversion": {left_name: [h_l, REFERENCE_H], right_name: [h_r, REFERENCE_H]},
        "definitions": {left_name: def_l, right_name: def_r},
        "conversion": conversion if def_l != def_r else None,
    }
    return masses[0], masses[1], info


def _refusal(left_name: str, def_l: str, right_name: str, def_r: str) -> str:
    return (
        f"refusing to compare {left_name} ({def_l}) with {right_name} ({def_r}): different mass "
        f"definitions; compare {def_l} with {def_l} only, fix 'mass_definition' in the catalog "
        "definition if it is wrong, or ask for a documented conversion "
        f"(conversion = 'nfw_duffy08': {CONVERSIONS['nfw_duffy08']})"
    )


def require_same_definition(
    left: pd.DataFrame, right: pd.DataFrame, left_name: str, right_name: str
) -> None:
    """Refuse (:class:`MassDefinitionError`) two tables whose masses are of different definitions."""
    (def_l, _), (def_r, _) = mass_convention(left), mass_convention(right)
    if def_l != def_r:
        raise MassDefinitionError(_refusal(left_name, def_l, right_name, def_r))


def at_reference_h(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with its log10 masses (``logm500*``, not errors) re-expressed for h = 0.7."""
    _, h = mass_convention(frame)
    if h == REFERENCE_H:
        return frame
    out = frame.copy()
    for column in out.columns:
        if column.startswith("logm500") and not column.endswith(("_sigma", "_spread")):
            out[column] = log_mass_at_h(out[column].to_numpy(dtype=float), h)
    out.attrs = {**frame.attrs, "h": REFERENCE_H, "h_converted_from": h}
    return out
