"""A catalog made of other catalogs (``[combine]`` in its definition): one row per cluster.

Rule: the sources are taken in the order listed (highest priority first); a row of a later source
within ``radius_arcmin`` of a row already kept is the same cluster and is dropped, its table and id
recorded in the kept row's ``duplicates`` column. Rows of one source are never merged with each
other. Every row keeps ``source`` (the catalog it came from). All sources must share one mass
definition and h (references/masses.py), so the combined masses mean one thing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord

from survey_mass.references.definitions import CatalogDefinition
from survey_mass.references.masses import MassDefinitionError, mass_convention
from survey_mass.references.standard import STANDARD_UNITS

#: Columns a combined catalog keeps from each source (when the source has them).
KEPT = (
    "id",
    "ra",
    "dec",
    "z",
    "logm500",
    "logm500_sigma",
    "m500_1e14",
    "err_lo_1e14",
    "err_hi_1e14",
)


def combine_tables(tables: dict[str, pd.DataFrame], radius: u.Quantity) -> pd.DataFrame:
    """Tables (priority order) deduplicated on the sky: see the module's rule."""
    kept: pd.DataFrame | None = None
    for name, table in tables.items():
        rows = table[[c for c in KEPT if c in table]].copy()
        rows["source"] = name
        rows["duplicates"] = ""
        if kept is None or not len(kept) or not len(rows):
            kept = rows if kept is None else pd.concat([kept, rows], ignore_index=True)
            continue
        here = SkyCoord(rows["ra"].to_numpy(float) * u.deg, rows["dec"].to_numpy(float) * u.deg)
        there = SkyCoord(kept["ra"].to_numpy(float) * u.deg, kept["dec"].to_numpy(float) * u.deg)
        nearest, sep, _ = here.match_to_catalog_sky(there)
        same = sep <= radius
        dup = kept["duplicates"].to_numpy(dtype=object)
        for i, j in zip(np.flatnonzero(same), nearest[same], strict=True):
            entry = f"{name}:{rows['id'].iloc[i]}"
            dup[j] = entry if not dup[j] else f"{dup[j]}; {entry}"
        kept["duplicates"] = dup
        kept = pd.concat([kept, rows[~same]], ignore_index=True)
    return kept.reset_index(drop=True)


def read_combined(
    definition: CatalogDefinition, read: Callable[[str], pd.DataFrame]
) -> pd.DataFrame:
    """The combined catalog of ``definition`` from its sources, each read with ``read(name)``."""
    spec = definition.combine
    tables = {name: read(name) for name in spec.sources}
    own = (definition.mass_definition, definition.h)
    for name, table in tables.items():
        if mass_convention(table) != own:
            raise MassDefinitionError(
                f"cannot combine {name} ({mass_convention(table)}) into {definition.name} {own}: "
                "its masses are of another definition or h; convert them before combining"
            )
    table = combine_tables(tables, spec.radius_arcmin * u.arcmin)
    table.attrs.update(
        catalog=definition.name,
        title=definition.title,
        citation=definition.citation,
        notes=definition.notes,
        mass_relation="the sources' own masses (see each source's definition)",
        mass_definition=definition.mass_definition,
        h=definition.h,
        caveats=list(definition.caveats),
        combine_rule=(
            f"priority {' > '.join(spec.sources)}; one row per cluster within "
            f"{spec.radius_arcmin:g} arcmin; {spec.rule}"
        ),
        sources={name: tables[name].attrs.get("citation", "") for name in spec.sources},
        units={c: STANDARD_UNITS[c] for c in table.columns if c in STANDARD_UNITS},
    )
    return table
