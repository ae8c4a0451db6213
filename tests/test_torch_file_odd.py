"""Weight files off the beaten path: a meta, sparse (COO, CSR, CSC), quantized or nested tensor is refused with one
line naming the tensor and what it is, in the library and on the command line (exit 2, no traceback, no output
folder); a view (a transpose, a strided slice, an offset into a larger storage) is read as torch.load reads it."""

import json
import warnings

import numpy as np
import pytest
import torch
from conftest import run_script

from jax_impl.files import torch_file, weights
from jax_impl.files.params_io import InputError
from torch_impl.twin.model import Net


def state(seed=0) -> dict:
    torch.manual_seed(seed)
    return Net(1, 20, 1).state_dict()


def quantized(tensor, dtype=torch.qint8, per_channel=False):
    if per_channel:
        scales, zero_points = torch.full((len(tensor),), 0.01), torch.zeros(len(tensor), dtype=torch.int64)
        return torch.quantize_per_channel(tensor, scales, zero_points, 0, dtype)
    return torch.quantize_per_tensor(tensor, 0.01, 0, dtype)


META = ("is a meta tensor (float32, shape (20, 1)), which holds no values: save the tensor from the device that "
        "holds them")
DENSE = "and weights are dense: save tensor.to_dense()"
# kind -> (the state_dict, with one odd tensor, as torch.save gets it; the line after "PATH: ")
ODD = {
    "meta": (lambda s: s | {"linear1.weight": torch.empty(20, 1, device="meta")}, f"'linear1.weight' {META}"),
    "meta module": (lambda s: Net(1, 20, 1).to("meta").state_dict(), f"'linear1.weight' {META}"),
    "sparse coo": (lambda s: s | {"linear1.weight": s["linear1.weight"].to_sparse()},
                   f"'linear1.weight' is a sparse tensor (torch.sparse_coo), {DENSE}"),
    "sparse csr": (lambda s: s | {"linear2.weight": s["linear2.weight"].to_sparse_csr()},
                   f"'linear2.weight' is a sparse tensor (torch.sparse_csr), {DENSE}"),
    "sparse csc": (lambda s: s | {"linear1.weight": s["linear1.weight"].to_sparse_csc()},
                   f"'linear1.weight' is a sparse tensor (torch.sparse_csc), {DENSE}"),
    "quantized": (lambda s: s | {"linear2.weight": quantized(s["linear2.weight"], torch.quint8)},
                  "'linear2.weight' is a quantized tensor (torch.quint8, per_tensor_affine), and weights are floats: "
                  "save tensor.dequantize()"),
    "quantized per channel": (lambda s: s | {"linear1.weight": quantized(s["linear1.weight"], per_channel=True)},
                              "'linear1.weight' is a quantized tensor (torch.qint8, per_channel_affine), and weights "
                              "are floats: save tensor.dequantize()"),
    "nested": (lambda s: s | {"linear1.bias": torch.nested.nested_tensor([torch.zeros(20), torch.zeros(7)])},
               "'linear1.bias' is a nested tensor (torch.nested), and a weight is one dense tensor: save each of "
               "tensor.unbind() under a name of its own"),
}


def odd_file(tmp_path, kind):
    """ODD[kind]'s file, and torch.load's reading of it (the control: torch reads it back). Quietly: torch warns that
    quantized, CSR and nested tensors are deprecated or in beta, and the tests turn warnings into errors."""
    path = tmp_path / f"{kind.replace(' ', '_')}.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(ODD[kind][0](state()), path)
        torch.load(path, weights_only=True)
    return path


@pytest.mark.parametrize("kind", ODD)
def test_an_odd_tensor_is_named_in_one_line(tmp_path, kind):
    path = odd_file(tmp_path, kind)
    with pytest.raises(InputError) as e:
        weights.read(path)
    assert str(e.value) == f"{path}: {ODD[kind][1]}"


@pytest.mark.parametrize("kind", ["meta", "sparse coo", "sparse csr", "quantized", "nested"])
def test_an_odd_tensor_on_the_command_line_exits_2_with_one_line(tmp_path, kind):
    path, out = odd_file(tmp_path, kind), tmp_path / "out"
    result = run_script("train_jax.py", "--init", path, "--no-plots", "--steps", 2, "--out", out)
    assert result.returncode == 2 and result.stdout == "", result
    assert result.stderr == f"train_jax.py: error: {path}: {ODD[kind][1]}\n"  # one line, no traceback
    assert not out.exists()


def test_a_bare_meta_tensor_is_said_to_be_one_tensor(tmp_path):
    torch.save(torch.empty(20, 1, device="meta"), tmp_path / "bare.pt")
    with pytest.raises(InputError, match=r"bare.pt: holds one tensor, not a state_dict \(a dict of tensors\): save "
                                         r"model.state_dict\(\)$"):
        weights.read(tmp_path / "bare.pt")


# ---- views: read through their offset and strides, as torch.load reads them ------------------------------------

def assert_same_tensor(array: np.ndarray, tensor: torch.Tensor) -> None:
    """dtype, shape and bits."""
    assert array.dtype.name == str(tensor.dtype).removeprefix("torch.") and array.shape == tuple(tensor.shape)
    assert array.tobytes() == tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


BASE = torch.arange(60, dtype=torch.float32).reshape(6, 10) / 7  # one storage of 60 for every view below
VIEWS = {
    "transposed": BASE.t(),
    "every other column": BASE[:, ::2],
    "at an offset": BASE[2, 3:9],  # storage offset 23, 6 of the storage's 60 elements
    "a column": BASE[1:, 4:5],
    "the front of a larger storage": BASE[:2],
    "expanded": BASE[3, :1].expand(4, 3),  # stride 0
}


@pytest.mark.parametrize("name", VIEWS)
def test_a_view_reads_as_torch_load_reads_it(tmp_path, name):
    view = VIEWS[name]
    assert not view.is_contiguous() or view.storage_offset() or view.untyped_storage().nbytes() > view.nbytes
    torch.save({"v": view, "dense": BASE[0].clone()}, tmp_path / "view.pt")
    want = torch.load(tmp_path / "view.pt", weights_only=True)
    got = torch_file.load(tmp_path / "view.pt")
    assert want["v"].stride() == view.stride()  # torch.load keeps the view; the reader copies its values
    assert_same_tensor(got["v"], want["v"])
    assert_same_tensor(got["dense"], want["dense"])
    assert got["v"].flags.c_contiguous


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_contiguous_tensors_read_bit_for_bit(tmp_path, dtype):
    saved = {k: v.to(getattr(torch, dtype)) for k, v in state(1).items()}
    torch.save(saved, tmp_path / "net.pt")
    want, got = torch.load(tmp_path / "net.pt", weights_only=True), torch_file.load(tmp_path / "net.pt")
    assert list(got) == list(want)
    for name in want:
        assert_same_tensor(got[name], want[name])


def test_a_state_dict_of_views_trains_as_its_copies(tmp_path):
    """Views of one storage (a transpose, strided slices, offsets), through --init: the same first loss as the same
    values saved contiguous."""
    s = state(2)
    big = torch.zeros(41, 3)
    big[:20, 0], big[20:40, 2], big[40, 1] = s["linear1.weight"][:, 0], s["linear2.weight"][0], s["linear2.bias"][0]
    views = {"linear1.weight": big[:20, :1], "linear1.bias": s["linear1.bias"], "linear2.weight": big[20:40, 2:].t(),
             "linear2.bias": big[40, 1:2]}
    assert all(torch.equal(views[k], s[k]) for k in s) and not views["linear2.weight"].is_contiguous()
    torch.save(views, tmp_path / "views.pt")
    torch.save(s, tmp_path / "copies.pt")
    (params, _), (copies, _) = weights.read(tmp_path / "views.pt"), weights.read(tmp_path / "copies.pt")
    for name in copies:
        np.testing.assert_array_equal(params[name], copies[name], strict=True)
    first = {}
    for name in ("views", "copies"):
        result = run_script("train_jax.py", "--init", tmp_path / f"{name}.pt", "--no-plots", "--steps", 2, "--json",
                            "--no-cache", "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr
        first[name] = json.loads(result.stdout)["losses"][0]
    assert first["views"] == first["copies"]
