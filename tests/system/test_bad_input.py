"""Bad input costs only itself: a clear error, or a quarantine row with a reason, and no other row.

Cutouts arrive as FITS bytes through the real reader (``open_fits_bytes``), as from an archive, so
corrupted and truncated files, NaN/inf and all-zero images, missing or broken WCS, an unexpected
band and header values that are not numbers all travel the production path into the quarantine.
Property-based tests (hypothesis) cover the FITS reader, the row checks and the job-spec parser.
"""

from __future__ import annotations

import copy
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from survey_mass.cli import main
from survey_mass.errors import JobSpecError
from survey_mass.infer.ensemble import load_ensemble
from survey_mass.infer.weigh import prepare
from survey_mass.mock.source import MockSource
from survey_mass.mock.universe import base_pixel_clusters
from survey_mass.preprocess.batch import prepare_batch
from survey_mass.preprocess.resample import GridSpec
from survey_mass.runner import shard as shard_module
from survey_mass.sources.archive import open_fits_bytes
from survey_mass.sources.base import Cutout, CutoutError, CutoutFailure, Target, cutouts_one_by_one
from survey_mass.spec.job import parse_job_spec
from survey_mass.spec.universe import UniverseSpec
from survey_mass.targets.plan import plan_shards
from survey_mass.zoo.registry import SHIPPED_ZOO

from support.archives import fits_bytes
from support.shards import weigh_in_process

SPEC = UniverseSpec(seed=11)


def mock_rows(n: int) -> pd.DataFrame:
    """The first ``n`` clusters of the mock universe from base pixel 120000 on (one shard)."""
    frames, pixel = [], 120000
    while sum(map(len, frames)) < n:
        frames.append(base_pixel_clusters(SPEC, pixel))
        pixel += 1
    return pd.concat(frames).head(n)[["target_id", "ra", "dec", "z"]].reset_index(drop=True)


def edit(change):
    """A spoiler of FITS bytes that opens them, applies ``change(hdul)`` and writes them back."""

    def spoil(data: bytes) -> bytes:
        hdul = fits.open(io.BytesIO(data))
        change(hdul)
        return fits_bytes(hdul)

    return spoil


def _corrupt_header(data: bytes) -> bytes:
    return data[:80] + b"NAXIS1  = 'abc'" + data[95:]


def _drop_wcs(hdul):
    for key in ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2", "CRPIX1", "CRPIX2"):
        hdul[0].header.remove(key, ignore_missing=True)


def _raise_in_the_source(data: bytes) -> bytes:
    raise ValueError("lam value too large")  # as a renderer bug once did


#: spoiler of a cutout's FITS bytes -> the quarantine reason it must end with
SPOILERS = {
    "corrupted": (_corrupt_header, "xray:bad_fits"),
    "truncated": (lambda data: data[: len(data) // 2], "xray:bad_fits"),
    "nan": (edit(lambda h: h[0].data.__setitem__((60, 60), np.nan)), "xray:nonfinite_pixels"),
    "inf": (edit(lambda h: h[0].data.__setitem__((3, 70), np.inf)), "xray:nonfinite_pixels"),
    "zeros": (edit(lambda h: h[0].data.__setitem__(slice(None), 0)), "xray:empty_cutout"),
    "no_wcs": (edit(_drop_wcs), "xray:invalid_wcs"),
    "singular_wcs": (edit(lambda h: h[0].header.__setitem__("CDELT1", 0.0)), "xray:invalid_wcs"),
    "two_bands": (
        edit(lambda h: setattr(h[0], "data", np.stack([h[0].data, h[0].data]))),
        "xray:bad_shape",
    ),
    "exposure_text": (
        edit(lambda h: h[0].header.__setitem__("EXPOSURE", "unknown")),
        "xray:bad_exposure",
    ),
    "source_bug": (_raise_in_the_source, "xray:source_error"),
    "exposure_zero": (
        edit(lambda h: h[0].header.__setitem__("EXPOSURE", 0.0)),
        "xray:bad_exposure",
    ),
}


class ArchiveLikeSource:
    """The mock survey served as an archive would: FITS bytes read back by the real reader, with
    the cutouts of some targets spoiled on the way."""

    name = "archive-like"

    def __init__(self, spoilers: dict):
        self.mock = MockSource(SPEC)
        self.spoilers = spoilers

    def cutouts(self, targets, instrument):
        def fetch_one(target: Target) -> fits.HDUList:
            (item,) = self.mock.cutouts([target], instrument)
            if isinstance(item, CutoutFailure):
                raise CutoutError(item.reason, item.detail)
            data = fits_bytes(item.hdul)
            spoil = self.spoilers.get(target.target_id)
            return open_fits_bytes(spoil(data) if spoil else data, f"cutout {target.target_id}")

        return cutouts_one_by_one(fetch_one, targets, instrument)


def run_catalog_job(tmp_path, monkeypatch, rows: pd.DataFrame, spoilers: dict, name: str):
    """Weigh ``rows`` (a catalog job, in-process) and return (catalog, quarantine)."""
    catalog = tmp_path / f"{name}.csv"
    rows.rename(columns={"target_id": "id"}).to_csv(catalog, index=False)
    out = tmp_path / name
    spec = parse_job_spec(f"""
name = "{name}"
batch_size = 8
[targets]
catalog = "{catalog}"
footprint = {{ kind = "cone", ra = 0.0, dec = -90.0, radius_deg = 180.0 }}
shard_order = 2
[source]
mock = {{ seed = 11 }}
[output]
url = "{out}"
""")
    monkeypatch.setattr(shard_module, "build_source", lambda spec: ArchiveLikeSource(spoilers))
    return weigh_in_process(spec, "test")


def test_every_kind_of_bad_input_is_quarantined_with_its_reason_and_no_other_row_is_lost(
    tmp_path, monkeypatch
):
    targets = mock_rows(len(SPOILERS) + 5)
    spoiled_ids = dict(zip(targets["target_id"], SPOILERS, strict=False))
    good = targets.iloc[len(SPOILERS) :]
    bad_rows = pd.DataFrame(
        {
            "target_id": ["dec-95", "ra-text", "z-inf", "z-7", "z-zero", "z-missing"],
            "ra": [10.0, "abc", 10.0, 10.0, 10.0, 10.0],
            "dec": [95.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            "z": [0.3, 0.3, np.inf, 7.0, 0.0, None],
        }
    )
    rows = pd.concat([targets, bad_rows], ignore_index=True).sample(frac=1.0, random_state=1)
    spoilers = {tid: SPOILERS[kind][0] for tid, kind in spoiled_ids.items()}
    catalog, quarantine = run_catalog_job(tmp_path, monkeypatch, rows, spoilers, "spoiled")

    expected = {tid: SPOILERS[kind][1] for tid, kind in spoiled_ids.items()}
    expected |= {"dec-95": "invalid_coordinates", "ra-text": "invalid_coordinates"}
    expected |= {t: "invalid_redshift" for t in ("z-inf", "z-7", "z-zero", "z-missing")}
    assert dict(zip(quarantine["target_id"], quarantine["reason"], strict=True)) == expected
    assert (quarantine["detail"].str.len() > 10).all()
    # the good rows are all there, weighed exactly as in a run without any bad neighbour
    assert sorted(catalog["target_id"]) == sorted(good["target_id"])
    clean, _ = run_catalog_job(tmp_path, monkeypatch, good, {}, "clean")
    key = ["target_id"]
    pd.testing.assert_frame_equal(
        catalog.sort_values(key).reset_index(drop=True),
        clean.sort_values(key).reset_index(drop=True),
        rtol=1e-6,
    )


def test_a_cube_missing_a_band_is_quarantined_and_the_full_ones_pass():
    from astropy import units as u
    from astropy.wcs import WCS

    def cube(bands: int, i: int) -> Cutout:
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [150.0, 2.0]
        wcs.wcs.crpix = [32.5, 32.5]
        wcs.wcs.cdelt = [-1 / 600, 1 / 600]
        data = np.random.default_rng(i).uniform(1, 2, (bands, 64, 64))
        hdul = fits.HDUList([fits.PrimaryHDU(data, header=wcs.to_header())])
        return Cutout(Target(f"t{i}", 150.0, 2.0, 0.3), "optical", hdul)

    grid = GridSpec(npix=16, scale=4 * u.arcsec)
    cutouts = [cube(5, 0), cube(4, 1), cube(5, 2)]
    prepared = prepare_batch(cutouts, grid, np, conserve_flux=True, channels=5)
    assert [(f.target.target_id, f.reason) for f in prepared.failures] == [("t1", "missing_band")]
    assert "4 bands, need 5" in prepared.failures[0].detail
    assert prepared.inputs.shape == (2, 16, 16, 5)


# --- the FITS reader, property-based --------------------------------------------------------------


def _image_bytes() -> bytes:
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [20.5, 20.5]
    wcs.wcs.cdelt = [-1e-3, 1e-3]
    header = wcs.to_header()
    header["EXPOSURE"] = 5e4
    data = np.random.default_rng(0).poisson(3.0, (40, 40)).astype(np.float32)
    return fits_bytes(fits.HDUList([fits.PrimaryHDU(data, header=header)]))


IMAGE = _image_bytes()


def _reads_or_bad_fits(data: bytes):
    """The reader's contract: an HDU list, or CutoutError('bad_fits'); nothing else escapes."""
    try:
        hdul = open_fits_bytes(data, "cutout")
    except CutoutError as err:
        assert err.reason == "bad_fits" and "cutout" in err.detail
        return None
    assert len(hdul) >= 1
    return hdul


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=6000))
def test_any_bytes_are_read_or_refused_as_bad_fits(data):
    _reads_or_bad_fits(data)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(IMAGE) - 1), st.sampled_from([None, "gzip", "bz2"]))
def test_a_file_cut_short_anywhere_is_bad_fits(length, compression):
    data = IMAGE
    if compression:
        data = fits_bytes(fits.open(io.BytesIO(IMAGE)), compression)
        length = length * len(data) // len(IMAGE)
    assert _reads_or_bad_fits(data[:length]) is None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2879), st.integers(0, 255)), min_size=1, max_size=6))
def test_a_corrupted_header_is_refused_or_weighed_or_quarantined_never_a_crash(edits):
    data = bytearray(IMAGE)
    for position, value in edits:
        data[position] = value
    hdul = _reads_or_bad_fits(bytes(data))
    if hdul is None:
        return
    ensemble = load_ensemble(SHIPPED_ZOO / "xray-v1")
    cutout = Cutout(Target("t", 150.0, 2.0, 0.3), "xray", hdul)
    prepared = prepare(ensemble, [cutout], np)  # what process_shard does with a batch
    assert len(prepared.cutouts) + len(prepared.failures) == 1
    assert np.isfinite(prepared.inputs).all()


# --- row checks, property-based -------------------------------------------------------------------

coordinate = st.one_of(
    st.floats(-400, 400), st.sampled_from([np.nan, np.inf, -np.inf, 90.0, -90.0, 360.0])
)
redshift = st.one_of(st.floats(-1, 6), st.sampled_from([np.nan, np.inf, 0.0, 5.0]))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.sampled_from("ABCDEFGH"), coordinate, coordinate, redshift),
        min_size=1,
        max_size=30,
    )
)
def test_every_catalog_row_lands_in_exactly_one_shard_and_only_bad_rows_are_rejected(
    tmp_path_factory, rows
):
    folder = tmp_path_factory.mktemp("rows")
    table = pd.DataFrame(rows, columns=["id", "ra", "dec", "z"])
    table.to_csv(folder / "t.csv", index=False)
    spec = parse_job_spec(f"""
name = "rows"
[targets]
catalog = "{folder / "t.csv"}"
footprint = {{ kind = "box", ra_min = 0.0, ra_max = 180.0, dec_min = -45.0, dec_max = 45.0 }}
[source]
kind = "real"
[output]
url = "{folder / "out"}"
""")
    shards = plan_shards(spec)[1]
    out = pd.concat([s.rows for s in shards], ignore_index=True)
    assert len(out) == len(table)  # none lost, none doubled
    assert sorted(out["target_id"]) == sorted(table["id"])
    seen = set()
    for row in out.itertuples():
        finite = np.isfinite([row.ra, row.dec]).all()
        good_position = finite and -90 <= row.dec <= 90
        good_z = np.isfinite(row.z) and 0 < row.z < 5
        inside = good_position and spec.targets.footprint.contains(row.ra, row.dec)
        if row.reject is None:
            assert good_position and good_z and inside and row.target_id not in seen
        seen.add(row.target_id)
    firsts = out.drop_duplicates("target_id")
    valid = firsts[
        np.isfinite(firsts[["ra", "dec", "z"]]).all(axis=1)
        & firsts["dec"].between(-90, 90)
        & (firsts["z"] > 0)
        & (firsts["z"] < 5)
    ]
    inside = valid[spec.targets.footprint.contains(valid["ra"], valid["dec"])]
    assert inside["reject"].isna().all()  # no good row is turned away


def test_an_ra_beyond_360_is_wrapped_as_the_footprint_wraps_it_not_rejected(tmp_path):
    """Regression: hypothesis found ra = 361.0, inside the box once wrapped, but rejected."""
    table = pd.DataFrame(
        {"id": ["a", "b", "c"], "ra": [361.0, -350.0, 720.5], "dec": 1.0, "z": 0.2}
    )
    table.to_csv(tmp_path / "t.csv", index=False)
    spec = parse_job_spec(f"""
name = "rows"
[targets]
catalog = "{tmp_path / "t.csv"}"
footprint = {{ kind = "box", ra_min = 0.0, ra_max = 180.0, dec_min = -45.0, dec_max = 45.0 }}
[source]
kind = "real"
[output]
url = "{tmp_path / "out"}"
""")
    out = pd.concat([s.rows for s in plan_shards(spec)[1]], ignore_index=True).sort_values(
        "target_id"
    )
    assert out["reject"].isna().all()
    assert out["ra"].tolist() == pytest.approx([1.0, 10.0, 0.5])


# --- job specs, property-based --------------------------------------------------------------------

VALID_SPEC = {
    "name": "fuzz",
    "batch_size": 16,
    "device": "cpu",
    "instruments": ["xray"],
    "targets": {
        "footprint": {"kind": "cone", "ra": 10.0, "dec": 0.0, "radius_deg": 1.0},
        "shard_order": 4,
    },
    "source": {"mock": {"seed": 3, "density_scale": 1.0}},
    "models": {"tta": False},
    "cluster": {"n_workers": 2, "memory_limit": "2GiB"},
    "output": {"url": "out/fuzz"},
}
FUZZED_KEYS = [
    ("name",),
    ("batch_size",),
    ("device",),
    ("instruments",),
    ("targets", "footprint", "radius_deg"),
    ("targets", "footprint", "dec"),
    ("targets", "footprint", "kind"),
    ("targets", "shard_order"),
    ("source", "mock", "seed"),
    ("source", "mock", "density_scale"),
    ("models", "tta"),
    ("cluster", "n_workers"),
    ("cluster", "kind"),
    ("output", "url"),
]
toml_scalar = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=12),
)
toml_value = st.one_of(toml_scalar, st.lists(toml_scalar, max_size=3), st.fixed_dictionaries({}))


def to_toml(value) -> str:
    """A TOML value (inline form) for a bool, int, float, str, list or dict."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(to_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{k} = {to_toml(v)}" for k, v in value.items()) + "}"


def to_document(spec: dict) -> str:
    top = [f"{k} = {to_toml(v)}" for k, v in spec.items() if not isinstance(v, dict)]
    tables = [
        f"[{k}]\n" + "\n".join(f"{kk} = {to_toml(vv)}" for kk, vv in v.items())
        for k, v in spec.items()
        if isinstance(v, dict)
    ]
    return "\n".join(top + tables) + "\n"


def _names(line: str, key: tuple[str, ...]) -> bool:
    """An error line names ``key``: its location holds the key's parts in order, or the parent's
    parts with the last part named in the message (a union's tag, say)."""
    location, _, message = line.partition(":")

    def holds(parts):
        return re.search(r".*".join(re.escape(p) for p in parts), location) is not None

    return holds(key) or (holds(key[:-1]) and f"'{key[-1]}'" in message)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FUZZED_KEYS), toml_value)
def test_a_bad_value_is_named_by_its_key_and_a_good_one_round_trips(key, value):
    data = copy.deepcopy(VALID_SPEC)
    node = data
    for part in key[:-1]:
        node = node[part]
    node[key[-1]] = value
    try:
        spec = parse_job_spec(to_document(data), "fuzz.toml")
    except JobSpecError as err:
        lines = str(err).splitlines()
        assert lines[0].startswith("fuzz.toml")
        assert any(_names(line, key) for line in lines[1:]), (key, str(err))
        return
    again = parse_job_spec(to_document(spec.model_dump(mode="json", exclude_none=True)))
    assert again == spec


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('name = "x"\n[targets\n', "not valid TOML"),
        ('name = "x"\nbatchsize = 3\n', "batchsize: unknown key"),
        ('name = "x"\nbatch_size = "many"\n', "batch_size"),
    ],
)
def test_a_malformed_job_spec_is_a_clear_error_and_exit_code_2(tmp_path, capsys, text, named):
    job = tmp_path / "job.toml"
    job.write_text(text)
    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err
    assert named in err and str(job) in err and "Traceback" not in err


def test_a_missing_target_catalog_is_one_line_and_leaves_no_output_folder(tmp_path, capsys):
    out = tmp_path / "out" / "night"
    job = tmp_path / "job.toml"
    job.write_text(
        f'name = "night"\n[targets]\ncatalog = "{tmp_path / "nope.csv"}"\n'
        f'[source]\nkind = "real"\n[output]\nurl = "{out}"\n'
    )
    assert main(["run", str(job), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "nope.csv" in err and "does not exist" in err and "Traceback" not in err
    assert not out.exists()  # nothing half-written: not even the folder the lease made
