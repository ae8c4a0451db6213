"""floor: the step's arithmetic counted, the floor programs' rates positive, the paired ratio's fields in order.
No timing is asserted beyond being positive and ordered."""

import jax
import pytest

from torch_impl.bench import floor


def test_step_arithmetic_at_the_notebook_size():
    # 13 N H + 6 N + 14 (3 H + 1) = 26000 + 600 + 854 FLOPs, and N H sigmoids
    assert floor.step_arithmetic(100, 20) == (27454, 2000)
    assert floor.flops_per_step(100, 20) == 27454
    assert floor.step_arithmetic(100, 20, "sgd")[0] == 26000 + 600 + 2 * 61


def test_rates_and_paired_ratio():
    device = jax.devices("cpu")[0]
    rates = floor.measure_rates(device, seconds=0.02)
    assert rates["flop_rate"] > 0 and rates["sigmoid_rate"] > 0
    program = floor.floor_programs(device)[0]
    paired = floor.paired_ratio(lambda: program(3, 3), 64, 8, 21, device, rounds=5)
    assert paired["paired_rounds"] == 5
    assert 0 < paired["paired_ratio_p25"] <= paired["paired_ratio_median"] <= paired["paired_ratio_p75"]


def test_unknown_optimizer_has_no_count():
    with pytest.raises(KeyError):
        floor.step_arithmetic(100, 20, "rmsprop")
