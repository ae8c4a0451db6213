"""Write the notebook's data and weights into jax_impl, from torch's draws reproduced without torch (torch_rng).

    python scripts/make_notebook_data.py              # rewrites the two shipped files
    python scripts/make_notebook_data.py --out DIR    # writes them into DIR instead

notebook_data.npz: x, y (100, 1), and Net(1, 20, 1)'s initial weights w1, b1, w2, b2 in the JAX layout, as
torch.manual_seed(1) and the notebook's cells give them. notebook_validation_params.npz: the weights behind the
validation cell's printed table (its sixth run's randn draws). tests/test_torch_rng.py checks the shipped files, this
script's output and a fresh torch draw against each other bit for bit. Exit code 2: the folder cannot be written.
"""

import argparse

from jax_impl import cli, torch_rng
from jax_impl.data import NOTEBOOK_DATA, NOTEBOOK_VALIDATION_PARAMS
from jax_impl.params_io import save_npz


def main(argv=None):
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(NOTEBOOK_DATA.parent), help="output folder (default: jax_impl, shipped)")
    out = cli.prepare_out_dir(p.parse_args(argv).out)
    draws = torch_rng.notebook_draws(torch_rng.NOTEBOOK_SEED)  # the notebook's seed, width 20, 100 points
    save_npz(out / NOTEBOOK_DATA.name, {"x": draws["x"], "y": draws["y"], **draws["params"]})
    save_npz(out / NOTEBOOK_VALIDATION_PARAMS.name, torch_rng.validation_draw(torch_rng.NOTEBOOK_SEED))
    print(f"wrote {out / NOTEBOOK_DATA.name} and {out / NOTEBOOK_VALIDATION_PARAMS.name}")


if __name__ == "__main__":
    cli.run_main(main)
