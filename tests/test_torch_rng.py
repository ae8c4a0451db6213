"""jax_impl.core.torch_rng against torch itself, bit for bit: the stream for any seed, rand, randn, nn.Linear's init,
linspace, the notebook's draws and its validation draw (data.py's source); and the scripts' --torch-seed."""

import json

import numpy as np
import pytest
import torch
from conftest import import_script, run_main

from jax_impl.app import cli
from jax_impl.core import data, torch_rng
from jax_impl.core.layout import PARAM_NAMES
from torch_impl.twin.convert import from_state_dict
from torch_impl.twin.notebook import notebook_draws as torch_notebook_draws

# torch picks its CPU kernels by the CPU's instruction sets; torch_rng reproduces the AVX2 and AVX-512 ones (every
# x86-64 CPU since 2013, this project's Intel Xeon and AMD EPYC machines). Elsewhere torch's own float32 randn,
# linspace and uniform_ differ in the last bits (docs/torch-rng.md).
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


def test_notebook_data_torch_rng_and_torch_agree():
    """The port's notebook data and weights (data.py, drawn by torch_rng) are torch's own draw, bit for bit."""
    x, y, net, validation = torch_notebook_draws()
    jx, jy = data.notebook_data()
    for got, want, what in ((np.asarray(jx), x.numpy(), "x"), (np.asarray(jy), y.numpy(), "y")):
        assert_bits_equal(got, want, what)
    init = data.notebook_init_params()
    for name in PARAM_NAMES:
        assert_bits_equal(np.asarray(init[name]), torch_params(net)[name], f"initial {name}")
        assert_bits_equal(data.notebook_validation_params()[name], validation[name], f"validation {name}")


@pytest.mark.parametrize("seed", [-1, 2**64, 1.0, True, "1"])
def test_seeds_outside_torchs_range_are_refused(seed):
    with pytest.raises(ValueError, match="not a whole number from 0 to 2"):
        torch_rng.Generator(seed)


# --- the scripts' --torch-seed ---------------------------------------------------------------------------------------

# The loss before the first update, from the same float32 data and weights: a mean of N squared residuals, each a sum
# over H hidden units. XLA and torch round those sums in their own orders: relative differences up to about
# (N + H) * 2**-24 (7e-6 at the notebook's size); a wrong draw moves the loss in the first digits.
FIRST_LOSS_RTOL = 1e-5


def float64_loss(params, x, y) -> float:
    """The MSE in float64 at float32 draws: the reference both scripts' first losses round towards."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    hidden = 1 / (1 + np.exp(-(x @ p["w1"] + p["b1"])))
    return float(np.mean((hidden @ p["w2"] + p["b2"] - y) ** 2))


@pytest.fixture(scope="module")
def scripts():
    return {name: import_script(name) for name in ("train_jax", "train_torch", "compare", "sweep")}


@pytest.mark.parametrize("flags", [
    ["--torch-seed", "1"], ["--torch-seed", str(2**32 - 7)],
    ["--torch-seed", "5", "--hidden", "8", "--points", "50", "--noise", "0.1"],
])
def test_train_jax_and_train_torch_start_from_the_same_draw(scripts, tmp_path, monkeypatch, capsys, flags):
    first = {}
    for name in ("train_jax", "train_torch"):
        code, out = run_main(scripts[name], monkeypatch, capsys, *flags, "--steps", 2, "--json", "--no-plots",
                             "--no-cache", "--out", tmp_path / name)
        assert code == 0
        first[name] = json.loads(out)["losses"][0]
    seed, hidden = int(flags[1]), int(flags[flags.index("--hidden") + 1]) if "--hidden" in flags else 20
    points = int(flags[flags.index("--points") + 1]) if "--points" in flags else 100
    draws = torch_rng.notebook_draws(seed, hidden, points, float(flags[-1]) if "--noise" in flags else 0.2)
    want = float64_loss(draws["params"], draws["x"], draws["y"])
    assert first["train_jax"] == pytest.approx(want, rel=FIRST_LOSS_RTOL)
    assert first["train_torch"] == pytest.approx(want, rel=FIRST_LOSS_RTOL)
    if flags == ["--torch-seed", "1"]:
        assert "%.4f" % first["train_jax"] == "0.6136"  # the notebook's run


def test_run_inputs_with_a_torch_seed_is_torchs_draw():
    """What train_jax.py and compare.py train from (data.run_inputs) against what train_torch.py draws with torch."""
    params, x, y = data.run_inputs(torch_seed=6, hidden=12, points=30, noise=0.3)
    tx, ty, net, _ = torch_notebook_draws(12, seed=6, points=30, noise=0.3)
    assert_bits_equal(np.asarray(x), tx.numpy(), "x")
    assert_bits_equal(np.asarray(y), ty.numpy(), "y")
    for name in PARAM_NAMES:
        assert_bits_equal(np.asarray(params[name]), torch_params(net)[name], name)
    rx, ry = data.run_data(torch_seed=6, points=30, noise=0.3)
    assert_bits_equal(np.asarray(rx), tx.numpy(), "run_data x")
    assert_bits_equal(np.asarray(ry), ty.numpy(), "run_data y")


def test_compare_trains_both_sides_from_torchs_draw(scripts):
    """compare.py hands the same (params, x, y) to JAX and to torch: with --torch-seed, torch's own draw."""
    params, x, y = cli.run_inputs(scripts["compare"].parse_args(["--torch-seed", "4", "--hidden", "3"]), np.float32)
    tx, ty, net, _ = torch_notebook_draws(3, seed=4)
    assert_bits_equal(np.asarray(x), tx.numpy(), "x")
    assert_bits_equal(np.asarray(y), ty.numpy(), "y")
    for name in PARAM_NAMES:
        assert_bits_equal(np.asarray(params[name]), torch_params(net)[name], name)


def test_sweep_with_a_torch_seed_starts_from_torchs_draws(scripts, tmp_path, monkeypatch, capsys):
    """Data from --torch-seed 1 (the notebook's); seed S's weights from torch.manual_seed(S), so the model with seed 1
    starts as the notebook's run; the largest seed, 2**32 - 1, is accepted."""
    code, out = run_main(scripts["sweep"], monkeypatch, capsys, "--torch-seed", 1, "--seeds", f"1,{2**32 - 1}",
                         "--lrs", 0.2, "--steps", 3, "--json", "--curves", "--no-plots", "--no-cache", "--out",
                         tmp_path)
    assert code == 0
    models = {m["seed"]: m for m in json.loads(out)["models"]}
    assert set(models) == {1, 2**32 - 1}
    notebook = torch_rng.notebook_draws(1)
    for seed, model in models.items():
        want = float64_loss(torch_rng.notebook_draws(seed)["params"], notebook["x"], notebook["y"])
        assert model["losses"][0] == pytest.approx(want, rel=FIRST_LOSS_RTOL), seed
    assert "%.4f" % models[1]["losses"][0] == "0.6136"


ALLOWED = ["--torch-seed", str(2**32 - 1), "--hidden", "8", "--points", "5", "--noise", "0", "--x64"]
BAD_FLAGS = [
    (["--torch-seed", "1", "--seed", "2"], "--seed would draw them again with jax.random"),
    (["--torch-seed", "1", "--data-seed", "0"], "--data-seed would draw them again with jax.random"),
    (["--torch-seed", "-1"], "must not be negative"),
    (["--torch-seed", str(2**32)], "above 2**32 - 1"),  # torch.manual_seed(2**32) is seed 0's stream
    (["--torch-seed", "one"], "is not a whole number"),
]


@pytest.mark.parametrize("name", ["train_jax", "compare", "sweep"])  # train_torch.py parses with train_jax's parser
def test_torch_seed_flags(scripts, capsys, name):
    args = scripts[name].parse_args(ALLOWED)
    assert args.torch_seed == 2**32 - 1 and args.data_seed is None
    for argv, message in BAD_FLAGS:
        if name == "sweep" and "--seed" in argv:
            continue  # the sweep has --seeds, which --torch-seed reads as torch seeds
        with pytest.raises(SystemExit) as exit_info:
            scripts[name].parse_args(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err and err.count("\n") == 1, (argv, err)


@pytest.mark.parametrize("torch_seeds", [[], ["--torch-seed", "0"]])
def test_sweep_seeds_stop_at_32_bits(scripts, capsys, torch_seeds):
    """--seeds, as jax.random keys or as torch seeds: 0 ... 2**32 - 1 in each of its forms, and not one more."""
    sweep = scripts["sweep"]
    assert list(sweep.parse_args([*torch_seeds, "--seeds", f"{2**32 - 2}:{2**32}"]).seeds) == [2**32 - 2, 2**32 - 1]
    assert sweep.parse_args([*torch_seeds, "--seeds", f"0,{2**32 - 1}"]).seeds == [0, 2**32 - 1]
    for seeds in (f"0,{2**32}", f"{2**32 - 1}:{2**32 + 1}", str(2**32 + 1)):
        with pytest.raises(SystemExit) as exit_info:
            sweep.parse_args([*torch_seeds, "--seeds", seeds])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and "2**32" in err and err.count("\n") == 1, (seeds, err)
