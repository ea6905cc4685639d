"""The chart of a bench.py run: grouped bars of the medians, as one SVG.

Three panels (seconds per step, peak RSS, repository bytes), a bar per tool
in each group, labelled with its value and, for the other tools, their
ratio to cairn. Self-contained, so the bench needs nothing but Python.
"""

from xml.sax.saxutils import escape

COLORS = {"cairn": "#1f77b4", "restic": "#d62728", "borg": "#2ca02c"}
WIDTH, PANEL_H, TOP = 900, 250, 40


def panel(y0, title, groups, tools, value, fmt):
    """groups: (label, key); value(tool, key) -> float or None."""
    left, right, plot_h = 60, WIDTH - 20, PANEL_H - 95
    vals = [value(t, k) for _, k in groups for t in tools]
    top = max([v for v in vals if v is not None] + [1e-9])
    group_w = (right - left) / len(groups)
    bar_w = min(40, group_w * 0.8 / len(tools))
    base = y0 + 50 + plot_h
    out = [f'<text x="{left}" y="{y0 + 18}" font-size="14">{escape(title)}</text>',
           f'<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#888"/>']
    for g, (label, key) in enumerate(groups):
        gx = left + g * group_w + (group_w - bar_w * len(tools)) / 2
        out.append(f'<text x="{left + (g + 0.5) * group_w:.1f}" y="{base + 16}" '
                   f'text-anchor="middle">{escape(label)}</text>')
        ref = value("cairn", key) if "cairn" in tools else None
        for i, t in enumerate(tools):
            v = value(t, key)
            if v is None:
                continue
            h = max(1.0, v / top * plot_h)
            x = gx + i * bar_w
            out.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar_w * 0.9:.1f}" '
                       f'height="{h:.1f}" fill="{COLORS[t]}"><title>{t} {fmt(v)}</title></rect>')
            cx = x + bar_w * 0.45
            out.append(f'<text x="{cx:.1f}" y="{base - h - 4:.1f}" font-size="9" '
                       f'text-anchor="middle">{escape(fmt(v))}</text>')
            if t != "cairn" and ref:
                out.append(f'<text x="{cx:.1f}" y="{base - h - 14:.1f}" font-size="9" '
                           f'text-anchor="middle" fill="#555">{v / ref:.2f}x</text>')
    return out


def render(results, tools):
    med = results["medians"]
    steps = [s for s in ("backup1", "backup2", "backup3", "restore", "restore1", "restoredb")
             if s in med[tools[0]]]

    def wall(t, s):
        return med[t][s]["wall_s"] if s in med[t] else None

    def rss(t, k):
        return med[t][k] / 1024

    def repo(t, k):
        return (med[t]["repo_bytes"]["backup1"] if k == "repo1" else med[t]["growth2_bytes"]) / 1e6

    height = TOP + 3 * PANEL_H + 10
    ds = results["dataset"]
    what = (f"scale {ds['scale']:g}" if "scale" in ds
            else f"{ds['files']:,} files" if "files" in ds else ds["dir"])
    title = (f"{ds['kind']} ({what}, {ds['bytes'] / 1e6:.0f} MB), medians of "
             f"{results['runs']} run(s); lower is better; Nx = ratio to cairn")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>']
    for i, t in enumerate(tools):
        out.append(f'<rect x="{WIDTH - 240 + i * 75}" y="30" width="10" height="10" '
                   f'fill="{COLORS[t]}"/><text x="{WIDTH - 226 + i * 75}" y="39">{t}</text>')
    out += panel(TOP, "wall time (s)", [(s, s) for s in steps], tools, wall, lambda v: f"{v:.2f}")
    out += panel(TOP + PANEL_H, "peak RSS (MiB)",
                 [("backup (largest)", "rss_backup_kib"), ("restore", "rss_restore_kib")],
                 tools, rss, lambda v: f"{v:.0f}")
    out += panel(TOP + 2 * PANEL_H, "repository (MB)",
                 [("after backup1", "repo1"), ("growth of backup2", "growth2")],
                 tools, repo, lambda v: f"{v:.1f}")
    out.append("</svg>\n")
    return "\n".join(out)
