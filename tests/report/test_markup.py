"""The report's small builders: values escaped, shown compactly, durations read as people say them."""

from __future__ import annotations

from pipeline_utils.reports.facts import deployments_named
from pipeline_utils.reports.markup import MAX_VALUE_CHARS, duration, record_table, shown_value, table


def test_inserted_values_are_escaped() -> None:
    cell = '<script>alert("x")</script> & more'
    markup = table(["<th>"], [[cell]]) + record_table([("a<b", cell)])
    assert "<script>" not in markup and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in markup
    assert "&lt;th&gt;" in markup and "a&lt;b" in markup


def test_values_show_compactly_and_long_ones_are_cut() -> None:
    assert shown_value("text as is") == "text as is"
    assert shown_value([10, 50, 100]) == "[10, 50, 100]"
    assert shown_value({"k": "v" * 80}).startswith('{\n "k": "vvv')
    long = shown_value("x" * (MAX_VALUE_CHARS + 10))
    assert long.endswith("… (10 more characters)") and len(long) < MAX_VALUE_CHARS + 30


def test_durations() -> None:
    assert [duration(None), duration(4.24), duration(185), duration(3725)] == ["", "4.2 s", "3 min 05 s", "1 h 02 min"]


def test_deployments_are_named_by_parameter_or_recorded_value_in_any_case() -> None:
    found = deployments_named([{"DEPLOYMENT_NAME": "dep-a", "x": 1}, {"deployment_name": ""},
                               {"deployment_name": "dep-b"}, {"Deployment_Name": " dep-a "}, {"name": "other"}])
    assert found == ["dep-a", "dep-b"]
