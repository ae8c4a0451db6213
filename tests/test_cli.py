"""Flag types: a value is judged by what it means, not how it is spelled."""

import argparse

import pytest

from jax_impl.app import cli


@pytest.mark.parametrize("text", ["0", "0.0", "0e0", "-0", "0.000", " 0 "])
def test_zero_is_zero_however_spelled(text):
    assert cli.non_negative_float(text) == 0.0


@pytest.mark.parametrize("text,value", [("0.2", 0.2), ("2e-1", 0.2), ("1", 1.0)])
def test_a_positive_number_passes(text, value):
    assert cli.non_negative_float(text) == value


@pytest.mark.parametrize("text,message", [("-0.1", "must be a finite number above 0"), ("nan", "finite"),
                                          ("inf", "finite"), ("x", "'x' is not a number")])
def test_a_negative_or_non_finite_value_is_named(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        cli.non_negative_float(text)
