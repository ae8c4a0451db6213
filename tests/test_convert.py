"""JAX parameters <-> torch state_dict: both directions, exact round trips, named shape errors, equal forwards."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jax_impl.core import data, layout, model
from jax_impl.files import weights
from torch_impl.twin.convert import JAX_TO_TORCH, from_state_dict, tensor_to_numpy, to_state_dict
from torch_impl.twin.model import Net

# |Net(to_state_dict(p))(x) - model.forward(p, x)| in float32. Measured over jax.random keys 0-99 at hidden 20 and
# 256 on the notebook's x: worst 2.4e-7, two float32 ulps at the predictions' size (~1); torch and XLA sum the
# hidden units in different orders.
FORWARD_ATOL = 1e-6


def seeded_params(seed=0, hidden=20, dtype=jnp.float32):
    return data.as_numpy(model.init_params(jax.random.key(seed), hidden, dtype))


def test_to_state_dict_transposes_weights_and_copies_biases():
    params = seeded_params(1, hidden=5)
    state = to_state_dict(params)
    assert set(state) == {"linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias"}
    np.testing.assert_array_equal(state["linear1.weight"].numpy(), params["w1"].T)  # (5, 1)
    np.testing.assert_array_equal(state["linear1.bias"].numpy(), params["b1"])
    np.testing.assert_array_equal(state["linear2.weight"].numpy(), params["w2"].T)  # (1, 5)
    np.testing.assert_array_equal(state["linear2.bias"].numpy(), params["b2"])
    assert state["linear1.weight"].shape == (5, 1) and state["linear2.weight"].shape == (1, 5)
    net = Net(1, 5, 1)
    net.load_state_dict(state)  # strict: every name and shape fits torch's own module


def test_from_state_dict_reads_a_torch_net():
    torch.manual_seed(0)
    net = Net(1, 7, 1)
    params = from_state_dict(net.state_dict())
    assert {k: v.shape for k, v in params.items()} == layout.param_shapes(7)
    np.testing.assert_array_equal(params["w1"], net.linear1.weight.detach().numpy().T)
    np.testing.assert_array_equal(params["b1"], net.linear1.bias.detach().numpy())
    np.testing.assert_array_equal(params["w2"], net.linear2.weight.detach().numpy().T)
    np.testing.assert_array_equal(params["b2"], net.linear2.bias.detach().numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trips_are_exact(dtype):
    params = {k: v.astype(dtype) for k, v in seeded_params(2).items()}
    back = from_state_dict(to_state_dict(params))
    for name in params:
        assert back[name].dtype == dtype and back[name].shape == params[name].shape, name
        np.testing.assert_array_equal(back[name], params[name], err_msg=name)

    torch.manual_seed(3)
    state = Net(1, 20, 1).to(torch.float64 if dtype == np.float64 else torch.float32).state_dict()
    again = to_state_dict(from_state_dict(state))
    for name in state:
        assert again[name].dtype == state[name].dtype, name
        assert torch.equal(again[name], state[name]), name


def test_conversion_copies_rather_than_aliases():
    params = seeded_params(4)
    state = to_state_dict(params)
    state["linear1.bias"][0] = 123.0
    assert params["b1"][0] != 123.0
    back = from_state_dict(state)
    back["b1"][1] = 456.0
    assert state["linear1.bias"][1] != 456.0


@pytest.mark.parametrize("name,bad_shape", [("w1", (20, 1)), ("b1", (20, 1)), ("w2", (1, 20)), ("b2", (2,))])
def test_wrong_jax_shape_names_the_tensor(name, bad_shape):
    params = seeded_params()
    params[name] = np.zeros(bad_shape, np.float32)
    with pytest.raises(ValueError, match=rf"'{name}' has shape \({bad_shape[0]},"):
        to_state_dict(params)


# H is read from the hidden bias, so the bad shapes keep its length: a bias of the wrong length would make the
# weights look wrong instead (convert.py infers H from "b1" / "linear1.bias" unless told).
@pytest.mark.parametrize("torch_name,bad_shape", [("linear1.weight", (1, 20)), ("linear1.bias", (20, 3)),
                                                  ("linear2.weight", (20, 1)), ("linear2.bias", (1, 3))])
def test_wrong_torch_shape_names_the_tensor(torch_name, bad_shape):
    assert torch_name in [t for t, _ in JAX_TO_TORCH.values()]
    state = Net(1, 20, 1).state_dict()
    state[torch_name] = torch.zeros(bad_shape)
    with pytest.raises(ValueError, match=rf"'{torch_name}' has shape \({bad_shape[0]}, {bad_shape[1]}\)"):
        from_state_dict(state)


def test_a_missing_tensor_is_named():
    params = seeded_params()
    del params["w2"]
    with pytest.raises(ValueError, match="missing key 'w2'"):
        to_state_dict(params)
    state = Net(1, 20, 1).state_dict()
    del state["linear2.bias"]
    with pytest.raises(ValueError, match=r"missing key 'linear2.bias' \(found 'linear1.weight', "):
        from_state_dict(state)


@pytest.mark.parametrize("seed,hidden", [(0, 20), (5, 20), (6, 256)])
def test_converted_net_computes_the_jax_forward(seed, hidden):
    x, _ = data.notebook_data()
    params = model.init_params(jax.random.key(seed), hidden)
    net = Net(1, hidden, 1)
    net.load_state_dict(to_state_dict(params))
    with torch.no_grad():
        got = net(torch.tensor(np.asarray(x))).numpy()
    want = np.asarray(model.forward(params, x))
    assert got.shape == want.shape == (100, 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=FORWARD_ATOL)
    assert np.ptp(want) > 0.01  # a real curve, not a constant that would agree trivially


def test_notebook_weights_give_the_notebooks_first_loss_in_both():
    """Net's forward at the notebook's initial weights, through the conversion, gives the notebook's t = 0 loss."""
    x, y = data.notebook_data()
    params = data.notebook_init_params()
    net = Net(1, 20, 1)
    net.load_state_dict(to_state_dict(params))
    with torch.no_grad():
        torch_loss = torch.nn.MSELoss()(net(torch.tensor(np.asarray(x))), torch.tensor(np.asarray(y))).item()
    assert "%.4f" % torch_loss == "%.4f" % float(model.mse_loss(params, x, y)) == "0.6136"


@pytest.mark.parametrize("bad", ["w1", "b1", "w2"])
def test_a_wrong_width_names_the_tensor_that_is_off(bad):
    """H is what most tensors agree on, so the one that is off is named, whichever it is."""
    params = {"w1": np.zeros((1, 20)), "b1": np.zeros(20), "w2": np.zeros((20, 1)), "b2": np.zeros(1)}
    params[bad] = np.zeros(tuple(19 if d == 20 else d for d in params[bad].shape))
    with pytest.raises(ValueError, match=f"tensor '{bad}' has shape"):
        to_state_dict(params)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_tensor_to_numpy_keeps_the_bits(dtype):
    tensor = torch.tensor([0.0, -0.0, 1.5, -2.25, 1e-7, 3e38]).to(dtype)[::2]  # a strided view
    array = tensor_to_numpy(tensor)
    assert array.dtype.name == str(dtype).removeprefix("torch.") and array.flags.c_contiguous
    assert array.tobytes() == tensor.contiguous().view(torch.uint8).numpy().tobytes()
    array[0] = 9
    assert tensor[0] == 0  # a copy
    assert tensor_to_numpy(torch.zeros(2, dtype=torch.float4_e2m1fn_x2)) == "float4_e2m1fn_x2"  # no numpy dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_the_twin_and_the_torch_free_files_agree(tmp_path, dtype):
    """A .pt torch.save wrote, read without torch (weights.read), is the twin's from_state_dict of torch.load; and
    weights.write's .pt, read by torch.load(weights_only=True), is the twin's to_state_dict of the same params."""
    torch.manual_seed(7)
    state = Net(1, 9, 1).to(dtype).state_dict()
    torch.save(state, tmp_path / "net.pt")
    params, _ = weights.read(tmp_path / "net.pt", dtype=None)
    twin = from_state_dict(torch.load(tmp_path / "net.pt", weights_only=True))
    for name in params:  # bfloat16 is read widened to float32, exactly
        assert params[name].tobytes() == twin[name].astype(params[name].dtype).tobytes(), name
    weights.write(tmp_path / "back.pt", params)
    loaded = torch.load(tmp_path / "back.pt", weights_only=True)
    for name, tensor in to_state_dict(params).items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name
        assert loaded[name].numpy().tobytes() == tensor.numpy().tobytes(), name
