"""Tables (Markdown, LaTeX, HTML), figures and the page, from synthetic records."""
import re
import shutil
import subprocess

import pytest

from harness.report.build import build_report, load_runs
from harness.report.cli import main
from harness.report.figures import dead_unit_curves, layer_gradient_norms, pareto_mask
from harness.report.summary import SummaryOptions
from harness.store.table import runs_table
from harness.report.summary import summarize
from harness.report.tables import config_labels, summary_table, to_latex, to_markdown, latex_document
from report.synthetic import make_record, mutate, small_sweep, write

HOSTILE = "<script>alert(1)</script>|x"


def test_pareto_front_membership():
    cost = [1, 2, 2, 3, 0.5, 3, float("nan")]
    value = [1, 2, 1, 3, 0.5, 2.5, 9]
    assert list(pareto_mask(cost, value)) == [True, True, False, True, True, False, False]
    assert list(pareto_mask([1, 1], [2, 2])) == [True, True]  # equal points do not dominate each other


def test_labels_show_only_what_differs(tmp_path):
    for seed in range(2):
        write(tmp_path, f"r{seed}", make_record("relu", "rectangular", seed, 0.3, backward_params={"a": -0.5, "b": 0.5}))
        write(tmp_path, f"w{seed}", make_record("relu", "rectangular", seed, 0.4, backward_params={"a": -1.0, "b": 0.5}))
    table = summarize(load_runs(tmp_path)[0])
    labels, common = config_labels(table)
    assert sorted(labels.backward) == ["rectangular(a=-0.5)", "rectangular(a=-1)"]  # b is the same: not shown
    assert common["dataset"] == "mnist1d" and "model" in common and "dataset" not in labels


def test_markdown_escapes_pipes_and_bolds_the_best(tmp_path):
    small_sweep(tmp_path)
    write(tmp_path, "weird", make_record("relu", "exact", 7, 0.2, dataset="a|b"))
    table = summary_table(summarize(load_runs(tmp_path)[0]))
    md = to_markdown(table)
    lines = [line for line in md.splitlines() if line.startswith("|")]
    cells = {len(re.findall(r"(?<!\\)\|", line)) for line in lines}
    assert len(cells) == 1  # every row has as many column separators as the header
    assert "a\\|b" in md
    best = [line for line in lines if "**" in line and "relu | exact" in line and "mnist1d" in line]
    assert best and "**64.0 ± 9.9**" in best[0]  # the best accuracy of the column


def test_latex_is_booktabs_and_escaped(tmp_path):
    small_sweep(tmp_path)
    write(tmp_path, "weird", make_record("relu", "exact", 7, 0.2, dataset="a_b&c%"))
    tex = to_latex(summary_table(summarize(load_runs(tmp_path)[0])))
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"a\_b\&c\%" in tex and r"\textbf{64.0 $\pm$ 9.9}" in tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_compiles_with_pdflatex(tmp_path):
    small_sweep(tmp_path / "sweep")
    doc = tmp_path / "table.tex"
    doc.write_text(latex_document(to_latex(summary_table(summarize(load_runs(tmp_path / "sweep")[0])))))
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "table.pdf").stat().st_size > 0


def test_report_survives_bad_records_and_escapes_hostile_strings(tmp_path, capsys):
    sweep = small_sweep(tmp_path / "sweep")
    write(sweep, "badacc", mutate(make_record(seed=20), "metrics.final_test_acc", "0.9"))
    write(sweep, "badfwd", mutate(make_record(seed=21), "config.forward", "relu"))
    write(sweep, "hostile", make_record("relu", "exact", 22, 0.5, dataset=HOSTILE))
    assert main([str(sweep), "--out", str(tmp_path / "out"), "--no-figures"]) == 0
    err = capsys.readouterr().err
    assert "badacc/record.json: field metrics.final_test_acc must be a number" in err
    assert "badfwd/record.json: field config.forward must be an object" in err
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;|x" in page
    assert not re.search(r'src="(http|//)', page) and "<link" not in page
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"summary.md", "summary.tex", "summary.csv", "runs.parquet",
                                                              "report.html", "missing.csv", "skipped_records.txt"}


def test_cli_rejects_bad_arguments_and_empty_folders(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert main([str(tmp_path), "--format", "md,docx"]) == 2
    assert "docx" in capsys.readouterr().err
    assert main([str(tmp_path), "--target", "mnist1d=high"]) == 2
    assert main([str(tmp_path)]) == 1  # exists but holds no record


@pytest.mark.slow  # subprocess or large model: runs with make test-slow (CI)
def test_figures_are_written_skipped_with_a_message_and_byte_stable(tmp_path):
    sweep = small_sweep(tmp_path / "sweep")
    first = build_report(sweep, tmp_path / "a", formats=("md",))
    second = build_report(sweep, tmp_path / "b", formats=("md",))
    names = set(first.figures)
    assert names == {"accuracy_vs_step_time", "accuracy_vs_memory", "learning_curves", "accuracy_heatmap",
                     "memory_bars", "grad_cosine", "time_to_target", "dead_units"}
    assert any(s.startswith("layer gradient norms:") for s in first.skipped_figures)  # no grad_norms probes
    for name, paths in first.figures.items():
        for path, again in zip(paths, second.figures[name]):
            assert path.read_bytes() == again.read_bytes(), f"{path.name} differs between two runs"
    # One configuration: nothing to compare in a scatter or a heatmap, so those are skipped and say why.
    write(tmp_path / "one", "r", make_record())
    single = build_report(tmp_path / "one", tmp_path / "c", formats=("md",))
    assert "accuracy_heatmap" not in single.figures and any("heatmap" in s for s in single.skipped_figures)
    assert "accuracy_vs_step_time" not in single.figures


def _probed(tmp_path, norms_by_rule):
    """Runs of two rules whose records carry per-layer gradient norms and dead-unit probes."""
    for rule, (first, last) in norms_by_rule.items():
        for seed in range(2):
            record = make_record("relu", rule, seed, 0.5)
            record["diagnostics"]["grad_norms"] = [dict(step=0, **{f"l{i}.weight": v for i, v in enumerate(first)}, **{"l0.bias": 1.0}),
                                                   dict(step=900, **{f"l{i}.weight": v for i, v in enumerate(last)}, **{"l0.bias": 1.0})]
            record["diagnostics"]["activations"] = [{"step": s, "mean": {"dead_fraction": d}} for s, d in ((0, 0.0), (900, 0.3 if rule == "exact" else 0.05))]
            write(tmp_path, f"{rule}{seed}", record)
    runs, problems = runs_table(tmp_path)
    assert problems == []
    return runs, summarize(runs)


def test_layer_norm_and_dead_unit_figures_draw_what_the_probes_say(tmp_path):
    runs, summary = _probed(tmp_path, {"exact": ([1e-6, 1e-3, 1e-1], [1e-5, 1e-3, 1e-2]), "constant": ([1e-2, 1e-2, 1e-1], [1e-2] * 3)})
    fig = layer_gradient_norms(runs, summary, SummaryOptions())
    left, right = fig.axes[:2]
    assert left.get_yscale() == "log" and len(left.lines) == 2
    drawn = {tuple(line.get_ydata()) for line in left.lines}  # weights only: the bias is not a layer
    assert any(y == pytest.approx((1e-6, 1e-3, 1e-1)) for y in drawn) and all(len(y) == 3 for y in drawn)
    dead = dead_unit_curves(runs, summary, SummaryOptions())
    assert sorted(max(line.get_ydata()) for line in dead.axes[0].lines) == pytest.approx([5.0, 30.0])
    # Records without the probes: each figure says why it is skipped instead of drawing nothing.
    bare = runs.assign(gn_param=None, gn_norm_first=None, gn_norm_last=None, fid_dead_fraction=None)
    assert layer_gradient_norms(bare, summary, SummaryOptions()).startswith("layer gradient norms:")
    assert dead_unit_curves(bare, summary, SummaryOptions()).startswith("dead units:")


def test_tables_show_the_forward_a_model_really_uses(tmp_path):
    """A GRU's records say its gates are sigmoid and tanh pairs although forward=relu was configured:
    the summary's forward column shows that, next to an MLP that runs the configured relu."""
    gru = make_record("relu", "exact", 0, 0.9)
    gru["config"]["model"] = {"name": "gru"}
    del gru["identity"]  # keys recomputed from the changed config
    gru["pair"].update(used=["sigmoid/exact", "tanh/exact"], label="sigmoid/exact + tanh/exact")
    write(tmp_path, "gru", gru)
    write(tmp_path, "mlp", make_record("relu", "exact", 0, 0.6))
    runs, _ = load_runs(tmp_path)
    labels, _ = config_labels(summarize(runs))
    assert sorted(labels["forward"]) == ["relu", "sigmoid + tanh"]
