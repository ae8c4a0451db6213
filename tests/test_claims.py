"""Every "bit for bit", "exact", "equal" and "the same bits" of README.md and docs/*.md that no other test held, each
asserted on the configuration the sentence names (issue 19). Each test's docstring quotes its sentence and says where
it stands. docs/testing.md ("Claims and the tests that hold them") lists every such sentence with the test that
holds it, here or elsewhere."""

import math
import os
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch
from conftest import ROOT

from jax_impl.core import data, torch_rng
from jax_impl.core.layout import PARAM_NAMES
from jax_impl.files import weights
from torch_impl.twin.convert import from_state_dict
from torch_impl.twin.notebook import notebook_draws as torch_notebook_draws

# torch_rng reproduces torch's AVX2 / AVX-512 kernels (tests/test_torch_rng.py says why); elsewhere torch's own draws
# differ in the last bits, so the claims about torch's draws are only asserted where torch runs one of those.
TORCH_KERNELS = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
same_kernels = pytest.mark.skipif(not TORCH_KERNELS, reason="torch_rng reproduces torch's AVX2 / AVX-512 kernels")


def assert_bits_equal(got, want, what=""):
    """Same dtype, shape and bits (so -0.0 and +0.0 differ, and a NaN would not pass unnoticed)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, got.shape, want.dtype, want.shape)
    np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"), err_msg=what)


# ---- weight files (README "Is it the same computation?", docs/weights.md) --------------------------------------------

def convert(source, target) -> None:
    """python scripts/convert_weights.py SOURCE TARGET, in this process (the script's main)."""
    from conftest import import_script

    convert_weights = import_script("convert_weights")
    try:
        convert_weights.main([str(source), str(target)])
    except SystemExit as e:  # a usage error: fail with its code
        raise AssertionError(f"convert_weights.py {source} {target} exited {e.code}") from e


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pt_npz_safetensors_pt_gives_back_the_same_tensors(tmp_path, capsys, dtype):
    """README.md, "Is it the same computation?": "`.pt → .npz → .safetensors → .pt` gives back the same tensors, bit
    for bit"; docs/weights.md, "Every direction": "float32 and float64 are kept bit for bit, so `.pt → .npz →
    .safetensors → .pt` gives back the same tensors". That chain, in that order, through convert_weights.py, from a
    torch net's torch.save(state_dict()), in float32 and in float64."""
    from torch_impl.twin.model import Net

    torch.manual_seed(3)
    state = Net(1, 20, 1).to(dtype).state_dict()
    if dtype == torch.float64:  # thirds: numbers float32 cannot hold, so that a route through float32 is seen
        state = {name: tensor / 3 for name, tensor in state.items()}
    chain = [tmp_path / name for name in ("net.pt", "net.npz", "net.safetensors", "back.pt")]
    torch.save(state, chain[0])
    for source, target in zip(chain, chain[1:]):
        convert(source, target)
    capsys.readouterr()
    back = torch.load(chain[-1], weights_only=True)
    assert list(back) == list(state)
    for name, tensor in state.items():
        assert_bits_equal(back[name].numpy(), tensor.numpy(), name)


def weights_md_net_pt_code() -> str:
    """The python block of docs/weights.md that makes the notebook's net.pt."""
    text = (ROOT / "docs" / "weights.md").read_text()
    blocks = [block for block in re.findall(r"```python\n(.*?)```", text, re.S)
              if 'torch.save(net.state_dict(), "net.pt")' in block]
    assert len(blocks) == 1, "docs/weights.md: the block that makes net.pt"
    return blocks[0]


@same_kernels
def test_weights_md_net_pt_holds_the_notebooks_initial_weights(tmp_path, monkeypatch):
    """docs/weights.md, "The notebook's net, there and back": "`net.pt` made this way holds the same bits as
    `jax_impl.core.data.notebook_init_params()` (checked on a 2-core AMD EPYC, torch 2.13.0)". The page's own code
    block, run as written, then net.pt read by the port's reader (weights.read)."""
    monkeypatch.chdir(tmp_path)
    with torch.random.fork_rng():  # the block seeds torch's global generator: give it back as it was
        exec(compile(weights_md_net_pt_code(), "docs/weights.md", "exec"), {"__name__": "weights_md"})
    params, note = weights.read(tmp_path / "net.pt")
    assert note is None
    want = data.notebook_init_params()
    for name in PARAM_NAMES:
        assert_bits_equal(params[name], np.asarray(want[name]), name)


# ---- torch's generator without torch (docs/torch-rng.md) -------------------------------------------------------------

TABLE_SEEDS = [0, 1, 7, 12345, 2**32 + 1, 2**64 - 1]  # the rows of docs/torch-rng.md's --torch-seed table


@same_kernels
@pytest.mark.parametrize("seed", TABLE_SEEDS)
def test_the_torch_seed_tables_rows_have_the_same_draws(seed):
    """docs/torch-rng.md, "`--torch-seed K` in the scripts": "The data and weights had the same bits in every row of
    that run." Each row's K at the table's size (20 hidden units, 100 points, noise 0.2): torch_rng's draw (what the
    port trains from, data.run_inputs, where the scripts take K: up to 2**32 - 1) against torch's own."""
    tx, ty, net, _ = torch_notebook_draws(20, seed=seed)
    want = from_state_dict(net.state_dict())
    drawn = torch_rng.notebook_draws(seed, 20, 100, 0.2)
    assert_bits_equal(drawn["x"], tx.numpy(), "x")
    assert_bits_equal(drawn["y"], ty.numpy(), "y")
    for name in PARAM_NAMES:
        assert_bits_equal(drawn["params"][name], want[name], name)
    if seed < 2**32:
        params, x, y = data.run_inputs(torch_seed=seed)
        assert_bits_equal(np.asarray(x), tx.numpy(), "run_inputs x")
        assert_bits_equal(np.asarray(y), ty.numpy(), "run_inputs y")
        for name in PARAM_NAMES:
            assert_bits_equal(np.asarray(params[name]), want[name], f"run_inputs {name}")


def float32_round(q: Fraction) -> np.float32:
    """q rounded once to the nearest float32, ties to even: the reference an FMA instruction meets."""
    guess = np.float32(float(q))  # within one float32 step of the answer (float(q) rounds to float64 first)
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    return min(candidates, key=lambda c: (abs(Fraction(float(c)) - q), int(c.view(np.uint32)) & 1))


# Sums that double rounding gets wrong: A * B = 2**47 + s with 0 < |s| < 2**18, so a * b = (A * 2**-24)(B * 2**-47)
# = 2**-24 + s * 2**-71. Then 1 + a * b (s > 0) or 1 + 2**-23 + a * b (s < 0) lies within s * 2**-71 < 2**-53 of a
# float32 midpoint: float64 rounds it onto the midpoint, and float32's ties-to-even then goes the wrong way.
DOUBLE_ROUNDING_TRAPS = [(8401070, 16752329, 1.0), (8401072, 16752325, 1.0),  # 2**47 + 236702, + 137072
                         (8401075, 16752319, 1 + 2**-23), (8401077, 16752315, 1 + 2**-23)]  # - 12403, - 112073


def test_the_float32_fma_is_exact():
    """docs/torch-rng.md, "How torch draws": "`torch_rng` writes those polynomials out in NumPy with the same fused
    multiply-adds (an exact float32 FMA built on float64)". torch_rng._fma32 against a * b + c computed exactly
    (fractions) and rounded once: on sums where rounding to float64 first and then to float32 is wrong (which the test
    shows of that naive route), at other scales and signs, and on 20,000 random float32 triples (with subnormals and
    cancellation)."""
    a, b, c = [], [], []
    for big, small, add in DOUBLE_ROUNDING_TRAPS:
        for scale, sign in [(0, 1), (0, -1), (40, 1), (-100, -1)]:
            a.append(sign * big * 2.0 ** (scale - 24))
            b.append(small * 2.0**-47)
            c.append(sign * add * 2.0**scale)
    traps = len(a)
    rng = np.random.default_rng(19)
    n = 20_000
    mantissas = rng.uniform(1, 2, (3, n)) * rng.choice([-1, 1], (3, n))
    exponents = rng.integers(-50, 50, (3, n))  # products within float32's range
    a_r, b_r, c_r = (np.float32(m * 2.0**e) for m, e in zip(mantissas, exponents))
    c_r[: n // 4] = -np.float32(np.float64(a_r[: n // 4]) * b_r[: n // 4])  # near-cancellation
    a_r[n // 4: n // 2] *= np.float32(2.0**-80)  # products and sums down to float32's subnormals
    c_r[n // 4: n // 2] *= np.float32(2.0**-100)
    a = np.concatenate([np.float32(a), a_r])
    b = np.concatenate([np.float32(b), b_r])
    c = np.concatenate([np.float32(c), c_r])
    got = torch_rng._fma32(a, b, c)
    want = np.array([float32_round(Fraction(float(p)) * Fraction(float(q)) + Fraction(float(r)))
                     for p, q, r in zip(a, b, c)], np.float32)
    assert_bits_equal(got, want, "_fma32")
    naive = (a.astype(np.float64) * b + c).astype(np.float32)  # rounded to float64, then to float32
    assert not np.any(naive[:traps] == want[:traps])  # the traps are real: every one fools the naive route


# The other side of round-to-odd: A * B = 2**47 + 2**19 - d (0 < d < 2**18) puts 1 + a * b a little below 1 + 2**-24
# + 2**-52, the float64 one step above the float32 midpoint 1 + 2**-24, to which it rounds. That float64 is odd (its
# last bit set, the one before it clear), so it must be left alone: it rounds up, as the exact sum does. Nudged by a
# parity read off the wrong bit, it lands on the midpoint and rounds to even, down.
ODD_ABOVE_THE_MIDPOINT = (2**23 + 1984, 2**24 - 3967)  # A * B = 2**47 + 2**19 - 6208


def test_the_float32_fma_leaves_an_odd_float64_sum_alone():
    """torch_rng._fma32 (docs/torch-rng.md's exact FMA) where the float64 sum is odd and one step beyond the float32
    midpoint: the same bits as the exact sum rounded once (1 + 2**-23), at four scales and both signs."""
    big, small = ODD_ABOVE_THE_MIDPOINT
    cases = [(0, 1), (0, -1), (40, 1), (-100, -1)]
    a = np.float32([sign * big * 2.0 ** (scale - 24) for scale, sign in cases])
    b = np.float32([small * 2.0**-47] * len(cases))
    c = np.float32([sign * 2.0**scale for scale, sign in cases])
    want = np.array([float32_round(Fraction(float(p)) * Fraction(float(q)) + Fraction(float(r)))
                     for p, q, r in zip(a, b, c)], np.float32)
    assert_bits_equal(want, np.float32([sign * (1 + 2**-23) * 2.0**scale for scale, sign in cases]))
    assert_bits_equal(torch_rng._fma32(a, b, c), want, "_fma32")


# What torch_rng reproduces, drawn by torch under one forced kernel set (ATEN_CPU_CAPABILITY, read once when torch
# starts: hence a subprocess per kernel set). test_torch_rng's kinds of draw, a sample of each: every size on both
# randn paths, shapes, randn(100003), nn.Linear, linspace, the notebook's draws and the validation draw.
KERNEL_DRAWS = """
import sys
import numpy as np
import torch
from jax_impl.core import torch_rng
from torch_impl.twin.convert import from_state_dict
from torch_impl.twin.notebook import notebook_draws
if torch.backends.cpu.get_cpu_capability() != sys.argv[1]:  # a CPU without them: torch picks another set
    sys.exit("picked " + torch.backends.cpu.get_cpu_capability())

def same(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, what
    assert got.view(np.uint32).tolist() == want.view(np.uint32).tolist(), what

for seed in (0, 1, 12345, 2**32 + 1, 2**64 - 1):
    g = torch_rng.Generator(seed)
    torch.manual_seed(seed)
    for n in (*range(1, 41), 100, 1000):
        same(g.rand(n), torch.rand(n).numpy(), (seed, "rand", n))
        same(g.randn(n), torch.randn(n).numpy(), (seed, "randn", n))
    for shape in ((1, 20), (20, 1), (5, 16), (2, 3, 5)):
        same(g.randn(shape), torch.randn(shape).numpy(), (seed, "randn", shape))
    weight, bias = g.linear(20, 3)
    layer = torch.nn.Linear(20, 3)
    same(weight, layer.weight.detach().numpy(), (seed, "linear weight"))
    same(bias, layer.bias.detach().numpy(), (seed, "linear bias"))
g = torch_rng.Generator(9)
torch.manual_seed(9)
same(g.randn(100_003), torch.randn(100_003).numpy(), "randn(100003)")
for steps in (2, 99, 100, 101, 1000):
    same(torch_rng.linspace(-1, 1, steps), torch.linspace(-1, 1, steps).numpy(), ("linspace", steps))
for seed, hidden in ((1, 20), (7, 64)):
    x, y, net, validation = notebook_draws(hidden, seed=seed)
    drawn = torch_rng.notebook_draws(seed, hidden, 100, 0.2)
    same(drawn["x"], x.numpy(), "x")
    same(drawn["y"], y.numpy(), "y")
    want = from_state_dict(net.state_dict())
    checked = torch_rng.validation_draw(seed, hidden, 100)
    for name in want:
        same(drawn["params"][name], want[name], name)
        same(checked[name], validation[name], ("validation", name))
print("ok")
"""


def forced_kernels(capability: str, code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh python with torch's kernels forced to `capability` (ATEN_CPU_CAPABILITY)."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, capability.upper()], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)


CAPABILITY_RANK = {"DEFAULT": 0, "AVX2": 1, "AVX512": 2}  # torch's x86 kernel sets, each needing the ones below


@pytest.mark.parametrize("capability", ["avx2", "avx512"])
def test_avx2_and_avx512_give_the_same_bits(capability):
    """docs/torch-rng.md, "What torch does not define the same way everywhere", The CPU: "AVX2 and AVX-512 gave the
    same bits in every check here, and `torch_rng` reproduces them." With torch forced onto each kernel set, its draws
    (KERNEL_DRAWS: every kind test_torch_rng checks, a sample of each) have torch_rng's bits. A CPU without AVX-512
    skips that half: asked for AVX-512 there, torch either picks AVX2 or runs AVX-512 code and dies of an illegal
    instruction (torch 2.13 on an AMD EPYC with AVX2 only: signal 4), so the CPU's own best, as torch detects it in
    this process (no ATEN_CPU_CAPABILITY), decides."""
    native = torch.backends.cpu.get_cpu_capability()
    if CAPABILITY_RANK.get(capability.upper(), 0) > CAPABILITY_RANK.get(native, 0):
        pytest.skip(f"this CPU's best kernels are torch's {native}, not {capability}")
    result = forced_kernels(capability, KERNEL_DRAWS)
    if result.returncode == 1 and result.stderr.startswith("picked "):
        pytest.skip(f"this CPU does not run torch's {capability} kernels (torch {result.stderr.strip()})")
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr[-3000:]


# Under torch's default kernels (no FMA, the C library's logf/cosf/sinf): the small paths against torch_rng, then the
# two differences the page counts that come from plain IEEE float32 arithmetic (no C library), so that they are the
# same on every CPU: linspace(-1, 1, 100) at 42 points, and the notebook's w2 (a uniform of range 2/sqrt(20), not a
# power of two) at 12 of 20.
SMALL_DRAWS = """
import sys
import numpy as np
import torch
from jax_impl.core import torch_rng
from torch_impl.twin.convert import from_state_dict
from torch_impl.twin.notebook import notebook_draws
assert torch.backends.cpu.get_cpu_capability() == sys.argv[1], torch.backends.cpu.get_cpu_capability()
for seed in (0, 1, 12345, 2**32 + 1, 2**64 - 1):
    g = torch_rng.Generator(seed)
    torch.manual_seed(seed)
    for n in range(1, 16):
        for name in ("rand", "randn"):
            got, want = getattr(g, name)(n), getattr(torch, name)(n).numpy()
            assert got.view(np.uint32).tolist() == want.view(np.uint32).tolist(), (seed, name, n)
    for shape in ((1, 15), (3, 5), (15, 1), ()):
        assert g.randn(shape).view(np.uint32).tolist() == torch.randn(shape).numpy().view(np.uint32).tolist(), shape
linspace = int(np.sum(torch_rng.linspace(-1, 1, 100) != torch.linspace(-1, 1, 100).numpy()))
_, _, net, _ = notebook_draws(20, seed=1)
w2 = int(np.sum(torch_rng.notebook_draws(1, 20, 100, 0.2)["params"]["w2"] != from_state_dict(net.state_dict())["w2"]))
print(linspace, w2)
"""


@same_kernels  # the page's CPUs: x86-64, where the default kernels are compiled without FMA
def test_rand_and_randn_of_fewer_than_16_values_are_the_same_under_torchs_default_kernels():
    """docs/torch-rng.md, "What torch does not define the same way everywhere", The CPU: "`rand` and `randn` of fewer
    than 16 values were the same under all three" (default, AVX2, AVX-512; the last two: the test above), and
    "without fused multiply-adds `linspace(-1, 1, 100)` differs at 42 points and ... (the notebook's `w2`: 12 of 20)".
    torch with ATEN_CPU_CAPABILITY=default against torch_rng: sizes 1 to 15 in one stream for five seeds, then those
    two counts."""
    result = forced_kernels("default", SMALL_DRAWS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["42", "12"]


LONG = os.environ.get("CLAIMS_LONG") == "1"  # the 134-million-value check: about 5 minutes on two cores


@same_kernels
@pytest.mark.skipif(not LONG, reason="134 million values take minutes: set CLAIMS_LONG=1 to run")
@pytest.mark.parametrize("size", [2**24, 2**24 + 5])
@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_randn_of_two_to_the_24_values(seed, size):
    """docs/torch-rng.md, "How torch draws": "134 million values of `torch.randn(2**24)` and `torch.randn(2**24 + 5)`
    under four seeds (0, 1, 7, 12345) match bit for bit". Only with CLAIMS_LONG=1 (see the page)."""
    g = torch_rng.Generator(seed)
    torch.manual_seed(seed)
    assert_bits_equal(g.randn(size), torch.randn(size).numpy(), f"randn({size})")


# ---- the printed gradient table (docs/usage.md, "The printed table") -------------------------------------------------

def test_the_float64_gradient_rounds_differently_from_the_printed_table_at_6_of_61_entries():
    """docs/usage.md, `scripts/validate_grads.py`: "Even the exact float64 gradient rounds differently from the printed
    table at 6 of the 61 entries." The validation cell's sum-of-squares gradient at its weights, in float64 (NumPy),
    printed as the notebook prints it (4 decimals; %.4e for W1) against tests/test_grads.py's PRINTED table. The count
    is settled by the weights, not by float64's rounding: every entry lies further from its rounding boundary than a
    bound on float64's error (sums of 100 terms: 100 * 2**-53 of the sum of their magnitudes, times 100 for margin)."""
    from test_grads import PRINTED

    p = {k: np.asarray(v, np.float64) for k, v in data.notebook_validation_params().items()}
    x, y = (np.asarray(a, np.float64) for a in data.notebook_data())
    hidden = 1 / (1 + np.exp(-(x @ p["w1"] + p["b1"])))  # (100, 20)
    residual = 2 * (hidden @ p["w2"] + p["b2"] - y)  # d f / d y_pred, f = sum of squares
    back = (residual @ p["w2"].T) * hidden * (1 - hidden)  # d f / d h
    terms = {"w2": hidden * residual, "b2": residual, "w1": x * back, "b1": back}  # (100, ...) each: the summands
    differ = []
    for name, printed in PRINTED.items():
        grad, size = terms[name].sum(0), np.abs(terms[name]).sum(0)
        for i, text in enumerate(printed):
            shown = ("%.4e" if "e" in text else "%.4f") % grad[i]
            unit = 1e-4 * 10.0 ** int(text.split("e")[1]) if "e" in text else 1e-4
            offset = abs(grad[i] / unit - math.floor(grad[i] / unit) - 0.5) * unit  # distance to the midpoint
            assert offset > 100 * 100 * 2.0**-53 * size[i], (name, i, grad[i], offset)
            if shown != text:
                differ.append((name, i))
    assert sum(len(v) for v in PRINTED.values()) == 61 and len(differ) == 6, differ
