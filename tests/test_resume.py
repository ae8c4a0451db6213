"""Resume equals never stopping (issue 21, items 3-4): every row of the parity table stopped in one framework, its
state file written and read, continued in the other or the same one, against the uninterrupted run in float64; the
command line's round trip both ways at the notebook's 201 steps; refusals, each one line, exit 2, nothing changed."""

import json
import sys

import numpy as np
import pytest
import torch
from conftest import import_script, run_script, start_script

from torch_impl.checks import optimizer_parity
from torch_impl.checks.resume_parity import DIRECTIONS, resume_parity

# The parity table's float64 bound (torch_impl/checks/compare.py, test_optimizer_parity.py): resuming adds no
# arithmetic, only the state's copy, so it must hold across the stop as it holds at every step. Measured worst
# (stop 5 of 12, AMD EPYC): 2.3e-13 (Adagrad, jax->torch and torch->jax).
FLOAT64_BOUND = 1e-12
# float32: both frameworks' roundings (u = 6e-8), amplified as in the parity table; its float32 bound.
FLOAT32_BOUND = 1e-3
# train_torch.py draws the notebook's data and weights with torch itself; torch_rng (train_jax.py's draw) reproduces
# torch's AVX2 / AVX-512 kernels only. Under torch's default kernels (ATEN_CPU_CAPABILITY=default) linspace differs at
# 42 of 100 points and w2 at 12 of 20 (docs/torch-rng.md): the two scripts then train on other numbers, 7e-8 apart.
same_draws = pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
                                reason="torch_rng reproduces torch's AVX2 / AVX-512 kernels")


@pytest.fixture(scope="module")
def started(tmp_path_factory):
    """Every subprocess of this file, started side by side (each is mostly start-up and compilation, one core's
    work): the float64 resume table (stop 5 of 12, --stepwise), and the notebook's Adam run in float64 uninterrupted
    in JAX and stopped at 100 in each framework. Yields (folder, {name: process})."""
    root = tmp_path_factory.mktemp("resume")
    runs = {"table": start_script("optimizer_parity.py", "--x64", "--stop", "5", "--steps", "12", "--stepwise",
                                  "--json")}
    for script, name, extra in [("train_jax.py", "full", []),
                                ("train_jax.py", "jax100", ["--steps", "100", "--save-state", root / "jax.st"]),
                                ("train_torch.py", "torch100", ["--steps", "100", "--save-state", root / "torch.st"])]:
        runs[name] = start_script(script, "--x64", "--no-plots", "--no-cache", "--out", root / name, *extra)
    yield root, runs
    for run in runs.values():
        if run.poll() is None:
            run.kill()
            run.communicate()


def _finished(run) -> str:
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err
    return out


@pytest.fixture(scope="module")
def float64_rows(started):
    return {(r["optimizer"], r["lr"]): r for r in json.loads(_finished(started[1]["table"]))}


@pytest.mark.parametrize("spec, lr", optimizer_parity.ROWS)
def test_every_row_resumes_as_if_never_stopped_in_float64(float64_rows, spec, lr):
    row = float64_rows[(spec, lr)]
    assert (row["stop"], row["steps"], row["stepwise"]) == (5, 12, True), row
    for direction in DIRECTIONS:
        assert row[direction] <= FLOAT64_BOUND, (direction, row)
    # jax continued in jax: the same jitted step called the same number of times from an exact copy of its state.
    assert row["jax->jax"] == 0.0, row
    # torch continued in torch: the same kernels in the same order from an exact copy of its state (NAdam's
    # mu_product kept in float32 as an uninterrupted run keeps it): the same numbers by construction.
    assert row["torch->torch"] == 0.0, row


def test_float32_resumes_within_the_error_model():
    row = resume_parity("adam(amsgrad=True)", 0.2, stop=5, steps=12, dtype="float32")
    for direction in DIRECTIONS:
        assert row[direction] <= FLOAT32_BOUND, (direction, row)


def _params(folder):
    with np.load(folder / "params.npz") as f:
        return {k: f[k] for k in f.files}


def _worst(a, b):
    return max(float(np.abs(a[k] - b[k]).max() / np.abs(b[k]).max()) for k in b)


@pytest.fixture(scope="module")
def saved(started):
    """The notebook's Adam run in float64: uninterrupted in JAX, and stopped at 100 in each framework."""
    root, runs = started
    for name in ("full", "jax100", "torch100"):
        _finished(runs[name])
    return root


@same_draws
@pytest.mark.parametrize("script, state", [("train_torch.py", "jax.st"), ("train_jax.py", "torch.st")])
def test_the_command_line_resumes_in_the_other_framework(saved, script, state):
    """201 steps of the notebook's Adam, stopped at 100 by one script and finished by the other: the final weights
    are the uninterrupted run's, and losses.json holds all 201 losses."""
    out = saved / f"resumed-{script}"
    done = run_script(script, "--x64", "--no-plots", "--no-cache", "--out", out, "--resume", saved / state)
    assert done.returncode == 0, done.stderr
    assert _worst(_params(out), _params(saved / "full")) <= FLOAT64_BOUND
    losses = json.loads((out / "losses.json").read_text())
    reference = json.loads((saved / "full" / "losses.json").read_text())
    assert len(losses) == 201 and np.allclose(losses, reference, rtol=FLOAT64_BOUND, atol=0)


@pytest.mark.parametrize("flags, message", [
    (["--optimizer", "sgd"], "its optimizer is adam, the flags name sgd"),
    (["--optimizer-args", "betas=(0.8,0.99)"], "the flags name adam(betas=(0.8, 0.99))"),
    ([], "a float64 run, the flags ask for float32"),
    (["--x64", "--lr", "0.1"], "saved with --lr 0.2, the flags give 0.1"),
    (["--x64", "--seed", "3"], "saved with --seed None, the flags give 3"),
    (["--x64", "--steps", "100"], "is at step 100, and --steps 100"),
])
def test_a_state_that_does_not_fit_the_flags_is_refused(saved, tmp_path, monkeypatch, capsys, flags, message):
    _assert_refused(saved / "jax.st", tmp_path, monkeypatch, capsys, flags, message)


@pytest.mark.parametrize("make, message", [
    (lambda saved, bad: bad.write_bytes((saved / "full" / "model.safetensors").read_bytes()), "not a state file"),
    (lambda saved, bad: bad.write_bytes((saved / "jax.st").read_bytes()[:-40]), "safetensors cannot read it"),
    (lambda saved, bad: bad.write_text("hello"), "not a state file"),
])
def test_a_file_that_is_not_a_state_file_is_refused(saved, tmp_path, monkeypatch, capsys, make, message):
    bad = tmp_path / "bad.st"
    make(saved, bad)
    _assert_refused(bad, tmp_path, monkeypatch, capsys, ["--x64"], message)


def _assert_refused(state, tmp_path, monkeypatch, capsys, flags, message):
    out, keep = tmp_path / "out", tmp_path / "keep.st"
    out.mkdir()
    (out / "losses.json").write_text("[1.0]")
    keep.write_bytes(b"earlier")
    before = _contents(state)
    for script in ("train_jax", "train_torch"):
        module = import_script(script)
        monkeypatch.setattr(sys, "argv", [f"{script}.py", "--resume", str(state), "--out", str(out),
                                          "--save-state", str(keep), "--no-plots", *flags])
        with pytest.raises(SystemExit) as exit_info:
            module.main()
        code, err = exit_info.value.code, capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (script, err)
        assert (out / "losses.json").read_text() == "[1.0]" and sorted(p.name for p in out.iterdir()) == [
            "losses.json"]
        assert keep.read_bytes() == b"earlier" and _contents(state) == before


def _contents(path):
    """A file's bytes, or a folder's entries."""
    return path.read_bytes() if path.is_file() else sorted(path.iterdir())


def test_a_folder_to_resume_is_said_to_be_one(tmp_path, monkeypatch, capsys):
    """Not safetensors' "No such device (os error 19)"."""
    (tmp_path / "states").mkdir()
    _assert_refused(tmp_path / "states", tmp_path, monkeypatch, capsys, [],
                    f"error: --resume {tmp_path / 'states'}: is a folder\n")


@pytest.mark.parametrize("script", ["train_jax", "train_torch"])
def test_a_state_whose_fields_are_not_the_optimizers_is_refused(tmp_path, monkeypatch, capsys, script):
    """A file that names adam but holds SGD's momentum buffer (written by hand: no script writes one) is one line
    and exit 2 in either framework, once the optimizer's own state is known."""
    from jax_impl.app import resume
    from jax_impl.core import data
    from jax_impl.files import state_file

    module = import_script(script)
    params = data.as_numpy(data.notebook_init_params())
    args = module.parse_args(["--no-plots"])
    state = state_file.TrainingState(params, {"momentum_buffer": params}, 3, np.ones(3, np.float32), "adam",
                                     "float32", "jax", resume.experiment(args))
    state_file.write(tmp_path / "odd.st", state)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", "--resume", str(tmp_path / "odd.st"), "--no-plots",
                                      "--no-cache", "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "adam keeps exp_avg" in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_a_resumed_program_keeps_the_runs_step_numbers():
    """train.resumed_trajectory from step 7 of 45 (snapshots every 20): losses for steps 7 ... 44, snapshots at 20
    and 40 only, and the numbers of the uninterrupted fit's same steps (float32: two XLA programs, each step's
    rounding u = 6e-8 grown over 45 Adam steps, as the parity table's float32 rows grow it over 201: 1e-5)."""
    import jax.numpy as jnp

    from jax_impl.core import data, optimizer_state, train
    from jax_impl.core.torch_optim import make_optimizer

    params, (x, y) = data.notebook_init_params(), data.notebook_data()
    full = train.fit(params, x, y, 0.2, steps=45)
    tx = make_optimizer("adam", jnp.asarray(0.2))
    first, state = train.resumed_trajectory(params, tx.init(params), x, y, 0.2, start=0, steps=7)
    slots = optimizer_state.torch_slots("adam", state)
    assert sorted(slots) == ["exp_avg", "exp_avg_sq"] and optimizer_state.counts(state) == [7]
    state = optimizer_state.optax_state("adam", tx.init(params), slots, 7)
    resume = train.jitted_resume(params, x)
    rest, final_state = resume(first.params, state, x, y, 0.2, optimizer="adam", start=7, steps=45)
    assert rest.losses.shape == (38,) and rest.snapshots.shape == (2, 100, 1)
    assert optimizer_state.counts(final_state) == [45]
    np.testing.assert_allclose(rest.losses, full.losses[7:], rtol=1e-5)
    np.testing.assert_allclose(rest.snapshots, full.snapshots[1:], rtol=1e-5, atol=1e-6)
    for k in params:
        np.testing.assert_allclose(rest.params[k], full.params[k], rtol=1e-5, atol=1e-6)


def _narrow_exp_avg(state):
    """linear1.weight's exp_avg of width 5 in a width-20 network."""
    return state._replace(slots={**state.slots, "exp_avg": {**state.params, "w1": np.zeros((1, 5), np.float32)}})


def _negative_exp_avg_sq(state):
    """linear2.weight's second moment with one entry below 0, which no run keeps."""
    nu = state.slots["exp_avg_sq"]["w2"].copy()
    nu[3, 0] = -0.5
    return state._replace(slots={**state.slots, "exp_avg_sq": {**state.slots["exp_avg_sq"], "w2": nu}})


@pytest.mark.parametrize("flags, change, message", [
    (["--hidden", "10"], lambda s: s, "holds a network of width 20, its experiment says 10"),
    ([], lambda s: s._replace(experiment=[1, 2]), "damaged metadata (experiment is an array, not a JSON object"),
    ([], lambda s: s._replace(experiment=None), "damaged metadata (experiment is null, not a JSON object of flags)"),
    ([], _negative_exp_avg_sq, "damaged: 'exp_avg_sq.w2' has negative values (1 of 20; first -0.5 at [3, 0]), "
                               "where the optimizer keeps squares"),
    ([], _narrow_exp_avg, "'state.linear1.weight.exp_avg' is float32 (5, 1), expected float32 (20, 1)"),
    ([], lambda s: s._replace(losses=np.array([1.0, np.nan, 1.0], np.float32)), "'losses' has non-finite values"),
    ([], lambda s: s._replace(losses=np.ones(2, np.float32)), "'losses' is float32 (2,), expected float32 (3,)"),
])
def test_a_state_file_that_contradicts_itself_is_refused(tmp_path, monkeypatch, capsys, flags, change, message):
    """Written by hand (no script writes one): a width other than its experiment's, metadata of the wrong kind, a
    negative second moment, a state tensor of another shape, a non-finite loss, fewer losses than steps."""
    from jax_impl.app import resume
    from jax_impl.core import data
    from jax_impl.files import state_file

    params = data.as_numpy(data.notebook_init_params())
    args = import_script("train_jax").parse_args(["--no-plots", *flags])
    squares = {k: v * v for k, v in params.items()}  # a second moment is never negative
    state = state_file.TrainingState(params, {"exp_avg": params, "exp_avg_sq": squares}, 3, np.ones(3, np.float32),
                                     "adam", "float32", "torch", resume.experiment(args))
    state_file.write(tmp_path / "odd.st", change(state))
    _assert_refused(tmp_path / "odd.st", tmp_path, monkeypatch, capsys, flags, message)


@pytest.mark.parametrize("spec, lr", optimizer_parity.ROWS)
def test_both_frameworks_name_the_same_state_fields(spec, lr):
    """The fields the optax side maps its state to are the ones torch.optim itself keeps for the row (a probe step),
    and a state mapped to them and back is the state (float32)."""
    import jax

    from jax_impl.core import data, optimizer_state
    from jax_impl.core.torch_optim import make_optimizer
    from torch_impl.twin.optimizer_state import fields_of

    params = data.notebook_init_params()
    state = make_optimizer(spec, lr).init(params)
    state = jax.tree.map(lambda a: a + 0.5 if a.dtype == np.float32 else a + 3, state)  # not the initial values
    slots = optimizer_state.torch_slots(spec, state)
    assert sorted(slots) == fields_of(spec)
    again = optimizer_state.optax_state(spec, make_optimizer(spec, lr).init(params), slots, 3)
    assert jax.tree.structure(again) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(state)):
        np.testing.assert_array_equal(a, b)  # copies, no arithmetic: the same bits
