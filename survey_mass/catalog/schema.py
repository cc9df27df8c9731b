"""The mass catalog's Arrow schema: every column with its unit, UCD and meaning in field metadata."""

from __future__ import annotations

import pyarrow as pa

from survey_mass.constants import COSMOLOGY, INSTRUMENTS
from survey_mass.pixel_math import SPATIAL_INDEX_COLUMN

#: flag bits
FLAG_MISSING = {instrument: 1 << i for i, instrument in enumerate(INSTRUMENTS)}  # 1, 2, 4
FLAG_LARGE_SPREAD = 1 << 3  # fold members disagree by more than 0.15 dex
#: the instrument is uninformative here (calibration map): its value and interval are the prior's
FLAG_PRIOR = {instrument: 1 << (4 + i) for i, instrument in enumerate(INSTRUMENTS)}  # 16, 32, 64
FLAG_JOINT_PRIOR = 1 << 7  # the joint mass is no narrower than the prior: it reports the prior


#: what every mass column means: M500c in Msun of the pipeline's cosmology (no factor of h)
MASS_CONVENTION = (
    "M500c (mass inside the radius enclosing 500 times the critical density at z) in Msun for "
    f"flat LambdaCDM with H0 = {COSMOLOGY.H0.value:g} km/s/Mpc, Om0 = {COSMOLOGY.Om0:g} "
    "(no factor of h)"
)

#: one unit convention, astropy's generic strings: every format astropy writes reads them back
#: exactly and without warnings (FITS and VOUnit have no dex: see catalog/export.py)
DEG, LOG_MASS, DEX = "deg", "dex(solMass)", "dex"


def _field(name: str, type_: pa.DataType, unit: str, ucd: str, description: str) -> pa.Field:
    """A column with its unit ("" if none), UCD and meaning in the field metadata."""
    return pa.field(name, type_, metadata={"unit": unit, "ucd": ucd, "description": description})


F64, I32, I64, STR = pa.float64(), pa.int32(), pa.int64(), pa.string()

#: (name, type, unit, UCD, description) of the columns before the per-instrument ones
_LEADING = [
    ("target_id", STR, "", "meta.id;meta.main", "target identifier from the input"),
    ("ra", F64, DEG, "pos.eq.ra;meta.main", "right ascension, ICRS"),
    ("dec", F64, DEG, "pos.eq.dec;meta.main", "declination, ICRS"),
    ("z", F64, "", "src.redshift", "redshift used for the mass"),
    (
        SPATIAL_INDEX_COLUMN,
        I64,
        "",
        "pos.healpix",
        "HEALPix nested index at order 29 (spatial index)",
    ),
]
#: ... of each instrument's columns ({inst} is the instrument)
_PER_INSTRUMENT = [
    ("logm500_{inst}", F64, LOG_MASS, "phys.mass", "log10 M500c from the {inst} ensemble"),
    (
        "logm500_{inst}_sigma",
        F64,
        DEX,
        "stat.error;phys.mass",
        "half-width of the 68% interval of logm500_{inst} (calibrated where the entry has a map)",
    ),
    (
        "logm500_{inst}_half95",
        F64,
        DEX,
        "stat.error;phys.mass",
        "half-width of the 95% interval of logm500_{inst}",
    ),
    ("logm500_{inst}_spread", F64, DEX, "stat.stdev;phys.mass", "std of the {inst} fold members"),
]
#: ... measured beside an instrument's masses (after its columns)
_OBSERVABLES = {
    "sz": [
        (
            "sz_snr",
            F64,
            "",
            "stat.snr",
            "S/N of the y map's matched filter at the target (infer/sz_snr.py); the SZ "
            "calibration map's cells are cut by it",
        )
    ]
}
#: ... of the joint mass and the bookkeeping columns
_TRAILING = [
    (
        "logm500",
        F64,
        LOG_MASS,
        "phys.mass",
        "joint log10 M500c: the joint model named in `models`, else the inverse-variance mean; "
        + MASS_CONVENTION,
    ),
    (
        "logm500_sigma",
        F64,
        DEX,
        "stat.error;phys.mass",
        "half-width of the 68% interval of logm500",
    ),
    ("logm500_p16", F64, LOG_MASS, "phys.mass;stat.min", "16th percentile of log10 M500c"),
    ("logm500_p84", F64, LOG_MASS, "phys.mass;stat.max", "84th percentile of log10 M500c"),
    ("logm500_p2_5", F64, LOG_MASS, "phys.mass;stat.min", "2.5th percentile of log10 M500c"),
    ("logm500_p97_5", F64, LOG_MASS, "phys.mass;stat.max", "97.5th percentile of log10 M500c"),
    (
        "flags",
        I32,
        "",
        "meta.code",
        "bits: 1/2/4 xray/sz/optical missing, 8 large fold spread, 16/32/64 xray/sz/optical "
        "uninformative (value and interval are the prior's), 128 joint mass is the prior",
    ),
    (
        "models",
        STR,
        "",
        "meta.version",
        "ensemble versions used (and the joint model), comma-separated",
    ),
]


def catalog_schema(instruments: list[str]) -> pa.Schema:
    """One row per weighed target; per-instrument columns for the job's instruments."""
    per_instrument = [
        column
        for inst in instruments
        for column in [
            *(
                (name.format(inst=inst), type_, unit, ucd, text.format(inst=inst))
                for name, type_, unit, ucd, text in _PER_INSTRUMENT
            ),
            *_OBSERVABLES.get(inst, []),
        ]
    ]
    return pa.schema(
        [_field(*column) for column in [*_LEADING, *per_instrument, *_TRAILING]],
        metadata={"survey_mass.mass_convention": MASS_CONVENTION},
    )


def quarantine_schema() -> pa.Schema:
    """One row per target that could not be weighed, with the reason."""
    return pa.schema(
        [
            _field(
                "target_id",
                pa.string(),
                "",
                "meta.id;meta.main",
                "target identifier from the input (may be null)",
            ),
            _field("ra", pa.float64(), DEG, "pos.eq.ra;meta.main", "right ascension as given"),
            _field("dec", pa.float64(), DEG, "pos.eq.dec;meta.main", "declination as given"),
            _field("z", pa.float64(), "", "src.redshift", "redshift as given"),
            _field(
                "reason",
                pa.string(),
                "",
                "meta.code.error",
                "short code(s), e.g. nonfinite_pixels; ';'-joined",
            ),
            _field("detail", pa.string(), "", "meta.note", "what was wrong and how to fix it"),
        ]
    )
