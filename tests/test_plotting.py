import numpy as np

from jaxgrad import plotting


def test_plots_render(tmp_path):
    r = np.linspace(0.3, 3, 6)
    figs = [
        plotting.plot_line_maps(np.random.default_rng(0).random((2, 8, 8)), ("Hb", "OIII_5008"), pixel_scale=0.1),
        plotting.plot_ratio_profiles(r, np.ones((2, 6)), np.zeros((2, 6)), ["R3", "O32"]),
        plotting.plot_metallicity_profile(r, 8 - 0.05 * r, 0.02 + 0 * r, fits={"truth": (8.0, -0.05)}),
        plotting.plot_diagnostic_profiles(r, {"R3": 8 - 0.05 * r, "O32": 8.01 - 0.05 * r}, fits={"I": (8, -0.05)}),
        plotting.plot_population(np.arange(5.0), np.arange(5.0) * 0.01, yerr=np.full((2, 5), 0.01),
                                 classes=["Disk", "Non-Disk", "Disk", "Disk", "Non-Disk"],
                                 tau={"tau": 1.0, "p": 0.01}),
    ]
    for i, f in enumerate(figs):
        f.savefig(tmp_path / f"{i}.png")
        assert (tmp_path / f"{i}.png").stat().st_size > 2000


def test_radial_profile_sums_match_total():
    img = np.random.default_rng(1).random((3, 10, 10))
    r = np.hypot(*np.meshgrid(np.arange(10) - 4.5, np.arange(10) - 4.5))
    prof = plotting.radial_profile(img, r, np.array([0.0, 2.0, 4.0, 100.0]))
    np.testing.assert_allclose(prof.sum(axis=-1), img.sum(axis=(1, 2)))


def test_plots_leave_backend_and_rcparams_alone(tmp_path):
    """Importing and calling a plot switches no backend and changes no global rcParams
    (notebooks showed none of their figures when it did)."""
    import matplotlib

    from jaxgrad import plotting

    backend = matplotlib.get_backend()
    before = dict(matplotlib.rcParams)
    fig = plotting.plot_metallicity_profile([1.0, 2.0, 3.0], [8.0, 7.9, 7.8], fits={"line": (8.1, -0.1)})
    assert fig.dpi == plotting.STYLE["figure.dpi"]  # the style is applied to jaxgrad's figure
    assert matplotlib.get_backend() == backend
    after = dict(matplotlib.rcParams)
    assert {k for k in before if before[k] != after[k]} == set()


def test_inference_plots_draw_into_a_given_axes():
    import matplotlib.pyplot as plt
    import numpy as np

    from jaxgrad.inference.plots import plot_corner

    fig, (a, b) = plt.subplots(1, 2)
    from types import SimpleNamespace

    from jaxgrad.inference import plots

    rng = np.random.default_rng(0)
    fit = SimpleNamespace(samples={"logoh0": rng.normal(8, 0.05, (2, 200)), "grad_z": rng.normal(-0.1, 0.01, (2, 200)),
                                   "r_e": rng.normal(2, 0.1, (2, 200))},
                          model=None, config={"name": "g"})
    out = plots.plot_profile(fit, binned=([1.0, 2.0], [7.9, 7.8], [0.05, 0.05]), ax=b)
    assert out is fig and len(b.lines) > 10 and not a.lines
    cf = plot_corner(fit.samples, truths={"grad_z": -0.1})
    assert len([x for x in cf.axes if x.get_visible()]) == 6  # 3 parameters: 3 + 3 panels
    plt.close("all")


def test_line_maps_have_colour_bars_with_units():
    import numpy as np

    from jaxgrad import plotting

    fig = plotting.plot_line_maps(np.ones((2, 8, 8)), ("Hb", "OIII_5008"), pixel_scale=0.1)
    labels = [a.get_ylabel() for a in fig.axes if a.get_ylabel().startswith("flux")]
    assert len(labels) == 2 and all("erg" in t and "pixel" in t for t in labels)
