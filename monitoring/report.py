"""The report of one run: ``report.html`` and PNG plots rendered from its ``results.json``.

``render_report(run_dir)`` reads ``run_dir/results.json`` and writes
``run_dir/plots/*.png`` (matplotlib, Agg canvas, no display needed) and
``run_dir/report.html`` that shows them next to the key numbers.  Plots whose data the
run did not record (no QKD section, no trust scores) are left out with a note saying
why, so a report renders for every kind of run:

* accuracy, precision, recall and F1 of the global model per round;
* time and bytes (up: updates; down: invitations and global model) per round;
* QBER of each HMU's link with its upper bound against the threshold (``qkd``,
  ``qkd_threshold``);
* trust of each HMU per round, flagged HMUs marked (per-round ``trust``, ``flagged``);
* the confusion matrix ``[[tn, fp], [fn, tp]]`` of the final model (attack = positive).
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from iomt.errors import DataError

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
PLOTS_DIR = "plots"
_ACCEPTED = frozenset(("accepted", "established", "ok"))
_REFUSED = frozenset(("isolated", "refused", "aborted"))
_DPI = 110


@dataclass(frozen=True)
class Plot:
    """One figure of the report, or the reason it is absent."""

    name: str
    title: str
    file: str | None
    note: str = ""


def _figure(width: float = 6.4, height: float = 3.6) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, plots: Path, name: str) -> str:
    path = plots / f"{name}.png"
    fig.savefig(path, dpi=_DPI)
    return f"{PLOTS_DIR}/{path.name}"


def _rounds(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in results.get("rounds") or [] if isinstance(r, Mapping) and "round" in r]


def plot_scores(results: Mapping[str, Any], plots: Path) -> Plot:
    title = "Global model per round"
    rounds = _rounds(results)
    if not rounds:
        return Plot("scores", title, None, "no round finished, so there is nothing to plot")
    fig = _figure()
    ax = fig.add_subplot()
    xs = [r["round"] for r in rounds]
    styles = {"accuracy": "-o", "f1": "-s", "precision": ":", "recall": "--"}
    for key, style in styles.items():
        ys = [r.get(key) for r in rounds]
        if all(isinstance(y, int | float) for y in ys):
            ax.plot(xs, ys, style, label=key, linewidth=2 if key in ("accuracy", "f1") else 1)
    ax.set_xlabel("round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("score on the held-out split")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return Plot("scores", title, _save(fig, plots, "scores"))


def plot_traffic(results: Mapping[str, Any], plots: Path) -> Plot:
    title = "Bytes and time per round"
    rounds = _rounds(results)
    if not rounds or not all("bytes_up" in r and "bytes_down" in r for r in rounds):
        return Plot("traffic", title, None, "the rounds record no byte counts")
    fig = _figure(6.4, 4.4)
    top, bottom = fig.subplots(2, 1, sharex=True)
    xs = [r["round"] for r in rounds]
    up = [r["bytes_up"] / 1e3 for r in rounds]
    down = [r["bytes_down"] / 1e3 for r in rounds]
    top.bar(xs, up, label="up (updates)", color="#4c72b0")
    top.bar(xs, down, bottom=up, label="down (invitations, global model)", color="#dd8452")
    top.set_ylabel("kB")
    top.set_ylim(0, max(u + d for u, d in zip(up, down, strict=True)) * 1.45 or 1)
    top.legend(fontsize="small")
    top.grid(axis="y", alpha=0.3)
    bottom.plot(xs, [r.get("duration_s", 0.0) for r in rounds], "-o", color="#55a868")
    bottom.set_ylabel("round time (s)")
    bottom.set_xlabel("round")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.grid(alpha=0.3)
    return Plot("traffic", title, _save(fig, plots, "traffic"))


def plot_qber(results: Mapping[str, Any], plots: Path) -> Plot:
    title = "QBER of each HMU's QKD link"
    qkd = results.get("qkd")
    if not isinstance(qkd, Mapping) or not qkd:
        return Plot("qber", title, None, "this run used no QKD links (results.json has no qkd)")
    hmus = sorted(qkd)
    threshold = results.get("qkd_threshold")
    qber = [_maybe(qkd[h].get("qber")) for h in hmus]
    upper = [_maybe(qkd[h].get("qber_upper")) for h in hmus]
    status = [str(qkd[h].get("status", "")) for h in hmus]
    refused = [s in _REFUSED for s in status]
    fig = _figure(max(6.4, 0.5 * len(hmus) + 2), 3.8)
    ax = fig.add_subplot()
    colors = ["#c44e52" if s in _REFUSED else "#4c72b0" if s in _ACCEPTED else "#999999"
              for s in status]  # fmt: skip
    xs = list(range(len(hmus)))
    ax.bar(xs, qber, color=colors, label="QBER (estimated)")
    ax.scatter(xs, upper, marker="_", s=300, color="black", zorder=3, label="upper bound")
    ax.set_xticks(xs, hmus)
    ax.set_xlim(-0.6, len(hmus) - 0.4)
    if isinstance(threshold, int | float):
        ax.axhline(threshold, color="#c44e52", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_ylabel("quantum bit error rate")
    known = [v for v in (*qber, *upper) if math.isfinite(v)]
    ax.set_ylim(0, max([0.05, *known, float(threshold or 0)]) * 1.2)
    for i, value in enumerate(qber):
        if not math.isfinite(value):
            ax.text(i, 0.002, "no QBER", ha="center", va="bottom", rotation=90, color="#666666")
    ax.tick_params(axis="x", labelrotation=45)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    notes = ["red: link refused (HMU isolated)"] if any(refused) else []
    if any(s not in _REFUSED and s not in _ACCEPTED for s in status):
        notes.append("grey: no finished key session")
    note = "; ".join(notes)
    return Plot("qber", title, _save(fig, plots, "qber"), note)


def plot_trust(results: Mapping[str, Any], plots: Path) -> Plot:
    title = "Trust of each HMU per round"
    rounds = [r for r in _rounds(results) if isinstance(r.get("trust"), Mapping) and r["trust"]]
    if not rounds:
        return Plot("trust", title, None, "the rounds record no trust scores")
    hmus = sorted({h for r in rounds for h in r["trust"]})
    fig = _figure(6.4, 3.8)
    ax = fig.add_subplot()
    for hmu in hmus:
        pts = [(r["round"], r["trust"][hmu]) for r in rounds if hmu in r["trust"]]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", label=hmu, linewidth=1.2)
        flagged = [(r["round"], r["trust"][hmu]) for r in rounds
                   if hmu in r["trust"] and hmu in (r.get("flagged") or [])]  # fmt: skip
        if flagged:
            ax.scatter([p[0] for p in flagged], [p[1] for p in flagged], marker="x", s=60,
                       color="#c44e52", zorder=3)  # fmt: skip
    ax.set_xlabel("round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("trust")
    ax.grid(alpha=0.3)
    if len(hmus) <= 12:
        ax.legend(fontsize="x-small", ncol=2)
    return Plot("trust", title, _save(fig, plots, "trust"), "x: update flagged as anomalous")


def plot_confusion(results: Mapping[str, Any], plots: Path) -> Plot:
    title = "Confusion matrix of the final model"
    matrix = (results.get("final") or {}).get("confusion")
    if not _is_2x2(matrix):
        return Plot("confusion", title, None, "results.json has no final confusion matrix")
    fig = _figure(4.2, 3.6)
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    peak = max(max(row) for row in matrix) or 1
    for i in range(2):
        for j in range(2):
            value = matrix[i][j]
            ax.text(j, i, f"{value:,}", ha="center", va="center",
                    color="white" if value > peak / 2 else "black", fontsize=13)  # fmt: skip
    ax.set_xticks([0, 1], ["normal", "attack"])
    ax.set_yticks([0, 1], ["normal", "attack"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    return Plot("confusion", title, _save(fig, plots, "confusion"))


PLOTTERS: tuple[Callable[[Mapping[str, Any], Path], Plot], ...] = (
    plot_scores, plot_traffic, plot_qber, plot_trust, plot_confusion,
)  # fmt: skip


def render_report(run_dir: Path) -> Path:
    """Render ``run_dir/report.html`` and its plots from ``run_dir/results.json``; its path."""
    run_dir = Path(run_dir)
    try:
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{run_dir}: no results.json; give a run directory that iomt run wrote"
        ) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{run_dir}/results.json cannot be read: {exc}") from None
    plots_dir = run_dir / PLOTS_DIR
    plots_dir.mkdir(exist_ok=True)
    plots = [plotter(results, plots_dir) for plotter in PLOTTERS]
    path = run_dir / REPORT_FILE
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(report_html(results, plots), encoding="utf-8")
    tmp.replace(path)
    log.info("report: %s (%d plots)", path, sum(p.file is not None for p in plots))
    return path


# -- HTML ---------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
figure { margin: 1em 0 2em; } figcaption { font-weight: 600; margin-bottom: 0.3em; }
.note { color: #666; font-style: italic; }
"""

_FINAL = (
    ("accuracy", "accuracy"), ("precision", "precision (attack)"), ("recall", "recall (attack)"),
    ("f1", "F1 (attack)"), ("macro_f1", "macro F1"), ("fpr", "false-positive rate"),
    ("roc_auc", "ROC AUC"), ("loss", "loss"), ("detection_time_ms", "detection time (ms/flow)"),
)  # fmt: skip
_ROUND_COLUMNS = (
    "round", "accuracy", "precision", "recall", "f1", "loss", "duration_s", "bytes_up",
    "bytes_down",
)  # fmt: skip


def _maybe(value: Any) -> float:
    """A number, or NaN (not drawn) for a missing one."""
    return float(value) if isinstance(value, int | float) else math.nan


def _is_2x2(matrix: Any) -> bool:
    return (
        isinstance(matrix, Sequence) and len(matrix) == 2
        and all(isinstance(row, Sequence) and len(row) == 2 for row in matrix)
        and all(isinstance(v, int | float) for row in matrix for v in row)
    )  # fmt: skip


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return str(len(value))
    return html.escape(str(value))


def _table(rows: Sequence[tuple[str, Any]]) -> str:
    body = "".join(
        f'<tr><th class="text">{html.escape(k)}</th><td>{_fmt(v)}</td></tr>' for k, v in rows
    )
    return f"<table>{body}</table>"


def report_html(results: Mapping[str, Any], plots: Sequence[Plot]) -> str:
    """The report page (pure: results and plot list in, HTML text out)."""
    esc = html.escape
    final = results.get("final") or {}
    run = [
        ("scenario", results.get("scenario", "?")),
        ("run id", results.get("run_id", "?")),
        ("seed", results.get("seed", "?")),
        ("completed", bool(results.get("completed"))),
        ("reason", results.get("reason", "")),
        ("rounds", len(_rounds(results))),
        ("wall time (s)", float(results.get("wall_time_s") or 0.0)),
        ("broker", (results.get("broker") or {}).get("kind", "?")),
        ("mode", results.get("mode", "?")),
    ]
    scores = [(label, final[key]) for key, label in _FINAL if key in final]
    rejected = results.get("rejected") or {}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>iomt-testbed report: {esc(str(results.get('run_id', '')))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Run report: {esc(str(results.get('scenario', '')))}</h1>",
        '<section id="run"><h2>Run</h2>',
        _table(run),
        "</section>",
        '<section id="final"><h2>Final model</h2>',
        _table(scores),
        "</section>",
    ]
    if rejected:
        parts += ['<section id="rejected"><h2>Rejected messages</h2>',
                  _table(sorted(rejected.items())), "</section>"]  # fmt: skip
    parts.append('<section id="plots"><h2>Plots</h2>')
    for plot in plots:
        if plot.file is not None:
            note = f'<p class="note">{esc(plot.note)}</p>' if plot.note else ""
            parts.append(
                f'<figure id="plot-{plot.name}"><figcaption>{esc(plot.title)}</figcaption>'
                f'<img src="{esc(plot.file)}" alt="{esc(plot.title)}">{note}</figure>'
            )
        else:
            parts.append(
                f'<p class="note omitted" id="omitted-{plot.name}">{esc(plot.title)}: '
                f"omitted, {esc(plot.note)}.</p>"
            )
    parts.append("</section>")
    rounds = _rounds(results)
    if rounds:
        head = "".join(f"<th>{esc(c)}</th>" for c in _ROUND_COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in _ROUND_COLUMNS) + "</tr>"
            for r in rounds
        )
        parts += ['<section id="rounds"><h2>Rounds</h2>',
                  f"<table><tr>{head}</tr>{body}</table></section>"]  # fmt: skip
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
