"""Runs that cannot fit are refused before any work: one line naming the flag, the memory needed and what is free."""

import pytest
from conftest import import_script

from jax_impl.app import sizes
from jax_impl.core import footprint

GIB = 2**30


@pytest.fixture(scope="module")
def parsers():
    return {name: import_script(name).parse_args for name in ("train_jax", "train_torch", "compare", "validate_grads")}


def refused(parse, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("name, argv, flag", [
    ("train_jax", ["--points", "3000000000"], "--points 3000000000"),
    ("train_torch", ["--points", "3000000000"], "--points 3000000000"),
    ("compare", ["--hidden", "100000000"], "--hidden 100000000"),
    ("validate_grads", ["--hidden", "100000000"], "--hidden 100000000"),
    ("train_jax", ["--steps", "2000000000", "--log-every", "1000000000"], "--steps 2000000000"),
    ("train_jax", ["--steps", "30000", "--log-every", "1"], "--log-every 1"),
])
def test_a_run_that_cannot_fit_is_one_line_naming_the_flag(parsers, capsys, monkeypatch, name, argv, flag):
    """With 16 GiB free (any machine alike): refused at parsing, before jax, training or any output."""
    monkeypatch.setattr(footprint, "available_bytes", lambda: 16 * GIB)
    err = refused(parsers[name], argv, capsys)
    assert f"error: {flag}: the run needs about " in err and "but this machine has 16.0 GiB free" in err, err


def test_pictures_count_only_when_drawn(parsers, capsys, monkeypatch):
    """2,000 frames of pictures need ~6 GB (measured 2.5 MB a frame); without pictures the run is small."""
    monkeypatch.setattr(footprint, "available_bytes", lambda: 4 * GIB)
    argv = ["--steps", "2000", "--log-every", "1"]
    assert "draw no pictures (--no-plots)" in refused(parsers["train_jax"], argv, capsys)
    assert parsers["train_jax"]([*argv, "--no-plots"]).log_every == 1
    assert parsers["train_jax"]([]).steps == 201  # the notebook's run fits in 4 GiB, pictures and all


@pytest.mark.parametrize("name", ["train_jax", "train_torch"])
def test_a_record_that_cannot_fit_is_refused(parsers, capsys, monkeypatch, name):
    """--record keeps two (N, H) arrays a step: 2,000 steps of 100,000 points are ~32 GB of record, refused with 16 GiB
    free; the same run without a record fits."""
    monkeypatch.setattr(footprint, "available_bytes", lambda: 16 * GIB)
    argv = ["--steps", "2000", "--points", "100000", "--no-plots"]
    err = refused(parsers[name], [*argv, "--record", "big.safetensors"], capsys)
    assert "error: --record big.safetensors: the run needs about " in err and err.endswith(
        "but this machine has 16.0 GiB free; record fewer --steps or --points\n"), err
    assert parsers[name](argv).record is None


def test_a_records_estimate_counts_every_step_and_the_kept_ones():
    """Per step: 2 N H + 2 N + 2 numbers and five per parameter value (3 H + 1); JAX's scan holds every step before
    thinning, and the kept ones are held twice while written."""
    per_step = 2 * 100 * 20 + 2 * 100 + 2 + 5 * 61
    assert sizes.record_bytes(points=100, hidden=20, steps=10, every=1, itemsize=4) == (per_step * 30 + 200) * 4
    assert sizes.record_bytes(points=100, hidden=20, steps=10, every=4, itemsize=8) == (per_step * 16 + 200) * 8


def test_the_estimate_names_the_flag_that_asks_for_the_most():
    needs = sizes.run_bytes(points=100, hidden=20, steps=201, every=20, itemsize=4, pictures=True)
    assert set(needs) == {"--points", "--steps", "--log-every"}
    assert 11 * sizes.FRAME_BYTES < sum(needs.values()) < 11 * sizes.FRAME_BYTES + 2**20  # pictures dominate
    wide = sizes.run_bytes(points=100, hidden=10**6, steps=1, every=1, itemsize=4, pictures=False)
    assert max(wide, key=wide.get) == "--hidden" and wide["--hidden"] >= 5 * 100 * 10**6 * 4  # the (N, H) arrays
    values = {"--points": 100, "--hidden": 10**6, "--steps": 1, "--log-every": 1}
    assert sizes.refusal(wide, values, free=None) is None  # a platform that does not say: no refusal
    assert sizes.refusal(wide, values, free=10 * sum(wide.values())) is None
    assert sizes.refusal(wide, values, free=sum(wide.values())).startswith("--hidden 1000000: ")


def test_byte_counts_in_words():
    """MiB below 1 GiB, GiB with one decimal from there (the refusal's numbers)."""
    assert footprint.mib(5 * 2**20) == "5 MiB"
    assert footprint.mib(1023.4 * 2**20) == "1,023 MiB"
    assert footprint.mib(GIB) == "1.0 GiB"
    assert footprint.mib(1.5 * GIB) == "1.5 GiB"


def test_compare_counts_both_records(parsers, capsys, monkeypatch):
    """compare.py --record holds both frameworks' records at once: a run whose one record fits is refused there when
    two do not, and accepted by train_jax.py."""
    argv = ["--steps", "500", "--points", "20000", "--no-plots", "--record", "r.safetensors"]
    record = sizes.record_bytes(points=20000, hidden=20, steps=500, every=1, itemsize=4)
    run = sum(sizes.run_bytes(points=20000, hidden=20, steps=500, every=500, itemsize=4, pictures=False).values())
    assert record > run  # the record dominates: one more is beyond the free memory set below
    monkeypatch.setattr(footprint, "available_bytes", lambda: int((run + 1.5 * record) / sizes.MEMORY_FRACTION))
    assert parsers["train_jax"](argv).record == "r.safetensors"
    err = refused(parsers["compare"], argv, capsys)
    assert "error: --record r.safetensors: the run needs about " in err, err
