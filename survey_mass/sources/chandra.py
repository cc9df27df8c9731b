"""Chandra ACIS 0.5-7 keV photon images, binned from archived level-2 event files.

For each target:

1. ask HEASARC's TAP service (the one astroquery.heasarc queries) for ``chanmaster`` rows within
   ``max_offset_arcmin``; keep public ACIS imaging (no grating) of at least ``min_exposure_ks``
   and take the deepest, then the nearest;
2. list ``{archive_url}/{obsid % 10}/{obsid}/primary/`` -- the HEASARC tree, over HTTPS or its
   public S3 mirror ``s3://nasa-heasarc/chandra/data/byobsid`` -- and read the newest
   ``acisf*N*_evt2.fits[.gz]`` through fsspec, into the request cache;
3. bin the events of 0.5-7 keV onto a TAN grid centred on the target that covers ``XRAY_APERTURE``
   (+margin) at the target's redshift, at ``XRAY_APERTURE / (XRAY_GRID * oversample)`` per pixel
   but never finer than the ACIS pixel (reading and binning: :mod:`.chandra_events`).
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from pydantic import Field

from survey_mass.constants import CHANDRA_PIXEL, XRAY_APERTURE, XRAY_BAND_KEV, XRAY_GRID
from survey_mass.sources.archive import (
    ArchiveFetcher,
    RecentItems,
    ServiceConfig,
    aperture_deg,
    cutout_grid,
    image_hdul,
)
from survey_mass.sources.base import Cutout, CutoutError, Target
from survey_mass.sources.chandra_events import (
    EventList,
    bin_events,
    estimate_background,
    read_events,
)

EVT2_NAME = re.compile(r"^acisf(\d+)(?:_\d+)?N(\d+)_evt2\.fits(?:\.gz)?$")
QUERY_COLUMNS = "obsid, name, ra, dec, detector, grating, exposure, status"


class ChandraConfig(ServiceConfig):
    """``[source.real.chandra]``: where Chandra observations are found and read."""

    tap_url: str = Field(
        "https://heasarc.gsfc.nasa.gov/xamin/vo/tap",
        description="HEASARC TAP service (sync queries go to {tap_url}/sync)",
    )
    table: str = Field("chanmaster", description="HEASARC table of Chandra observations")
    archive_url: str = Field(
        "https://heasarc.gsfc.nasa.gov/FTP/chandra/data/byobsid",
        description="root of the by-ObsID tree; s3://nasa-heasarc/chandra/data/byobsid for AWS",
    )
    obs_dir: str = Field(
        "{archive_url}/{last_digit}/{obsid}/primary",
        description="template of the folder holding an ObsID's evt2 file",
    )
    storage_options: dict = Field(
        default_factory=dict, description="fsspec options for archive_url (S3: anon = true)"
    )
    detectors: list[str] = Field(default_factory=lambda: ["ACIS-I", "ACIS-S"])
    max_offset_arcmin: float = Field(
        5.0, gt=0, le=30, description="largest target-to-pointing distance accepted"
    )
    min_exposure_ks: float = Field(5.0, ge=0)
    max_candidates: int = Field(2, ge=1, description="observations tried before giving up")
    oversample: float = Field(2.0, ge=1.0, le=8.0)
    margin: float = Field(0.1, ge=0.0, le=1.0)
    mask_unexposed: bool = Field(True, description="NaN for pixels in event-free 1' cells")
    min_background_area_arcmin2: float = Field(
        10.0, ge=0, description="exposed area beyond the aperture needed to estimate BKGRATE"
    )
    events_memory: int = Field(2, ge=0, description="parsed event lists kept in memory")
    timeout_s: float = Field(120.0, gt=0)
    rate_per_s: float = Field(2.0, gt=0)


def observation_query(table: str, ra: float, dec: float, radius_deg: float) -> str:
    """ADQL cone search, as astroquery.heasarc.Heasarc.query_region writes it."""
    return (
        f"SELECT {QUERY_COLUMNS} FROM {table} WHERE CONTAINS(POINT('ICRS',ra,dec),"
        f"CIRCLE('ICRS',{ra:.7f},{dec:.7f},{radius_deg:.6f}))=1"
    )


def parse_votable(content: bytes):
    """A TAP answer -> astropy Table; an error document is a server error."""
    from astropy.io.votable import parse as parse_vo

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vot = parse_vo(io.BytesIO(content), verify="ignore")
    except Exception as err:
        raise CutoutError(
            "server_error", f"TAP answer is not a VOTable ({err}): {content[:200]!r}"
        ) from err
    for resource in vot.resources:
        for info in resource.infos:
            if info.name == "QUERY_STATUS" and str(info.value).upper() == "ERROR":
                raise CutoutError("server_error", f"TAP query failed: {info.content or info.value}")
    try:
        return vot.get_first_table().to_table()
    except IndexError as err:
        raise CutoutError("server_error", "TAP answer holds no table") from err


def choose_observations(table, ra: float, dec: float, cfg: ChandraConfig) -> list[dict]:
    """Eligible observations, deepest first: ACIS imaging, public, near enough, long enough."""
    if len(table) == 0:
        return []
    names = {n.lower(): n for n in table.colnames}

    def col(name, default=None):
        return table[names[name]] if name in names else default

    for needed in ("obsid", "ra", "dec", "exposure"):
        if needed not in names:
            raise CutoutError("server_error", f"{cfg.table} answer lacks column {needed!r}")
    here = SkyCoord(ra * u.deg, dec * u.deg)
    there = SkyCoord(np.asarray(col("ra"), float) * u.deg, np.asarray(col("dec"), float) * u.deg)
    offset = here.separation(there).arcmin
    rows = []
    for i in range(len(table)):
        detector = str(col("detector", [""] * len(table))[i]).strip().upper()
        grating = str(col("grating", ["NONE"] * len(table))[i]).strip().upper()
        status = str(col("status", ["archived"] * len(table))[i]).strip().lower()
        exposure = float(col("exposure")[i])
        if detector not in {d.upper() for d in cfg.detectors} or grating not in ("NONE", ""):
            continue
        if status != "archived" or exposure < cfg.min_exposure_ks * 1e3:
            continue
        if offset[i] > cfg.max_offset_arcmin:
            continue
        rows.append(
            {
                "obsid": int(col("obsid")[i]),
                "detector": detector,
                "exposure": exposure,
                "offset_arcmin": float(offset[i]),
            }
        )
    rows.sort(key=lambda r: (-r["exposure"], r["offset_arcmin"]))
    return rows


def newest_evt2(names: list[str], obsid: int) -> str | None:
    best = None
    for name in names:
        m = EVT2_NAME.match(name)
        if m and int(m.group(1)) == obsid:
            version = int(m.group(2))
            if best is None or version > best[0]:
                best = (version, name)
    return best[1] if best else None


class ChandraFetcher(ArchiveFetcher):
    """X-ray cutouts (photon counts, 0.5-7 keV) from Chandra ACIS level-2 event files."""

    name = "chandra"
    instrument = "xray"
    config_class = ChandraConfig
    config: ChandraConfig

    def __init__(self, config: ChandraConfig | None = None, **kwargs):
        super().__init__(config, **kwargs)
        self._events = RecentItems(self.config.events_memory)

    # -- steps -----------------------------------------------------------------------------------

    def observations(self, ra: float, dec: float) -> list[dict]:
        cfg = self.config
        adql = observation_query(cfg.table, ra, dec, cfg.max_offset_arcmin / 60.0)
        table = self.service.fetch(
            "POST",
            f"{cfg.tap_url.rstrip('/')}/sync",
            data={"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "votable", "QUERY": adql},
            parse=parse_votable,
            suffix=".xml",
            what=f"HEASARC {cfg.table} search at ({ra:.4f}, {dec:.4f})",
        )
        return choose_observations(table, ra, dec, cfg)

    def events(self, obsid: int) -> EventList:
        events = self._events.get(obsid)
        if events is not None:
            return events
        cfg = self.config
        folder = cfg.obs_dir.format(
            archive_url=cfg.archive_url.rstrip("/"), last_digit=obsid % 10, obsid=obsid
        )
        try:
            names = self.service.list(folder, storage_options=cfg.storage_options)
        except CutoutError as err:
            if err.reason == "not_found":
                raise CutoutError(
                    "no_observation", f"ObsID {obsid}: no archive folder {folder}"
                ) from err
            raise
        name = newest_evt2(names, obsid)
        if name is None:
            raise CutoutError("no_observation", f"ObsID {obsid}: no ACIS evt2 file in {folder}")
        url = f"{folder}/{name}"
        try:
            events = self.service.fetch_file(
                url,
                storage_options=cfg.storage_options,
                suffix=".fits.gz" if name.endswith(".gz") else ".fits",
                what=f"Chandra events {name}",
                parse=lambda p: read_events(p, obsid, f"ObsID {obsid} {name}"),
            )
        except CutoutError as err:
            if err.reason == "not_found":
                raise CutoutError("no_observation", f"ObsID {obsid}: {url} vanished") from err
            raise
        self._events.put(obsid, events)
        return events

    def fetch_one(self, target: Target, instrument: str) -> Cutout:
        cfg = self.config
        wcs, npix = cutout_grid(
            target, XRAY_APERTURE, XRAY_GRID, CHANDRA_PIXEL, cfg.oversample, cfg.margin
        )
        candidates = self.observations(target.ra, target.dec)
        if not candidates:
            raise CutoutError(
                "no_observation",
                f"no public ACIS imaging of >= "
                f"{cfg.min_exposure_ks:g} ks within {cfg.max_offset_arcmin:g}' of "
                f"({target.ra:.5f}, {target.dec:+.5f})",
            )
        reasons = []
        for obs in candidates[: cfg.max_candidates]:
            try:
                events = self.events(obs["obsid"])
            except CutoutError as err:
                if err.reason != "no_observation":
                    raise
                reasons.append(err.detail)
                continue
            image, exposed = bin_events(events, wcs, npix, cfg.mask_unexposed)
            c = npix // 2
            if not exposed[c - 1 : c + 1, c - 1 : c + 1].all():
                reasons.append(f"ObsID {obs['obsid']}: target falls off the chips")
                continue
            return self._cutout(target, instrument, obs, events, image, exposed, wcs)
        reason = "no_coverage" if all("off the chips" in r for r in reasons) else "no_observation"
        raise CutoutError(reason, "; ".join(reasons))

    def _cutout(self, target, instrument, obs, events, image, exposed, wcs) -> Cutout:
        cfg = self.config
        keywords = {
            "TELESCOP": "CHANDRA",
            "INSTRUME": "ACIS",
            "DETNAM": events.detector,
            "OBS_ID": (obs["obsid"], "Chandra ObsID"),
            "BUNIT": "count",
            "EXPOSURE": (events.exposure, "[s] effective exposure (EVENTS header)"),
            "ENERG_LO": (XRAY_BAND_KEV[0], "[keV]"),
            "ENERG_HI": (XRAY_BAND_KEV[1], "[keV]"),
            "OFFAXIS": (round(obs["offset_arcmin"], 3), "[arcmin] target to pointing"),
            "COVERAGE": (float(exposed.mean()), "fraction of pixels on the chips"),
            "OBJECT": target.target_id,
        }
        bkg = estimate_background(
            events,
            target.ra,
            target.dec,
            aperture_deg(XRAY_APERTURE, target.z) / 2,
            cfg.min_background_area_arcmin2,
        )
        if bkg is not None:
            keywords["BKGRATE"] = (bkg, "[count/s/arcmin2] beyond the aperture")
        meta = {
            "obsid": obs["obsid"],
            "exposure": events.exposure,
            "source": self.name,
            "observation": obs,
        }
        return Cutout(target, instrument, image_hdul(image, wcs, keywords), meta)
