"""The report (mixlaw_jax.report) on a small k = 3 table: files written, a self-contained HTML page whose every
figure is embedded and decodes as a non-empty image, and numbers that agree with the results written beside it."""

import base64
import html.parser
import io
import json
import re

import matplotlib.image
import numpy as np
import pytest
from test_cli import FAST, FAST_BOOT, HOLDOUT, small_table

import mixlaw_jax as mj
import mixlaw_jax.report as report_module
from mixlaw_jax.cli import main
from mixlaw_jax.report import build_report, split_holdout


class Page(html.parser.HTMLParser):
    """Every tag's attributes, and the text of the page."""

    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """`mixlaw report` with a held-out model size and a 3-replicate bootstrap (the settings of test_cli, whose
    compiled programs it reuses)."""
    folder = tmp_path_factory.mktemp("report")
    table = small_table(folder / "runs.csv")
    out = folder / "report"
    code = main(
        [
            "report",
            str(table),
            "--law",
            "additive",
            "--holdout",
            HOLDOUT,
            "--budget",
            "7e9,1.5e11",
            *FAST,
            *FAST_BOOT,
            "--out",
            str(out),
        ]
    )
    assert code == 0
    page = Page()
    page.feed((out / "index.html").read_text())
    return table, out, page


def test_report_writes_results_figures_and_page(report):
    _, out, _ = report
    assert mj.load_fit(out / "fit_additive.json").law == "additive"
    assert mj.load_bootstrap(out / "bootstrap_additive.json").n_replicates == 3
    path = mj.load_mixture(out / "mixture_additive.json")
    assert path.n[-1, -1] == 7e9 and path.d[-1, -1] == 1.5e11
    names = sorted(p.stem for p in (out / "figures").glob("*.png"))
    assert names == sorted(
        ["optimal_mixture"]
        + [f"{kind}_additive" for kind in ["predicted_vs_observed", "loss_curves", "mixture_path", "simplex"]]
    )


def test_every_figure_is_embedded_and_decodes_as_a_non_empty_image(report):
    _, out, page = report
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    assert len(images) == len(list((out / "figures").glob("*.png")))
    for attrs in images:
        prefix = "data:image/png;base64,"
        assert attrs["src"].startswith(prefix)
        png = base64.b64decode(attrs["src"][len(prefix) :], validate=True)
        assert png == (out / "figures" / f"{attrs['alt']}.png").read_bytes()
        pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0


def test_the_page_needs_no_external_resource(report):
    _, out, page = report
    for tag, attrs in page.tags:
        for key in ("src", "href", "data", "poster", "srcset"):
            value = attrs.get(key)
            assert value is None or value.startswith("data:") or value.startswith("#"), (tag, key, value)
        assert tag not in ("link", "script", "iframe", "object", "embed")
    text = (out / "index.html").read_text()
    assert "http://" not in text and "https://" not in text and "url(" not in text and "@import" not in text


def test_page_and_summary_report_the_fitted_scores(report):
    table, out, page = report
    summary = json.loads((out / "summary.json").read_text())
    runs = mj.load_runs(table, weights="weight_*", N="model_size", D="n_tokens", targets="x_loss")
    train, held = split_holdout(runs, HOLDOUT)
    text = " ".join(page.text)
    fit = mj.load_fit(out / "fit_additive.json")
    assert fit.settings.rows == train.n_rows == 120
    held_mre = fit.mre(held)["x_loss"]
    entry = summary["laws"]["additive"]
    assert entry["held_out_mre"]["x_loss"] == pytest.approx(held_mre)
    interval = entry["held_out_mre_interval"]["x_loss"]
    assert interval["mre"] == pytest.approx(held_mre) and interval["lo"] <= interval["hi"]
    assert f"{held_mre:.3f} [{interval['lo']:.3f}, {interval['hi']:.3f}]" in text
    h = entry["optimal_mixture"]
    assert sum(v["h_star"] for v in h.values()) == pytest.approx(1.0)
    assert all(v["lo"] <= v["hi"] for v in h.values())
    assert entry["loss_at_optimum"]["lo"] <= entry["loss_at_optimum"]["hi"]
    assert "held-out rows: 30 (10 runs)" in text


def test_two_laws_in_worker_processes_without_holdout_or_bootstrap(tmp_path):
    table = small_table(tmp_path / "runs.csv")
    runs = mj.load_runs(table, weights="weight_*", N="model_size", D="n_tokens", targets="x_loss")
    lines = []
    result = build_report(
        runs.query("model_size < 1e9"),
        ["additive", "chinchilla"],
        tmp_path / "r",
        search=mj.Search(8, ((2, 10),)),
        replicates=0,
        jobs=2,
        log=lines.append,
    )
    assert [r.law for r in result.laws] == ["additive", "chinchilla"]
    assert all(r.bootstrap is None and r.held_out_mre == {} for r in result.laws)
    assert not list((tmp_path / "r").glob("bootstrap_*.json"))
    assert mj.load_fit(tmp_path / "r" / "fit_chinchilla.json").mre(runs.query("model_size < 1e9"))[
        "x_loss"
    ] == pytest.approx(result.laws[1].train_mre["x_loss"])
    assert {"simplex_additive", "mixture_path_additive", "predicted_vs_observed_chinchilla"} <= set(result.figures)
    assert not {"simplex_chinchilla", "mixture_path_chinchilla"} & set(result.figures)  # no h* without h
    assert np.isclose(result.laws[0].optimum["h_star"].sum(), 1.0) and result.laws[1].optimum is None
    assert not (tmp_path / "r" / "mixture_chinchilla.json").exists()
    page = Page()
    page.feed(result.html.read_text())
    assert len([1 for tag, _ in page.tags if tag == "img"]) == len(result.figures)
    assert "2 at once" in lines[1] and lines[-1].startswith("wrote ")


def test_what_to_train_next_lists_the_proposed_runs_or_says_why_none(report, tmp_path, monkeypatch):
    _, out, page = report
    text = " ".join(page.text)
    assert "What to train next" in text and "the Laplace approximation around the fit" in text
    assert re.search(r"the loss at h\* under the same uncertainty: \d+\.\d+ ± \d", text), text
    table = small_table(tmp_path / "runs.csv")
    runs = mj.load_runs(table, weights="weight_*", N="model_size", D="n_tokens", targets="x_loss")
    options = dict(N=7e9, D=1.5e11, search=mj.Search(64, ((16, 20), (4, 40))), replicates=0, log=lambda line: None)
    result = build_report(runs.query("model_size < 1e9"), ["additive"], tmp_path / "r", **options)
    proposed = result.laws[0].next_runs  # no bootstrap needed
    assert len(proposed) == 4 and proposed.attrs["variance_after"] < proposed.attrs["variance_before"]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert [row["pins_down"] for row in summary["laws"]["additive"]["next_runs"]] == list(proposed["pins_down"])
    page = Page()
    page.feed(result.html.read_text())
    text = " ".join(page.text)
    assert all(why in text for why in proposed["pins_down"]) and "predicted after these runs" in text

    def refuse(*args, **kwargs):
        raise mj.MixlawError("no candidate fits")

    monkeypatch.setattr(report_module, "propose_runs", refuse)
    result = build_report(runs.query("model_size < 1e9"), ["additive"], tmp_path / "r2", **options)
    assert result.laws[0].next_runs == "no candidate fits"
    page = Page()
    page.feed(result.html.read_text())
    assert "none proposed: no candidate fits" in " ".join(page.text)
