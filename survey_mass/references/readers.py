"""Raw tables of a catalog, from wherever its definition says it lives.

Kept apart from the column mapping so that every access path (local file, fsspec URL, VizieR via
astroquery, the simulator's mock) hands back a plain DataFrame in the catalog's own columns.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Literal

import fsspec
import pandas as pd
from astropy.table import Table
from pydantic import ValidationError, validate_call

from survey_mass.references.definitions import CatalogDefinition, CatalogError, MockAccess

Via = Literal["auto", "local", "url", "vizier", "mock"]


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
