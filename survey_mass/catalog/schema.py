"""The mass catalog's Arrow schema: every column with its unit and meaning in field metadata."""

from __future__ import annotations

import pyarrow as pa

from survey_mass.constants import INSTRUMENTS
from survey_mass.pixel_math import SPATIAL_INDEX_COLUMN

#: flag bits
FLAG_MISSING = {instrument: 1 << i for i, instrument in enumerate(INSTRUMENTS)}  # 1, 2, 4
FLAG_LARGE_SPREAD = 1 << 3  # fold members disagree by more than 0.15 dex


def _field(name: str, type_: pa.DataType, unit: str, description: str) -> pa.Field:
    return pa.field(name, type_, metadata={"unit": unit, "description": description})


def catalog_schema(instruments: list[str]) -> pa.Schema:
    """One row per weighed target; per-instrument columns for the job's instruments."""
    fields = [
        _field("target_id", pa.string(), "", "target identifier from the input"),
        _field("ra", pa.float64(), "deg", "right ascension, ICRS"),
        _field("dec", pa.float64(), "deg", "declination, ICRS"),
        _field("z", pa.float64(), "", "redshift used for the mass"),
        _field(
            SPATIAL_INDEX_COLUMN, pa.int64(), "", "HEALPix nested index at order 29 (spatial index)"
        ),
    ]
    for inst in instruments:
        fields += [
            _field(
                f"logm500_{inst}",
                pa.float64(),
                "dex(Msun)",
                f"log10 M500c from the {inst} ensemble",
            ),
            _field(
                f"logm500_{inst}_sigma",
                pa.float64(),
                "dex",
                f"1-sigma total error of logm500_{inst}",
            ),
            _field(
                f"logm500_{inst}_spread", pa.float64(), "dex", f"std of the {inst} fold members"
            ),
        ]
    fields += [
        _field(
            "logm500",
            pa.float64(),
            "dex(Msun)",
            "joint log10 M500c: the joint model named in `models`, else the inverse-variance mean",
        ),
        _field("logm500_sigma", pa.float64(), "dex", "half-width of the 68% interval of logm500"),
        _field("logm500_p16", pa.float64(), "dex(Msun)", "16th percentile of log10 M500c"),
        _field("logm500_p84", pa.float64(), "dex(Msun)", "84th percentile of log10 M500c"),
        _field("logm500_p2_5", pa.float64(), "dex(Msun)", "2.5th percentile of log10 M500c"),
        _field("logm500_p97_5", pa.float64(), "dex(Msun)", "97.5th percentile of log10 M500c"),
        _field("flags", pa.int32(), "", "bits: 1/2/4 xray/sz/optical missing, 8 large fold spread"),
        _field(
            "models",
            pa.string(),
            "",
            "ensemble versions used (and the joint model), comma-separated",
        ),
    ]
    return pa.schema(fields)


def quarantine_schema() -> pa.Schema:
    return pa.schema(
        [
            _field("target_id", pa.string(), "", "target identifier from the input (may be null)"),
            _field("ra", pa.float64(), "deg", "right ascension as given"),
            _field("dec", pa.float64(), "deg", "declination as given"),
            _field("z", pa.float64(), "", "redshift as given"),
            _field("reason", pa.string(), "", "short code(s), e.g. nonfinite_pixels; ';'-joined"),
            _field("detail", pa.string(), "", "what was wrong and how to fix it"),
        ]
    )
