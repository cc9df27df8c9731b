"""The entry point: one external catalog, read the way users get it, as one standard table.

Ties :mod:`.definitions`, :mod:`.readers` and :mod:`.standard` together, and joins positions by
name for catalogs that publish none (``positions_from``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from survey_mass.references.definitions import CatalogDefinition, load_definition
from survey_mass.references.readers import Via, _fetch
from survey_mass.references.standard import STANDARD_UNITS, _standardize

log = logging.getLogger(__name__)


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
    exists, else the mock, else (only with ``network=True``) the URL, then VizieR. A definition
    with ``[combine]`` is built from its sources (references/combined.py).
    """
    definition = catalog if isinstance(catalog, CatalogDefinition) else load_definition(catalog)
    paths = dict(paths or {})
    if definition.combine is not None:
        from survey_mass.references.combined import read_combined

        return read_combined(
            definition, lambda name: read_catalog(name, via=via, paths=paths, network=network)
        )
    access, raw = _fetch(definition, via, paths, network, dict(mock_kwargs or {}))
    table = _standardize(raw, access, definition)
    if definition.positions_from:
        table = _join_positions(table, definition, via, paths, network)
    return table


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
