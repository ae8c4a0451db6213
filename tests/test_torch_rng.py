"""jax_impl.torch_rng against torch itself, bit for bit: the stream for any seed, rand, randn, nn.Linear's init,
linspace, the notebook's draws and its validation draw; the shipped files."""

import numpy as np
import pytest
import torch
from conftest import import_script

from jax_impl import data, torch_rng
from jax_impl.params_io import PARAM_NAMES, load_params
from torch_impl.convert import from_state_dict
from torch_impl.notebook import notebook_draws as torch_notebook_draws

# torch picks its CPU kernels by the CPU's instruction sets; torch_rng reproduces the AVX2 and AVX-512 ones (every
# x86-64 CPU since 2013, this project's Intel Xeon and AMD EPYC machines). Elsewhere torch's own float32 randn,
# linspace and uniform_ differ in the last bits (README, "torch's seeds, without torch").
pytestmark = pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
                                reason="torch_rng reproduces torch's AVX2 / AVX-512 kernels")

SEEDS = [0, 1, 12345, 2**31 + 7, 2**32 + 1, 2**64 - 1]  # 2**32 + 1 and 1 share a stream (low 32 bits), as in torch
SIZES = [*range(1, 41), 100, 1000]  # randn: < 16 values the float64 path, >= 16 blocks of 16 (+ a recomputed tail)
SHAPES = [(1, 20), (20, 1), (3, 7), (4, 4), (5, 16), (2, 3, 5), (1,), (), (0,)]


def assert_bits_equal(got, want, what=""):
    """Same shape, dtype float32 and the same bits (so -0.0 and +0.0 differ, and NaN would not pass unnoticed)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape, (what, got.dtype, got.shape, want.shape)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32), err_msg=what)


def torch_params(net) -> dict:
    return from_state_dict(net.state_dict())


@pytest.mark.parametrize("seed", SEEDS)
def test_rand_and_randn_every_size_and_shape_in_one_stream(seed):
    g = torch_rng.Generator(seed)
    torch.manual_seed(seed)
    for n in SIZES:
        assert_bits_equal(g.rand(n), torch.rand(n).numpy(), f"rand({n})")
        assert_bits_equal(g.randn(n), torch.randn(n).numpy(), f"randn({n})")
    for shape in SHAPES:
        assert_bits_equal(g.randn(shape), torch.randn(shape).numpy(), f"randn({shape})")
        if shape:
            assert_bits_equal(g.rand(*shape), torch.rand(*shape).numpy(), f"rand{shape}")


def test_large_randn_and_the_seed_only_keeps_its_low_32_bits():
    g = torch_rng.Generator(2**32 + 9)
    torch.manual_seed(9)  # the same stream in torch too
    assert_bits_equal(g.randn(100_003), torch.randn(100_003).numpy(), "randn(100003)")
    assert_bits_equal(torch_rng.Generator(9).rand(5), torch_rng.Generator(2**33 + 9).rand(5))


@pytest.mark.parametrize("seed", [3, 2**40 + 5])
def test_mixed_sequences_of_calls(seed):
    """randn's small path keeps a spare value across calls (through rand, uniform_, Linear and large randn alike)."""
    program = np.random.default_rng(seed)
    g = torch_rng.Generator(seed)
    torch.manual_seed(seed)
    for step in range(60):
        op, n = program.choice(["rand", "randn", "randn", "uniform", "linear"]), int(program.choice(
            [1, 2, 3, 7, 15, 16, 17, 31, 33, 100]))
        if op == "uniform":
            low, high = sorted(program.uniform(-5, 5, 2).tolist())
            assert_bits_equal(g.uniform(low, high, n), torch.empty(n).uniform_(low, high).numpy(), f"{step} {op}")
        elif op == "linear":
            weight, bias = g.linear(n, 3)
            layer = torch.nn.Linear(n, 3)
            assert_bits_equal(weight, layer.weight.detach().numpy(), f"{step} weight")
            assert_bits_equal(bias, layer.bias.detach().numpy(), f"{step} bias")
        else:
            assert_bits_equal(getattr(g, op)(n), getattr(torch, op)(n).numpy(), f"{step} {op}({n})")


@pytest.mark.parametrize("fan_in, fan_out", [(1, 1), (1, 20), (20, 1), (1, 64), (64, 1), (3, 5), (256, 1), (999, 3)])
def test_linear_init(fan_in, fan_out):
    g = torch_rng.Generator(fan_in * 1000 + fan_out)
    torch.manual_seed(fan_in * 1000 + fan_out)
    layer = torch.nn.Linear(fan_in, fan_out)
    weight, bias = g.linear(fan_in, fan_out)
    assert_bits_equal(weight, layer.weight.detach().numpy(), "weight")
    assert_bits_equal(bias, layer.bias.detach().numpy(), "bias")
    assert_bits_equal(g.rand(3), torch.rand(3).numpy(), "the stream after the layer")


@pytest.mark.parametrize("start, end", [(-1, 1), (0, 1), (-3.5, 2.25), (2, -7)])
def test_linspace(start, end):
    for steps in [*range(0, 41), 99, 100, 101, 1000, 54321]:
        assert_bits_equal(torch_rng.linspace(start, end, steps), torch.linspace(start, end, steps).numpy(),
                          f"linspace({start}, {end}, {steps})")


@pytest.mark.parametrize("seed, hidden, points, noise", [
    (1, 20, 100, 0.2), (0, 20, 100, 0.2), (7, 1, 100, 0.2), (3, 64, 17, 0.1), (2**40 + 3, 8, 1000, 0.5),
    (2**64 - 1, 20, 1, 0.0), (11, 15, 16, 1.0),
])
def test_notebook_draws(seed, hidden, points, noise):
    got = torch_rng.notebook_draws(seed, hidden, points, noise)
    x, y, net, _ = torch_notebook_draws(hidden, seed=seed, points=points, noise=noise)
    assert_bits_equal(got["x"], x.numpy(), "x")
    assert_bits_equal(got["y"], y.numpy(), "y")
    want = torch_params(net)
    assert list(got["params"]) == list(PARAM_NAMES)
    for name in PARAM_NAMES:
        assert_bits_equal(got["params"][name], want[name], name)


@pytest.mark.parametrize("seed, hidden, points", [(1, 20, 100), (0, 20, 100), (2**33, 8, 50), (5, 1, 7)])
def test_validation_draw(seed, hidden, points):
    """The validation cell's sixth run: randn(1, H) and randn(H, 1) take the block path from H = 16 on, randn(1)
    always the small one (whose spare value carries from one run to the next)."""
    _, _, _, want = torch_notebook_draws(hidden, seed=seed, points=points)
    got = torch_rng.validation_draw(seed, hidden, points)
    for name in PARAM_NAMES:
        assert_bits_equal(got[name], want[name], name)


def test_shipped_files_torch_rng_and_torch_agree():
    x, y, net, validation = torch_notebook_draws()
    draws = torch_rng.notebook_draws()
    shipped = load_params(data.NOTEBOOK_DATA)  # the weights; x and y below
    jx, jy = data.notebook_data()
    for got, want, what in ((np.asarray(jx), x.numpy(), "x"), (np.asarray(jy), y.numpy(), "y"),
                            (draws["x"], x.numpy(), "torch_rng x"), (draws["y"], y.numpy(), "torch_rng y")):
        assert_bits_equal(got, want, what)
    for name in PARAM_NAMES:
        assert_bits_equal(shipped[name], torch_params(net)[name], f"file {name}")
        assert_bits_equal(draws["params"][name], torch_params(net)[name], f"torch_rng {name}")
        assert_bits_equal(load_params(data.NOTEBOOK_VALIDATION_PARAMS)[name], validation[name], f"validation {name}")
        assert_bits_equal(torch_rng.validation_draw()[name], validation[name], f"torch_rng validation {name}")


def test_make_notebook_data_writes_the_shipped_arrays(tmp_path, capsys):
    import_script("make_notebook_data").main(["--out", str(tmp_path)])
    assert "wrote" in capsys.readouterr().out
    for path in (data.NOTEBOOK_DATA, data.NOTEBOOK_VALIDATION_PARAMS):
        with np.load(path) as shipped, np.load(tmp_path / path.name) as written:
            assert sorted(written.files) == sorted(shipped.files)
            for name in shipped.files:
                assert_bits_equal(written[name], shipped[name], f"{path.name} {name}")


@pytest.mark.parametrize("seed", [-1, 2**64, 1.0, True, "1"])
def test_seeds_outside_torchs_range_are_refused(seed):
    with pytest.raises(ValueError, match="not a whole number from 0 to 2"):
        torch_rng.Generator(seed)
