"""The day page's inline stylesheet: system fonts only (no download), prints on A4 landscape."""

from __future__ import annotations

STYLE = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d9dde5; --bg: #f6f7f9; --neg: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1400px; margin: 0 auto; padding: 20px 24px 40px; }
h1 { font-size: 22px; margin: 0 0 8px; display: flex; align-items: center; gap: 12px;
  flex-wrap: wrap; }
h2 { font-size: 17px; margin: 0 0 10px; }
h3 { font-size: 14px; margin: 16px 0 6px; color: var(--muted); }
section, header { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 16px 18px; margin: 0 0 16px; }
code { font: 12px/1.3 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.badge { font-size: 13px; font-weight: 600; padding: 3px 10px; border-radius: 999px;
  text-transform: uppercase; letter-spacing: .04em; background: #e3e6eb; }
.badge.complete { background: #d7f0de; color: #14532d; }
.badge.partial { background: #fff0c2; color: #7a4d00; }
.badge.failed, .badge.publishing, .badge.not-published { background: #fbd5d2; color: #7f1d1d; }
.facts { display: flex; flex-wrap: wrap; gap: 6px 28px; margin: 6px 0 0; }
.facts dt { font-size: 11px; text-transform: uppercase; color: var(--muted); }
.facts dd { margin: 0; }
.warning { background: #fbd5d2; border-radius: 6px; padding: 8px 12px; margin: 12px 0 0; }
.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 4px 18px; padding: 0;
  margin: 0 0 8px; }
.swatch { display: inline-block; width: 14px; height: 4px; margin-right: 6px;
  vertical-align: middle; border-radius: 2px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(370px, 1fr));
  gap: 10px; margin-bottom: 12px; }
.chart-box { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 6px; }
.chart-box figcaption { font-weight: 600; font-size: 13px; }
.chart { width: 100%; height: auto; display: block; }
.chart .plot { fill: #fbfbfc; stroke: var(--line); }
.chart .axis { font-size: 10px; fill: var(--muted); }
.chart .axis.end { text-anchor: end; }
.chart .zero { stroke: #9aa3b2; stroke-dasharray: 3 3; }
.chart .series { fill: none; stroke-width: 1.8; stroke-linejoin: round; }
.chart .point { stroke-width: 1.2; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; overflow-wrap: break-word; }
th { background: #eef0f4; font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.neg { color: var(--neg); }
td.none { color: var(--muted); }
.empty, .more { color: var(--muted); }
footer { color: var(--muted); font-size: 12px; }
@media print { body { background: #fff; } section, header { break-inside: avoid; } }
"""
