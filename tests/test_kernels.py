"""kernels: a traced run's events summed by kernel (the executor's spans, Python frames and loops kept apart), and
scripts/profile_fit.py's record of train.fit at a tiny size."""

import json

import pytest

from torch_impl.bench import kernels

EVENTS = [("ThunkExecutor::Execute", 900), ("fusion.1", 30), ("while.3", 500), ("fusion.1", 10),
          ("$train.py:12 fit", 700), ("dot.2", 60), ("SlinkyThreadPool::Await", 40), ("PjitFunction(fit)", 800),
          ("CommonPjRtLoadedExecutable::ExecuteHelperOnSingleDevice", 100), ("np.asarray(jax.Array)", 900)]


def test_kernel_profile_sums_kernels_by_name(monkeypatch):
    monkeypatch.setattr(kernels, "trace_events", lambda run, folder: EVENTS)
    profile = kernels.kernel_profile(lambda: None, steps=2)
    assert [(k["kernel"], k["calls"]) for k in profile["kernels"]] == [("dot.2", 1), ("fusion.1", 2)]
    assert [k["share"] for k in profile["kernels"]] == pytest.approx([0.6, 0.4], rel=1e-12)
    assert profile["kernels"][0]["ms_per_step"] == pytest.approx(60e-6 / 2, rel=1e-12)
    assert profile["kernels_s"] == pytest.approx(100e-9, rel=1e-12)
    assert [(k["kernel"], k["calls"], k["share"]) for k in profile["loops"]] == [("while.3", 1, None)]


def test_a_real_trace_names_the_compiled_kernels():
    """One tiny jitted loop traced: its kernels are found, each called once per iteration or once."""
    import jax
    import jax.numpy as jnp

    program = jax.jit(lambda v: jax.lax.fori_loop(0, 5, lambda _, a: jnp.sin(a) @ a.T / a.shape[0], v))
    vector = jnp.linspace(0.0, 1.0, 64 * 64).reshape(64, 64)
    profile = kernels.kernel_profile(lambda: jax.block_until_ready(program(vector)), steps=5)
    assert profile["kernels"], profile
    assert sum(k["share"] for k in profile["kernels"]) == pytest.approx(1.0, rel=1e-12)
    assert all(kernels.HLO_NAME.fullmatch(k["kernel"]) for k in profile["kernels"])
    assert 0 < profile["untraced_s"] and 0 < profile["kernels_s"] <= profile["traced_s"]


def test_profile_fit_script_writes_its_record(script, tmp_path):
    out = tmp_path / "profile.json"
    done = script("profile_fit.py", "--points", "64", "--hidden", "8", "--steps", "21", "--models", "2", "--json", out)
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    (profile,) = record["profiles"]
    assert (profile["points"], profile["hidden"], profile["steps"]) == (64, 8, 21)
    assert profile["kernels"] and profile["floor_ms_per_step"]["sigmoids"] > 0 and profile["pass_bandwidth"] > 0
    assert record["rates"]["bandwidth"] > 0 and record["machine"]["cpu"]
    (ensemble,) = record["ensembles"]
    assert (ensemble["models"], ensemble["points"], ensemble["steps"]) == (2, 100, 21) and ensemble["kernels"]
    assert done.stdout.startswith("64 x 8: ") and "ensemble of 2 (100 x 20): " in done.stdout


@pytest.mark.parametrize("flag", ["--json", "--hlo"])
def test_profile_fit_refuses_a_folder_as_json_and_empty_paths_before_work(script, tmp_path, flag):
    """A folder given as --json FILE passed (only its parent was checked) and failed after the profiling; an empty
    --json or --hlo was read as no flag and wrote nothing."""
    if flag == "--json":
        done = script("profile_fit.py", "--points", "64", "--json", tmp_path)
        assert (done.returncode, done.stderr) == (2, f"profile_fit.py: error: --json {tmp_path}: is a folder\n")
    done = script("profile_fit.py", "--points", "64", flag, "")
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"profile_fit.py: error: {flag}: an empty path\n")


def test_profile_fit_bad_folder_is_one_line(script, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = script("profile_fit.py", "--points", "64", "--json", blocker / "sub" / "p.json")
    assert done.returncode != 0 and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
