"""External cluster catalogs, read the way users get them, as one standard table.

A catalog is defined by a small TOML file in ``catalogs/`` (one per catalog): where to get it (a
local file, a URL read through fsspec, a VizieR catalogue through astroquery, or a mock from the
simulator), which of its columns are our standard columns, and which published relation turns its
mass proxy into log10 M500c. The network is used only when the caller allows it.

Modules: :mod:`.definitions` (the TOML models and where they are found), :mod:`.readers` (the raw
table from each access path), :mod:`.standard` (the standard columns and masses) and
:mod:`.catalogs` (:func:`read_catalog`, the entry point).
"""

from survey_mass.references.catalogs import name_key, read_catalog
from survey_mass.references.definitions import (
    CatalogDefinition,
    CatalogError,
    available_catalogs,
    catalog_dirs,
    load_definition,
)
from survey_mass.references.standard import to_qtable

__all__ = [
    "CatalogDefinition",
    "CatalogError",
    "available_catalogs",
    "catalog_dirs",
    "load_definition",
    "name_key",
    "read_catalog",
    "to_qtable",
]
