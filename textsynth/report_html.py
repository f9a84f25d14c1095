"""The quality report as a web page: PNG plots (matplotlib, Agg) beside one ``index.html``."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textsynth._deps import require
from textsynth.errors import ExportError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from textsynth.fidelity import Fidelity
    from textsynth.report_figures import QualityReport

__all__ = ["render"]

MAX_DISAGREEMENTS = 100

SYN, REF = "#3b6fb6", "#e0803a"
PASS, FAIL = "#4a9a5b", "#c4473a"


def _figure(width: float = 7.0, height: float = 3.6) -> Figure:
    figure: type[Figure] = require("matplotlib.figure", "the HTML report").Figure
    # Figure() without pyplot draws with the Agg canvas: no display, no global state
    return figure(figsize=(width, height), dpi=100, layout="constrained")


def _bars(ax: Any, names: list[str], series: list[tuple[str, list[float], str]]) -> None:
    width = 0.8 / len(series)
    for k, (label, values, colour) in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, values, width, label=label, color=colour)
    ax.set_xticks(range(len(names)), names, rotation=30 if len(names) > 4 else 0, ha="right"
                  if len(names) > 4 else "center", fontsize=8)
    if len(series) > 1:
        ax.legend(fontsize=8)


def plot_labels(report: QualityReport) -> Figure:
    fig = _figure()
    ax = fig.subplots()
    syn, ref = report.synthetic, report.reference
    names = sorted(set(syn.labels) | set(ref.labels if ref else {}))
    if ref is None:
        _bars(ax, names, [("synthetic", [syn.labels.get(n, 0) for n in names], SYN)])
        ax.set_ylabel("rows")
    else:
        def share(counts: dict[str, int]) -> list[float]:
            total = sum(counts.values()) or 1
            return [100 * counts.get(n, 0) / total for n in names]

        _bars(ax, names, [("synthetic", share(syn.labels), SYN),
                          ("reference", share(ref.labels), REF)])
        ax.set_ylabel("% of rows")
    ax.set_title("Label distribution")
    return fig


def plot_lengths(report: QualityReport) -> Figure:
    fig = _figure()
    ax = fig.subplots()
    sets = [(report.synthetic, SYN)] + ([(report.reference, REF)] if report.reference else [])
    top = max(max(s.lengths, default=1) for s, _ in sets)
    bins = list(range(0, top + 2))
    for figures, colour in sets:
        ax.hist(figures.lengths, bins=bins, density=True, alpha=0.55, color=colour,
                label=f"{figures.name} (mean {figures.mean_words:g})")
    ax.set_xlabel("words per row")
    ax.set_ylabel("share of rows")
    ax.set_title("Length distribution")
    ax.legend(fontsize=8)
    return fig


def plot_rejects(report: QualityReport) -> Figure:
    fig = _figure(7.0, max(2.2, 0.45 * len(report.rejects) + 1.2))
    ax = fig.subplots()
    reasons = sorted(report.rejects, key=lambda r: report.rejects[r])
    ax.barh(reasons, [report.rejects[r] for r in reasons], color=FAIL)
    ax.set_xlabel("rejected candidates")
    ax.set_title(f"Rejection reasons ({sum(report.rejects.values())} rejected, "
                 f"{report.synthetic.rows} accepted)")
    ax.tick_params(axis="y", labelsize=8)
    return fig


def plot_languages(report: QualityReport) -> Figure:
    fig = _figure(6.0, 3.2)
    ax = fig.subplots()
    check = report.language_check
    langs = sorted(report.synthetic.languages)
    if check:
        passed = [check.get(lang, {}).get("passed", 0) for lang in langs]
        failed = [check.get(lang, {}).get("rows", 0) - p for lang, p in zip(langs, passed,
                                                                               strict=True)]
        ax.bar(langs, passed, color=PASS, label="language check passed")
        ax.bar(langs, failed, bottom=passed, color=FAIL, label="language check failed")
        ax.legend(fontsize=8)
    else:
        ax.bar(langs, [report.synthetic.languages[lang] for lang in langs], color=SYN)
    ax.set_ylabel("rows")
    ax.set_title("Rows per language")
    return fig


def plot_diversity(report: QualityReport) -> Figure:
    fig = _figure(6.0, 3.2)
    ax = fig.subplots()
    names = ["distinct-1", "distinct-2", "self-similarity", "near-duplicate rate"]
    attrs = ["distinct_1", "distinct_2", "self_similarity", "near_duplicate_rate"]
    series = [("synthetic", [getattr(report.synthetic, a) for a in attrs], SYN)]
    if report.reference:
        series.append(("reference", [getattr(report.reference, a) for a in attrs], REF))
    _bars(ax, names, series)
    ax.set_ylim(0, 1)
    ax.set_title("Diversity (distinct-n: higher is more varied; similarity: lower)")
    return fig


def plot_map(report: QualityReport) -> Figure:
    """Both sets in one 2-D projection (TF-IDF + truncated SVD, fitted on their union)."""
    import random

    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    from textsynth.quality.normalize import normalize

    syn = report.texts["synthetic"]
    ref = report.texts["reference"]
    rng = random.Random(0)
    syn = rng.sample(syn, min(len(syn), 2000))
    ref = rng.sample(ref, min(len(ref), 2000))
    matrix = TfidfVectorizer(preprocessor=normalize, ngram_range=(1, 2)).fit_transform(syn + ref)
    points = TruncatedSVD(n_components=2, random_state=0).fit_transform(matrix)
    fig = _figure(6.0, 4.6)
    ax = fig.subplots()
    ax.scatter(points[len(syn):, 0], points[len(syn):, 1], s=9, alpha=0.5, color=REF,
               label=f"reference ({len(ref)})")
    ax.scatter(points[:len(syn), 0], points[:len(syn), 1], s=9, alpha=0.5, color=SYN,
               label=f"synthetic ({len(syn)})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=8)
    ax.set_title("Synthetic vs reference (TF-IDF, 2-D projection)")
    return fig


def plot_fidelity(report: QualityReport) -> Figure:
    fid = report.fidelity
    assert fid is not None
    fig = _figure()
    ax = fig.subplots()
    names = list(fid.per_label)
    series = [("synthetic rows under their label (%)", [100 * fid.per_label[n] for n in names],
               SYN)]
    if fid.judge_per_label_recall:
        series.append(("judge recall on held-out real rows (%)",
                       [100 * fid.judge_per_label_recall.get(n, 0.0) for n in names], REF))
    _bars(ax, names, series)
    ax.set_ylim(0, 100)
    ax.set_title(f"Fidelity per label (overall {fid.fidelity:.1%})")
    return fig


def plots(report: QualityReport) -> list[tuple[str, str, Callable[[QualityReport], Figure]]]:
    """``(file name, caption, draw)`` for every plot this report has data for."""
    out: list[tuple[str, str, Callable[[QualityReport], Figure]]] = [
        ("labels.png", "Label distribution", plot_labels),
        ("lengths.png", "Length distribution (words per row)", plot_lengths),
        ("diversity.png", "Diversity figures", plot_diversity),
    ]
    if report.synthetic.languages:
        out.append(("languages.png", "Rows per language", plot_languages))
    if report.rejects:
        out.append(("rejects.png", "Why candidates were rejected", plot_rejects))
    if report.fidelity is not None:
        out.append(("fidelity.png", "Fidelity per label (real-data judge)", plot_fidelity))
    if report.reference and len(report.texts.get("synthetic", [])) + \
            len(report.texts.get("reference", [])) >= 3:
        out.append(("map.png", "Synthetic and reference rows in one projection", plot_map))
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(head: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;font-size:.92em}th{background:#f3f3f3}figure{display:inline-block;margin:.5em;
vertical-align:top;max-width:520px}figcaption{font-size:.85em;color:#555}img{max-width:100%;
border:1px solid #eee}.note{color:#8a5a00}ul.samples{font-size:.9em}"""


def _sections(report: QualityReport) -> list[str]:
    has_ref = report.reference is not None
    head = ["figure", "synthetic"] + (["reference"] if has_ref else [])
    figures = [[n, s, r] if has_ref else [n, s] for n, s, r in report.key_figures()]
    parts = ["<h2>Key figures</h2>", _table(head, figures)]
    labels = sorted(set(report.synthetic.labels) | set(report.reference.labels
                                                        if report.reference else {}))
    has_store = bool(report.summary)
    label_rows = [[lab, report.synthetic.labels.get(lab, 0)]
                  + ([report.reference.labels.get(lab, 0)] if report.reference else [])
                  + ([sum(report.rejects_by_label.get(lab, {}).values())] if has_store else [])
                  for lab in labels]
    head = ["label", "synthetic"] + (["reference"] if has_ref else []) + (
        ["rejected"] if has_store else [])
    parts += ["<h2>Labels</h2>", _table(head, label_rows)]
    if report.fidelity is not None:
        parts += _fidelity(report.fidelity)
    if report.language_check:
        rows = [[lang, v["rows"], v["passed"], f"{100 * v['passed'] / max(1, v['rows']):.1f}%"]
                for lang, v in sorted(report.language_check.items())]
        parts += ["<h2>Language check</h2>",
                  "<p>Each row's language, as detected by the language-ID rule, against the "
                  "language it was generated for.</p>",
                  _table(["language", "rows", "passed", "share"], rows)]
    if report.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(
            f'<li class="note">{html.escape(n)}</li>' for n in report.notes) + "</ul>")
    return parts


def _fidelity(fid: Fidelity) -> list[str]:
    held = ", ".join(f"{k} {v:.1%}" for k, v in fid.judge_heldout_accuracy.items())
    rows = [[lab, fid.rows_per_label[lab], f"{100 * share:.1f}%",
             "" if lab not in fid.judge_per_label_recall
             else f"{100 * fid.judge_per_label_recall[lab]:.1f}%"]
            for lab, share in fid.per_label.items()]
    rows.append(["overall", fid.rows, f"{100 * fid.fidelity:.1f}%", ""])
    parts = ["<h2>Fidelity (real-data judge)</h2>",
             f"<p>A {html.escape(fid.classifier)} classifier trained on {fid.judge_train} real "
             f"rows ({html.escape(fid.judge_source)}) puts {fid.agreed} of {fid.rows} synthetic "
             f"rows under their own label. Its accuracy on {fid.judge_heldout} held-out real "
             f"rows: {html.escape(held or 'not measured')}.</p>",
             _table(["label", "rows", "fidelity", "judge recall (real)"], rows)]
    if fid.disagreements:
        shown = fid.disagreements[:MAX_DISAGREEMENTS]
        parts += [f"<h3>Rows the judge puts under another label (worst {len(shown)} of "
                  f"{len(fid.disagreements)})</h3>",
                  _table(["label", "judge says", "confidence", "own label", "text"],
                         [[d.label, d.predicted, f"{100 * d.confidence:.0f}%",
                           f"{100 * d.own_probability:.0f}%", d.text] for d in shown])]
    return parts


def _samples(report: QualityReport) -> list[str]:
    parts = ["<h2>Sample rows</h2>"]
    for label, texts in report.samples.items():
        items = "".join(f"<li>{html.escape(t)}</li>" for t in texts)
        parts.append(f"<h3>{html.escape(label)}</h3><ul class='samples'>{items}</ul>")
    if report.reject_samples:
        parts.append("<h2>Sample rejects</h2>")
        for reason, rows in report.reject_samples.items():
            items = "".join(f"<li>[{html.escape(lab)}] {html.escape(text)}</li>"
                            for lab, text in rows)
            parts.append(f"<h3>{html.escape(reason)}</h3><ul class='samples'>{items}</ul>")
    return parts


def render(report: QualityReport, folder: Path) -> Path:
    """Write the plots and ``index.html`` into ``folder``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        figures_html = []
        for name, caption, draw in plots(report):
            fig = draw(report)
            fig.savefig(folder / name, format="png")
            figures_html.append(f'<figure><img src="{name}" alt="{html.escape(caption)}">'
                                f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        title = f"textsynth quality report: {report.synthetic.rows} rows"
        page = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
                f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
                f"<h1>{html.escape(title)}</h1>", *_sections(report), "<h2>Plots</h2>",
                *figures_html, *_samples(report), "</body></html>"]
        path = folder / "index.html"
        path.write_text("\n".join(page), encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"cannot write the report to {folder}: {exc}") from exc
    return path
