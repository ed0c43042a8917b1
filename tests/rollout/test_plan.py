"""A rollout's plan: its steps, its hold and each step's split, checked before any traffic moves."""

from __future__ import annotations

import pytest

from pipeline_utils.errors import BadInput
from pipeline_utils.rollout.plan import check_steps, parse_hold, scaled, step_traffic


def test_steps_from_text_or_a_list() -> None:
    assert check_steps("10,50,100", "--steps") == [10, 50, 100]
    assert check_steps(" 5, 100", "--steps") == [5, 100]
    assert check_steps([25], "STEPS") == [25]


@pytest.mark.parametrize("steps", ["", "50,10", "10,10", "0,100", "10,101", "10,x", "1.5", [True], [10.0], "-5"])
def test_bad_steps_are_one_line_naming_the_option(steps) -> None:
    with pytest.raises(BadInput, match="give increasing integer percents from 1 to 100") as caught:
        check_steps(steps, "--steps")
    assert caught.value.field == "--steps"


@pytest.mark.parametrize(("text", "seconds"), [("60s", 60.0), ("2m", 120.0), ("1.5h", 5400.0), ("500ms", 0.5),
                                                ("90", 90.0), ("0", 0.0), (" 3 s ", 3.0), (7, 7.0)])
def test_holds(text, seconds) -> None:
    assert parse_hold(text, "--hold") == seconds


@pytest.mark.parametrize("text", ["soon", "-1s", "1d", "25h", "nan", "inf", "1e3s", float("nan"), -2])
def test_bad_holds_are_one_line_naming_the_option(text) -> None:
    with pytest.raises(BadInput) as caught:
        parse_hold(text, "--hold")
    assert caught.value.field == "--hold"


def test_each_step_gives_the_new_deployment_its_share_and_the_others_the_rest_as_they_had_it() -> None:
    before = {"blue": 75, "green": 0, "gray": 25}
    assert step_traffic(before, "green", 10) == {"blue": 68, "gray": 22, "green": 10}
    assert step_traffic(before, "green", 50) == {"blue": 38, "gray": 12, "green": 50}
    assert step_traffic(before, "green", 100) == {"blue": 0, "gray": 0, "green": 100}
    for percent in range(1, 101):
        assert sum(step_traffic(before, "green", percent).values()) == 100


def test_a_deployment_already_taking_some_traffic_is_not_counted_among_the_previous_ones() -> None:
    assert step_traffic({"blue": 80, "green": 20}, "green", 50) == {"blue": 50, "green": 50}


def test_scaling_keeps_integers_and_the_total() -> None:
    assert scaled({"a": 1, "b": 1, "c": 1}, 100) == {"a": 34, "b": 33, "c": 33}
    assert scaled({"a": 0}, 100) == {"a": 0}
