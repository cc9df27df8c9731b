"""SDSS ugriz cutouts: corrected frames from the SAS, found with a SkyServer SQL query, mosaicked.

For each target:

1. ask SkyServer (the SQL endpoint astroquery.sdss uses, same ``cmd``/``format=csv`` payload) for
   the distinct (run, rerun, camcol, field) whose *primary* objects lie within the circle around
   the cutout -- the fewest fields that tile the area;
2. download the five ``frame-{band}-{run}-{camcol}-{field}.fits.bz2`` of each field (nanomaggies,
   sky-subtracted, TAN WCS) through the request cache -- a frame shared by several targets is
   downloaded once and, while recently used, decoded once;
3. bin every band's frames onto one TAN grid centred on the target (the pixel is
   ``OPTICAL_APERTURE / (OPTICAL_GRID * oversample)`` at the target's redshift, never finer than
   the SDSS pixel): each input pixel's surface brightness is shared among the four nearest output
   pixels (cloud-in-cell), overlapping frames are averaged, and the mean surface brightness is
   turned into nanomaggies per output pixel. Flux is conserved to within the binning's aliasing;
   the five bands share one WCS, so they are aligned.

Uncovered output pixels are NaN; a target whose centre is not covered in every band fails with
"no_coverage", as does one where SkyServer knows no field.
"""

from __future__ import annotations

import csv
import io
import math

import numpy as np
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area
from pydantic import Field

from survey_mass.constants import OPTICAL_APERTURE, OPTICAL_GRID, SDSS_BANDS, SDSS_PIXEL
from survey_mass.sources.archive import (
    ArchiveFetcher,
    RecentItems,
    ServiceConfig,
    celestial_wcs_of,
    cutout_grid,
    image_hdul,
    open_fits_bytes,
)
from survey_mass.sources.base import Cutout, CutoutError, Target


class SDSSConfig(ServiceConfig):
    """``[source.real.sdss]``: where SDSS is asked and how the optical cutouts are cut."""

    skyserver_url: str = Field(
        "https://skyserver.sdss.org/dr17/en/tools/search/x_results.aspx",
        description="SkyServer SQL search endpoint (POST cmd=SQL, format=csv)",
    )
    frames_url: str = Field(
        "https://data.sdss.org/sas/dr17/eboss/photoObj/frames",
        description="SAS folder of corrected frames: {frames_url}/{rerun}/{run}/{camcol}/frame-...",
    )
    oversample: float = Field(
        2.0, ge=1.0, le=8.0, description="cutout pixels per model-grid pixel (before margin)"
    )
    margin: float = Field(
        0.1, ge=0.0, le=1.0, description="extra width beyond the aperture, as a fraction"
    )
    max_fields: int = Field(24, ge=1, description="refuse targets that need more fields than this")
    frame_memory: int = Field(16, ge=0, description="decoded frames kept in memory per process")
    rate_per_s: float = Field(2.0, gt=0, description="SkyServer queries started per second")
    frames_rate_per_s: float = Field(
        10.0, gt=0, description="SAS frame downloads started per second"
    )


def field_query(ra: float, dec: float, radius_arcmin: float) -> str:
    """SQL for the distinct fields whose primary objects lie within ``radius_arcmin``."""
    return (
        "SELECT DISTINCT p.run, p.rerun, p.camcol, p.field "
        f"FROM dbo.fGetNearbyObjEq({ra:.7f}, {dec:.7f}, {radius_arcmin:.4f}) AS n "
        "JOIN PhotoPrimary AS p ON n.objID = p.objID "
        "ORDER BY p.run, p.camcol, p.field"
    )


def parse_fields(content: bytes) -> list[tuple[int, int, int, int]]:
    """SkyServer's CSV (``#Table1`` then a header line) -> [(run, rerun, camcol, field)].

    An answer that is not that CSV (an HTML error page, an SQL error) is a server error.
    """
    text = content.decode("utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines or "error" in text[:2000].lower() and "run" not in lines[0].lower():
        raise CutoutError("server_error", f"SkyServer answered with no table: {text[:200]!r}")
    header = [h.strip().lower() for h in lines[0].split(",")]
    needed = ["run", "rerun", "camcol", "field"]
    if any(n not in header for n in needed):
        raise CutoutError("server_error", f"SkyServer table lacks {needed}: header {header}")
    cols = [header.index(n) for n in needed]
    fields = []
    for row in csv.reader(io.StringIO("\n".join(lines[1:]))):
        try:
            fields.append(tuple(int(row[c]) for c in cols))
        except (ValueError, IndexError) as err:
            raise CutoutError("server_error", f"SkyServer row {row!r} is not a field") from err
    return sorted(set(fields))


def frame_url(base: str, band: str, run: int, rerun: int, camcol: int, field: int) -> str:
    return (
        f"{base.rstrip('/')}/{rerun}/{run}/{camcol}/"
        f"frame-{band}-{run:06d}-{camcol}-{field:04d}.fits.bz2"
    )


def decode_frame(content: bytes, what: str) -> tuple[np.ndarray, WCS]:
    """A corrected frame -> (image in nanomaggies, native byte order; its celestial WCS)."""
    hdul = open_fits_bytes(content, what)
    hdu = hdul[0]
    if hdu.data is None or hdu.data.ndim != 2:
        raise CutoutError("bad_fits", f"{what}: primary HDU holds no 2D image")
    wcs = celestial_wcs_of(hdu.header, what)
    return np.asarray(hdu.data, dtype=np.float32), wcs


def bin_frame(
    data: np.ndarray, wcs_in: WCS, wcs_out: WCS, npix: int, sb_sum: np.ndarray, w_sum: np.ndarray
) -> bool:
    """Add a frame's surface brightness into the output accumulators (flat, ``npix**2`` long).

    Each input pixel's centre is mapped onto the output grid and shared among the four nearest
    output pixels with bilinear (cloud-in-cell) weights; ``sb_sum`` gathers weighted surface
    brightness, ``w_sum`` the weights, so ``sb_sum / w_sum`` is the mean surface brightness of an
    output pixel, averaged over overlapping frames. Only the part of the frame that can overlap
    the output is transformed. Input pixels coarser than output ones are split k x k first.
    Returns whether anything landed.
    """
    ny, nx = data.shape
    t = np.linspace(-0.5, npix - 0.5, 17)
    edge = np.concatenate
    bx = edge([t, t, np.full_like(t, -0.5), np.full_like(t, npix - 0.5)])
    by = edge([np.full_like(t, -0.5), np.full_like(t, npix - 0.5), t, t])
    ix, iy = wcs_in.world_to_pixel_values(*wcs_out.pixel_to_world_values(bx, by))
    if not (np.all(np.isfinite(ix)) and np.all(np.isfinite(iy))):
        x0, x1, y0, y1 = 0, nx, 0, ny
    else:
        x0 = max(0, int(math.floor(ix.min())) - 1)
        x1 = min(nx, int(math.ceil(ix.max())) + 2)
        y0 = max(0, int(math.floor(iy.min())) - 1)
        y1 = min(ny, int(math.ceil(iy.max())) + 2)
    if x0 >= x1 or y0 >= y1:
        return False
    values = data[y0:y1, x0:x1].ravel().astype(np.float64)
    finite = np.isfinite(values)
    values = np.where(finite, values, 0.0) / proj_plane_pixel_area(wcs_in)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    ratio = proj_plane_pixel_area(wcs_in) / proj_plane_pixel_area(wcs_out)
    k = max(1, math.ceil(math.sqrt(ratio) - 1e-6))
    offsets = (np.arange(k) + 0.5) / k - 0.5
    landed = False
    size = npix * npix
    for dy in offsets:
        for dx in offsets:
            world = wcs_in.pixel_to_world_values(xx.ravel() + dx, yy.ravel() + dy)
            ox, oy = wcs_out.world_to_pixel_values(*world)
            i0, j0 = np.floor(ox), np.floor(oy)
            fx, fy = ox - i0, oy - j0
            for di, dj, w in (
                (0, 0, (1 - fx) * (1 - fy)),
                (1, 0, fx * (1 - fy)),
                (0, 1, (1 - fx) * fy),
                (1, 1, fx * fy),
            ):
                i, j = i0 + di, j0 + dj
                ok = (i >= 0) & (i < npix) & (j >= 0) & (j < npix) & finite & (w > 0)
                if not ok.any():
                    continue
                flat = (j[ok] * npix + i[ok]).astype(np.int64)
                sb_sum += np.bincount(flat, weights=w[ok] * values[ok], minlength=size)
                w_sum += np.bincount(flat, weights=w[ok], minlength=size)
                landed = True
    return landed


class SDSSFetcher(ArchiveFetcher):
    """Optical cutouts (5, ny, nx) in nanomaggies from SDSS corrected frames."""

    name = "sdss"
    instrument = "optical"
    config_class = SDSSConfig
    config: SDSSConfig

    def __init__(self, config: SDSSConfig | None = None, **kwargs):
        super().__init__(config, **kwargs)
        # SkyServer (a database) and the SAS (static files) are throttled separately
        self.sas = self.add_service(
            self.config.model_copy(update={"rate_per_s": self.config.frames_rate_per_s})
        )
        self._frames = RecentItems(self.config.frame_memory)

    # -- steps -----------------------------------------------------------------------------------

    def fields(
        self, ra: float, dec: float, radius_arcmin: float
    ) -> list[tuple[int, int, int, int]]:
        sql = field_query(ra, dec, radius_arcmin)
        return self.service.fetch(
            "POST",
            self.config.skyserver_url,
            data={"cmd": sql, "format": "csv", "searchtool": "SQL"},
            parse=parse_fields,
            suffix=".csv",
            what=f"SkyServer field search at ({ra:.4f}, {dec:.4f})",
        )

    def frame(
        self, band: str, run: int, rerun: int, camcol: int, field: int
    ) -> tuple[np.ndarray, WCS]:
        url = frame_url(self.config.frames_url, band, run, rerun, camcol, field)
        frame = self._frames.get(url)
        if frame is not None:
            return frame
        try:
            frame = self.sas.fetch(
                "GET",
                url,
                parse=lambda b: decode_frame(b, url),
                suffix=".fits.bz2",
                what=f"SDSS frame {url.rsplit('/', 1)[-1]}",
            )
        except CutoutError as err:
            if err.reason == "not_found":
                raise CutoutError(
                    "no_coverage",
                    f"SkyServer lists a field whose frame is missing on the SAS: {url}",
                ) from err
            raise
        self._frames.put(url, frame)
        return frame

    def fetch_one(self, target: Target, instrument: str) -> Cutout:
        cfg = self.config
        wcs, npix = cutout_grid(
            target, OPTICAL_APERTURE, OPTICAL_GRID, SDSS_PIXEL, cfg.oversample, cfg.margin
        )
        half_diagonal = abs(wcs.wcs.cdelt[0]) * npix / math.sqrt(2) * 60.0
        fields = self.fields(target.ra, target.dec, half_diagonal)
        if not fields:
            raise CutoutError(
                "no_coverage",
                f"no SDSS imaging within {half_diagonal:.1f}' of "
                f"({target.ra:.5f}, {target.dec:+.5f})",
            )
        if len(fields) > cfg.max_fields:
            raise CutoutError(
                "aperture_too_large",
                f"{len(fields)} SDSS fields needed at z="
                f"{target.z:.3f} (max_fields = {cfg.max_fields})",
            )
        cube = np.full((len(SDSS_BANDS), npix, npix), np.nan, dtype=np.float32)
        area_out = proj_plane_pixel_area(wcs)
        centre = slice(npix // 2 - 1, npix // 2 + 1)
        uncovered, coverage, used = [], {}, set()
        for b, band in enumerate(SDSS_BANDS):
            sb_sum = np.zeros(npix * npix)
            w_sum = np.zeros(npix * npix)
            for run, rerun, camcol, field in fields:
                data, frame_wcs = self.frame(band, run, rerun, camcol, field)
                # a frame may be in use by another thread: wcslib structures are not shared
                if bin_frame(data, frame_wcs.deepcopy(), wcs, npix, sb_sum, w_sum):
                    used.add((run, rerun, camcol, field))
            w_sum = w_sum.reshape(npix, npix)
            with np.errstate(invalid="ignore", divide="ignore"):
                image = sb_sum.reshape(npix, npix) / w_sum * area_out
            image[w_sum == 0] = np.nan
            cube[b] = image
            coverage[band] = float((w_sum > 0).mean())
            if not (w_sum[centre, centre] > 0).all():
                uncovered.append(band)
        if uncovered:
            raise CutoutError(
                "no_coverage",
                f"the target's centre is not imaged in band(s) "
                f"{''.join(uncovered)} by fields {fields}",
            )
        hdul = image_hdul(
            cube,
            wcs,
            {
                "TELESCOP": "SDSS",
                "BANDS": ("".join(SDSS_BANDS), "band order of axis 3 (band-first cube)"),
                "BUNIT": ("nanomaggy", "per cutout pixel; 1 nmgy = 3.631e-6 Jy"),
                "NFRAMES": (len(used), "SDSS fields mosaicked"),
                "COVERAGE": (min(coverage.values()), "fraction of pixels imaged (worst band)"),
                "OBJECT": target.target_id,
            },
        )
        meta = {"fields": sorted(used), "coverage": coverage, "source": self.name}
        return Cutout(target, instrument, hdul, meta)
