"""The optimizer parity table (jax_impl/core/torch_optim.py): each torch.optim optimizer and its optax twin on the
notebook's run, every step's parameters compared, in float64 (a subprocess: x64 is global) and in float32; the
flags that name them, checked as torch checks them."""

import inspect
import json

import pytest
import torch
from conftest import import_script, run_script

from jax_impl.core import optimizers
from torch_impl.checks import optimizer_parity

FLOAT64_BOUND = 1e-12  # Adam's float64 bound (torch_impl/checks/compare.py): measured worst row 1.4e-13 (Adagrad)
TORCH_ITSELF = 1e-10  # the amplifying runs: torch against itself, nudged by 1e-16 parts, measured 1.1e-10 and 0.17
# float32: each step's rounding (u = 6e-8) differs between the frameworks' kernels and is amplified as the float64
# runs show (up to ~1e3); measured worst 1.8e-4 (NAdam, momentum_decay 0.01). 1e-3, compare.py's float32 loss
# tolerance, leaves 5.5x.
FLOAT32_BOUND = 1e-3


@pytest.fixture(scope="module")
def float64_rows():
    done = run_script("optimizer_parity.py", "--x64", "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    return {(r["optimizer"], r["lr"]): r for r in json.loads(done.stdout)}


@pytest.mark.parametrize("spec, lr", optimizer_parity.ROWS)
def test_every_row_agrees_at_every_step_in_float64(float64_rows, spec, lr):
    row = float64_rows[(spec, lr)]
    assert row["steps"] == 201 and row["worst"] <= FLOAT64_BOUND, row
    assert row["loss_last"] < row["loss_first"] / 5, row  # the row trains the network: a real trajectory


@pytest.mark.parametrize("spec, lr, before", optimizer_parity.AMPLIFYING)
def test_runs_that_amplify_rounding_agree_before_it_and_torch_parts_from_itself(float64_rows, spec, lr, before):
    row = float64_rows[(spec, lr)]
    assert row["steps"] == before and row["worst"] <= FLOAT64_BOUND, row
    assert row["torch_vs_itself_201_steps"] >= TORCH_ITSELF, row  # the reason these are compared over fewer steps


@pytest.mark.parametrize("spec, lr", optimizer_parity.ROWS)
def test_every_row_agrees_in_float32_within_the_error_model(spec, lr):
    row = optimizer_parity.parity(spec, lr, dtype="float32")
    assert row["worst"] <= FLOAT32_BOUND, row


@pytest.mark.parametrize("ours, theirs", [("adam(weight_decay=0.01)", "adamw(weight_decay=0.01)"),
                                         ("sgd(momentum=0.9, dampening=0.5)", "sgd(momentum=0.9)")])
def test_a_planted_porting_bug_is_caught(ours, theirs):
    """The check is not blind to the classic porting slips: torch's Adam weight decay (L2 in the gradient) taken
    for AdamW's (decoupled), and dampening dropped; each JAX side against the other torch optimizer, in float32."""
    from jax_impl.core import data

    params, (x, y) = data.notebook_init_params(), data.notebook_data()
    _, mine = optimizer_parity.jax_steps(ours, 0.1, params, x, y, 201)
    _, torchs = optimizer_parity.torch_steps(theirs, 0.1, data.as_numpy(params), x, y, 201, "float32")
    worst = max(abs(mine[k] - torchs[k]).max() / abs(torchs[k]).max() for k in mine)
    assert worst > 10 * FLOAT32_BOUND


def test_the_table_holds_torchs_defaults():
    for name, defaults in optimizers.TORCH_DEFAULTS.items():
        signature = inspect.signature(getattr(torch.optim, optimizers.TORCH_CLASSES[name])).parameters
        assert {k: signature[k].default for k in defaults} == defaults, name  # 0 == 0.0: same value


@pytest.mark.parametrize("name, args, message", [
    ("sgd", {"nesterov": True}, "nesterov needs a momentum"),
    ("sgd", {"betas": (0.9, 0.99)}, "SGD takes no argument 'betas'"),
    ("adam", {"betas": (0.9, 1.0)}, "must lie in [0, 1)"),
    ("adam", {"betas": (0.9,)}, "betas takes two numbers, (b1, b2), not (0.9,)"),
    ("adamax", {"betas": [0.9, 0.99, 0.5]}, "betas takes two numbers"),
    ("nadam", {"betas": (0.9, True)}, "betas takes two numbers"),
    ("adam", {"amsgrad": 1}, "True or False"),
    ("rmsprop", {"eps": -1.0}, "must not be negative"),
    ("adagrad", {"lr_decay": 0.1}, "not in the table"),
])
def test_arguments_are_checked_as_torch_checks_them(name, args, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)").replace("(", r"\(")):
        optimizers.torch_kwargs(name, args)


@pytest.mark.parametrize("spec", ["adam(", "adam(0.9)", "optax.adam", "adam(**{'eps': 1e-7})", "adam(eps=x)", "1"])
def test_a_spec_that_is_not_a_call_of_a_name_is_refused_by_name(spec):
    """parse_spec: text that is neither a name nor name(keyword=literal, ...) gets the one message, quoting it."""
    with pytest.raises(ValueError) as error:
        optimizers.parse_spec(spec)
    assert str(error.value) == f"{spec!r} is not an optimizer: a name, or name(keyword=value, ...)"


def test_names_are_read_in_any_case():
    assert optimizers.parse_spec(" NAdam(eps=1e-7) ") == ("nadam", {"eps": 1e-7})
    assert optimizers.optimizer_spec("AdamW", {"amsgrad": True}) == "adamw(amsgrad=True)"
    with pytest.raises(ValueError, match="^unknown optimizer 'Lbfgs' "):
        optimizers.parse_spec("Lbfgs")


def test_the_command_line_names_torchs_optimizers_and_arguments(capsys):
    parse = import_script("train_jax").parse_args
    assert parse(["--optimizer", "SGD", "--optimizer-args", "momentum=0.9,nesterov=True"]).optimizer == (
        "sgd(momentum=0.9, nesterov=True)")
    assert parse(["--optimizer", "sgd", "--optimizer-args", "momentum=0,dampening=0.0"]).optimizer == "sgd"
    assert parse(["--optimizer", "Adam", "--optimizer-args", "betas=(0.8,0.99)"]).optimizer == (
        "adam(betas=(0.8, 0.99))")
    for argv, message in [(["--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'"),
                          (["--optimizer-args", "momentum=0.9"], "Adam takes no argument 'momentum'"),
                          (["--optimizer-args", "eps=x"], "is not k=v")]:
        with pytest.raises(SystemExit) as exit_info:
            parse(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err and err.count("\n") == 1, err


def test_compare_agrees_for_an_optimizer_with_arguments(tmp_path):
    """The scripts run the spec end to end: compare.py trains it in both frameworks and agrees."""
    done = run_script("compare.py", "--optimizer", "RMSprop", "--optimizer-args", "momentum=0.9,centered=True",
                      "--lr", "0.003", "--json", "--no-plots")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["optimizer"] == "rmsprop(momentum=0.9, centered=True)" and report["ok"], report


def _refusal(monkeypatch, capsys, *args) -> tuple[int, str]:
    """optimizer_parity.py's main() with ARGS on a machine with 16 GiB free: (exit code, stderr), from its checks
    before any work (jax is not set up: a run would fail the test by taking minutes)."""
    from jax_impl.core import footprint

    module = import_script("optimizer_parity")
    monkeypatch.setattr(footprint, "available_bytes", lambda: 16 * 2**30)
    monkeypatch.setattr(module.cli, "setup_jax", lambda **kwargs: pytest.fail("the run started"))
    monkeypatch.setattr("sys.argv", ["optimizer_parity.py", *args])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("args, line", [
    # jax.lax.scan's length and the optimizers' step count are int32: JAX raised OverflowError, a 37-line traceback
    (["--steps", "100000000000"],
     "--steps 100000000000 is above 2**31 - 1: the optimizers count steps in an int32"),
    # every step kept in both frameworks: it ran for ever (and took SIGTERM only once the jitted scan returned)
    (["--steps", "2000000000"], "--steps 2000000000: the run needs about 7,629.4 GiB (7,629.4 GiB of it for --steps), "
                                "but this machine has 16.0 GiB free; ask for less"),
    (["--steps", "2000000000", "--stop", "5"], "--steps 2000000000: the run needs about 927."),
    # --stepwise chooses how the resume table runs JAX: without --stop it was silently ignored
    (["--stepwise"], "--stepwise changes only the resume table: give --stop K too"),
])
def test_a_run_that_cannot_work_is_refused_in_one_line_before_work(monkeypatch, capsys, args, line):
    code, err = _refusal(monkeypatch, capsys, *args)
    assert code == 2 and err.startswith(f"optimizer_parity.py: error: {line}") and err.count("\n") == 1, err


def test_the_largest_step_count_that_fits_is_not_refused(monkeypatch, capsys):
    """The bound is the memory (PARITY_STEP_BYTES a step within 0.8 of what is free), not a round number: 3 * 10**6
    steps (12 GiB) fit in 16 GiB free, and get as far as setting up jax."""
    module = import_script("optimizer_parity")
    monkeypatch.setattr("jax_impl.core.footprint.available_bytes", lambda: 16 * 2**30)
    monkeypatch.setattr(module.cli, "setup_jax", lambda **kwargs: (_ for _ in ()).throw(SystemExit("started")))
    monkeypatch.setattr("sys.argv", ["optimizer_parity.py", "--steps", "3000000"])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert exit_info.value.code == "started", capsys.readouterr().err
