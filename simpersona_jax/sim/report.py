"""The simulation report: report.json (every number), report.html (plots, tables), a text table.

report.html is self-contained: plots are inline SVG drawn by matplotlib, each in an element with
a fixed id (`PLOTS`): ATC / purchase rate per stratum real vs each arm and ARA per stratum, with
95% CI error bars; conversion per store; stratum mix per store (one session per buyer on both
sides); p_store(k) per held-out store; codebook usage; then a table of arms and baselines x
headline figures with CIs, failure counts, and a few episodes as action timelines.
"""

from __future__ import annotations

import io
import json
import os

import jinja2
import numpy as np
from matplotlib.figure import Figure

from simpersona_jax.data import schema
from simpersona_jax.sim.score import FAILURE_KINDS

PLOTS = (
    "plot-rates-per-stratum",
    "plot-ara-per-stratum",
    "plot-conversion",
    "plot-stratum-mix",
    "plot-p-store",
    "plot-codebook",
)
HEADLINE = (
    ("stratified_ara", "stratified ARA"),
    ("code_alignment", "per-code alignment"),
    ("mean_cr_alignment", "CR alignment"),
    ("cohens_d_purchase", "d purchase"),
    ("cohens_d_atc", "d ATC"),
    ("mean_stratum_jsd", "stratum JSD"),
)


def build(evaluation: dict, failures: dict, timelines: dict, skipped: dict, config: dict) -> dict:
    """The report: config, arms run and skipped (why), fidelity figures, failures, timelines."""
    return {
        "stores": evaluation["stores"],
        "arms": list(evaluation["arms"]),
        "skipped": skipped,
        "config": config,
        "fidelity": evaluation,
        "failures": failures,
        "timelines": timelines,
    }


def rows(report: dict) -> list[tuple[str, dict]]:
    """(name, figures) for each arm, then each baseline."""
    f = report["fidelity"]
    return list(f["arms"].items()) + [(f"baseline: {k}", v) for k, v in f["baselines"].items()]


def _ci(fig: dict | None, pct: bool = True) -> str:
    if not fig or fig.get("value") is None:
        return "n/a"
    scale, fmt = (100, "{:.1f}") if pct else (1, "{:.2f}")
    v = fmt.format(scale * fig["value"])
    if fig.get("lo") is None:
        return v
    return f"{v} [{fmt.format(scale * fig['lo'])}, {fmt.format(scale * fig['hi'])}]"


def _cells(name: str, figs: dict, report: dict) -> list[str]:
    cells = [name]
    for key, _ in HEADLINE:
        cells.append(
            _ci(figs.get(key), pct=key in ("stratified_ara", "code_alignment", "mean_cr_alignment"))
        )
    n = len(report["stores"])
    cells.append(f"{figs['stores_not_significant']}/{n}")
    fail = report["failures"].get(name)
    cells += (
        [
            f"{100 * fail['unparseable_action_rate']:.1f}%",
            f"{100 * fail['impossible_action_rate']:.1f}%",
            f"{100 * fail['crash_rate']:.1f}%",
        ]
        if fail
        else ["", "", ""]
    )
    return cells


TABLE_HEADER = (
    ["arm"] + [h for _, h in HEADLINE] + ["CR n.s.", "unparseable", "impossible", "crashed"]
)


def real_line(report: dict) -> str:
    """The real buyers' counts and persona effect sizes (the targets)."""
    real = report["fidelity"]["real"]
    return (
        f"real buyers: {sum(real['buyers'].values())} in {len(report['stores'])} stores, "
        f"{len(real['code_counts'])} codes used; "
        f"d purchase {_ci(real['cohens_d_purchase'], False)}, "
        f"d ATC {_ci(real['cohens_d_atc'], False)} (high vs low purchase-intensity codes)"
    )


def format_table(report: dict) -> str:
    """A compact text table of the headline figures (percent; d and JSD as numbers), with CIs."""
    body = [_cells(name, figs, report) for name, figs in rows(report)]
    table = [TABLE_HEADER] + body
    widths = [max(len(r[i]) for r in table) for i in range(len(TABLE_HEADER))]
    lines = [real_line(report)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines += [f"arm {arm} skipped: {why}" for arm, why in report["skipped"].items()]
    lines.append(
        f"95% bootstrap CIs over stores and buyers ({report['fidelity']['n_boot']} "
        f"resamples); CR n.s.: stores whose conversion is not significantly different "
        f"from real (two-proportion z-test, 5%)"
    )
    return "\n".join(lines)


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _err(figs: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Values and non-negative [below, above] error-bar lengths from {value, lo, hi} dicts."""
    val = np.array([np.nan if f is None or f["value"] is None else f["value"] for f in figs])
    lo = np.array([np.nan if f is None or f["lo"] is None else f["lo"] for f in figs])
    hi = np.array([np.nan if f is None or f["hi"] is None else f["hi"] for f in figs])
    return val, np.nan_to_num(np.clip(np.stack([val - lo, hi - val]), 0, None))


def _bars(
    ax, labels: list[str], series: list[tuple[str, list[dict]]], ylabel: str, first_color: int = 0
) -> None:
    """Grouped bars with CI error bars; colour C0 is the real buyers', C1.. the arms'."""
    x = np.arange(len(labels))
    width = 0.8 / max(len(series), 1)
    for i, (name, figs) in enumerate(series):
        val, err = _err(figs)
        ax.bar(
            x + (i - (len(series) - 1) / 2) * width,
            np.nan_to_num(val),
            width,
            yerr=err,
            capsize=2,
            label=name,
            color=f"C{first_color + i}",
        )
    ax.set_xticks(x, labels)
    ax.set_ylabel(ylabel)


def plots(report: dict) -> dict[str, str]:
    """Plot id -> inline SVG."""
    f = report["fidelity"]
    real, arms, stores = f["real"], f["arms"], f["stores"]
    out = {}
    fig = Figure(figsize=(10, 3.6))
    for ax, key, title in zip(
        fig.subplots(1, 2),
        ("atc_rate", "purchase_rate"),
        ("ATC rate per session", "purchase rate per session"),
    ):
        series = [("real", [real[key][k] for k in schema.ALIGNMENT_STRATA])] + [
            (arm, [a[key][k] for k in schema.ALIGNMENT_STRATA]) for arm, a in arms.items()
        ]
        _bars(ax, list(schema.ALIGNMENT_STRATA), series, title)
        ax.set_xlabel("buyer stratum")
    fig.axes[0].legend(fontsize=7)
    out["plot-rates-per-stratum"] = _svg(fig)
    fig = Figure(figsize=(7, 3.4))
    ax = fig.subplots()
    _bars(
        ax,
        list(schema.ALIGNMENT_STRATA),
        [
            (name, [figs["ara_per_stratum"][k] for k in schema.ALIGNMENT_STRATA])
            for name, figs in rows(report)
        ],
        "ARA per stratum",
        first_color=1,
    )
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="lower left")
    out["plot-ara-per-stratum"] = _svg(fig)
    fig = Figure(figsize=(max(6, 1.2 * len(stores)), 3.4))
    ax = fig.subplots()
    _bars(
        ax,
        stores,
        [("real", [real["cr"][s] for s in stores])]
        + [(arm, [a["cr"][s] for s in stores]) for arm, a in arms.items()],
        "conversion rate",
    )
    ax.legend(fontsize=7)
    out["plot-conversion"] = _svg(fig)
    out["plot-stratum-mix"] = _mix_plot(real, arms, stores)
    out.update(_code_plots(real, stores))
    return out


def _mix_plot(real: dict, arms: dict, stores: list[str]) -> str:
    sides = [("real", real["stratum_mix"])] + [
        (arm, a["stratum_mix"]) for arm, a in arms.items() if "stratum_mix" in a
    ]
    fig = Figure(figsize=(max(6, 0.35 * len(stores) * len(sides) + 2), 3.6))
    ax = fig.subplots()
    labels, xs, x = [], [], 0.0
    colors = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#999999"]
    for s in stores:
        for name, mix in sides:
            share = np.array([mix[s][k] for k in schema.STRATA], float)
            share = share / share.sum() if share.sum() > 0 else share
            bottom = 0.0
            for k, v, c in zip(schema.STRATA, share, colors):
                ax.bar(x, v, 0.8, bottom=bottom, color=c, label=k if not xs else None)
                bottom += v
            labels.append(f"{s} {name}")
            xs.append(x)
            x += 1
        x += 0.5
    ax.set_xticks(xs, labels, fontsize=6, rotation=90)
    ax.set_ylabel("share of buyers (one session each)")
    ax.legend(fontsize=7, title="stratum", bbox_to_anchor=(1.01, 1), loc="upper left")
    return _svg(fig)


def _code_plots(real: dict, stores: list[str]) -> dict[str, str]:
    counts = {int(k): v for k, v in real["code_counts"].items()}
    order = sorted(counts, key=lambda k: -counts[k]) or [-1]
    fig = Figure(figsize=(max(6, 0.08 * len(order) + 3), 0.35 * len(stores) + 1.5))
    ax = fig.subplots()
    grid = np.array(
        [
            [real["p_store"][s].get(k, real["p_store"][s].get(str(k), 0.0)) for k in order]
            for s in stores
        ],
        float,
    )
    im = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(stores)), stores, fontsize=7)
    if len(order) <= 40:
        ax.set_xticks(range(len(order)), order, fontsize=6, rotation=90)
    ax.set_xlabel(f"code, most frequent first ({len(counts)} used)")
    fig.colorbar(im, ax=ax, label="p_store(k)")
    out = {"plot-p-store": _svg(fig)}
    fig = Figure(figsize=(max(6, 0.08 * len(order) + 3), 3))
    ax = fig.subplots()
    ax.bar(range(len(order)), [counts.get(k, 0) for k in order], 1.0)
    ax.set_xlabel(f"code rank ({len(counts)} codes used by the real buyers of these stores)")
    ax.set_ylabel("buyers")
    out["plot-codebook"] = _svg(fig)
    return out


TEMPLATE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SimPersona simulation report</title>
<style>
body { font-family: sans-serif; margin: 1.5em; max-width: 1200px; }
table { border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
.plot svg { max-width: 100%; height: auto; }
.err { color: #b00; }
</style></head><body>
<h1>Simulation report</h1>
<p>Stores: {{ stores|join(", ") }}. Arms: {{ arms|join(", ") }}.
{% for arm, why in skipped.items() %}<br>Arm {{ arm }} skipped: {{ why }}.{% endfor %}
<br>{{ real_line }}.
<br>Figures carry 95% bootstrap CIs (stores, and buyers within stores; {{ n_boot }} resamples).</p>
<h2>Arms and baselines</h2>
<table id="table-metrics"><tr>{% for h in header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in table %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>
<h2>Rates and ARA per stratum</h2>
<div class="plot" id="plot-rates-per-stratum">{{ plots["plot-rates-per-stratum"]|safe }}</div>
<div class="plot" id="plot-ara-per-stratum">{{ plots["plot-ara-per-stratum"]|safe }}</div>
<h2>Conversion per store</h2>
<div class="plot" id="plot-conversion">{{ plots["plot-conversion"]|safe }}</div>
<h2>Stratum mix per store</h2>
<div class="plot" id="plot-stratum-mix">{{ plots["plot-stratum-mix"]|safe }}</div>
<h2>Buyer types: p_store(k) and codebook usage</h2>
<div class="plot" id="plot-p-store">{{ plots["plot-p-store"]|safe }}</div>
<div class="plot" id="plot-codebook">{{ plots["plot-codebook"]|safe }}</div>
<h2>Failures</h2>
<table id="table-failures"><tr><th>arm</th><th>episodes</th><th>steps</th>
{% for k in kinds %}<th>{{ k }}</th>{% endfor %}<th>crash reasons</th></tr>
{% for arm, f in failures.items() %}<tr><td>{{ arm }}</td><td>{{ f.episodes }}</td>
<td>{{ f.steps }}</td>{% for k in kinds %}<td>{{ f.counts[k] }}</td>{% endfor %}
<td>{{ f.crash_reasons|join(", ") }}</td></tr>{% endfor %}</table>
<h2>Episodes</h2>
<div id="timelines">{% for arm, eps in timelines.items() %}{% for e in eps %}
<h3>{{ arm }}: {{ e.buyer_id }} ({{ e.store_id }}, persona {{ e.persona }}) &rarr; {{ e.outcome }}
{{ e.reason }}</h3>
<table><tr><th>step</th><th>page</th><th>action</th><th>error</th></tr>
{% for s in e.steps %}<tr><td>{{ s.step }}</td><td>{{ s.page }}</td><td>{{ s.action }}</td>
<td class="err">{{ s.error }}</td></tr>{% endfor %}</table>
{% endfor %}{% endfor %}</div>
</body></html>
""")


def html(report: dict) -> str:
    return TEMPLATE.render(
        stores=report["stores"],
        arms=report["arms"],
        skipped=report["skipped"],
        n_boot=report["fidelity"]["n_boot"],
        header=TABLE_HEADER,
        real_line=real_line(report),
        table=[_cells(name, figs, report) for name, figs in rows(report)],
        plots=plots(report),
        failures=report["failures"],
        kinds=FAILURE_KINDS,
        timelines=report["timelines"],
    )


def write(report: dict, out_dir: str) -> None:
    """Writes `<out_dir>/report.json` and `<out_dir>/report.html`."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    with open(os.path.join(out_dir, "report.html"), "w") as f:
        f.write(html(report))
