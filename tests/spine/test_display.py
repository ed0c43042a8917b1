"""Notebook tables: escaped HTML for Jupyter, aligned text for logs and terminals."""

from pipeline_utils.notebooks.display import Table


def test_rows_render_as_html_and_text():
    table = Table([{"name": "a<b", "n": 1}, {"name": "c", "extra": None}], "title")
    html = table._repr_html_()
    assert "<th style='text-align:left'>extra</th>" in html and "a&lt;b" in html and "<b>title</b>" in html
    assert repr(table).splitlines() == ["title", "name  n  extra", "a<b   1", "c"]
    assert len(table) == 2


def test_a_record_becomes_field_value_rows():
    assert repr(Table.of_record({"x": 1, "longer": "v"})).splitlines() == ["field   value", "x       1", "longer  v"]
