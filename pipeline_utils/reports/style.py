"""The report's CSS, inline in the page: layout, tables, nbconvert's cell classes, ANSI colours, code highlighting."""

from __future__ import annotations

PAGE_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1f2328; }
header, main, footer { max-width: 1200px; margin: 0 auto; padding: 0 24px; }
header { border-bottom: 1px solid #d0d7de; padding-bottom: 8px; }
h1 { font-size: 22px; margin: 18px 0 4px; word-break: break-all; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
nav a { margin-right: 14px; }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; color: #fff; }
.status-succeeded { background: #1a7f37; } .status-failed, .status-interrupted { background: #cf222e; }
.status-running { background: #9a6700; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
td { white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, SFMono-Regular, Menlo, monospace;
     font-size: 12.5px; }
table.record th { background: #f6f8fa; width: 11em; }
thead th { background: #f6f8fa; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12.5px; }
#failure { border-left: 4px solid #cf222e; padding-left: 12px; }
#failure pre.traceback { background: #fff5f5; }
.muted { color: #656d76; }
details.notebook { border: 1px solid #d0d7de; border-radius: 6px; margin: 10px 0; padding: 0 12px; }
details.notebook > summary { cursor: pointer; padding: 8px 0; font-weight: 600; }
img { max-width: 100%; }
figure { margin: 12px 0; } figcaption { color: #656d76; font-size: 12px; }
.cell { margin: 6px 0; }
.input_prompt, .output_prompt, .prompt { color: #656d76; font-family: ui-monospace, monospace; font-size: 11px; }
.input_area { border: 1px solid #d0d7de; border-radius: 4px; }
.input_area pre, .highlight pre { margin: 0; }
.output_area pre { background: none; padding: 2px 8px; margin: 0; white-space: pre-wrap; }
.output_stderr pre { background: #fff8e1; }
.output_error pre { background: #fff5f5; }
.text_cell_render { padding: 2px 0; }
.ansi-black-fg { color: #3e424d; } .ansi-red-fg { color: #e75c58; } .ansi-green-fg { color: #00a250; }
.ansi-yellow-fg { color: #ddb62b; } .ansi-blue-fg { color: #208ffb; } .ansi-magenta-fg { color: #d160c4; }
.ansi-cyan-fg { color: #60c6c8; } .ansi-white-fg { color: #c5c1b4; } .ansi-bold { font-weight: bold; }
.ansi-red-bg { background: #e75c58; } .ansi-green-bg { background: #00a250; } .ansi-yellow-bg { background: #ddb62b; }
"""


def highlight_css() -> str:
    """Pygments' rules for the ``.highlight`` code blocks nbconvert writes."""
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(style="default").get_style_defs(".highlight")


def report_css() -> str:
    """All the CSS of the page."""
    return PAGE_CSS + highlight_css()
