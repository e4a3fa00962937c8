"""The report folder is written whole or not at all, never into a folder holding anything else, and every label of
every figure is plain text (column, law and domain names with TeX characters neither crash nor go to mathtext)."""

import html.parser
import io
import os
import shutil

import matplotlib.text
import pandas as pd
import pytest
from test_cli import HOLDOUT, TRAIN, small_table

import mixlaw_jax as mj
from mixlaw_jax import figures, report
from mixlaw_jax.errors import MixlawError
from mixlaw_jax.report import build_report

#: tiny settings (those of test_report's two-law test): a report of one law takes seconds.
TINY = dict(search=mj.Search(8, ((2, 10),)), replicates=0, jobs=1, log=lambda line: None)
TEX_TARGET = r"$\badcmd{x$_loss"
TEX_WEIGHTS = [r"weight_$\beta^$", "weight_$x$_y^2", "weight_<i>&amp;"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return small_table(tmp_path_factory.mktemp("safety") / "runs.csv")


@pytest.fixture(scope="module")
def runs(table):
    return mj.load_runs(table, weights="weight_*", N="model_size", D="n_tokens", targets="x_loss").query(
        "model_size < 1e9"
    )


@pytest.fixture(scope="module")
def earlier(runs, tmp_path_factory):
    """The folder of an earlier report (joint law)."""
    out = tmp_path_factory.mktemp("earlier") / "report"
    build_report(runs, ["joint"], out, **TINY)
    return out


def snapshot(folder):
    """{relative path: bytes} of every file under ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def fail_at_figures(*args, **kwargs):
    raise RuntimeError("figure failed")


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_report_failing_half_way_leaves_the_earlier_report_as_it_was(runs, earlier, tmp_path, monkeypatch, error):
    out = tmp_path / "report"
    shutil.copytree(earlier, out)
    before = snapshot(out)
    assert "fit_joint.json" in before and "index.html" in before and "figures/optimal_mixture.png" in before

    def fail(*args, **kwargs):
        raise error("figure failed")

    monkeypatch.setattr(figures, "mixture_path", fail)  # after the fit is saved, before the page
    with pytest.raises(error, match="figure failed"):
        build_report(runs, ["additive"], out, **TINY)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temporary folder beside it


def test_a_report_failing_half_way_into_a_new_path_creates_nothing(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "mixture_path", fail_at_figures)
    with pytest.raises(RuntimeError, match="figure failed"):
        build_report(runs, ["additive"], tmp_path / "report", **TINY)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="figure failed"):  # nor the missing parents it made
        build_report(runs, ["additive"], tmp_path / "a" / "b" / "report", **TINY)
    assert list(tmp_path.iterdir()) == []


def no_fit(*args, **kwargs):
    raise AssertionError("a fit ran")


def test_a_folder_holding_another_file_is_refused_before_any_fit(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "fit", no_fit)
    (tmp_path / "runs.csv").write_text("a,b\n1,2\n")
    (tmp_path / "index.html").write_text("<p>old</p>")
    before = snapshot(tmp_path)
    with pytest.raises(MixlawError, match="runs.csv.*choose a new or empty folder"):
        build_report(runs, ["additive"], tmp_path, **TINY)
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "runs.csv"]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MixlawError, match="runs.csv"):  # `--out .` beside the table
        build_report(runs, ["additive"], ".", **TINY)
    assert snapshot(tmp_path) == before


def test_an_earlier_report_holding_another_folder_or_link_is_refused(runs, earlier, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "fit", no_fit)
    out = tmp_path / "report"
    shutil.copytree(earlier, out)
    (out / "notes").mkdir()
    with pytest.raises(MixlawError, match="notes"):
        build_report(runs, ["additive"], out, **TINY)
    os.rmdir(out / "notes")
    (out / "figures" / "plot.pdf").write_bytes(b"%PDF")
    with pytest.raises(MixlawError, match="plot.pdf"):
        build_report(runs, ["additive"], out, **TINY)
    os.unlink(out / "figures" / "plot.pdf")
    os.symlink(tmp_path / "elsewhere.json", out / "fit_other.json")
    with pytest.raises(MixlawError, match="fit_other.json"):
        build_report(runs, ["additive"], out, **TINY)


@pytest.mark.parametrize("kind", ["file", "symlink to a folder", "symlink to an earlier report", "fifo"])
def test_an_out_that_is_not_a_folder_is_refused_and_left_as_it_was(runs, earlier, tmp_path, monkeypatch, kind):
    monkeypatch.setattr(report, "fit", no_fit)
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("keep me")
    elif kind == "fifo":
        os.mkfifo(out)
    else:
        os.symlink(tmp_path if kind == "symlink to a folder" else earlier, out)
    before = os.lstat(out)
    target = snapshot(earlier)
    with pytest.raises(MixlawError, match="choose a new or empty folder"):
        build_report(runs, ["additive"], out, **TINY)
    after = os.lstat(out)
    assert (after.st_mode, after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_mode,
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    if kind == "file":
        assert out.read_text() == "keep me"
    assert snapshot(earlier) == target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_second_report_replaces_the_first_one_whole(runs, earlier, tmp_path):
    out = tmp_path / "sub" / "report"  # the parent is created
    shutil.copytree(earlier, out)
    result = build_report(runs, ["additive"], out, **TINY)
    files = sorted(snapshot(out))
    assert "fit_joint.json" not in files and "mixture_joint.json" not in files
    assert files == sorted(
        ["index.html", "summary.json", "fit_additive.json", "mixture_additive.json"]
        + [f"figures/{name}.png" for name in result.figures]
    )
    assert sorted(p.name for p in out.parent.iterdir()) == ["report"]  # no temporary or old folder left
    assert result.out == out and result.html == out / "index.html"
    assert all(path == out / "figures" / f"{name}.png" and path.is_file() for name, path in result.figures.items())
    assert mj.load_fit(out / "fit_additive.json").law == "additive"
    assert os.stat(out).st_mode & 0o777 == 0o777 & ~_umask()  # not mkdtemp's private 0700


def test_a_report_into_the_working_folder_replaces_it_and_works_on_in_the_new_one(runs, earlier, tmp_path, monkeypatch):
    out = tmp_path / "report"
    shutil.copytree(earlier, out)
    monkeypatch.chdir(out)
    result = build_report(runs, ["additive"], ".", **TINY)
    assert os.path.samefile(os.getcwd(), out)  # not the deleted old folder
    assert os.path.isfile("fit_additive.json") and not os.path.exists("fit_joint.json")
    assert result.html.read_text() == (out / "index.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.text, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def tex_runs(table):
    """The whole small table, its target and weight columns renamed with TeX characters (and HTML ones)."""
    frame = pd.read_csv(table).rename(
        columns=dict(zip(["x_loss", "weight_0", "weight_1", "weight_2"], [TEX_TARGET] + TEX_WEIGHTS))
    )
    return mj.load_runs(frame, weights=TEX_WEIGHTS, N="model_size", D="n_tokens", targets=[TEX_TARGET])


def test_names_with_tex_characters_are_plain_text_in_the_report(tex_runs, tmp_path):
    out = tmp_path / "report"
    result = build_report(tex_runs, ["additive"], out, holdout=HOLDOUT, title="<b>$x$</b>", **TINY)
    assert {"simplex_additive", "mixture_path_additive", "optimal_mixture"} <= set(result.figures)
    assert all(path.is_file() and path.stat().st_size > 1000 for path in result.figures.values())
    page = (out / "index.html").read_text()
    parsed = Text()
    parsed.feed(page)
    assert "<i>" not in page and "i" not in parsed.tags and "b" not in parsed.tags  # escaped, not markup
    text = " ".join(parsed.text)
    assert TEX_TARGET in text and "<b>$x$</b>" in text and "weight_<i>&amp;" in text


def plain_texts(fig):
    """Render ``fig`` as the user would, then every non-empty text in it: (text, parse_math)."""
    fig.savefig(io.BytesIO(), format="png")
    return [
        (t.get_text(), t.get_parse_math())
        for t in fig.findobj(matplotlib.text.Text)
        if t.get_text() and t.get_visible()
    ]


def test_every_figure_of_tex_names_draws_them_as_plain_text(tex_runs):
    train, held = tex_runs.query(TRAIN), tex_runs.query(HOLDOUT)
    fit = mj.fit(train, "additive", search=mj.Search(8, ((2, 10),)))
    path = mj.optimal_mixture(fit, N=[1e8, 1e9], D=[2e9, 2e10])
    optimum = pd.DataFrame(
        {"h_star": path.h[-1, 0], "lo": path.h[-1, 0] - 0.05, "hi": path.h[-1, 0] + 0.05}, index=pd.Index(path.domains)
    )
    drawn = {
        "predicted_vs_observed": figures.predicted_vs_observed(fit, train, held),
        "loss_curves": figures.loss_curves(fit, train, held),
        "mixture_intervals": figures.mixture_intervals({"a $\\x": optimum, "b_^$": optimum}, title="$\\bad{"),
        "mixture_path": figures.mixture_path(path),
        "simplex_heatmap": figures.simplex_heatmap(fit, N=1e9, D=2e10, runs=train, optimum=[0.2, 0.3, 0.5]),
    }
    expected = {
        "predicted_vs_observed": [TEX_TARGET],
        "loss_curves": [TEX_TARGET],
        "mixture_intervals": ["$\\bad{", "a $\\x", "b_^$", r"$\beta^$", "$x$_y^2"],
        "mixture_path": [r"$\beta^$", "$x$_y^2", "<i>&amp;"],
        "simplex_heatmap": [r"$\beta^$", "$x$_y^2"],
    }
    for name, fig in drawn.items():
        texts = plain_texts(fig)  # savefig by the user: no error
        assert all(not parse for t, parse in texts if "$" in t or "\\" in t), name
        shown = [t for t, _ in texts]
        assert not [t for t in shown if "\\mathdefault" in t], name  # no mathtext tick labels either
        assert all(label in shown for label in expected[name]), (name, shown)
