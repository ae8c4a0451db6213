"""Write the notebook's data and weights into jax_impl, from the torch twin's draws.

    python scripts/make_notebook_data.py

jax_impl/notebook_data.npz: x, y (100, 1), and the initial weights w1, b1, w2, b2 in the JAX layout.
jax_impl/notebook_validation_params.npz: the weights behind the validation cell's printed table.
tests/test_data.py checks both bit for bit against a fresh torch draw.
"""

import argparse
import pathlib

from jax_impl import cli
from jax_impl.params_io import save_npz
from torch_impl.convert import from_state_dict
from torch_impl.notebook import notebook_draws

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "jax_impl"


def main(argv=None):
    cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    x, y, net, validation = notebook_draws()
    save_npz(PACKAGE / "notebook_data.npz", {"x": x.numpy(), "y": y.numpy(), **from_state_dict(net.state_dict())})
    save_npz(PACKAGE / "notebook_validation_params.npz", validation)
    print(f"wrote {PACKAGE / 'notebook_data.npz'} and {PACKAGE / 'notebook_validation_params.npz'}")


if __name__ == "__main__":
    main()
