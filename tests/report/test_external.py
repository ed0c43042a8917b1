"""The rewrite that keeps a report self-contained: outside references switched off, everything else verbatim."""

from __future__ import annotations

from pipeline_utils.reports.external import without_external_references


def test_outside_references_are_switched_off_and_kept_readable() -> None:
    markup = (
        '<p>see <a href="https://example.com/docs">docs</a> and <a href="#cell-3">cell 3</a></p>'
        '<img alt="x" src="https://example.com/t.png"><img src="data:image/png;base64,AAAA">'
        '<img srcset="//cdn.example.com/a.png 2x"><svg><image xlink:href="http://e.com/i.png"/></svg>'
        '<div style="background: url(\'https://e.com/b.png\')">bg</div><style>@import "x.css";</style>'
    )
    out = without_external_references(markup)
    assert 'data-blocked-href="https://example.com/docs"' in out and '<a href="#cell-3">' in out
    assert 'data-blocked-src="https://example.com/t.png"' in out
    assert '<img src="data:image/png;base64,AAAA">' in out
    assert 'data-blocked-srcset="//cdn.example.com/a.png 2x"' in out
    assert 'data-blocked-xlink-href="http://e.com/i.png"' in out
    assert "url(" not in out.replace("blocked-url(", "") and "@import" not in out


def test_scripts_and_meta_refreshes_are_left_out() -> None:
    markup = ('<p>a</p><script src="https://cdn.example.com/x.js"></script><script>document.write("x")</script>'
              '<meta http-equiv="refresh" content="0; url=https://example.com"><p>b &amp; c &#62;</p>')
    assert without_external_references(markup) == "<p>a</p><p>b &amp; c &#62;</p>"


def test_markup_without_outside_references_is_unchanged() -> None:
    markup = ('<div class="cell" id="cell-id=1"><pre>a &lt; b and x="src=http://not-an-attribute"</pre>'
              '<!-- note --><br/><table class="dataframe"><tr><td>1</td></tr></table></div>')
    assert without_external_references(markup) == markup
