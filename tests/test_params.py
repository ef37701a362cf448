import math

import pytest

from perform.core.params import ParamError, ParamSpec, ParamStore, UnknownParam


def store_with(*specs: ParamSpec) -> ParamStore:
    store = ParamStore()
    store.declare(specs)
    return store


def test_values_are_coerced_and_clamped_to_the_declared_type():
    store = store_with(ParamSpec("speed", 0.1, 0.0, 1.0), ParamSpec("count", 3, 0, 10),
                       ParamSpec("on", False), ParamSpec("label", "a"))
    assert store.set("speed", 5) == 1.0
    assert store.set("speed", "0.25") == 0.25
    assert store.set("count", 7.6) == 8
    assert store.set("count", -4) == 0
    assert store.set("on", 1) is True
    assert store.set("on", "off") is False
    assert store.set("label", 12) == "12"
    values, _ = store.snapshot(0.0)
    assert dict(values) == {"speed": 0.25, "count": 0, "on": False, "label": "12"}


@pytest.mark.parametrize("bad", [math.nan, math.inf, "fast", None, [1, 2], b"\x00"])
def test_bad_values_are_refused_and_change_nothing(bad):
    store = store_with(ParamSpec("speed", 0.1, 0.0, 1.0))
    with pytest.raises(ParamError, match="speed"):
        store.set("speed", bad)
    assert store.snapshot(0.0)[0]["speed"] == 0.1


def test_unknown_names_are_reported():
    with pytest.raises(UnknownParam, match="nope"):
        store_with(ParamSpec("speed", 0.1)).set("nope", 1)


def test_redeclaring_keeps_values_of_params_that_stay_and_reclamps_them():
    store = store_with(ParamSpec("speed", 0.1, 0.0, 1.0), ParamSpec("gone", 1.0))
    store.set("speed", 0.9)
    store.declare([ParamSpec("speed", 0.1, 0.0, 0.5), ParamSpec("new", 2.0)])
    values, _ = store.snapshot(0.0)
    assert dict(values) == {"speed": 0.5, "new": 2.0}


def test_a_param_whose_type_changes_restarts_from_its_default():
    store = store_with(ParamSpec("x", 0.5))
    store.set("x", 0.7)
    store.declare([ParamSpec("x", "text")])
    assert store.snapshot(0.0)[0]["x"] == "text"


def test_smoothing_glides_toward_the_target_at_the_declared_time_constant():
    store = store_with(ParamSpec("mix", 0.0, 0.0, 1.0, smooth=0.5))
    store.set("mix", 1.0)
    values = [store.snapshot(0.1)[0]["mix"] for _ in range(5)]  # 0.5 s in 0.1 s steps
    assert values == sorted(values) and 0 < values[0] < values[-1] < 1.0
    assert values[-1] == pytest.approx(1 - math.exp(-1), abs=1e-6)
    for _ in range(200):
        store.snapshot(0.1)
    assert store.snapshot(0.1)[0]["mix"] == 1.0


def test_snapshots_are_frozen_and_versioned():
    store = store_with(ParamSpec("a", 0.0))
    values, version = store.snapshot(0.0)
    store.set("a", 3.0)
    assert values["a"] == 0.0
    assert store.snapshot(0.0)[1] > version
    with pytest.raises(TypeError):
        values["a"] = 1.0  # type: ignore[index]


@pytest.mark.parametrize("name", ["", "/walk", "two words"])
def test_bad_names_are_refused(name):
    with pytest.raises(ParamError):
        ParamSpec(name, 0.0)
