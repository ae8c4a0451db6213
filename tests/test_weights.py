"""Weight files (files/weights.py, files/torch_file.py, convert_weights.py, --init, --params): every direction between
a torch checkpoint, safetensors and the port's .npz, bit for bit; torch.save's files read without torch as torch.load
reads them, and the files written without torch read by torch.load(weights_only=True), bit for bit; every format with
torch absent; a torch net's own file into every flag that takes weights; each almost-right file refused with one line
naming the problem, or accepted with one note; no pickle ever run."""

import io
import itertools
import json
import os
import pathlib
import subprocess
import sys
import warnings
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
from conftest import ROOT, import_script, run_main

from jax_impl.app import cli
from jax_impl.core import data
from jax_impl.files import torch_file, weights
from jax_impl.files.params_io import InputError
from torch_impl.twin.model import Net

convert_weights = import_script("convert_weights")
train_jax = import_script("train_jax")
train_torch = import_script("train_torch")
compare = import_script("compare")
validate_grads = import_script("validate_grads")
plant_fault = import_script("plant_fault")

SUFFIX = {"torch": ".pt", "safetensors": ".safetensors", "npz": ".npz"}
# The t = 0 loss of one float32 net on the notebook's data, XLA against torch: the same numbers summed in other orders
# (20 hidden units per prediction, then 100 squares). Each sum's rounding is at most (terms) x 2**-24 of the sum of
# its terms' magnitudes: ~1.2e-6 of ~1 for a prediction, and the residuals at a fresh init are ~0.5, so ~5e-6 relative
# in the loss at worst; measured at most 2.7e-7 (model.mse_loss against torch, torch seeds 0-49 at widths 6, 12 and
# 20). 1e-5 leaves 2x over the bound.
FIRST_LOSS_RTOL = 1e-5


def torch_net(seed=0, hidden=20, dtype=torch.float32) -> Net:
    """torch's Net(1, hidden, 1) after torch.manual_seed(seed), in `dtype`. In float64 the weights are thirds of that
    float32 draw, numbers float32 cannot hold: a float32 draw merely cast would pass through float32 unchanged, and
    a file route that loses float64's bits would go unseen."""
    torch.manual_seed(seed)
    net = Net(1, hidden, 1).to(dtype)
    if dtype == torch.float64:
        with torch.no_grad():
            for param in net.parameters():
                param.div_(3)
    return net


def torch_first_loss(net: Net) -> float:
    """torch's MSE of `net` on the notebook's data (the same bits as torch's own draw: tests/test_data.py)."""
    x, y = (torch.from_numpy(np.array(a)) for a in data.notebook_data())
    with torch.no_grad():
        return torch.nn.MSELoss()(net(x.to(net.linear1.weight.dtype)), y.to(net.linear1.weight.dtype)).item()


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    """A tensor's values as bytes in row-major order, its conj and neg bits applied (what its numbers are)."""
    return tensor.detach().resolve_conj().resolve_neg().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def assert_same_state(got: dict, want: dict) -> None:
    """Names (in any order: safetensors sorts them), dtypes, shapes and bits."""
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape, name
        assert tensor_bytes(got[name]) == tensor_bytes(want[name]), name


def write_as(path: pathlib.Path, net: Net) -> pathlib.Path:
    """net's weights in path's format, each written as its own tooling writes it: torch.save(net.state_dict()) for
    .pt, safetensors' torch API for .safetensors, the port's params.npz (weights.write) for .npz."""
    fmt = weights.format_of(path)
    if fmt == "torch":
        torch.save(net.state_dict(), path)
    elif fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(net.state_dict(), path, metadata={"format": "pt"})
    else:
        from torch_impl.twin.convert import from_state_dict

        weights.write(path, from_state_dict(net.state_dict()))
    return path


def run_cli(module, capsys, *argv) -> tuple[int, str, str]:
    """module.main(argv) as its `python scripts/...` run would end: (exit code, stdout, stderr)."""
    try:
        cli.run_main(lambda: module.main([str(a) for a in argv]))
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def read_for_torch(path) -> dict:
    """A file written for torch, as torch reads it: a state_dict of tensors."""
    if path.suffix == ".pt":
        return torch.load(path, weights_only=True)
    from safetensors.torch import load_file

    return load_file(path)


# ---- every direction, bit for bit ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("source,target", list(itertools.permutations(SUFFIX, 2)))
def test_every_direction_and_back_is_exact(tmp_path, capsys, source, target, dtype):
    """source -> target -> source through convert_weights.py: all three files hold the torch net's weights."""
    net = torch_net(1, hidden=7, dtype=dtype)
    state = net.state_dict()
    first = write_as(tmp_path / f"net{SUFFIX[source]}", net)
    there = tmp_path / f"there{SUFFIX[target]}"
    back = tmp_path / f"back{SUFFIX[source]}"
    for a, b in [(first, there), (there, back)]:
        code, out, err = run_cli(convert_weights, capsys, a, b)
        assert code == 0 and err == "" and out.startswith(f"wrote {b} ("), (out, err)
    for path in (first, there, back):  # each file: the same params, same dtype, same bits
        params, note = weights.read(path)
        assert note is None
        for jax_name, (torch_name, transposed) in weights.JAX_TO_TORCH.items():
            want = state[torch_name].numpy()
            np.testing.assert_array_equal(params[jax_name], want.T if transposed else want, strict=True)
    for path in (there, back):
        if weights.format_of(path) != "npz":  # written for torch: torch reads it into the notebook's Net, strictly
            loaded = read_for_torch(path)
            assert_same_state(loaded, state)
            Net(1, 7, 1).to(dtype).load_state_dict(loaded, strict=True)


# ---- torch.save's format without torch, against torch itself -----------------------------------------------------

def assert_loaded_alike(got, want, where="the file") -> None:
    """torch_file.load's result against torch.load(weights_only=True)'s: the same containers of the same types, keys
    in the same order, the same plain values, and each tensor a C-contiguous array of its dtype, shape and bits."""
    if isinstance(want, torch.Tensor):
        assert isinstance(got, np.ndarray) and got.flags.c_contiguous, (where, type(got))
        assert (got.dtype.name, got.shape) == (str(want.dtype).removeprefix("torch."), tuple(want.shape)), where
        assert got.tobytes() == tensor_bytes(want), where
    elif isinstance(want, dict):
        assert type(got) is type(want) and list(got) == list(want), (where, list(got), list(want))
        for key in want:
            assert_loaded_alike(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, list | tuple):
        assert type(got) is type(want) and len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want)):
            assert_loaded_alike(a, b, f"{where}[{i}]")
    else:
        assert type(got) is type(want) and got == want, (where, got, want)


def trained_checkpoint() -> dict:
    """A checkpoint dict as training scripts save one: the twin's state_dict, Adam's state after a step (tensors,
    ints, floats, tuples, bools, None), an epoch and a loss."""
    net = torch_net(11)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    x, y = (torch.from_numpy(np.array(a)) for a in data.notebook_data())
    loss = torch.nn.MSELoss()(net(x), y)
    loss.backward()
    optimizer.step()
    return {"epoch": 1, "model_state_dict": net.state_dict(), "optimizer_state_dict": optimizer.state_dict(),
            "loss": loss.item()}


def views_of_one_storage() -> dict:
    """Tensors saved as views: torch.save keeps the one storage and each view's offset, size and strides."""
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
    z = torch.randn(2, 5, dtype=torch.complex64, generator=torch.Generator().manual_seed(0))
    return OrderedDict(whole=base, column=base[:, 2], transposed=base.T, strided=base[1:, ::2], row=base[3],
                       scalar=base[1, 1], expanded=base[0, :1].expand(3, 4),  # stride 0
                       imag_of_conj=z[0].conj().imag,  # floats at odd offsets of a complex storage, neg bit set
                       conj=z[1].clone().conj())  # conj bit set (a storage of its own: torch saves one dtype a storage)


def every_dtype() -> dict:
    values = torch.tensor([0.0, -0.0, 1.5, -2.25, 3e-39, 65504.0])  # a float32 subnormal; float16's largest
    return {str(dtype).removeprefix("torch."): values.to(dtype) for dtype in (
        torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16, torch.int8,
        torch.uint8, torch.bool, torch.complex128, torch.complex64,  # legacy typed storages: _rebuild_tensor_v2
        torch.uint16, torch.uint32, torch.uint64, torch.float8_e5m2, torch.float8_e4m3fn)} | {  # _rebuild_tensor_v3
        "empty": torch.zeros(0, 3), "zero_dim": torch.tensor(2.5, dtype=torch.float64)}


SAVED_BY_TORCH = {
    "the twin's state_dict": lambda: torch_net(12).state_dict(),
    "a checkpoint dict with an optimizer's state": trained_checkpoint,
    "half precision": lambda: state_of(13, torch.bfloat16) | {"half": torch.ones(3, dtype=torch.float16) / 3},
    "Parameters": lambda: {name: param for name, param in torch_net(14).named_parameters()},
    "views of one storage": views_of_one_storage,
    "every dtype numpy has": every_dtype,
}


@pytest.mark.parametrize("case", SAVED_BY_TORCH)
def test_the_reader_reads_what_torch_load_reads(tmp_path, case):
    obj = SAVED_BY_TORCH[case]()
    torch.save(obj, tmp_path / "saved.pt")
    assert_loaded_alike(torch_file.load(tmp_path / "saved.pt"), torch.load(tmp_path / "saved.pt", weights_only=True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.complex64, torch.int16])
def test_a_big_endian_file_is_read_as_torch_reads_it(tmp_path, dtype):
    """torch.save on a big-endian machine: byteorder 'big' and every element's bytes reversed (a complex's two parts
    each, as torch swaps them). Made here from a little-endian file; torch.load itself gives back the original."""
    state = {k: v.to(dtype) for k, v in state_of(15).items()}
    torch.save(state, tmp_path / "big.pt")
    unit = torch.empty(0, dtype=dtype).element_size() // (2 if dtype.is_complex else 1)

    def to_big_endian(name, data):
        if name.endswith("/byteorder"):
            return b"big"
        return np.frombuffer(data, f"u{unit}").byteswap().tobytes() if "/data/" in name else data

    rewrite_records(tmp_path / "big.pt", to_big_endian)
    loaded = torch.load(tmp_path / "big.pt", weights_only=True)
    assert_same_state(loaded, state)  # a real big-endian file: torch reads it back to the original
    assert_loaded_alike(torch_file.load(tmp_path / "big.pt"), loaded)


def test_a_state_dict_of_views_reads_as_its_values(tmp_path):
    """Weights saved as non-contiguous views, strided slices of one bigger tensor that share its storage at different
    offsets, read through weights.read as torch reads them."""
    state = state_of(16)
    big = torch.zeros(3, 40)
    big[1, ::2] = state["linear2.weight"][0]
    big[2, 1::2] = state["linear1.weight"][:, 0]
    views = {"linear1.weight": big[2, 1::2].unsqueeze(1), "linear1.bias": state["linear1.bias"],
             "linear2.weight": big[1:2, ::2], "linear2.bias": state["linear2.bias"]}
    assert not views["linear1.weight"].is_contiguous() and not views["linear2.weight"].is_contiguous()
    torch.save(views, tmp_path / "views.pt")
    params, note = weights.read(tmp_path / "views.pt")
    assert note is None
    for jax_name, (torch_name, transposed) in weights.JAX_TO_TORCH.items():
        want = state[torch_name].numpy()
        np.testing.assert_array_equal(params[jax_name], want.T if transposed else want, strict=True)


def test_the_writer_gives_torch_load_the_same_bits(tmp_path):
    """torch_file.save's file, read by torch.load(weights_only=True), plain and memory-mapped (which maps each
    storage where the writer aligned it): an OrderedDict with the names in order, each tensor contiguous, of the
    array's dtype, shape and bits (-0.0, a subnormal, inf and a NaN's payload included)."""
    import ml_dtypes

    values = np.array([0.0, -0.0, 1.5, 1e-310, np.inf, np.nan], np.float64).reshape(2, 3)
    arrays = {"f64": values, "f32": values.astype(np.float32).T, "f16": values.astype(np.float16)[:, ::2],
              "bf16": values.astype(ml_dtypes.bfloat16), "f32_payload": np.uint32([0x7FC00123]).view(np.float32),
              "zero_dim": np.float32(2.5), "empty": np.zeros((3, 0)), "i64": np.arange(70000), "flags": values > 0,
              "c64": (values + 1j).astype(np.complex64)}
    with open(tmp_path / "written.pt", "wb") as f:
        torch_file.save(arrays, f)
    for mmap in (False, True):
        loaded = torch.load(tmp_path / "written.pt", weights_only=True, mmap=mmap)
        assert type(loaded) is OrderedDict and list(loaded) == list(arrays)
        for name, array in arrays.items():
            tensor = loaded[name]
            assert tensor.is_contiguous() and tuple(tensor.shape) == np.shape(array), name
            assert str(tensor.dtype).removeprefix("torch.") == np.asarray(array).dtype.name, name
            assert tensor_bytes(tensor) == np.ascontiguousarray(array).tobytes(), name
    assert_loaded_alike(torch_file.load(tmp_path / "written.pt"), loaded)  # and the reader reads it back
    with pytest.raises(InputError, match=r"^w.pt: 'u16' has dtype uint16, which this writer of torch checkpoints does "
                                         r"not take \(it takes float64, float32, float16, bfloat16, "):
        torch_file.save({"u16": np.uint16([1])}, io.BytesIO(), "w.pt: ")


def test_safetensors_files_are_torchs_layout_readable_without_torch(tmp_path):
    """What the port writes for torch is read by safetensors' numpy API: torch's names, (out, in) weights, format pt."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    net = torch_net(2)
    path = tmp_path / "net.safetensors"
    weights.write(path, weights.from_layout({k: v.numpy() for k, v in net.state_dict().items()}, "torch"))
    arrays = load_file(path)
    assert {k: v.shape for k, v in arrays.items()} == {"linear1.weight": (20, 1), "linear1.bias": (20,),
                                                       "linear2.weight": (1, 20), "linear2.bias": (1,)}
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(arrays[name], value.numpy(), strict=True)
    with safe_open(str(path), framework="numpy") as f:
        assert f.metadata() == {"format": "pt"}


# Where torch is not installed: `import torch` (or torch.anything) raises ImportError, whoever asks and however
NO_TORCH = """
import importlib.abc
import sys


class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError(f"No module named {name!r} (the test hides torch)")
        return None


sys.meta_path.insert(0, NoTorch())
"""
# ... and then the library: every format written, read back and checked; which of torch and jax it imported
LIBRARY_WITHOUT_TORCH = NO_TORCH + """
sys.path.insert(0, sys.argv[1])
import numpy as np
from jax_impl.files import weights
p = {"w1": np.float32([[1.5, -2, 0.25]]), "b1": np.float32([0, -0.0, 3]), "w2": np.float32([[1], [2], [3]]),
     "b2": np.float32([0.5])}
for suffix in (".pt", ".safetensors", ".npz"):
    weights.write(sys.argv[2] + suffix, p)
    got, _ = weights.read(sys.argv[2] + suffix)
    assert all(got[k].tobytes() == p[k].tobytes() and got[k].shape == p[k].shape for k in p), suffix
print(sorted(m for m, module in sys.modules.items() if module and m.split(".")[0] in ("torch", "jax")))
"""
# ... and then a script: python -c NO_TORCH_SCRIPT scripts/NAME.py ARGS runs it as `python scripts/NAME.py ARGS` would
NO_TORCH_SCRIPT = NO_TORCH + """
import runpy
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_every_format_needs_no_torch(tmp_path):
    result = subprocess.run([sys.executable, "-c", LIBRARY_WITHOUT_TORCH, str(ROOT), str(tmp_path / "w")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"  # neither torch nor jax
    assert torch.load(tmp_path / "w.pt", weights_only=True)["linear1.bias"].numpy().tobytes() == (
        np.float32([0, -0.0, 3]).tobytes())  # the .pt written without torch is torch's, bit for bit


def test_convert_weights_runs_without_torch(tmp_path):
    """A torch net's .pt -> .safetensors -> .npz -> .pt through convert_weights.py with torch hidden: the last file is
    the first's tensors, bit for bit, as torch.load(weights_only=True) reads it; a pickled object is refused with one
    line and exit 2, without running it."""
    net = torch_net(10, hidden=9, dtype=torch.float64)
    torch.save(net.state_dict(), tmp_path / "net.pt")
    chain = [tmp_path / name for name in ("net.pt", "net.safetensors", "net.npz", "back.pt")]

    def convert(source, target):
        return subprocess.run([sys.executable, "-c", NO_TORCH_SCRIPT, str(ROOT / "scripts" / "convert_weights.py"),
                               str(source), str(target)], capture_output=True, text=True, cwd=ROOT, timeout=120)

    for source, target in zip(chain, chain[1:]):
        result = convert(source, target)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        assert result.stdout.startswith(f"wrote {target} (")
    assert_same_state(torch.load(chain[-1], weights_only=True), net.state_dict())
    bad = bad_torch_file(tmp_path, "pickled_object")
    result = convert(bad, tmp_path / "out.npz")
    assert result.returncode == 2 and result.stdout == "", result
    assert result.stderr == (f"convert_weights.py: error: {bad}: refused: it pickles posix.system, and the reader "
                             "unpickles nothing but tensors and plain containers (nothing was run); save "
                             "model.state_dict() instead\n")
    assert not (tmp_path / "marker").exists() and not (tmp_path / "out.npz").exists()


# ---- the same reader behind every flag that takes weights ------------------------------------------------------

@pytest.mark.parametrize("fmt", SUFFIX)
def test_train_jax_init_starts_from_the_file_and_leaves_weights_for_torch(tmp_path, monkeypatch, capsys, fmt):
    """torch -> JAX -> torch: a torch net's file into --init (the t = 0 loss is torch's for that net), and the run's
    model.safetensors loads into torch's Net strictly, holding the port's params.npz bit for bit."""
    net = torch_net(3)
    path = write_as(tmp_path / f"net{SUFFIX[fmt]}", net)
    code, out = run_main(train_jax, monkeypatch, capsys, "--init", path, "--steps", 3, "--json", "--no-plots",
                         "--no-cache", "--out", tmp_path / "out")
    assert code == 0
    summary = json.loads(out)
    assert summary["hidden"] == 20 and summary["files"] == ["params.npz", "model.safetensors", "losses.json"]
    assert summary["losses"][0] == pytest.approx(torch_first_loss(net), rel=FIRST_LOSS_RTOL)
    trained = read_for_torch(tmp_path / "out" / "model.safetensors")
    Net(1, 20, 1).load_state_dict(trained, strict=True)
    params = np.load(tmp_path / "out" / "params.npz")
    np.testing.assert_array_equal(trained["linear1.weight"].numpy(), params["w1"].T, strict=True)
    np.testing.assert_array_equal(trained["linear2.bias"].numpy(), params["b2"], strict=True)
    assert not torch.equal(trained["linear1.weight"], net.linear1.weight.detach())  # it trained


def test_train_torch_and_compare_init_start_from_the_file(tmp_path, monkeypatch, capsys):
    net = torch_net(4, hidden=12)
    path = write_as(tmp_path / "net.safetensors", net)
    code, out = run_main(train_torch, monkeypatch, capsys, "--init", path, "--steps", 2, "--json", "--no-plots",
                         "--no-cache", "--out", tmp_path / "t")
    assert code == 0
    summary = json.loads(out)
    assert summary["hidden"] == 12
    assert summary["losses"][0] == torch_first_loss(net)  # the same torch computation on the same bits

    path = write_as(tmp_path / "net.pt", net)
    code, out = run_main(compare, monkeypatch, capsys, "--init", path, "--steps", 2, "--json", "--no-plots",
                         "--no-cache")
    assert code == 0
    report = json.loads(out)
    assert report["hidden"] == 12
    assert report["losses"]["torch"][0] == torch_first_loss(net)
    assert report["losses"]["jax"][0] == pytest.approx(torch_first_loss(net), rel=FIRST_LOSS_RTOL)


@pytest.mark.parametrize("fmt", ["torch", "safetensors"])
def test_validate_grads_takes_a_torch_file(tmp_path, monkeypatch, capsys, fmt):
    net = torch_net(5, hidden=6)
    path = write_as(tmp_path / f"net{SUFFIX[fmt]}", net)
    code, out = run_main(validate_grads, monkeypatch, capsys, "--params", path, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["hidden"] == 6 and result["ok"]
    np.testing.assert_array_equal(np.float32(result["weights"]["w2"]), net.linear2.weight.detach().numpy().T)


@pytest.mark.parametrize("flags,message", [
    (["--hidden", "8"], "--hidden 8 contradicts {path}, a network of width 20: leave --hidden out"),
    (["--seed", "3"], "--init takes the initial weights from {path}; --seed would draw them: give one of them"),
    (["--torch-seed", "3"], "--init takes the initial weights from {path}; --torch-seed would draw them"),
])
@pytest.mark.parametrize("script", [train_jax, compare])
def test_init_refuses_a_second_source_of_weights(tmp_path, capsys, script, flags, message):
    path = write_as(tmp_path / "net.pt", torch_net())
    with pytest.raises(SystemExit) as e:
        script.parse_args(["--init", str(path), *flags])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message.format(path=path) in err and len(err.strip().splitlines()) == 1


def test_init_with_its_own_width_and_without_init(tmp_path):
    path = write_as(tmp_path / "net.npz", torch_net(hidden=5))
    assert train_jax.parse_args(["--init", str(path), "--hidden", "5"]).hidden == 5
    args = train_jax.parse_args(["--init", str(path)])
    assert args.hidden == 5 and args.init_params["w1"].shape == (1, 5) and args.init_params["w1"].dtype == np.float32
    assert train_jax.parse_args(["--init", str(path), "--x64"]).init_params["b2"].dtype == np.float64
    args = train_jax.parse_args([])
    assert args.hidden == 20 and args.init_params is None
    assert train_jax.parse_args(["--hidden", "7"]).hidden == 7


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_a_network_of_width_0_is_refused_by_every_script_that_reads_weights(tmp_path, capsys, fmt):
    """w1 (1, 0), b1 (0,), w2 (0, 1), b2 (1,) fit each other's shapes, but --hidden 0 is refused, and so is this
    file: one line, exit 2, in float32 and float64 alike; convert_weights.py converts nothing, an earlier output
    folder and OUT stay as they were."""
    empty = {"w1": np.zeros((1, 0), np.float64), "b1": np.zeros(0, np.float64), "w2": np.zeros((0, 1), np.float64),
             "b2": np.zeros(1, np.float64)}
    path = tmp_path / f"w0{SUFFIX[fmt]}"
    if fmt == "npz":
        np.savez(path, **empty)
    else:  # by hand: weights.write refuses a width of 0 too
        from safetensors.numpy import save_file

        save_file({torch_name: np.ascontiguousarray(empty[name].T if transposed else empty[name])
                   for name, (torch_name, transposed) in weights.JAX_TO_TORCH.items()}, str(path))
    target, out = tmp_path / "converted.pt", tmp_path / "out"
    target.write_bytes(b"old")
    out.mkdir()
    (out / "losses.json").write_text("[1.0]")
    run = ["--out", out, "--steps", "3", "--no-plots", "--no-cache"]
    for module, argv in [(convert_weights, [path, target]), (train_jax, ["--init", path, *run]),
                         (train_jax, ["--init", path, "--x64", *run]), (train_torch, ["--init", path, *run]),
                         (compare, ["--init", path, "--no-plots"]),
                         (plant_fault, ["--init", path, "--bug", "eps_inside_sqrt", "--record", tmp_path / "p.st"]),
                         (validate_grads, ["--params", path]), (validate_grads, ["--params", path, "--x64"])]:
        code, stdout, err = run_cli(module, capsys, *argv)
        assert code == 2 and stdout == "", (module.__name__, argv, stdout, err)
        assert err.endswith(f": error: {path}: a network of width 0: Net(1, H, 1) needs a hidden width H of at "
                            "least 1\n") and err.count("\n") == 1, (module.__name__, argv, err)
    assert target.read_bytes() == b"old" and sorted(p.name for p in out.iterdir()) == ["losses.json"]
    assert (out / "losses.json").read_text() == "[1.0]"


# ---- almost-right files: refused with one line naming the problem, or accepted with one note -------------------

def state_of(seed=0, dtype=torch.float32) -> dict:
    return {k: v.to(dtype) for k, v in torch_net(seed).state_dict().items()}


class WritesAMarker:
    """Unpickling this would run os.system: a file torch.load must refuse without running it."""

    marker = None

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def rewrite_records(path, change) -> None:
    """The zip at `path` rewritten record by record, change(name, data) -> the new data, stored as torch.save stores."""
    with zipfile.ZipFile(path) as archive:
        records = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in records:
            archive.writestr(name, change(name, data))


def quietly(make):
    """make(), its warnings silenced: torch warns that quantized and complex32 tensors are deprecated or experimental
    (and the tests turn warnings into errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make()


def bad_torch_file(tmp_path, kind) -> pathlib.Path:
    state = state_of()
    path = tmp_path / f"{kind}.pt"
    if kind == "extra_keys":
        obj = {**state, "linear3.weight": torch.zeros(1, 20), "linear3.bias": torch.zeros(1)}
    elif kind == "missing_key":
        obj = {k: v for k, v in state.items() if k != "linear2.bias"}
    elif kind == "transposed":
        obj = {**state, "linear1.weight": state["linear1.weight"].T.contiguous()}
    elif kind == "non_finite":
        bias = state["linear1.bias"].clone()
        bias[3] = float("inf")
        obj = {**state, "linear1.bias": bias}
    elif kind == "int_dtype":
        obj = {**state, "linear2.bias": torch.tensor([1])}
    elif kind == "pickled_object":
        WritesAMarker.marker = tmp_path / "marker"
        obj = {**state, "extra": WritesAMarker()}
    elif kind == "whole_module":
        obj = torch_net()
    elif kind == "port_names":
        path = tmp_path / "port_names.safetensors"
        weights.write(tmp_path / "p.npz", weights.from_layout({k: v.numpy() for k, v in state.items()}, "torch"))
        from safetensors.numpy import save_file

        save_file(dict(np.load(tmp_path / "p.npz")), path)
        return path
    elif kind == "torch_zip_as_npz":
        path = tmp_path / "net.npz"
        obj = state
    elif kind == "not_a_checkpoint":
        path.write_text("linear1.weight,1\n")
        return path
    elif kind == "meta":
        obj = {**state, "linear1.weight": torch.empty(20, 1, device="meta")}
    elif kind == "sparse":
        obj = {**state, "linear1.weight": state["linear1.weight"].to_sparse()}
    elif kind == "quantized":
        obj = {**state, "linear2.weight": quietly(lambda: torch.quantize_per_tensor(state["linear2.weight"], 0.01, 0,
                                                                                     torch.qint8))}
    elif kind == "complex32":  # no numpy dtype
        obj = {**state, "linear2.bias": quietly(lambda: state["linear2.bias"].to(torch.complex32))}
    elif kind == "float8":  # numpy has it (ml_dtypes); weights are not float8
        obj = {**state, "linear2.bias": state["linear2.bias"].to(torch.float8_e4m3fn)}
    elif kind == "legacy_format":
        torch.save(state, path, _use_new_zipfile_serialization=False)
        return path
    elif kind == "npz_named_pt":
        with open(path, "wb") as f:
            np.savez(f, **{k: v.numpy() for k, v in state.items()})
        return path
    elif kind == "short_storage":  # linear1.weight's 80 bytes cut to 40
        torch.save(state, path)
        rewrite_records(path, lambda name, data: data[:40] if name.endswith("/data/0") else data)
        return path
    elif kind == "view_beyond_storage":  # linear2.bias is element 2 of a storage of 3; the file says element 3
        torch.save({**state, "linear2.bias": torch.zeros(3)[2:]}, path)
        pickled = zipfile.ZipFile(path).read(f"{kind}/data.pkl")
        assert pickled.count(b"K\x02") == 1  # BININT1 2: the storage offset, the only 2 in the pickle
        rewrite_records(path, lambda name, data: pickled.replace(b"K\x02", b"K\x03") if name.endswith("data.pkl")
                        else data)
        return path
    else:
        raise AssertionError(kind)
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("kind,message", [
    ("extra_keys", "unexpected keys 'linear3.weight', 'linear3.bias' (the notebook's Net has 'linear1.weight', "
                   "'linear1.bias', 'linear2.weight', 'linear2.bias')"),
    ("missing_key", "missing key 'linear2.bias' (found 'linear1.weight', 'linear1.bias', 'linear2.weight')"),
    ("transposed", "tensor 'linear1.weight' has shape (1, 20), expected (20, 1); it looks transposed: torch stores "
                   "Linear weights as (out, in)"),
    ("non_finite", "'linear1.bias' has non-finite values (1 of 20; first inf at [3])"),
    ("int_dtype", "'linear2.bias' has dtype int64: weights must be float16, bfloat16, float32 or float64"),
    ("pickled_object", "refused: it pickles posix.system, and the reader unpickles nothing but tensors and plain "
                       "containers (nothing was run); save model.state_dict() instead"),
    ("whole_module", "refused: it pickles torch_impl.twin.model.Net, and the reader unpickles nothing but tensors"),
    ("port_names", "missing keys 'linear1.weight', 'linear1.bias', 'linear2.weight', 'linear2.bias' (found 'b1', "
                   "'b2', 'w1', 'w2': the port's names, which an .npz holds; scripts/convert_weights.py converts)"),
    ("torch_zip_as_npz", "a torch checkpoint (torch.save's zip), not an .npz: name it .pt"),
    ("not_a_checkpoint", "not a torch checkpoint (torch.save writes a zip archive; this is none)"),
    ("meta", "'linear1.weight' is a meta tensor (float32, shape (20, 1)), which holds no values: save the tensor from "
             "the device that holds them"),
    ("sparse", "'linear1.weight' is a sparse tensor (torch.sparse_coo), and weights are dense: save tensor.to_dense()"),
    ("quantized", "'linear2.weight' is a quantized tensor (torch.qint8, per_tensor_affine), and weights are floats: "
                  "save tensor.dequantize()"),
    ("complex32", "'linear2.bias' has dtype complex32: weights must be float16, bfloat16, float32 or float64"),
    ("float8", "'linear2.bias' has dtype float8_e4m3fn: weights must be float16, bfloat16, float32 or float64"),
    ("legacy_format", "a torch checkpoint in the format before torch 1.6 (_use_new_zipfile_serialization=False), "
                      "which the reader does not take: torch.save it again with torch 1.6 or later"),
    ("npz_named_pt", "an .npz (numpy's zip of .npy arrays), not a torch checkpoint: name it .npz"),
    ("short_storage", "not a torch checkpoint the reader can read (damaged: short_storage/data/0 holds 40 bytes, not "
                      "20 x 4)"),
    ("view_beyond_storage", "not a torch checkpoint the reader can read (damaged: a tensor (storage offset 3, size "
                            "(1,), stride (1,)) that reaches element 3 of a storage of 3)"),
])
def test_an_almost_right_file_gets_one_line_and_exit_2(tmp_path, capsys, kind, message):
    """Each through convert_weights.py onto an existing OUT, which stays as it was; the marker of the pickled
    object's __reduce__ is never written (the reader refuses its global before anything runs)."""
    path = bad_torch_file(tmp_path, kind)
    target = tmp_path / "out.npz"
    target.write_bytes(b"old")
    code, out, err = run_cli(convert_weights, capsys, path, target)
    assert code == 2 and out == "", (out, err)
    assert f": error: {path}: {message}" in err and len(err.strip().splitlines()) == 1, err
    assert target.read_bytes() == b"old" and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not (tmp_path / "marker").exists()


def test_the_pickled_object_is_a_real_threat(tmp_path):
    """The control for the test above: full unpickling (weights_only=False, never done by the port) runs it."""
    path = bad_torch_file(tmp_path, "pickled_object")
    torch.load(path, weights_only=False)
    assert (tmp_path / "marker").exists()


def test_torchs_layout_under_the_ports_names_is_said_to_look_transposed(tmp_path):
    state = state_of()
    path = tmp_path / "torch_layout.npz"
    np.savez(path, w1=state["linear1.weight"].numpy(), b1=state["linear1.bias"].numpy(),
             w2=state["linear2.weight"].numpy(), b2=state["linear2.bias"].numpy())
    with pytest.raises(InputError, match=r"'w1' has shape \(20, 1\), expected \(1, 20\); it looks transposed"):
        weights.read(path)


def test_an_npz_with_a_non_finite_weight_names_it(tmp_path):
    """The .npz reader's own check (load_npz): the key, the count and the first bad entry with its index."""
    arrays = {"w1": np.zeros((1, 20), np.float32), "b1": np.zeros(20, np.float32), "w2": np.zeros((20, 1), np.float32),
              "b2": np.zeros(1, np.float32)}
    arrays["b1"][[3, 7]] = [np.inf, np.nan]
    np.savez(tmp_path / "w.npz", **arrays)
    with pytest.raises(InputError) as error:
        weights.read(tmp_path / "w.npz")
    assert str(error.value).endswith("w.npz: 'b1' has non-finite values (2 of 20; first inf at [3])"), error.value


def test_what_was_written_is_said_in_words(tmp_path):
    """write's return (convert_weights.py prints it): the layout, each tensor's shape, the dtypes, and for
    .safetensors the metadata safetensors.torch writes."""
    params = {"w1": np.zeros((1, 2), np.float32), "b1": np.zeros(2, np.float32), "w2": np.zeros((2, 1), np.float64),
              "b2": np.zeros(1, np.float64)}
    torchs = "torch's names and layout: linear1.weight (2, 1), linear1.bias (2,), linear2.weight (1, 2), linear2.bias"
    assert weights.write(tmp_path / "w.safetensors", params) == f"{torchs} (1,); float32/float64; metadata " + (
        "{'format': 'pt'}")
    assert weights.write(tmp_path / "w.pt", params) == f"{torchs} (1,); float32/float64"
    assert weights.write(tmp_path / "w.npz", params) == ("the port's names and layout: w1 (1, 2), b1 (2,), w2 (2, 1), "
                                                         "b2 (1,); float32/float64")


def test_a_file_safetensors_cannot_read_says_so_with_its_reason(tmp_path):
    import safetensors

    (tmp_path / "w.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(InputError) as error:
        weights.read(tmp_path / "w.safetensors")
    message = str(error.value)
    assert f"w.safetensors: not a safetensors file that safetensors {safetensors.__version__} reads (" in message
    assert message.endswith(")") and "\n" not in message, message


def checkpoint(kind: str, state: dict):
    if kind == "ddp":
        return {f"module.{k}": v for k, v in state.items()}
    if kind == "ddp_checkpoint":
        return {"epoch": 3, "model": {f"module.{k}": v for k, v in state.items()}}
    return {"epoch": 3, kind: state, "optimizer": {"state": {}, "param_groups": []}}


@pytest.mark.parametrize("kind,note", [
    ("state_dict", "read the state_dict under 'state_dict' of a checkpoint dict (left aside: epoch, optimizer)"),
    ("model_state_dict", "read the state_dict under 'model_state_dict' of a checkpoint dict (left aside: epoch, "
                         "optimizer)"),
    ("model", "read the state_dict under 'model' of a checkpoint dict (left aside: epoch, optimizer)"),
    ("ddp", "stripped the 'module.' prefix of DataParallel/DDP from every name"),
    ("ddp_checkpoint", "read the state_dict under 'model' of a checkpoint dict (left aside: epoch); stripped the "
                       "'module.' prefix of DataParallel/DDP from every name"),
])
def test_a_checkpoint_dict_or_a_ddp_prefix_is_read_with_a_note(tmp_path, kind, note):
    state = state_of(6)
    torch.save(checkpoint(kind, state), tmp_path / "ckpt.pt")
    params, said = weights.read(tmp_path / "ckpt.pt")
    assert said == note
    np.testing.assert_array_equal(params["w1"], state["linear1.weight"].numpy().T, strict=True)
    np.testing.assert_array_equal(params["b2"], state["linear2.bias"].numpy(), strict=True)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("fmt", ["torch", "safetensors"])
def test_half_precision_is_widened_exactly_with_a_note(tmp_path, fmt, half):
    state = state_of(7, half)
    path = tmp_path / f"half{SUFFIX[fmt]}"
    if fmt == "torch":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file(state, path)
    for dtype, target in [(None, "float32"), ("float32", "float32"), ("float64", "float64")]:
        params, note = weights.read(path, dtype=dtype)
        name = str(half).removeprefix("torch.")
        assert note == f"{name} read as {target} (exact: every {name} value is a {target})"
        for jax_name, (torch_name, transposed) in weights.JAX_TO_TORCH.items():
            want = state[torch_name].to(torch.float64).numpy().astype(target)  # widening is exact: any route agrees
            np.testing.assert_array_equal(params[jax_name], want.T if transposed else want, strict=True)


def test_float64_is_kept_or_rounded_and_the_note_says_which(tmp_path):
    state = {k: v.double() / 3 for k, v in state_of(8).items()}  # thirds: not float32 numbers
    torch.save(state, tmp_path / "f64.pt")
    params, note = weights.read(tmp_path / "f64.pt")  # convert_weights: kept
    assert note is None and params["w1"].dtype == np.float64
    np.testing.assert_array_equal(params["w1"], state["linear1.weight"].numpy().T, strict=True)
    params, note = weights.read(tmp_path / "f64.pt", dtype="float64")  # --x64
    assert note is None and params["b1"].dtype == np.float64
    params, note = weights.read(tmp_path / "f64.pt", dtype="float32")  # float32 runs: rounded, said so
    assert note.startswith("float64 rounded to float32 (largest change ") and note.endswith("; --x64 keeps float64)")
    np.testing.assert_array_equal(params["b1"], state["linear1.bias"].numpy().astype(np.float32), strict=True)
    torch.save({k: v.float().double() for k, v in state.items()}, tmp_path / "f32_in_f64.pt")
    assert weights.read(tmp_path / "f32_in_f64.pt", dtype="float32")[1] == (
        "float64 read as float32 (exact: every value is a float32; --x64 keeps float64)")
    torch.save({**state, "linear2.bias": torch.tensor([1e39], dtype=torch.float64)}, tmp_path / "huge.pt")
    with pytest.raises(InputError, match=r"'linear2.bias' has values beyond float32's range \(largest magnitude "
                                         r"1e\+39\): read it as float64 \(--x64\)"):
        weights.read(tmp_path / "huge.pt", dtype="float32")


def test_init_says_what_it_accepted_on_stderr(tmp_path, capsys):
    torch.save(checkpoint("ddp", state_of(dtype=torch.bfloat16)), tmp_path / "ddp.pt")
    args = train_jax.parse_args(["--init", str(tmp_path / "ddp.pt")])
    err = capsys.readouterr().err
    assert err.splitlines() == [f"{pathlib.Path(sys.argv[0]).name}: note: {tmp_path / 'ddp.pt'}: stripped the "
                                "'module.' prefix of DataParallel/DDP from every name; bfloat16 read as float32 "
                                "(exact: every bfloat16 value is a float32)"]
    assert args.init_params["w1"].dtype == np.float32


def test_convert_from_state_dict_is_as_strict_as_torch(tmp_path):
    """The in-memory conversion refuses what load_state_dict(strict=True) refuses and reads bfloat16."""
    from torch_impl.twin.convert import from_state_dict

    state = state_of(9)
    with pytest.raises(ValueError, match="unexpected key 'linear3.weight'"):
        from_state_dict({**state, "linear3.weight": torch.zeros(1, 1)})
    with pytest.raises(ValueError, match=r"missing keys 'linear1.weight', .* \(found 'module.linear1.weight', "):
        from_state_dict({f"module.{k}": v for k, v in state.items()})
    params = from_state_dict({k: v.to(torch.bfloat16) for k, v in state.items()})
    np.testing.assert_array_equal(params["w2"].astype(np.float32),
                                  state["linear2.weight"].to(torch.bfloat16).float().numpy().T)


def test_a_failed_write_leaves_nothing_half_written(tmp_path, monkeypatch):
    params = weights.from_layout({k: v.numpy() for k, v in state_of().items()}, "torch")
    target = tmp_path / "net.pt"
    target.write_bytes(b"old")

    def save_fails_midway(arrays, f, where):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch_file, "save", save_fails_midway)
    with pytest.raises(InputError, match=f"cannot write {target}: No space left on device"):
        weights.write(target, params)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["net.pt"]
    with pytest.raises(InputError, match="unknown weight format '.bin'"):
        weights.write(tmp_path / "net.bin", params)
    with pytest.raises(InputError, match="cannot write"):
        weights.write(tmp_path / "no" / "such" / "net.npz", params)


def safetensors_bytes(tensors: dict) -> bytes:
    """The safetensors format written out (a little-endian u64 header length, the JSON header, the data), so that any
    dtype can be written: safetensors' own writers take only the arrays their framework has."""
    header, offset = {}, 0
    for name, (dtype, shape, size) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size * int(np.prod(shape))]}
        offset = header[name]["data_offsets"][1]
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + bytes(offset)


@pytest.mark.parametrize("dtype,size", [("F8_E4M3", 1), ("I64", 8)])
def test_a_safetensors_dtype_other_than_a_float_one_is_named(tmp_path, dtype, size):
    tensors = {"linear1.weight": ("F32", [20, 1], 4), "linear1.bias": (dtype, [20], size),
               "linear2.weight": ("F32", [1, 20], 4), "linear2.bias": ("F32", [1], 4)}
    (tmp_path / "w.safetensors").write_bytes(safetensors_bytes(tensors))
    # numpy has no float8: safetensors hands back its own dtype name, or ml_dtypes' where it knows that (0.8); 0.4.1
    # knows no float8 and refuses the file's header
    with pytest.raises(InputError, match=r"w.safetensors: ('linear1.bias' has dtype (F8_E4M3|float8_e4m3fn|int64): "
                                         "weights must be float16, bfloat16, float32 or float64$|not a safetensors "
                                         r"file that safetensors 0\.4\.1 reads \(Dtype not understood: F8_E4M3\))"):
        weights.read(tmp_path / "w.safetensors")
    tensors["linear1.bias"] = ("F32", [20], 4)  # the same file with a float32 bias reads: the format above is right
    (tmp_path / "ok.safetensors").write_bytes(safetensors_bytes(tensors))
    params, note = weights.read(tmp_path / "ok.safetensors")
    assert note is None and params["b1"].shape == (20,) and not params["b1"].any()


def test_convert_weights_makes_outs_missing_folder_and_refuses_one_under_a_file(tmp_path, capsys):
    """OUT in a folder not made yet was refused ("... does not exist"), unlike the other scripts' output files
    (out_dir.check_file): the folder is made; OUT under a file is one line, exit 2, nothing written."""
    source = tmp_path / "w.npz"
    weights.write(source, data.as_numpy(data.notebook_init_params()))
    target = tmp_path / "new" / "sub" / "w.safetensors"
    code, out, err = run_cli(convert_weights, capsys, source, target)
    assert (code, err) == (0, "") and out.startswith(f"wrote {target} (torch's names and layout: ")
    assert all((weights.read(target)[0][k] == v).all() for k, v in weights.read(source)[0].items())
    (tmp_path / "afile").write_text("x")
    code, out, err = run_cli(convert_weights, capsys, source, tmp_path / "afile" / "w.pt")
    assert (code, out) == (2, "") and err.endswith(
        f": error: OUT {tmp_path / 'afile' / 'w.pt'}: {tmp_path / 'afile'} is not a folder\n") and err.count("\n") == 1
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize("script, flag", [("train_jax", "--init"), ("train_torch", "--init"), ("compare", "--init"),
                                          ("validate_grads", "--params")])
@pytest.mark.parametrize("name", ["dir.pt", "bad"])
def test_a_folder_given_as_weights_is_said_to_be_a_folder(tmp_path, capsys, monkeypatch, script, flag, name):
    """A folder where a weights file goes was "dir.pt: no such file", or for a folder without a suffix "unknown
    weight format ''": weights.read, every script's one reading path, names it as convert_weights.py did."""
    folder = tmp_path / name
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(import_script(script), capsys, flag, name, "--steps", 3) if script != "validate_grads" \
        else run_cli(import_script(script), capsys, flag, name)
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert err.endswith(f": error: {name}: is a folder, not a weights file\n"), err
    with pytest.raises(InputError, match=f"^{folder}: is a folder, not a weights file$"):
        weights.read(folder)


@pytest.mark.parametrize("which", ["IN", "OUT"])
def test_convert_weights_says_a_folder_is_a_folder_before_reading(tmp_path, capsys, monkeypatch, which):
    """A folder as IN was "no such file"; a folder as OUT was found only when writing: both one line, exit 2, before
    anything is read, and OUT's folder left as it was."""
    folder = tmp_path / ("in.npz" if which == "IN" else "out.npz")
    folder.mkdir()
    source = folder if which == "IN" else tmp_path / "w.npz"
    if which == "OUT":
        weights.write(source, data.as_numpy(data.notebook_init_params()))
    monkeypatch.setattr(weights, "read", lambda *a, **k: pytest.fail("read before refusing"))
    code, out, err = run_cli(convert_weights, capsys, source, folder if which == "OUT" else tmp_path / "out.pt")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.endswith(": error: " + (f"{folder}: is a folder, not a weights file\n"
                                                               if which == "IN" else f"OUT {folder}: is a folder\n"))
    assert folder.is_dir() and list(folder.iterdir()) == [] and not (tmp_path / "out.pt").exists()
