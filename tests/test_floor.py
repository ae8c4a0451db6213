"""floor: the step's arithmetic and bytes counted, the roofline's bound chosen, the floor programs' rates and the
bandwidth positive, the paired ratio's fields in order. No timing is asserted beyond being positive and ordered."""

import jax
import pytest

from torch_impl.bench import floor


def test_step_arithmetic_at_the_notebook_size():
    # 13 N H + 6 N + 14 (3 H + 1) = 26000 + 600 + 854 FLOPs, and N H sigmoids
    assert floor.step_arithmetic(100, 20) == (27454, 2000)
    assert floor.flops_per_step(100, 20) == 27454
    assert floor.step_arithmetic(100, 20, "sgd")[0] == 26000 + 600 + 2 * 61


def test_step_bytes_count_the_inputs_and_the_optimizer_state():
    # x and y read (2N floats); 3H + 1 = 61 parameters with Adam's two moments, read and written: 2 * 3 * 61 floats
    assert floor.step_bytes(100, 20) == 4 * (200 + 366)
    assert floor.step_bytes(100, 20, "sgd") == 4 * (200 + 122)
    assert floor.step_bytes(100, 20, itemsize=8) == 2 * floor.step_bytes(100, 20)


def test_floor_is_the_larger_of_compute_and_memory():
    """A roofline: with a slow memory the bytes bound the floor, with a fast one the arithmetic does."""
    flops, sigmoids = floor.step_arithmetic(1000, 20)
    rates = {"flop_rate": 1e11, "sigmoid_rate": 1e9, "bandwidth": 1e12}
    seconds, bound = floor.floor_seconds(1000, 20, 10, rates)
    assert bound == "compute" and seconds == pytest.approx(10 * (flops / 1e11 + sigmoids / 1e9), rel=1e-12)
    slow = rates | {"bandwidth": 1e3}
    seconds, bound = floor.floor_seconds(1000, 20, 10, slow)
    assert bound == "memory" and seconds == pytest.approx(10 * floor.step_bytes(1000, 20) / 1e3, rel=1e-12)
    parts = floor.step_seconds(1000, 20, slow)
    assert parts == pytest.approx({"flops": flops / 1e11, "sigmoids": sigmoids / 1e9,
                                   "bytes": floor.step_bytes(1000, 20) / 1e3}, rel=1e-12)
    record = floor.floor_record(1000, 20, 10, slow, "cpu")
    assert (record["bound"], record["bytes_per_step"], record["median_s"]) == ("memory", floor.step_bytes(1000, 20),
                                                                                seconds)


def test_rates_and_paired_ratio():
    device = jax.devices("cpu")[0]
    rates = floor.measure_rates(device, seconds=0.02)
    assert rates["flop_rate"] > 0 and rates["sigmoid_rate"] > 0 and rates["bandwidth"] > 0
    assert floor.measure_bandwidth(device, nbytes=2**16, seconds=0.01) > 0
    program = floor.floor_programs(device)[0]
    paired = floor.paired_ratio(lambda: program(3, 3), 64, 8, 21, device, rounds=5)
    assert paired["paired_rounds"] == 5
    assert 0 < paired["paired_ratio_p25"] <= paired["paired_ratio_median"] <= paired["paired_ratio_p75"]


def test_unknown_optimizer_has_no_count():
    with pytest.raises(KeyError):
        floor.step_arithmetic(100, 20, "rmsprop")
