"""The mock survey written to disk: truth, mock external catalogs and sample cutouts.

Tables stream to Parquet one base HEALPix pixel at a time (no whole-survey array in memory); the
column units travel in each file's schema metadata under ``units`` (JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from survey_mass.constants import INSTRUMENTS
from survey_mass.mock.external import MAKERS, pixel_catalog
from survey_mass.mock.source import RENDERERS
from survey_mass.mock.universe import UNIVERSE_ORDER, base_pixel_clusters, clusters_in
from survey_mass.pixel_math import footprint_pixels
from survey_mass.spec.footprint import ConeFootprint
from survey_mass.spec.universe import UniverseSpec

#: Units of the truth table's columns (astropy strings; '' for dimensionless or flags).
TRUTH_UNITS = {
    "ra": "deg",
    "dec": "deg",
    "z": "",
    "log10_m500": "dex(solMass)",
    "r500_mpc": "Mpc",
    "c500": "",
    "ellipticity": "",
    "position_angle": "rad",
    "sub_offset_r500": "",
    "sub_fraction": "",
    "sub_angle": "rad",
    "core_fraction": "",
    "core_radius_r500": "",
    "beta": "",
    "miscentre_mpc": "Mpc",
    "miscentre_angle": "rad",
    "lx_excised": "erg / s",
    "y500_da2": "Mpc2",
    "richness_true": "",
    "xray_exposure_ks": "ks",
}
#: Columns that only v2 physics adds (units kept out of v1 files, which stay as they were).
TRUTH_UNITS_V2 = {
    "physics": "",
    "kt_kev": "keV",
    "xray_roll": "rad",
    "xray_aim_dx": "arcmin",
    "xray_aim_dy": "arcmin",
}


class _ParquetStream:
    """Appends DataFrame chunks to one Parquet file, a row group per ``ROW_GROUP`` rows or
    ``MAX_CHUNKS`` chunks (a small DataFrame costs ~20 kB), so memory stays bounded.
    """

    ROW_GROUP, MAX_CHUNKS = 8192, 256

    def __init__(self, path: Path, units: dict[str, str]):
        self.path, self.units, self.writer, self.rows = path, units, None, 0
        self.buffer: list[pd.DataFrame] = []
        self.buffered = 0

    def write(self, frame: pd.DataFrame) -> None:
        if len(frame):
            self.buffer.append(frame)
            self.buffered += len(frame)
            self.rows += len(frame)
        if self.buffered >= self.ROW_GROUP or len(self.buffer) >= self.MAX_CHUNKS:
            self._flush()

    def _flush(self, template: pd.DataFrame | None = None) -> None:
        frame = pd.concat(self.buffer, ignore_index=True) if self.buffer else template.iloc[:0]
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:  # the first chunk fixes the schema; units ride in its metadata
            metadata = {**(table.schema.metadata or {}), b"units": json.dumps(self.units).encode()}
            self.schema = table.schema.with_metadata(metadata)
            self.writer = pq.ParquetWriter(self.path, self.schema)
        self.writer.write_table(table.cast(self.schema))
        self.buffer, self.buffered = [], 0

    def close(self, template: pd.DataFrame) -> None:
        """Finish the file; with no rows at all, leave an empty table shaped like ``template``."""
        if self.buffer or self.writer is None:
            self._flush(template)
        self.writer.close()


def simulate(
    spec: UniverseSpec,
    footprint: ConeFootprint,
    out: Path,
    instruments: tuple[str, ...] = INSTRUMENTS,
    n_max: int | None = None,
    n_cutouts: int = 3,
    progress: bool = True,
) -> dict:
    """Write the mock survey of ``footprint`` to ``out``; returns the summary (also summary.json)."""
    out.mkdir(parents=True, exist_ok=True)
    for instrument in instruments:
        (out / "cutouts" / instrument).mkdir(parents=True, exist_ok=True)
    units = TRUTH_UNITS | (TRUTH_UNITS_V2 if spec.physics == "v2" else {})
    truth = _ParquetStream(out / "truth.parquet", units)
    catalogs = {
        kind: _ParquetStream(out / f"{kind}.parquet", units) for kind, (_, units) in MAKERS.items()
    }
    last: dict[str, pd.DataFrame] = {}  # a frame of each table, to shape an empty file
    cutouts_written = {instrument: 0 for instrument in instruments}
    pixels = footprint_pixels(footprint, UNIVERSE_ORDER)
    for pixel in tqdm(pixels, desc="simulating", unit="pixel", disable=not progress):
        clusters = clusters_in(spec, footprint, UNIVERSE_ORDER, int(pixel))
        last["truth"] = clusters
        if n_max is not None:
            clusters = clusters.head(max(n_max - truth.rows, 0))
        truth.write(clusters)
        kept = set(clusters["target_id"])
        for kind, stream in catalogs.items():
            rows = pixel_catalog(kind, spec, int(pixel), footprint)
            last[kind] = rows
            stream.write(rows[rows["target_id"].isin(kept)])
        for instrument in instruments:
            for _, state in clusters.head(n_cutouts - cutouts_written[instrument]).iterrows():
                hdul = RENDERERS[instrument](state, spec.seed)
                hdul.writeto(
                    out / "cutouts" / instrument / f"{state.target_id}.fits", overwrite=True
                )
                cutouts_written[instrument] += 1
        if base_pixel_clusters.cache_info().currsize > 64:
            base_pixel_clusters.cache_clear()  # memory must not grow with the footprint
        if n_max is not None and truth.rows >= n_max:
            break
    truth.close(last["truth"])
    for kind, stream in catalogs.items():
        stream.close(last[kind])
    summary = {
        "seed": spec.seed,
        "footprint": footprint.model_dump(),
        "universe": spec.model_dump(),
        "rows": {"truth": truth.rows, **{kind: s.rows for kind, s in catalogs.items()}},
        "cutouts": cutouts_written,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
