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
   but never finer than the ACIS pixel. The sky (x, y) columns carry their own WCS (TCTYP/TCRVL/
   TCRPX/TCDLT); EXPOSURE comes from the EVENTS header.

Pixels in arcminute cells with no event at all (off the chips) are NaN; BKGRATE is estimated from
the events beyond the aperture when enough exposed area is left there, and omitted otherwise.
"""

from __future__ import annotations

import io
import logging
import math
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS
from pydantic import Field

from survey_mass.constants import CHANDRA_PIXEL, XRAY_APERTURE, XRAY_BAND_KEV, XRAY_GRID
from survey_mass.sources.archive import (
    ServiceConfig,
    aperture_deg,
    cutout_grid,
    image_hdul,
    open_fits,
    ordered_cutouts,
)
from survey_mass.sources.base import Cutout, CutoutError, CutoutFailure, Target
from survey_mass.sources.cache import RequestCache
from survey_mass.sources.transport import DefaultTransport, Service, Transport

log = logging.getLogger(__name__)

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


@dataclass
class EventList:
    """A level-2 event list reduced to what binning needs: sky positions and the band mask."""

    obsid: int
    ra: np.ndarray  # deg, every event
    dec: np.ndarray
    in_band: np.ndarray  # bool, 0.5-7 keV
    exposure: float  # s
    detector: str
    header: dict


def event_wcs(header, xcol: int, ycol: int, what: str) -> WCS:
    """Celestial WCS of the sky-pixel columns numbered ``xcol``, ``ycol`` (1-based)."""
    wcs = WCS(naxis=2)
    try:
        wcs.wcs.ctype = [header[f"TCTYP{xcol}"], header[f"TCTYP{ycol}"]]
        wcs.wcs.crval = [header[f"TCRVL{xcol}"], header[f"TCRVL{ycol}"]]
        wcs.wcs.crpix = [header[f"TCRPX{xcol}"], header[f"TCRPX{ycol}"]]
        wcs.wcs.cdelt = [header[f"TCDLT{xcol}"], header[f"TCDLT{ycol}"]]
        wcs.wcs.cunit = [header.get(f"TCUNI{xcol}", "deg"), header.get(f"TCUNI{ycol}", "deg")]
        wcs.wcs.set()
    except (KeyError, ValueError) as err:
        raise CutoutError("missing_wcs", f"{what}: sky columns lack a WCS ({err})") from err
    if not wcs.has_celestial:
        raise CutoutError(
            "missing_wcs", f"{what}: sky columns are not celestial ({list(wcs.wcs.ctype)})"
        )
    return wcs


def read_events(path: Path | str, obsid: int, what: str) -> EventList:
    """Parse an evt2 file (plain or gzip); CutoutError("bad_fits"/"missing_wcs") if unusable."""
    hdul = open_fits(str(path), what)
    try:
        try:
            hdu = hdul["EVENTS"]
        except KeyError as err:
            raise CutoutError("bad_fits", f"{what}: no EVENTS extension") from err
        h = hdu.header
        names = [n.lower() for n in hdu.columns.names]
        for needed in ("x", "y", "energy"):
            if needed not in names:
                raise CutoutError("bad_fits", f"{what}: EVENTS lacks column {needed!r}")
        xcol, ycol = names.index("x") + 1, names.index("y") + 1
        wcs = event_wcs(h, xcol, ycol, what)
        exposure = float(h.get("EXPOSURE") or h.get("LIVETIME") or h.get("ONTIME") or 0.0)
        if not exposure > 0:
            raise CutoutError("bad_fits", f"{what}: EVENTS header has no EXPOSURE")
        data = hdu.data
        x = np.asarray(data.field(xcol - 1), dtype=np.float64)
        y = np.asarray(data.field(ycol - 1), dtype=np.float64)
        energy = np.asarray(data.field(names.index("energy")), dtype=np.float64)
        ra, dec = wcs.pixel_to_world_values(x - 1.0, y - 1.0)  # sky pixels are 1-based
        lo, hi = (e * 1000.0 for e in XRAY_BAND_KEV)  # eV
        keep = {
            k: h[k]
            for k in ("OBS_ID", "DETNAM", "INSTRUME", "DATE-OBS", "OBJECT", "ASCDSVER")
            if k in h
        }
        return EventList(
            obsid,
            ra.astype(np.float64),
            dec.astype(np.float64),
            (energy >= lo) & (energy <= hi),
            exposure,
            str(h.get("DETNAM", h.get("INSTRUME", "ACIS"))),
            keep,
        )
    finally:
        hdul.close()


def bin_events(events: EventList, wcs: WCS, npix: int, mask_unexposed: bool):
    """(counts image with NaN off the chips, exposed-pixel mask) on the cutout grid."""
    col, row = wcs.world_to_pixel_values(events.ra, events.dec)
    i = np.floor(col + 0.5)
    j = np.floor(row + 0.5)
    inside = (i >= 0) & (i < npix) & (j >= 0) & (j < npix)
    band = inside & events.in_band
    image = (
        np.bincount((j[band] * npix + i[band]).astype(np.int64), minlength=npix * npix)
        .reshape(npix, npix)
        .astype(np.float32)
    )
    exposed = np.ones((npix, npix), bool)
    if mask_unexposed:
        cell = max(1, int(round((1.0 / 60.0) / abs(wcs.wcs.cdelt[0]))))  # ~1 arcmin
        ncell = -(-npix // cell)
        occupied = np.zeros((ncell, ncell), bool)
        occupied[(j[inside] // cell).astype(int), (i[inside] // cell).astype(int)] = True
        exposed = np.repeat(np.repeat(occupied, cell, 0), cell, 1)[:npix, :npix]
        image[~exposed] = np.nan
    return image, exposed


def estimate_background(
    events: EventList, ra: float, dec: float, radius_deg: float, min_area_arcmin2: float
) -> float | None:
    """counts/s/arcmin^2 in band from 1' cells beyond ``radius_deg``; None if too little area.

    Cells are on a tangent plane at the target; cells at chip edges (few events of any energy)
    and cells with point sources (far above the median) are left out.
    """
    from survey_mass.wcs import tan_wcs

    cell_deg = 1.0 / 60.0
    grid = tan_wcs(ra, dec, cell_deg, 2)
    cx, cy = grid.world_to_pixel_values(events.ra, events.dec)
    ok = np.isfinite(cx) & np.isfinite(cy)
    ix, iy = np.floor(cx[ok]).astype(np.int64), np.floor(cy[ok]).astype(np.int64)
    in_band = events.in_band[ok]
    # centre distance of each cell, in deg
    keys, inverse = np.unique(np.stack([ix, iy]), axis=1, return_inverse=True)
    inverse = inverse.reshape(-1)
    total = np.bincount(inverse)
    band = np.bincount(inverse, weights=in_band)
    centre = (keys + 0.5 - 0.5) * cell_deg  # pixel 0.5 is the tangent point of a 2-pixel grid
    far = np.hypot(centre[0], centre[1]) > radius_deg + cell_deg
    if not far.any():
        return None
    full = far & (total >= 0.5 * np.median(total[far]))
    if full.sum() * 1.0 < min_area_arcmin2:
        return None
    counts = band[full]
    med = np.median(counts)
    clean = counts[counts <= med + 5 * math.sqrt(max(med, 1.0))]
    return float(clean.mean() / events.exposure)


class ChandraFetcher:
    """X-ray cutouts (photon counts, 0.5-7 keV) from Chandra ACIS level-2 event files."""

    name = "chandra"

    def __init__(
        self,
        config: ChandraConfig | None = None,
        *,
        cache: RequestCache | None = None,
        transport: Transport | None = None,
        allowed_protocols=None,
        sleep=None,
    ):
        self.config = config or ChandraConfig()
        self.cache = cache or RequestCache()
        self.transport = transport or DefaultTransport()
        self.service = Service.from_config(
            "chandra", self.config, self.transport, self.cache, allowed_protocols, sleep
        )
        self._events: OrderedDict[int, EventList] = OrderedDict()
        self._events_lock = threading.Lock()

    @property
    def requests_made(self) -> int:
        return self.service.requests_made

    def cutouts(
        self, targets: Iterable[Target], instrument: str = "xray"
    ) -> Iterator[Cutout | CutoutFailure]:
        return ordered_cutouts(
            lambda t: self.fetch_one(t, instrument),
            targets,
            instrument,
            self.config.max_concurrency,
            self.name,
        )

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
        with self._events_lock:
            if obsid in self._events:
                self._events.move_to_end(obsid)
                return self._events[obsid]
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
        if cfg.events_memory:
            with self._events_lock:
                self._events[obsid] = events
                while len(self._events) > cfg.events_memory:
                    self._events.popitem(last=False)
        return events

    def fetch_one(self, target: Target, instrument: str = "xray") -> Cutout:
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
