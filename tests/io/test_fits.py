"""FITS I/O: round trips of forward-model cubes and maps, WCS and unit handling checked
against astropy directly, and one test per documented bad input."""

import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

import jaxgrad as jg
from jaxgrad.io import fits as jf

LINES = ("OII_3727_30", "NeIII_3870", "Hb", "OIII_5008")
Z = 5.0
C_UM_S = 2.99792458e14  # speed of light, µm/s
SR_PER_ARCSEC2 = (np.pi / 180.0 / 3600.0) ** 2


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def mock(tmp_path_factory):
    """A z = 5 forward-model cube in per-line windows, written and read back."""
    spec = jg.ModelSpec(lines=LINES, calibration="sanders24", ny=24, nx=24, pixel_scale=0.05)
    spec = jg.line_windows(spec, Z, n_chan=16)
    params = jg.make_params(logoh0=8.0, grad_z=-0.05, r_e=1.5, psf_fwhm=0.1, z=Z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jg.calibrations.UnverifiedCalibrationWarning)
        cube = np.asarray(jg.cube(params, spec))
    err = np.full(cube.shape, 1e-3 * cube.max(), cube.dtype)
    path = tmp_path_factory.mktemp("cube") / "mock_s3d.fits"
    jf.write_cube(path, cube, spec, Z, err=err, ra=150.1, dec=2.2)
    return dict(spec=spec, params=params, cube=cube, err=err, path=path, data=jf.read_cube(path))


def _s3d(path, shape=(5, 4, 3), ctype3="WAVE", cunit3="um", crval3=2.9, cdelt3=1e-3, bunit=jf.BUNIT_INTERNAL,
         data=None, err=None, dq=True, scale_arcsec=0.1):
    """A small NIRSpec-s3d-like file written with astropy directly."""
    n, ny, nx = shape
    sci = np.ones(shape) if data is None else data
    e = np.full(shape, 0.1) if err is None else err
    h = fits.Header()
    for k, v in dict(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CUNIT1="deg", CUNIT2="deg",
                     CRPIX1=(nx + 1) / 2, CRPIX2=(ny + 1) / 2, CRVAL1=53.1, CRVAL2=-27.8,
                     CDELT1=-scale_arcsec / 3600, CDELT2=scale_arcsec / 3600).items():
        h[k] = v
    if ctype3 is not None:
        h["CTYPE3"] = ctype3
        h["CUNIT3"] = cunit3
        h["CRPIX3"] = 1.0
        h["CRVAL3"] = crval3
        h["CDELT3"] = cdelt3
    if bunit:
        h["BUNIT"] = bunit
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(sci, header=h, name="SCI"),
            fits.ImageHDU(e, header=h, name="ERR")]
    if dq:
        hdus.append(fits.ImageHDU(np.zeros(np.shape(sci), np.uint32), header=h, name="DQ"))
    fits.HDUList(hdus).writeto(path)
    return path


# ----------------------------------------------------------------------------- cubes
def test_cube_round_trip_is_exact(mock):
    d, spec = mock["data"], mock["spec"]
    np.testing.assert_array_equal(d.flux, mock["cube"])
    np.testing.assert_array_equal(d.err, mock["err"])
    assert d.flux.dtype == mock["cube"].dtype
    assert d.mask.all()
    # non-uniform (windowed, constant-velocity) channels go through the WAVELENGTH table
    np.testing.assert_array_equal(d.wavelength_um, spec.channel_centers())
    np.testing.assert_array_equal(d.channel_width_um, spec.channel_widths())
    assert d.pixel_scale_arcsec == pytest.approx(spec.pixel_scale, rel=1e-12)
    assert d.flux_unit == jf.INTERNAL_FLUX_UNIT
    assert d.primary_header["REDSHIFT"] == Z
    assert tuple(d.primary_header["LINES"].split(",")) == LINES
    with fits.open(mock["path"]) as h:
        assert [x.name for x in h] == ["PRIMARY", "SCI", "ERR", "DQ", "WAVELENGTH"]
        w = WCS(h["SCI"].header)
        # the celestial WCS, read by astropy itself: centre, scale, East to the left
        c = w.celestial.pixel_to_world((24 - 1) / 2, (24 - 1) / 2)
        assert c.ra.deg == pytest.approx(150.1, abs=1e-12) and c.dec.deg == pytest.approx(2.2, abs=1e-12)
        c1 = w.celestial.pixel_to_world((24 - 1) / 2 + 1, (24 - 1) / 2)  # one pixel to +x
        assert c1.ra.deg < c.ra.deg
        assert c.separation(c1).arcsec == pytest.approx(0.05, rel=1e-6)
        assert h["SCI"].header["CUNIT3"] == "um" and h["SCI"].header["CTYPE3"] == "WAVE"


def test_cube_integrates_to_line_maps(mock):
    """The read cube, integrated over each line's window, gives the model's line maps."""
    # TODO(issue 8): jaxgrad.pipeline.measure_cube does not exist yet. Until it does, the
    # fast check is that the cube read back integrates to jg.line_maps of the same
    # parameters; the fit itself is test_cube_read_back_is_fitted_by_the_pipeline (slow,
    # via pipeline.batched.batched_gradient_from_cubes). Switch both to measure_cube.
    d, spec = mock["data"], mock["spec"]
    maps = np.asarray(jg.line_maps(mock["params"], spec))
    start = 0
    for names, edges in spec.windows:
        n = len(edges) - 1
        (name,) = names  # one line per window at these separations
        integrated = d.flux[start:start + n].sum(axis=0, dtype=np.float64)
        ref = maps[LINES.index(name)]
        np.testing.assert_allclose(integrated, ref, rtol=1e-4, atol=1e-4 * ref.max(), err_msg=name)
        # the window's wavelengths bracket the redshifted line
        lam = jg.lines.get(name).wavelength * (1 + Z) / 1e4
        assert d.wavelength_um[start] < lam < d.wavelength_um[start + n - 1]
        start += n
    assert start == d.flux.shape[0]


@pytest.mark.slow
def test_cube_read_back_is_fitted_by_the_pipeline(mock, tmp_path):
    """Write a noisy mock cube, read it, measure it with the observer pipeline (~25 s)."""
    batched = pytest.importorskip("jaxgrad.pipeline.batched")  # the pipeline is being written
    spec, cube = mock["spec"], mock["cube"]
    sigma = 1e-3 * cube.max()
    noisy = cube + sigma * np.random.default_rng(0).normal(size=cube.shape).astype(cube.dtype)
    path = jf.write_cube(tmp_path / "noisy.fits", noisy, spec, Z, err=np.full(cube.shape, sigma, cube.dtype))
    d = jf.read_cube(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = batched.batched_gradient_from_cubes(d.flux[None], d.err[None], d.wavelength_um, LINES,
                                                d.pixel_scale_arcsec, Z, 0.1)
    truth = float(mock["params"].grad_z)
    assert abs(float(r.grad[0]) - truth) < max(0.02, 3 * float(r.grad_err[0]))


def test_uniform_channels_use_the_linear_wcs(tmp_path):
    edges = jg.instrument.grid.linear_channel_edges(2.90, 2.95, 8)
    spec = jg.ModelSpec(lines=("Hb", "OIII_5008"), ny=6, nx=5, pixel_scale=0.1, channel_edges=edges,
                        range_check="off")
    cube = np.random.default_rng(0).normal(size=(8, 6, 5))
    path = jf.write_cube(tmp_path / "lin.fits", cube, spec, 4.9, err=np.ones_like(cube), ra=10.0, dec=-5.0)
    with fits.open(path) as h:
        assert "WAVELENGTH" not in h
        ref = WCS(h["SCI"].header).spectral.pixel_to_world(np.arange(8)).to_value(u.um)
    d = jf.read_cube(path)
    np.testing.assert_allclose(d.wavelength_um, ref, rtol=1e-14)
    np.testing.assert_allclose(d.wavelength_um, spec.channel_centers(), rtol=1e-13)
    np.testing.assert_allclose(d.channel_width_um, spec.channel_widths(), rtol=1e-9)
    np.testing.assert_array_equal(d.flux, cube)
    assert d.pixel_scale_arcsec == pytest.approx(0.1, rel=1e-12)


def test_nirspec_mjy_per_sr_is_converted_to_internal_flux_per_channel(tmp_path):
    rng = np.random.default_rng(1)
    fnu = rng.uniform(0.5, 2.0, size=(5, 4, 3))  # MJy/sr
    path = _s3d(tmp_path / "s3d.fits", bunit="MJy/sr", data=fnu, err=0.1 * fnu, crval3=2.9, cdelt3=4e-4)
    d = jf.read_cube(path)
    lam = 2.9 + 4e-4 * np.arange(5)
    # independent reference: f_ν [erg/s/cm²/Hz/sr] × Ω_pix [sr] × Δν [Hz] / 1e-18
    omega = 0.1**2 * SR_PER_ARCSEC2
    dnu = C_UM_S * 4e-4 / lam**2
    ref = fnu * 1e6 * 1e-23 * omega * dnu[:, None, None] / 1e-18
    np.testing.assert_allclose(d.wavelength_um, lam, rtol=1e-13)
    np.testing.assert_allclose(d.flux, ref, rtol=1e-10)
    np.testing.assert_allclose(d.err, 0.1 * ref, rtol=1e-10)
    assert d.native_unit == u.MJy / u.sr and d.flux_unit == jf.INTERNAL_FLUX_UNIT
    native = jf.read_cube(path, units="native")
    np.testing.assert_array_equal(native.flux, fnu)


def test_frequency_axis_is_flipped_to_increasing_wavelength(tmp_path):
    data = np.arange(5.0)[:, None, None] * np.ones((5, 4, 3)) + 1.0
    nu0, dnu = 1.0e14, 1.0e11  # Hz
    path = _s3d(tmp_path / "freq.fits", ctype3="FREQ", cunit3="Hz", crval3=nu0, cdelt3=dnu, data=data,
                bunit="1e-18 erg / (s cm2)")
    d = jf.read_cube(path)
    lam = C_UM_S / (nu0 + dnu * np.arange(5))
    np.testing.assert_allclose(d.wavelength_um, lam[::-1], rtol=1e-12)
    np.testing.assert_allclose(d.channel_width_um, (C_UM_S * dnu / (nu0 + dnu * np.arange(5)) ** 2)[::-1], rtol=1e-6)
    np.testing.assert_array_equal(d.flux[:, 0, 0], data[::-1, 0, 0])


def test_dq_and_nonfinite_pixels_are_masked(tmp_path, mock):
    spec = mock["spec"]
    cube = mock["cube"].copy()
    cube[3, 5, 6] = np.nan
    mask = np.ones(cube.shape, bool)
    mask[7, 1, 2] = False
    path = jf.write_cube(tmp_path / "m.fits", cube, spec, Z, err=mock["err"], mask=mask)
    d = jf.read_cube(path)
    assert not d.mask[3, 5, 6] and not d.mask[7, 1, 2] and d.mask.sum() == d.mask.size - 2
    assert jf.read_cube(path, dq=None).mask[7, 1, 2]  # DQ ignored
    # no errors given: ERR is NaN and nothing is usable
    d2 = jf.read_cube(jf.write_cube(tmp_path / "noerr.fits", mock["cube"], spec, Z))
    assert not d2.mask.any() and np.isnan(d2.err).all()


# ----------------------------------------------------------------------------- cube errors
def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not found") as ei:
        jf.read_cube(tmp_path / "nope.fits")
    assert isinstance(ei.value, FileNotFoundError)


def test_missing_extension_lists_those_present(tmp_path):
    path = _s3d(tmp_path / "a.fits", dq=False)
    with pytest.raises(ValueError, match=r"no DQ \(data quality\) extension 'DQ'.*SCI.*ERR.*dq=None"):
        jf.read_cube(path)
    with pytest.raises(ValueError, match="no SCI .*extension 'FLUX'.*PRIMARY.*SCI.*ERR"):
        jf.read_cube(path, sci="FLUX", dq=None)
    assert jf.read_cube(path, dq=None).mask.all()


def test_no_spectral_wcs(tmp_path):
    with pytest.raises(ValueError, match="no spectral WCS.*CTYPE3 = '\\(missing\\)'.*WAVE.*FREQ"):
        jf.read_cube(_s3d(tmp_path / "a.fits", ctype3=None))
    with pytest.raises(ValueError, match="no spectral WCS.*'VRAD'"):
        jf.read_cube(_s3d(tmp_path / "b.fits", ctype3="VRAD", cunit3="m/s"))
    with pytest.raises(ValueError, match="air-wavelength"):
        jf.read_cube(_s3d(tmp_path / "c.fits", ctype3="AWAV"))


def test_shape_mismatch(tmp_path):
    path = _s3d(tmp_path / "a.fits", err=np.ones((5, 4, 2)), dq=False)
    with pytest.raises(ValueError, match=r"shape mismatch: SCI is \(5, 4, 3\) but ERR is \(5, 4, 2\)"):
        jf.read_cube(path, dq=None)


def test_nonpositive_error_on_good_pixels(tmp_path):
    e = np.full((5, 4, 3), 0.1)
    e[2, 1, 1] = 0.0
    path = _s3d(tmp_path / "a.fits", err=e)
    with pytest.raises(ValueError, match=r"1 good pixel\(s\).*error <= 0.*\(2, 1, 1\)"):
        jf.read_cube(path)
    d = jf.read_cube(path, on_bad_err="mask")
    assert not d.mask[2, 1, 1] and d.mask.sum() == d.mask.size - 1


def test_bad_bunit_and_missing_bunit(tmp_path):
    with pytest.raises(ValueError, match="not a unit astropy can parse"):
        jf.read_cube(_s3d(tmp_path / "a.fits", bunit="bananas per fortnight"))
    with pytest.raises(ValueError, match="cannot convert"):
        jf.read_cube(_s3d(tmp_path / "b.fits", bunit="K"))
    with pytest.warns(UserWarning, match="no BUNIT"):
        jf.read_cube(_s3d(tmp_path / "c.fits", bunit=None))


def test_write_cube_rejects_bad_input(tmp_path, mock):
    spec, cube = mock["spec"], mock["cube"]
    with pytest.raises(ValueError, match="cube must have shape"):
        jf.write_cube(tmp_path / "a.fits", cube[:, :-1], spec, Z)
    with pytest.raises(ValueError, match="err must be > 0"):
        jf.write_cube(tmp_path / "b.fits", cube, spec, Z, err=np.zeros_like(cube))
    with pytest.raises(ValueError, match="one value per channel"):
        jf.write_cube(tmp_path / "c.fits", cube, spec, Z, wavelength_um=np.linspace(2, 3, 5))


# ----------------------------------------------------------------------------- maps, psf
def test_maps_round_trip_single_file(tmp_path):
    rng = np.random.default_rng(2)
    maps = rng.uniform(1, 2, size=(2, 6, 5)).astype(np.float32)
    errs = (0.1 * maps).astype(np.float32)
    path = jf.write_maps(tmp_path / "maps.fits", maps, errs, ("Hb", "OIII_5008"), 0.06 * u.arcsec)
    d = jf.read_maps(path, ("OIII_5008", "Hb"))
    np.testing.assert_array_equal(d.flux, maps[::-1])
    np.testing.assert_array_equal(d.err, errs[::-1])
    assert d.lines == ("OIII_5008", "Hb") and d.mask.all()
    assert d.pixel_scale_arcsec == pytest.approx(0.06, rel=1e-12)


def _map_file(path, data, scale_arcsec=0.06, bunit=None):
    h = fits.Header()
    for k, v in dict(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRPIX1=1.0, CRPIX2=1.0, CRVAL1=1.0,
                     CRVAL2=1.0, CDELT1=-scale_arcsec / 3600, CDELT2=scale_arcsec / 3600).items():
        h[k] = v
    if bunit:
        h["BUNIT"] = bunit
    fits.PrimaryHDU(data, header=h).writeto(path)
    return path


def test_maps_from_separate_files_with_surface_brightness_units(tmp_path):
    f = np.full((4, 4), 2.0)
    files = {"Ha": (_map_file(tmp_path / "ha.fits", f, bunit="1e-20 erg/(s cm2 arcsec2)"),
                    _map_file(tmp_path / "ha_e.fits", 0.1 * f, bunit="1e-20 erg/(s cm2 arcsec2)"))}
    d = jf.read_maps(files, ["Ha"])
    # 2e-20 erg/s/cm²/arcsec² × (0.06″)² per pixel, in 1e-18 erg/s/cm²
    np.testing.assert_allclose(d.flux[0], 2e-20 * 0.06**2 / 1e-18, rtol=1e-10)
    np.testing.assert_allclose(d.err[0], 0.1 * 2e-20 * 0.06**2 / 1e-18, rtol=1e-10)


def test_maps_errors(tmp_path):
    path = jf.write_maps(tmp_path / "maps.fits", np.ones((1, 3, 3)), np.ones((1, 3, 3)), ["Hb"], 0.1)
    with pytest.raises(ValueError, match="unknown line 'OIII5007'; known lines are: .*OIII_5008"):
        jf.read_maps(path, ["OIII5007"])
    with pytest.raises(ValueError, match="no OIII_5008 flux map extension 'OIII_5008'.*Hb_ERR"):
        jf.read_maps(path, ["OIII_5008"])
    with pytest.raises(ValueError, match="not found"):
        jf.read_maps(tmp_path / "none.fits", ["Hb"])
    files = {"Hb": (_map_file(tmp_path / "a.fits", np.ones((3, 3))), _map_file(tmp_path / "b.fits", np.ones((3, 4))))}
    with pytest.raises(ValueError, match="shape mismatch"):
        jf.read_maps(files, ["Hb"], units="native")
    files = {"Hb": (_map_file(tmp_path / "c.fits", np.ones((3, 3))), _map_file(tmp_path / "d.fits", np.zeros((3, 3))))}
    with pytest.raises(ValueError, match="error <= 0"):
        jf.read_maps(files, ["Hb"], units="native")
    files = {"Hb": (tmp_path / "c.fits", tmp_path / "c.fits"),
             "Ha": (_map_file(tmp_path / "e.fits", np.ones((3, 3)), 0.2), tmp_path / "e.fits")}
    with pytest.raises(ValueError, match="different pixel scales"):
        jf.read_maps(files, ["Hb", "Ha"], units="native")
    with pytest.raises(ValueError, match="unknown line 'Halpha'"):
        jf.read_maps({"Halpha": files["Ha"]}, ["Ha"])


def test_read_psf(tmp_path):
    y, x = np.mgrid[-3:4, -2:3]
    img = np.exp(-(x**2 + y**2) / 2.0)
    fits.PrimaryHDU(3.0 * img).writeto(tmp_path / "psf.fits")
    psf = jf.read_psf(tmp_path / "psf.fits")
    np.testing.assert_allclose(psf, img / img.sum(), rtol=1e-12)
    fits.PrimaryHDU(np.ones((4, 5))).writeto(tmp_path / "even.fits")
    with pytest.raises(ValueError, match="odd sizes"):
        jf.read_psf(tmp_path / "even.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(-img, name="PSF")]).writeto(tmp_path / "neg.fits")
    with pytest.raises(ValueError, match="non-negative"):
        jf.read_psf(tmp_path / "neg.fits", ext="PSF")
    with pytest.raises(ValueError, match="has no data"):
        jf.read_psf(tmp_path / "neg.fits")


# ----------------------------------------------------------------------------- units, tables
def test_unit_helpers():
    assert jf.as_arcsec(0.1) == 0.1
    assert jf.as_arcsec(100 * u.mas) == pytest.approx(0.1, rel=1e-14)
    np.testing.assert_allclose(jf.as_arcsec([1.0, 2.0] * u.arcmin), [60.0, 120.0])
    assert jf.as_um(2.9e4 * u.AA) == pytest.approx(2.9, rel=1e-14)
    assert jf.as_um(C_UM_S / 3.0 * u.Hz) == pytest.approx(3.0, rel=1e-14)
    with pytest.raises(ValueError, match="expected an angle"):
        jf.as_arcsec(1 * u.m)
    with pytest.raises(ValueError, match="expected a wavelength"):
        jf.as_um(1 * u.s)
    # f_λ per pixel: 1e-18 erg/s/cm²/µm × 0.5 µm channel = 0.5 internal units
    assert jf.flux_conversion("1e-18 erg/(s cm2 um)", 0.1, [3.0], [0.5])[0] == pytest.approx(0.5, rel=1e-12)
    # f_ν per pixel, 1 µJy at 3 µm over 1e-3 µm
    ref = 1e-29 * C_UM_S * 1e-3 / 9.0 / 1e-18
    assert jf.flux_conversion(u.uJy, 0.1, [3.0], [1e-3])[0] == pytest.approx(ref, rel=1e-12)
    with pytest.raises(ValueError, match="flux densities need a spectral axis"):
        jf.flux_conversion(u.MJy / u.sr, 0.1)


def test_write_table_and_save_idata(tmp_path):
    import arviz as az

    rows = {"r_kpc": np.array([0.5, 1.0, 1.5]) * u.kpc, "logoh": [8.1, 8.0, 7.9], "id": ["a", "b", "c"]}
    path = jf.write_table(tmp_path / "t.fits", rows, meta={"CALIB": "sanders24"})
    t = Table.read(path)
    assert t["r_kpc"].unit == u.kpc
    np.testing.assert_array_equal(t["logoh"], [8.1, 8.0, 7.9])
    assert list(t["id"]) == ["a", "b", "c"] and t.meta["CALIB"] == "sanders24"
    with pytest.raises(ValueError, match="same length"):
        jf.write_table(tmp_path / "u.fits", {"a": [1, 2], "b": [1]})
    draws = np.random.default_rng(0).normal(size=(2, 20))
    idata = az.from_dict(posterior={"grad_z": draws})
    p = jf.save_idata(idata, tmp_path / "post.nc")
    back = az.from_netcdf(p)
    np.testing.assert_array_equal(back.posterior["grad_z"].values, draws)
    with pytest.raises(ValueError, match="InferenceData"):
        jf.save_idata({"grad_z": draws}, tmp_path / "x.nc")


def test_error_extension_with_its_own_bunit(tmp_path):
    """An ERR extension's BUNIT is used for the errors (they were scaled with SCI's unit)."""
    from astropy.io import fits

    from jaxgrad import io

    lines = ("Hb", "OIII_5008")
    f = np.ones((2, 6, 6))
    e = np.full((2, 6, 6), 0.1)
    io.write_maps(tmp_path / "m.fits", f, e, lines, 0.1)
    with fits.open(tmp_path / "m.fits", mode="update") as h:
        for n in lines:
            h[n + "_ERR"].header["BUNIT"] = "1e-17 erg / (s cm2)"  # errors 10x the flux unit
    md = io.read_maps(tmp_path / "m.fits", lines)
    np.testing.assert_allclose(md.flux, 1.0)
    np.testing.assert_allclose(md.err, 1.0)  # 0.1 x 1e-17 = 1.0 x 1e-18
    import jaxgrad as jg

    spec = jg.default_channels(jg.ModelSpec(lines=lines, calibration="sanders25", ny=6, nx=6, pixel_scale=0.1),
                               z=2.0, dv_kms=100.0)
    cube = np.ones((spec.n_chan, 6, 6))
    io.write_cube(tmp_path / "c.fits", cube, spec, 2.0, err=np.full(cube.shape, 0.1))
    with fits.open(tmp_path / "c.fits", mode="update") as h:
        h["ERR"].header["BUNIT"] = "1e-17 erg / (s cm2)"
    cd = io.read_cube(tmp_path / "c.fits", dq=None)
    np.testing.assert_allclose(cd.err / cd.flux, 1.0, rtol=1e-6)


def test_written_files_carry_checksums_and_damage_is_caught(tmp_path):
    """jaxgrad writes CHECKSUM/DATASUM and verifies them on read: one flipped data byte is a
    clear error naming the file (it was read as a silently different map); a truncated
    file too."""
    from astropy.io import fits

    from jaxgrad import io

    lines = ("Hb", "OIII_5008")
    f = np.ones((2, 6, 6))
    io.write_maps(tmp_path / "m.fits", f, np.full(f.shape, 0.1), lines, 0.1)
    with fits.open(tmp_path / "m.fits") as h:
        assert "CHECKSUM" in h["Hb"].header and "DATASUM" in h["Hb"].header
    io.read_maps(tmp_path / "m.fits", lines)  # intact: fine
    blob = bytearray((tmp_path / "m.fits").read_bytes())
    with fits.open(tmp_path / "m.fits") as h:
        off = h.fileinfo(h.index_of("Hb"))["datLoc"]
    blob[off + 10] ^= 0xFF
    (tmp_path / "bad.fits").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="bad.fits.*checksum"):
        io.read_maps(tmp_path / "bad.fits", lines)
    (tmp_path / "short.fits").write_bytes(bytes(blob[: len(blob) // 2]))
    with pytest.raises(ValueError, match="short.fits"):
        io.read_maps(tmp_path / "short.fits", lines)


@pytest.mark.parametrize("damage,needle", [("nan", "must be finite and > 0"), ("dup", "strictly increasing"),
                                           ("width", "widths must be finite and > 0")])
def test_bad_wavelength_tables_are_refused(mock, tmp_path, damage, needle):
    """A WAVELENGTH table with NaN, duplicate channels or negative widths was accepted."""
    blob = fits.open(mock["path"])
    tab = blob["WAVELENGTH"].data
    if damage == "nan":
        tab["WAVELENGTH"][3] = np.nan
    elif damage == "dup":
        tab["WAVELENGTH"][4] = tab["WAVELENGTH"][3]
    else:
        tab["WIDTH"][2] = -abs(tab["WIDTH"][2])
    path = tmp_path / f"{damage}.fits"
    blob.writeto(path, checksum=True)  # fresh checksums: the table itself is what is wrong
    blob.close()
    with pytest.raises(ValueError, match=needle):
        jf.read_cube(path)


def test_a_folder_given_as_a_fits_file(tmp_path):
    with pytest.raises(ValueError, match="is a folder, not a FITS file"):
        jf.read_cube(tmp_path)
