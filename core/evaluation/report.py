"""Paper-shaped outputs of an evaluation report: Markdown tables and the ARI plot.

- Table 1 (balanced): systems x number of training artists, mean ARI ± spread over seeds;
- Table 2 (unbalanced, side information, controls): systems x group sets (random, same-genre,
  same-source: shown whenever such groups were scored), ARI ± spread and AMI;
- the plot: ARI against the number of training artists, one line per system (systems that do not
  learn are flat, dashed), one panel per unit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _cell(r: dict | None) -> str:
    if r is None:
        return "–"
    spread = r["ari_seed_std"] if r["n_seeds"] > 1 else r["ari_sem"]
    return f"{r['ari']:.3f} ± {spread:.3f}"


def _index(summary: list[dict]) -> dict:
    return {(r["experiment"], r["n_train_artists"], r["unit"], r["groups"], r["system"]): r for r in summary}


def markdown(report: dict) -> str:
    summ = report["summary"]
    idx = _index(summ)
    systems = list(report["systems"])
    cfg = report["config"]
    ds = report["dataset"]
    lines = [f"Dataset: {ds['artists']} artists, {ds['albums']} albums, {ds['tracks']} tracks "
             f"(truth: {ds['truth']}); seeds {cfg['seeds']}, {cfg['steps']} CNN training steps per system, "
             f"groups of {cfg['group_sizes'][0]}-{cfg['group_sizes'][1]} test artists, threshold by "
             f"{cfg['folds']}-fold CV over groups. Cells: mean ARI ± std over seeds (± s.e. over "
             "groups with one seed).", ""]
    bb = report.get("backbone")
    if bb:
        layers = "+".join(bb.get("layers", []))
        lines += [(f"Backbone features: {bb['name']} ({bb['model']}), {bb['patches_per_track']} patches "
                   f"of 3 s per track, layers {layers} (the backbone systems train on the training "
                   "pool only; their standardisation is refitted on the whole evaluation catalog, "
                   "labels unused, as the product does on the catalog it serves)."), ""]
    for unit in cfg["units"]:
        sizes = sorted({k[1] for k in idx if k[0] == "balanced" and k[2] == unit})
        if sizes:
            n_groups = max((r["n_groups"] for r in summ if r["unit"] == unit and r["groups"] == "random"
                            and r["experiment"] == "balanced"), default=0)
            lines += [f"### Table 1 — balanced training sets, unit = {unit} "
                      f"(random groups, {n_groups} group scores per system)", "",
                      "| system | " + " | ".join(f"{s} artists" for s in sizes) + " |",
                      "| --- | " + " | ".join("---" for _ in sizes) + " |"]
            for sys in systems:
                cells = [_cell(idx.get(("balanced", s, unit, "random", sys))) for s in sizes]
                lines.append(f"| {report['systems'][sys]} | " + " | ".join(cells) + " |")
            lines.append("")
        unb = [k for k in idx if k[0] in ("unbalanced", "model") and k[2] == unit]
        if unb:
            exp, n = unb[0][0], unb[0][1]
            gsets = [g for g in ("random", "same-genre", "same-source") if any(k[3] == g for k in unb)]
            head = []
            for g in gsets:
                ng = max(r["n_groups"] for r in summ if r["experiment"] == exp and r["unit"] == unit
                         and r["groups"] == g)
                head.append(f"{g} groups ARI (n={ng})")
            title = "all training-pool artists, natural imbalance" if exp == "unbalanced" else "scored as is"
            lines += [f"### Table 2 — {exp} ({title}; {n} training artists), unit = {unit}", "",
                      "| system | " + " | ".join(head) + " | AMI (random) |",
                      "| --- | " + " | ".join("---" for _ in gsets) + " | --- |"]
            for sys in systems:
                cells = [_cell(idx.get((exp, n, unit, g, sys))) for g in gsets]
                r = idx.get((exp, n, unit, "random", sys))
                lines.append(f"| {report['systems'][sys]} | " + " | ".join(cells) +
                             (f" | {r['ami']:.3f} |" if r else " | – |"))
            lines.append("")
    na = sorted({f"{r['unit']}/{r['groups']}: {r['note']}" for r in report["results"] if r.get("note")})
    if na:
        lines += ["Not scored: " + "; ".join(na), ""]
    return "\n".join(lines)


def plot(report: dict, out: str | Path) -> Path | None:
    """ARI against the number of training artists (balanced), per system; ``None`` if nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    summ = [r for r in report["summary"] if r["experiment"] == "balanced" and r["groups"] == "random"]
    units = [u for u in report["config"]["units"] if any(r["unit"] == u for r in summ)]
    if not units:
        return None
    fig, axes = plt.subplots(1, len(units), figsize=(6 * len(units), 4.2), squeeze=False)
    for ax, unit in zip(axes[0], units):
        for sys, label in report["systems"].items():
            rs = sorted((r for r in summ if r["unit"] == unit and r["system"] == sys),
                        key=lambda r: r["n_train_artists"])
            if not rs:
                continue
            x = np.array([r["n_train_artists"] for r in rs])
            y = np.array([r["ari"] for r in rs])
            e = np.array([r["ari_seed_std"] if r["n_seeds"] > 1 else r["ari_sem"] for r in rs])
            flat = sys in ("mfcc", "stats", "untrained", "random", "production") or sys.startswith(
                ("file:", "model:"))
            ax.errorbar(x, y, yerr=e, label=label, capsize=3, linestyle="--" if flat else "-",
                        marker="" if flat else "o")
        ax.set_xscale("log")
        # Label the sizes that were trained, in plain numbers (log axes default to 8×10⁰).
        sizes = sorted({r["n_train_artists"] for r in summ if r["unit"] == unit})
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(n) for n in sizes])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("training artists (balanced)")
        ax.set_ylabel("mean ARI")
        ax.set_title(f"unit = {unit}")
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_outputs(report: dict, out_prefix: str | Path, with_plot: bool = True) -> dict:
    """Write ``PREFIX.json``, ``PREFIX.md`` and (if matplotlib is there) ``PREFIX.png``."""
    prefix = Path(out_prefix)
    if prefix.suffix in (".json", ".md", ".png"):
        prefix = prefix.with_suffix("")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    files = {}
    js = prefix.with_name(prefix.name + ".json")
    js.write_text(json.dumps(report, indent=1, default=_plain, ensure_ascii=False), encoding="utf-8")
    files["json"] = str(js)
    md = prefix.with_name(prefix.name + ".md")
    md.write_text(markdown(report) + "\n", encoding="utf-8")
    files["markdown"] = str(md)
    if with_plot:
        try:
            png = plot(report, prefix.with_name(prefix.name + ".png"))
        except ImportError:
            png = None
        if png is not None:
            files["plot"] = str(png)
    return files


def _plain(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)
