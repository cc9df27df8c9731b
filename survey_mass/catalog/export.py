"""Export a query's rows to FITS, VOTable, ECSV, CSV or Parquet, chosen by the file's suffix.

Every column keeps the catalog schema's unit, UCD and description, and the file records the job's
provenance. The units are astropy's generic strings (``deg``, ``dex(solMass)``, ``dex``: see
catalog/schema.py), as ECSV and Parquet store them. CSV is plain values. FITS and VOTable have no
dex in the unit syntax astropy reads them with, so:

- FITS: ``TUNITn`` cannot hold ``dex(solMass)``: astropy fails to read it back, since the FITS
  unit format has no dex. Those columns get no ``TUNITn``. Astropy writes their units in the
  header's serialized-columns block, which ``Table.read`` restores exactly. For TOPCAT, the file
  is FITS-plus: its primary HDU holds the table's VOTable metadata (units, UCDs, descriptions),
  which STIL uses in place of the BINTABLE's keywords.
- VOTable: astropy reads ``unit`` as VOUnit from version 1.4 on, which has no dex, giving an
  unrecognized unit without a warning. It reads units as CDS before 1.4, and CDS writes logs in
  brackets: so version 1.3, with ``[solMass]`` and ``[-]`` (dex of a pure number), which
  ``Table.read`` restores as ``dex(solMass)`` and ``dex``. (``QTable.read`` of any VOTable with
  dex units fails in astropy 8: its columns are always masked, and a masked Quantity cannot hold
  a function unit.)
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.io import fits
from astropy.io.votable.tree import CooSys, Info, Resource, TableElement, VOTableFile
from astropy.table import Column, MaskedColumn, QTable, Table
from astropy.utils.exceptions import AstropyUserWarning

from survey_mass.catalog.paths import CatalogLayout, resolve
from survey_mass.catalog.query import catalog_schema_of, query
from survey_mass.errors import UserError

#: file suffix -> astropy format
FORMATS = {
    ".fits": "fits",
    ".fit": "fits",
    ".vot": "votable",
    ".xml": "votable",
    ".ecsv": "ascii.ecsv",
    ".csv": "ascii.csv",
    ".parquet": "parquet",
}
EXTNAME = "MASSES"
#: provenance keywords (FITS header cards, VOTable INFO names, table meta keys) -> their comment
PROVENANCE = {
    "JOBNAME": "job that wrote the catalog",
    "CODEVER": "survey-mass version that wrote it",
    "JOBHASH": "job identity: spec and model bytes",
    "MODELS": "models used, kind=name",
    "COMBINE": "how logm500 combines the instruments",
}
ICRS = "icrs"
CARD = 80  # bytes of a FITS header card


def provenance(layout: CatalogLayout) -> dict[str, str]:
    """The :data:`PROVENANCE` keywords from the catalog's provenance.json (none without one)."""
    if not layout.fs.exists(layout.provenance):
        return {}
    record = json.loads(layout.fs.cat_file(layout.provenance))
    models = record.get("models", {})
    values = {
        "JOBNAME": record.get("job", {}).get("name"),
        "CODEVER": record.get("code_version"),
        "JOBHASH": record.get("job_hash"),
        "MODELS": ",".join(f"{k}={Path(m['path']).name}" for k, m in models.items()),
        "COMBINE": record.get("combination"),
    }
    return {key: str(value) for key, value in values.items() if value}


def _strings(values: pd.Series) -> Column:
    """A string column as fixed-width unicode, which every writer takes (nulls masked)."""
    text = values.fillna("").to_numpy(dtype=str)
    missing = values.isna().to_numpy()
    return MaskedColumn(text, mask=missing) if missing.any() else Column(text)


def to_table(df: pd.DataFrame, url: str) -> Table:
    """``df`` as an astropy Table: the schema's columns first, in its order, each with its unit,
    UCD (``meta["ucd"]``) and description; computed columns after; provenance in ``meta``."""
    layout = CatalogLayout(url)
    schema = catalog_schema_of(layout)
    names = [n for n in schema.names if n in df.columns]
    names += [c for c in df.columns if c not in names]
    table = Table.from_pandas(df[names])
    for name in names:
        if pd.api.types.is_string_dtype(df[name]):
            table[name] = _strings(df[name])
    for field in schema:
        if field.name in names and field.metadata:
            meta = {k.decode(): v.decode() for k, v in field.metadata.items()}
            column = table[field.name]
            column.unit = u.Unit(meta["unit"]) if meta.get("unit") else None
            column.description = meta.get("description") or None
            if meta.get("ucd"):
                column.meta["ucd"] = meta["ucd"]
    table.meta.update(provenance(layout))
    return table


def _votable(table: Table) -> bytes:
    """``table`` as a VOTable 1.3 document, units in CDS syntax (module docstring): a FIELD per
    column with unit, UCD and description, ra/dec referencing a COOSYS ICRS, the provenance as
    INFO elements; no DATA if ``table`` is empty."""
    votable = VOTableFile(version="1.3")
    resource = Resource()
    votable.resources.append(resource)
    resource.coordinate_systems.append(CooSys(ID=ICRS, system="ICRS"))
    resource.infos.extend(Info(name=key, value=value) for key, value in table.meta.items())
    element = TableElement.from_table(votable, table)
    element.name = EXTNAME
    resource.tables.append(element)
    for field in element.fields:
        if field.unit == u.dex:  # CDS has no bare dex; dex(solMass) is written [solMass] as is
            field.unit = "[-]"
        if field.name in ("ra", "dec"):
            field.ref = ICRS
    out = io.BytesIO()
    votable.to_xml(out)
    return out.getvalue()


def _write_fits(table: Table, path: Path) -> None:
    """A FITS-plus file: primary HDU the table's VOTable metadata, then the BINTABLE ``MASSES``
    with ``TCOMMn``/``TUCDn`` and astropy's serialized units (module docstring)."""
    written = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "The unit .* could not be saved in native FITS", AstropyUserWarning
        )
        QTable(table).write(written, format="fits")  # Quantity columns: units serialized
    primary = fits.PrimaryHDU(np.frombuffer(_votable(table[:0]), dtype=np.uint8))
    primary.header["VOTMETA"] = (True, "table metadata in VOTable format (FITS-plus)")
    written.seek(0)
    with fits.open(written) as hdus:
        hdu = hdus[1]
        hdu.name = EXTNAME
        for i, name in enumerate(table.colnames, start=1):
            if table[name].description:
                hdu.header[f"TCOMM{i}"] = table[name].description
            if "ucd" in table[name].meta:
                hdu.header[f"TUCD{i}"] = table[name].meta["ucd"]
        for key in table.meta.keys() & PROVENANCE.keys():
            hdu.header.comments[key] = PROVENANCE[key]
        fits.HDUList([primary, hdu]).writeto(path, overwrite=True)
    # STIL takes a file as FITS-plus only with VOTMETA as the 5th card, where astropy always
    # moves EXTEND (only advisory since FITS 3.0, and free to sit anywhere): swap the two
    with path.open("r+b") as fh:
        fh.seek(4 * CARD)
        extend, votmeta = fh.read(CARD), fh.read(CARD)
        assert extend.startswith(b"EXTEND  ") and votmeta.startswith(b"VOTMETA "), "header moved"
        fh.seek(4 * CARD)
        fh.write(votmeta + extend)


def export(url: str, dest: str, sql: str = "SELECT * FROM catalog") -> Path:
    """Write a query's rows to ``dest`` in the format its suffix names (:data:`FORMATS`)."""
    path = Path(dest)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"export to {dest!r}: use a file name ending in {', '.join(FORMATS)}")
    url = resolve(url)
    table = to_table(query(url, sql), url)
    if fmt == "fits":
        _write_fits(table, path)
    elif fmt == "votable":
        xml = _votable(table)
        if not len(table):  # astropy writes no DATA for no rows, and STIL then finds no TABLE
            xml = xml.replace(b"</TABLE>", b"<DATA><TABLEDATA/></DATA></TABLE>", 1)
        path.write_bytes(xml)
    else:  # ECSV and Parquet keep astropy's full metadata; CSV is plain values
        table.write(path, format=fmt, overwrite=True)
    return path
