"""Flag types: a value is judged by what it means, not how it is spelled."""

import argparse
import re

import pytest

from jax_impl.app import cli
from jax_impl.core import optimizers


@pytest.mark.parametrize("text", ["0", "0.0", "0e0", "-0", "0.000", " 0 "])
def test_zero_is_zero_however_spelled(text):
    assert cli.non_negative_float(text) == 0.0


@pytest.mark.parametrize("text,value", [("0.2", 0.2), ("2e-1", 0.2), ("1", 1.0)])
def test_a_positive_number_passes(text, value):
    assert cli.non_negative_float(text) == value


@pytest.mark.parametrize("text,message", [("-0.1", "^-0.1 must be 0 or a finite number above 0$"),
                                          ("nan", "^nan must be 0 or a finite number above 0$"),
                                          ("inf", "^inf must be 0 or a finite number above 0$"),
                                          ("x", "^'x' is not a number$")])
def test_a_negative_or_non_finite_value_is_named(text, message):
    """The refusal states non_negative_float's rule, 0 included (not positive_float's "above 0")."""
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        cli.non_negative_float(text)
    assert "must be a finite number above 0" in str(pytest.raises(argparse.ArgumentTypeError, cli.positive_float, "0"))


# ---- every script's flags: seeds, float32-held numbers, lists judged by value ----------------------------------
SEED_FLAGS = {"train_jax": ["--seed", "--data-seed", "--torch-seed"], "train_torch": ["--seed", "--data-seed",
              "--torch-seed"], "compare": ["--seed", "--data-seed", "--torch-seed"], "sweep": ["--data-seed",
              "--torch-seed"], "validate_grads": ["--seed", "--torch-seed"]}
FLOAT_FLAGS = {"train_jax": ["--lr", "--noise"], "train_torch": ["--lr", "--noise"], "compare": ["--lr", "--noise"],
               "sweep": ["--lrs", "--noise"]}


@pytest.fixture(scope="module")
def parsers():
    from conftest import import_script

    return {name: import_script(name).parse_args for name in SEED_FLAGS}


def usage_error(parse, argv, capsys) -> str:
    """parse(argv)'s one line, asserting exit 2 and one line."""
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, (argv, err)
    return err


@pytest.mark.parametrize("name, flag", [(n, f) for n, flags in SEED_FLAGS.items() for f in flags])
def test_every_seed_flag_takes_exactly_32_bits(parsers, capsys, name, flag):
    """0 ... 2**32 - 1: jax.random.key (without --x64) and torch.manual_seed keep a seed's low 32 bits, so 2**32 would
    be seed 0 again (in float32; another key under --x64). 2**63 and 2**64 are one line, not an OverflowError."""
    attribute = flag[2:].replace("-", "_")
    assert getattr(parsers[name]([flag, str(2**32 - 1)]), attribute) == 2**32 - 1
    assert getattr(parsers[name]([flag, "0"]), attribute) == 0
    for value in (2**32, 2**63, 2**64):
        assert "2**32 - 1" in usage_error(parsers[name], [flag, str(value)], capsys)
    assert "must not be negative" in usage_error(parsers[name], [flag, "-1"], capsys)


@pytest.mark.parametrize("name, flag", [(n, f) for n, flags in FLOAT_FLAGS.items() for f in flags])
def test_every_float_flag_is_a_number_float32_holds(parsers, capsys, name, flag):
    """A value that overflows float32, rounds to 0 in it or to a subnormal (which XLA on CPU flushes to 0 and torch
    does not) is a usage error (every run computes in float32 or takes its numbers from a float32 run); the smallest
    normal float32 (2**-126 ~ 1.1755e-38) and the largest (~3.4028235e38) pass."""
    attribute = flag[2:].replace("-", "_")
    for text in ("1.1755e-38", "3.4028235e38"):
        value = getattr(parsers[name]([flag, text]), attribute)
        assert value == (float(text) if flag != "--lrs" else [float(text)])
    for text in ("1e39", "3.4028236e38"):
        assert "overflows float32" in usage_error(parsers[name], [flag, text], capsys)
    # 1.1754e-38: rounds to float32's largest subnormal; 1e-45: its smallest; 1e-46: below 2**-150, rounds to 0.
    for text in ("1.1754e-38", "1e-45", "1e-46"):
        assert "0 or subnormal in float32" in usage_error(parsers[name], [flag, text], capsys)


@pytest.mark.parametrize("args, message", [
    ("momentum=1e39", "momentum 1e+39 overflows float32"), ("eps=1e-50", "eps 1e-50 is 0 or subnormal"),
    ("weight_decay=1e-40", "weight_decay 1e-40 is 0 or subnormal"), ("betas=(0.9,1e-45)", "1e-45 is 0 or subnormal")])
def test_optimizer_arguments_are_numbers_float32_holds(args, message):
    """--optimizer-args' numbers follow the float flags' rule, in every script (one parser: optimizers.torch_kwargs);
    0 stays 0 however spelled."""
    name = "sgd" if "momentum" in args else "adam"
    with pytest.raises(ValueError, match=re.escape(message)):
        optimizers.torch_kwargs(name, optimizers.parse_arguments(args))
    assert optimizers.torch_kwargs("sgd", optimizers.parse_arguments("momentum=-0.0,weight_decay=0e0"))[
        "momentum"] == 0.0


@pytest.mark.parametrize("name", ["train_jax", "train_torch", "compare", "sweep"])
@pytest.mark.parametrize("text, twice", [("momentum=0.9,momentum=0.8", "momentum"),
                                         ("momentum=0.9, nesterov=True, momentum=0.9", "momentum")])
def test_an_optimizer_argument_given_twice_is_refused(parsers, capsys, name, text, twice):
    """Not the last value silently: the user meant one of the two."""
    err = usage_error(parsers[name], ["--optimizer", "sgd", "--optimizer-args", text], capsys)
    assert err.endswith(f"error: argument --optimizer-args: {text!r} gives {twice} twice: give it once\n"), err
    once = parsers[name](["--optimizer", "sgd", "--optimizer-args", "momentum=0.9"]).optimizer
    assert once in ("sgd(momentum=0.9)", ["sgd(momentum=0.9)"])  # sweep.py's --optimizer is a list


def test_a_spec_names_each_argument_once():
    """optimizers.parse_spec, under --optimizer-args and every spec read back: not the last value silently."""
    with pytest.raises(optimizers.RepeatedArgument, match=r"^'sgd\(momentum=0.9, momentum=0.8\)' gives momentum "
                                                          "twice: give it once$"):
        optimizers.parse_spec("sgd(momentum=0.9, momentum=0.8)")
    assert optimizers.parse_spec("sgd(momentum=0.9, nesterov=True)") == ("sgd", {"momentum": 0.9, "nesterov": True})


def test_a_list_names_each_value_once_however_spelled(capsys):
    assert cli.lr_list("0.1,0.2") == [0.1, 0.2]
    for text in ("0.2,2e-1", "0.2, 0.20"):
        with pytest.raises(argparse.ArgumentTypeError, match="twice"):
            cli.lr_list(text)
    with pytest.raises(argparse.ArgumentTypeError, match="twice"):
        cli.seed_list("1,01")


@pytest.mark.parametrize("name", ["train_jax", "train_torch", "compare"])
def test_a_data_seed_alone_draws_fresh_data(parsers, name):
    """--data-seed alone is not ignored: it draws fresh data (100 points, noise 0.2) from its key, as --points or
    --noise do; the notebook's data only without any of them."""
    from jax_impl.core import data
    from jax_impl.core.experiment import fresh_data

    args = parsers[name](["--data-seed", "3"])
    assert fresh_data(args.points, args.noise, args.data_seed)
    assert not fresh_data(*(getattr(parsers[name]([]), k) for k in ("points", "noise", "data_seed")))
    x, y = data.run_data(points=args.points, noise=args.noise, data_seed=args.data_seed)
    notebook_x, notebook_y = data.notebook_data()
    assert x.shape == notebook_x.shape and not (y == notebook_y).all()
    fresh = data.make_data(data.jax.random.key(3))
    assert (x == fresh[0]).all() and (y == fresh[1]).all()
