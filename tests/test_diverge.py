"""Where two runs part (issue 20): records, the localizer and the replay, judged both ways. A difference planted in
one tensor of a record, and four real bugs planted in a torch twin variant, are each found at their step and
quantity (the replay naming the operation); correct runs (JAX against torch in float32 and float64, JAX float32
against float64) raise no alarm. The full calibration, 20 seeds x 2000 steps, is scripts/diverge_calibrate.py's
(bench/diverge_calibration.json); here a smaller sample. Float64 runs go to one child process (x64 is global)."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, import_script, run_main

from jax_impl.files import records
from jax_impl.files.params_io import InputError
from torch_impl.checks import diverge, planted

STEPS = 300  # long enough for the trajectories to leave the first steps' regime (the loss falls 30x by then)
SEEDS = (0, 1)


def _meta(seed, framework, precision, implementation=None):
    return {"experiment": {"seed": seed, "lr": 0.2, "steps": STEPS}, "every": 1, "framework": framework,
            "implementation": implementation or framework, "versions": {}, "precision": precision, "cpu": "test"}


def jax_record(seed, precision="float32", steps=STEPS, init=None):
    import jax.numpy as jnp

    from jax_impl.core import data, record

    dtype = jnp.float64 if precision == "float64" else jnp.float32
    params, x, y = data.run_inputs(seed=seed, hidden=20, points=None, noise=None, data_seed=None, torch_seed=None,
                                   init=init, dtype=dtype)
    arrays = data.as_numpy(record.recorded_run(params, x, y, jnp.asarray(0.2, dtype), steps=steps))
    return records.make({**arrays, "data.x": np.asarray(x), "data.y": np.asarray(y)}, **_meta(seed, "jax", precision))


def torch_record(like, precision, steps=STEPS, bug=None):
    """The twin (or a planted variant) from the initial weights and data of record `like`."""
    import torch

    t = like.tensors
    init = {k: t[f"params.{k}"][0] for k in ("w1", "b1", "w2", "b2")}
    dtype = torch.float64 if precision == "float64" else torch.float32
    if bug is None:
        from torch_impl.twin.record import recorded_run

        arrays = recorded_run(init, t["data.x"], t["data.y"], 0.2, steps=steps, dtype=dtype)
    else:
        arrays = planted.record_planted(bug, init, t["data.x"], t["data.y"], 0.2, steps=steps, dtype=dtype)
    seed = like.metadata["experiment"]["seed"]
    impl = planted.implementation(bug) if bug else None
    return records.make({**arrays, "data.x": t["data.x"], "data.y": t["data.y"]},
                        **_meta(seed, "torch", precision, impl))


SATURATED_STEPS = 10  # the flushes part the runs from step 0's gradient on


def saturated_pair(precision):
    """JAX's and the twin's records from weights with every unit saturated into the subnormals at every point
    (test_grad_error.saturated_into_subnormals: w1 = 0, |b1| ~80-100 float32, ~700-740 float64), notebook's data."""
    import jax.numpy as jnp
    from test_grad_error import saturated_into_subnormals

    init = saturated_into_subnormals(0, jnp.float64 if precision == "float64" else jnp.float32)
    a = jax_record(None, precision, steps=SATURATED_STEPS, init=init)
    return a, torch_record(a, precision, steps=SATURATED_STEPS)


def first_crossings(a, b) -> list:
    """[the walk's first crossing (step, quantity) or None, the replay of step 0's (precision, stage) or None]."""
    first = diverge.walk(a, b).first
    from torch_impl.checks import replay

    return [first and [first.step, first.quantity], replay.first_operation(replay.replay(a, b, 0))]


# The child: float64 records, the planted bugs localized and replayed, a correct pair replayed.
CHILD = """
import json, sys
import numpy as np
from jax_impl.app import cli
cli.setup_jax(x64=True)
from jax_impl.files import records
from torch_impl.checks import diverge, planted, replay
sys.path.insert(0, 'tests')
from test_diverge import SEEDS, jax_record, torch_record
folder, out = sys.argv[1], {"correct": {}, "planted": {}}
for seed in SEEDS:
    a = jax_record(seed, "float64")
    records.write(f"{folder}/jax64-{seed}.safetensors", a)
    walk = diverge.walk(a, torch_record(a, "float64"))
    out["correct"][seed] = [walk.first is None, max(float(np.max(v)) for v in walk.shares.values())]
a = jax_record(None, "float64", steps=12)
found = replay.replay(a, torch_record(a, "float64", steps=12), 5)
out["correct_replay"] = [found["float64"], found["float32"]]
for bug in planted.PLANTED:
    b = torch_record(a, "float64", steps=12, bug=bug)
    first = diverge.walk(a, b).first
    out["planted"][bug] = [first.step, first.quantity, replay.first_operation(replay.replay(a, b, first.step))]
# units saturated into the subnormals: with the underflow term, and without it (the smallest normals set to 0)
from test_diverge import first_crossings, saturated_pair
from torch_impl.checks import grad_error
for precision in ("float32", "float64"):
    pair = saturated_pair(precision)
    out[f"saturated {precision}"] = first_crossings(*pair)
    kept = dict(grad_error.SMALLEST_NORMAL)
    grad_error.SMALLEST_NORMAL.update(dict.fromkeys(kept, 0.0))
    out[f"saturated {precision}, no underflow term"] = first_crossings(*pair)
    grad_error.SMALLEST_NORMAL.update(kept)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def float64_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("records64")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder)], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def float32_pairs():
    out = {}
    for seed in SEEDS:
        a = jax_record(seed)
        out[seed] = (a, torch_record(a, "float32"))
    return out


@pytest.mark.parametrize("bug", sorted(planted.PLANTED))
def test_each_planted_twin_bug_is_found_at_its_step_and_quantity_and_replay_names_the_operation(float64_results,
                                                                                                 bug):
    step, quantity, (precision, operation) = float64_results[1]["planted"][bug]
    want_step, want_family, want_operation = planted.EXPECTED[bug]
    assert step == want_step
    assert quantity.startswith(want_family)
    assert precision == "float64" and operation.startswith(want_operation)


def test_correct_runs_raise_no_alarm_jax_against_torch_in_float64_and_replay_agrees(float64_results):
    results = float64_results[1]
    for seed in SEEDS:
        agree, worst = results["correct"][str(seed)]
        assert agree and worst < 1
    assert results["correct_replay"] == [None, None]


def test_units_saturated_into_the_subnormals_raise_no_alarm_and_did_without_the_underflow_term(float64_results):
    # XLA:CPU flushes subnormals to zero, torch keeps them: at step 0's gradient the records part by ~1e-37
    # (float32) / ~1e-308 (float64), thousands of rounding allowances; the walk and the replay (both precisions)
    # allow it by the underflow term (diverge.UNDERFLOW), without which both cry wolf there.
    results = float64_results[1]
    for precision in ("float32", "float64"):
        assert results[f"saturated {precision}"] == [None, None]
        (step, quantity), (replayed_in, operation) = results[f"saturated {precision}, no underflow term"]
        assert step == 0 and quantity.startswith("grads.")
        assert replayed_in == precision and operation.startswith("grads.")


def test_units_saturated_into_the_subnormals_raise_no_alarm_in_float32_without_x64(monkeypatch):
    # as train_jax.py and compare.py record float32: x64 off (the child above has it on)
    a, b = saturated_pair("float32")
    assert diverge.walk(a, b).first is None
    for precision in diverge.TINY:
        monkeypatch.setitem(diverge.TINY, precision, 0.0)
    first = diverge.walk(a, b).first
    assert first.step == 0 and first.quantity.startswith("grads.")


def test_correct_runs_raise_no_alarm_jax_against_torch_in_float32(float32_pairs):
    for a, b in float32_pairs.values():
        walk = diverge.walk(a, b)
        assert walk.first is None
        assert 0 < max(float(np.max(v)) for v in walk.shares.values()) < 1  # the runs differ, within rounding


def test_correct_runs_raise_no_alarm_jax_float32_against_float64(float32_pairs, float64_results):
    for seed in SEEDS:
        walk = diverge.walk(float32_pairs[seed][0], records.read(float64_results[0] / f"jax64-{seed}.safetensors"))
        assert walk.first is None


@pytest.mark.parametrize("quantity,step", [("params.b1", 40), ("forward.pre_activation", 3), ("forward.hidden", 120),
                                           ("forward.output", 50), ("forward.residual", 7), ("loss", 250),
                                           ("grads.w1", 15),
                                           ("grads.b2", 0), ("adam.mu.w2", 60), ("adam.nu.b1", 9), ("update.w2", 299)])
def test_a_difference_planted_in_one_tensor_is_reported_at_its_step_and_tensor(float32_pairs, quantity, step):
    a, b = float32_pairs[0]
    first = diverge.walk(planted.with_difference(a, quantity, step, 1e-3), b).first
    assert (first.step, first.quantity) == (step, quantity)
    assert first.ratio > 1 and first.diff > first.bound


def test_the_difference_carried_in_is_not_blamed_on_what_follows(float32_pairs):
    # The twin started from weights moved by 1e-2 at one entry: found at step 0, and every later quantity, off by
    # far more than rounding, is inherited and not blamed.
    a, twin = float32_pairs[0]
    b = torch_record(planted.with_difference(a, "params.w1", 0, 1e-2), "float32")
    walk = diverge.walk(a, b)
    assert (walk.first.step, walk.first.quantity) == (0, "params.w1")
    later = {k: float(np.max(v[1:])) for k, v in walk.shares.items()}
    assert max(later.values()) < 1, later
    moved, correct = (np.max(np.abs(a.tensors["params.w1"][1:] - r.tensors["params.w1"][1:])) for r in (b, twin))
    assert moved > 10 * correct  # a difference far beyond the correct twin's, all of it carried


def run(module, monkeypatch, capsys, *args):
    """(exit code, stdout, stderr) of a script's main() in this process (conftest.run_main, keeping stderr)."""
    monkeypatch.setattr(sys, "argv", [module.__name__, *map(str, args)])
    try:
        module.main()
        code = 0
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_diverge_script_refuses_records_of_another_experiment(float32_pairs, tmp_path, monkeypatch, capsys):
    a, b = float32_pairs[0]
    other = records.Record(b.tensors, {**b.metadata, "experiment": {**b.metadata["experiment"], "lr": 0.1}})
    records.write(tmp_path / "a.safetensors", a)
    records.write(tmp_path / "b.safetensors", other)
    code, out, err = run(import_script("diverge"), monkeypatch, capsys, tmp_path / "a.safetensors",
                         tmp_path / "b.safetensors")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "different experiments: lr 0.2 vs 0.1" in err


def test_diverge_script_reports_a_crossing_as_json_and_draws_it(float32_pairs, tmp_path, monkeypatch, capsys):
    a, b = float32_pairs[0]
    records.write(tmp_path / "a.safetensors", planted.with_difference(a, "grads.b1", 12, 1e-3))
    records.write(tmp_path / "b.safetensors", b)
    code, out = run_main(import_script("diverge"), monkeypatch, capsys, tmp_path / "a.safetensors",
                         tmp_path / "b.safetensors", "--json", "--plot", tmp_path / "d.png")
    report = json.loads(out)
    assert code == 1 and not report["agree"]
    assert (report["first_crossing"]["step"], report["first_crossing"]["quantity"]) == (12, "grads.b1")
    assert (tmp_path / "d.png").stat().st_size > 1000


def test_train_jax_records_every_kth_step_and_refuses_another_optimizer(tmp_path, monkeypatch, capsys):
    train = import_script("train_jax")
    code, _ = run_main(train, monkeypatch, capsys, "--steps", "7", "--record-every", "3", "--no-plots", "--out",
                       tmp_path / "out", "--record", tmp_path / "r.safetensors")
    record = records.read(tmp_path / "r.safetensors")
    assert code == 0 and record.tensors["step"].tolist() == [0, 3, 6]
    assert record.tensors["forward.hidden"].shape == (3, 100, 20) and record.tensors["adam.count"].tolist() == [1, 4, 7]
    assert record.metadata["experiment"]["steps"] == 7 and record.metadata["precision"] == "float32"
    code, _, err = run(train, monkeypatch, capsys, "--optimizer", "sgd", "--record", tmp_path / "s.safetensors")
    assert code == 2 and "--record records Adam's moments" in err and not (tmp_path / "s.safetensors").exists()
    # a record starts at step 0 with Adam's moments at zero: not from a saved state (--resume)
    code, _ = run_main(train, monkeypatch, capsys, "--steps", "3", "--no-plots", "--out", tmp_path / "out2",
                       "--save-state", tmp_path / "state.safetensors")
    assert code == 0
    code, _, err = run(train, monkeypatch, capsys, "--steps", "5", "--resume", tmp_path / "state.safetensors",
                       "--record", tmp_path / "t.safetensors")
    assert code == 2 and "not with --resume" in err and not (tmp_path / "t.safetensors").exists()


def test_a_file_that_is_not_a_record_is_refused_in_one_line(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(2, np.float32)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(InputError, match="not a training record"):
        records.read(tmp_path / "w.safetensors")


def test_compare_records_both_runs_and_prints_where_they_part_when_it_disagrees(tmp_path, monkeypatch, capsys):
    from torch_impl.checks import compare as C

    script = import_script("compare")
    code, out, _ = run(script, monkeypatch, capsys, "--steps", "20", "--no-plots", "--record", tmp_path / "r.st")
    walk = diverge.walk(records.read(tmp_path / "r-jax.st"), records.read(tmp_path / "r-torch.st"))
    assert code == 0 and "where the runs part" not in out and walk.first is None
    assert len(walk.steps) == 20
    # A verdict of DISAGREE (forced here: the real runs agree) comes with the localizer's answer.
    real = C.compare
    monkeypatch.setattr(C, "compare", lambda *a, **k: {**real(*a, **k), "ok": False})
    code, out, _ = run(script, monkeypatch, capsys, "--steps", "20", "--no-plots")
    assert code == 1
    assert "where the runs part, first crossing: none: the records agree within rounding" in out


def test_the_planted_variant_without_bugs_is_the_twin_bit_for_bit(float32_pairs):
    # Same operations in the same order (torch 2.13's single-tensor Adam written out): what the replay runs for torch
    # is what torch.optim.Adam computes, so a bug it names is the variant's, not the replay's.
    from torch_impl.twin.record import recorded_run

    a, twin = float32_pairs[0]
    t = a.tensors
    init = {k: t[f"params.{k}"][0] for k in ("w1", "b1", "w2", "b2")}
    clean = recorded_run(init, t["data.x"], t["data.y"], 0.2, steps=30, run=planted.planted_run(planted.Bugs()))
    for name in records.STEP_ORDER:
        if not name.startswith("data."):
            np.testing.assert_array_equal(clean[name], twin.tensors[name][:30], err_msg=name)


def test_records_of_other_steps_or_shapes_are_refused_and_replay_needs_every_step(float32_pairs):
    from torch_impl.checks import replay

    a, b = float32_pairs[0]
    thinned = records.Record({k: v if k.startswith("data.") else v[::2] for k, v in b.tensors.items()},
                             {**b.metadata, "every": 2})
    assert records.mismatch(a, thinned).startswith("different steps kept: 300 every 1 vs 150 every 2")
    wider = records.Record({**b.tensors, "forward.hidden": b.tensors["forward.hidden"][:, :, :10]}, b.metadata)
    assert records.mismatch(a, wider) == "different shapes: forward.hidden (300, 100, 20) vs (300, 100, 10)"
    with pytest.raises(InputError, match="--replay needs the step before 4"):
        replay.state_before(thinned, 4)


# --- the words and the model, case by case (mutation testing found them unasserted: docs/testing.md) ----------------

def test_only_adams_state_is_recorded_and_the_refusal_says_so():
    import jax.numpy as jnp
    import optax

    from jax_impl.core import record

    params = {"w": jnp.zeros(2)}
    assert isinstance(record.adam_state(optax.adam(0.1).init(params)), optax.ScaleByAdamState)
    with pytest.raises(ValueError, match="^only Adam's state can be recorded$"):
        record.adam_state(optax.sgd(0.1, momentum=0.9).init(params))


def test_a_crossing_and_a_replay_in_words():
    """A scalar quantity's crossing has no element index; the replay says how each side computes the operation."""
    from torch_impl.checks import diverge_report, replay

    loss = diverge.Crossing(7, "loss", (), 0.5, 0.25, 0.25, 1e-8, 2.5e7, 0.0)
    assert diverge_report.crossing_line(loss) == (
        "first crossing: step 7, loss: 0.5 vs 0.25, difference 2.500e-01 > bound 1.000e-08 (ratio 2.5e+07; 0.000e+00 "
        "of the bound carried in from before)")
    assert "update.w1[0, 3]: " in diverge_report.crossing_line(loss._replace(quantity="update.w1", index=(0, 3)))
    found = {"step": 0, "a": "jax", "b": "torch+planted:eps_inside_sqrt", "float32": None,
             "float64": ("adam.denominator.w1", (0, 1), 1.0, 2.0, 1.0, 1e-13)}
    assert replay.lines(found) == [
        "replay of step 0 from A's state, op by op: A = jax, B = torch+planted:eps_inside_sqrt",
        "  float64: first operation beyond its bound: adam.denominator.w1[0, 1]: 1 vs 2, difference 1.000e+00 > "
        "bound 1.000e-13",
        f"    A computes it as {replay.describe('jax', 'adam.denominator.w1')}",
        f"    B computes it as {replay.describe('torch+planted:eps_inside_sqrt', 'adam.denominator.w1')}",
        "  float32: every operation agrees within its bound"]
    assert "inside" in replay.describe("torch+planted:eps_inside_sqrt", "adam.denominator.w1")


def test_the_replays_forward_scales_by_hand():
    """The rounding scales the replay judges the forward pass by, on one point and one hidden unit worked out by hand:
    the pre-activation |x||w1| + |b1|; the sigmoid's s + s(1 - s) * (the pre-activation's scale) + 1 (its own
    rounding, what it inherits through its slope, the 1 of 1 + exp). The correct-replay test leaves slack that a
    smaller scale would pass; these values cannot."""
    from torch_impl.checks import replay

    x, y = np.array([[2.0]]), np.array([[1.0]])
    state = {"params.w1": np.array([[1.0]]), "params.b1": np.array([0.5]), "params.w2": np.array([[0.5]]),
             "params.b2": np.array([0.1]), "adam.count": np.array(0)}
    state |= {f"adam.{m}.{k}": np.zeros_like(state[f"params.{k}"]) for m in ("mu", "nu") for k in ("w1", "b1", "w2",
                                                                                                        "b2")}
    scales = {stage: scale for stage, _, scale, _, _ in replay.stages(state, x, y, 0.2)}
    s = 1 / (1 + np.exp(-2.5))
    np.testing.assert_allclose(scales["forward.pre_activation"], [[2.5]], rtol=1e-15)
    np.testing.assert_allclose(scales["forward.hidden"], [[s + s * (1 - s) * 2.5 + 1]], rtol=1e-15)


# --- damaged records: refused in one line naming the file and what is wrong; every record a writer makes is read -----

@pytest.fixture(scope="module")
def small_record(tmp_path_factory):
    """A real 5-step JAX record (float32) on disk, to damage copies of."""
    path = tmp_path_factory.mktemp("small") / "a.safetensors"
    records.write(path, jax_record(0, steps=5))
    return path


def damaged_copy(source, target, *, meta=None, tensors=None):
    """A copy of record `source` at `target` with some metadata strings and tensors replaced (safetensors itself)."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(source), framework="np") as f:
        metadata, arrays = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    arrays |= {k: change(arrays) for k, change in (tensors or {}).items()}
    save_file(arrays, str(target), metadata=metadata | (meta or {}))
    return target


def _with(name, index, value):
    def change(arrays):
        out = arrays[name].copy()
        out[index] = value
        return out
    return change


DAMAGE = {
    "experiment": ({"meta": {"experiment": "[1]"}},
                   "metadata experiment is [1], expected a JSON object of the run's flags"),
    "lr": ({"meta": {"experiment": '{"lr": "0.2"}'}},
           "metadata experiment's lr is \"0.2\", expected a positive number"),
    "versions": ({"meta": {"versions": "5"}}, "metadata versions is 5, expected a JSON object of package versions"),
    "every": ({"meta": {"every": "0"}}, "metadata every is 0, expected a positive whole number (--record-every)"),
    "precision": ({"meta": {"precision": "float16"}}, "metadata precision 'float16', expected float32 or float64"),
    "no steps": ({"tensors": {k: (lambda a, k=k: a[k][:0]) for k in records.TENSORS if not k.startswith("data.")}},
                 "it holds no steps"),
    "int loss": ({"tensors": {"loss": lambda a: a["loss"].astype(np.int32)}},
                 "loss has dtype int32, expected float32 (the record's precision)"),
    "float step": ({"tensors": {"step": lambda a: a["step"].astype(np.float32)}},
                   "step has dtype float32, expected whole numbers (int64)"),
    "reversed steps": ({"tensors": {"step": lambda a: a["step"][::-1].copy()}},
                       "its steps 4, 3, 2, 1, ... do not go 0, 1, 2, ... (every 1, as its metadata says)"),
    "steps of another every": ({"meta": {"every": "2"}},
                               "its steps 0, 1, 2, 3, ... do not go 0, 2, 4, ... (every 2, as its metadata says)"),
    "flat b1": ({"tensors": {"params.b1": lambda a: a["params.b1"][:, 0].copy()}},
                "params.b1 has shape (5,), expected 2 axes"),
    "nan data": ({"tensors": {"data.y": _with("data.y", (3, 0), np.nan)}},
                 "'data.y' has non-finite values (1 of 100; first nan at [3, 0])"),
    "nan loss": ({"tensors": {"loss": _with("loss", 2, np.nan)}},
                 "loss at step 2 is nan, but its residuals are finite and far from overflowing"),
    "inf loss": ({"tensors": {"loss": _with("loss", 4, np.inf)}},
                 "loss at step 4 is inf, but its residuals are finite and far from overflowing"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_record_is_refused_in_one_line_naming_what_is_wrong(small_record, tmp_path, damage):
    change, message = DAMAGE[damage]
    path = damaged_copy(small_record, tmp_path / "d.safetensors", **change)
    with pytest.raises(InputError) as refused:
        records.read(path)
    assert str(refused.value).startswith(f"{path}: {message}")


def test_diverge_script_refuses_a_damaged_record_and_a_folder_in_one_line(small_record, tmp_path, script):
    path = damaged_copy(small_record, tmp_path / "d.safetensors", meta={"precision": "float16"})
    run = script("diverge.py", path, small_record)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == f"diverge.py: error: {path}: metadata precision 'float16', expected float32 or float64\n"
    with pytest.raises(InputError, match=f"^{tmp_path}: is a folder, not a record file$"):
        records.read(tmp_path)


@pytest.mark.parametrize("blocked", ["b", "a"])
def test_write_together_keeps_the_older_files_when_a_move_fails(small_record, tmp_path, monkeypatch, blocked):
    """A pair written together where the move into one path fails (the first or the second): the older files at both
    paths keep their bytes, a path that held nothing holds nothing, and no temporary is left."""
    old = {"a": b"older a", "b": b"older b"}
    for name, content in old.items():
        (tmp_path / f"{name}.safetensors").write_bytes(content)
    real_replace, refused = os.replace, []

    def replace(src, dst):
        if pathlib.Path(dst) == tmp_path / f"{blocked}.safetensors" and not refused:  # the new record's move only
            refused.append(src)
            raise PermissionError(13, "Permission denied")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    record = records.read(small_record)
    with pytest.raises(InputError, match=f"^cannot write {tmp_path}/{blocked}.safetensors: Permission denied$"):
        records.write_together([(tmp_path / "a.safetensors", record), (tmp_path / "b.safetensors", record)])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {f"{k}.safetensors": v for k, v in old.items()}
    assert refused and pathlib.Path(refused[0]).parent == tmp_path  # the move did fail, and was the only one refused
    monkeypatch.setattr(os, "replace", real_replace)
    (tmp_path / "b.safetensors").unlink()
    (tmp_path / "b.safetensors").mkdir()  # a folder in the way of the second, none in the first's
    with pytest.raises(InputError, match=f"^cannot write {tmp_path}/b.safetensors: "):
        records.write_together([(tmp_path / "a.safetensors", record), (tmp_path / "b.safetensors", record)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "b.safetensors"]
    assert (tmp_path / "a.safetensors").read_bytes() == old["a"] and not any((tmp_path / "b.safetensors").iterdir())
    (tmp_path / "b.safetensors").rmdir()
    records.write_together([(tmp_path / "a.safetensors", record), (tmp_path / "b.safetensors", record)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "b.safetensors"]
    for name in ("a", "b"):
        written = records.read(tmp_path / f"{name}.safetensors")
        assert written.metadata == record.metadata and records.mismatch(written, record) is None
        for k in records.TENSORS:
            np.testing.assert_array_equal(written.tensors[k], record.tensors[k], strict=True)


def test_a_diverged_runs_records_with_inf_and_nan_are_read(tmp_path):
    """compare.py records both runs whatever happens: a run whose loss overflows (Adam at lr 1e30) writes inf and NaN
    from step 1 on, and the reader takes it (its inf loss has residuals of 9e30, whose squares overflow float32)."""
    from jax_impl.core import data

    params, x, y = data.run_inputs(seed=None, hidden=20, points=None, noise=None, data_seed=None, torch_seed=None,
                                   init=None, dtype=np.float32)
    pair = diverge.recorded_pair(params, x, y, 1e30, steps=3)
    for side, arrays in pair.items():
        made = records.make({**arrays, "data.x": np.asarray(x), "data.y": np.asarray(y)}, **_meta(0, side, "float32"))
        records.write(tmp_path / f"{side}.safetensors", made)
        loss = records.read(tmp_path / f"{side}.safetensors").tensors["loss"]
        assert np.isfinite(loss[0]) and np.isinf(loss[1]) and np.isnan(loss[2])


def run_cli(module, monkeypatch, capsys, *args):
    """(exit code, stdout, stderr) of `python scripts/NAME.py ARGS`: main() under cli.run_main, which turns an
    InputError into its one line and exit 2."""
    from jax_impl.app import cli

    monkeypatch.setattr(sys, "argv", [f"{module.__name__}.py", *map(str, args)])
    try:
        cli.run_main(module.main)
        code = 0
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("plot,message", [
    ("folder.png", "--plot {tmp}/folder.png: is a folder"), ("", "--plot: an empty path"),
    ("a.PNG", "--plot {tmp}/a.PNG: is the record {tmp}/a.PNG: the picture would replace it"),
    ("b.safetensors", "--plot {tmp}/b.safetensors: the picture is a PNG: give a name ending in .png"),
    ("new/d.pdf", "--plot {tmp}/new/d.pdf: the picture is a PNG: give a name ending in .png"),
])
def test_diverge_refuses_a_plot_it_cannot_write_before_the_walk(small_record, tmp_path, monkeypatch, capsys, plot,
                                                                message):
    """Also a --plot not named *.png: `diverge.py A C --plot B.safetensors` wrote a PNG over an unrelated record B; now
    one line, exit 2, B as it was and no folder made for it."""
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "b.safetensors").write_bytes(small_record.read_bytes())
    a = tmp_path / "a.PNG"  # a record with a picture's name is still one of the inputs
    a.write_bytes(small_record.read_bytes())
    monkeypatch.setattr(diverge, "walk", lambda *_: pytest.fail("walked before refusing"))
    code, out, err = run_cli(import_script("diverge"), monkeypatch, capsys, a, small_record, "--plot",
                             tmp_path / plot if plot else "")
    assert code == 2 and out == ""
    assert err == f"diverge.py: error: {message.format(tmp=tmp_path)}\n"
    assert a.read_bytes() == small_record.read_bytes() and (tmp_path / "folder.png").is_dir()
    assert (tmp_path / "b.safetensors").read_bytes() == small_record.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.PNG", "b.safetensors", "folder.png"]


def test_diverge_replay_refuses_an_implementation_it_cannot_rerun_before_the_walk(small_record, tmp_path,
                                                                                 monkeypatch, capsys):
    path = damaged_copy(small_record, tmp_path / "p.safetensors", meta={"implementation": "torch+planted:nope"})
    monkeypatch.setattr(diverge, "walk", lambda *_: pytest.fail("walked before refusing"))
    code, out, err = run_cli(import_script("diverge"), monkeypatch, capsys, small_record, path, "--replay")
    assert code == 2 and out == ""
    assert err == (f"diverge.py: error: {path}: implementation 'torch+planted:nope' is not one --replay can re-run "
                   f"({', '.join(planted.KNOWN)})\n")
    assert "torch+planted:eps_inside_sqrt" in planted.KNOWN and planted.knows("jax") and not planted.knows("torch+x")


def test_diverge_replay_sets_jax_up_before_importing_it(small_record, tmp_path, script):
    """`diverge.py A B --replay` (docs/records.md) warned "jax was imported before cli.setup_jax; XLA runs without
    the port's flags (slower)": the check of the records' implementations imported checks/replay.py, and jax with
    it, before the walk. A crossing's replay now runs with the port's flags, and says nothing on stderr."""
    planted_copy = tmp_path / "p.safetensors"
    records.write(planted_copy, planted.with_difference(records.read(small_record), "grads.w2", 2, 1e-3))
    run = script("diverge.py", small_record, planted_copy, "--replay", env={"XLA_FLAGS": ""})  # not conftest's
    assert (run.returncode, run.stderr) == (1, "")
    assert "first crossing: step 2, grads.w2" in run.stdout and "replay of step 2 from A's state" in run.stdout


# --- plant_fault.py: each mode's flags only, its --record checked before any work ----------------------------------

PLANTABLE_LIST = ", ".join(planted.PLANTABLE)
PLANT_REFUSALS = [
    (["--into", "{a}", "--record", "{tmp}/p.safetensors", "--steps", "3"],
     "--into copies {a} as it is: --steps would choose a new run (--bug NAME records one)"),
    (["--into", "{a}", "--record", "{tmp}/p.safetensors", "--lr", "0.2", "--x64", "--record-every", "1"],
     "--into copies {a} as it is: --lr, --x64, --record-every would choose a new run (--bug NAME records one)"),
    (["--bug", "eps_inside_sqrt", "--record", "{tmp}/p.safetensors", "--quantity", "loss", "--step", "2", "--size",
      "1e-3"], "--bug records a new run: --quantity, --step, --size are taken only with --into FILE (they change a "
               "copy of a record)"),
    (["--bug", "eps_inside_sqrt", "--record", "{tmp}/p.safetensors", "--quantity", "loss"],
     "--bug records a new run: --quantity is taken only with --into FILE (it changes a copy of a record)"),
    (["--into", "{a}", "--record", "{tmp}/p.safetensors", "--quantity", "adam.count"],
     f"--quantity adam.count: whole numbers, which a relative move cannot perturb; one of {PLANTABLE_LIST} "
     "(docs/records.md)"),
    (["--into", "{a}", "--record", "{tmp}/p.safetensors", "--quantity", "data.x"],
     f"--quantity data.x: the data, without a step axis; one of {PLANTABLE_LIST} (docs/records.md)"),
    (["--into", "{a}", "--record", "{tmp}/folder"], "--record {tmp}/folder: is a folder"),
    (["--bug", "eps_inside_sqrt", "--record", "{tmp}/folder"], "--record {tmp}/folder: is a folder"),
    (["--into", "{a}", "--record", "{a}"], "--record {a}: is the --into file: the planted copy would replace it"),
]


@pytest.mark.parametrize("args,message", PLANT_REFUSALS)
def test_plant_fault_refuses_flags_of_the_other_mode_and_records_it_cannot_write(small_record, tmp_path, monkeypatch,
                                                                                 capsys, args, message):
    (tmp_path / "folder").mkdir()
    a = tmp_path / "a.safetensors"
    a.write_bytes(small_record.read_bytes())
    monkeypatch.setattr(planted, "with_difference", lambda *_: pytest.fail("planted before refusing"))
    monkeypatch.setattr(planted, "record_planted", lambda *_, **k: pytest.fail("ran before refusing"))
    fill = lambda text: text.format(a=a, tmp=tmp_path)  # noqa: E731
    code, out, err = run_cli(import_script("plant_fault"), monkeypatch, capsys, *map(fill, args))
    assert (code, out) == (2, "")
    assert err == f"plant_fault.py: error: {fill(message)}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "folder"]
    assert a.read_bytes() == small_record.read_bytes()


def test_plant_fault_refuses_a_record_in_an_unwritable_place_in_one_line(small_record, monkeypatch, capsys):
    code, out, err = run_cli(import_script("plant_fault"), monkeypatch, capsys, "--into", small_record, "--record",
                             "/proc/p.safetensors")
    assert (code, out) == (2, "")
    assert err.startswith("plant_fault.py: error: --record /proc/p.safetensors: cannot write there: ")
    assert err.count("\n") == 1


def test_plant_fault_takes_each_modes_own_flags(small_record, tmp_path, monkeypatch, capsys):
    script = import_script("plant_fault")
    code, out, _ = run_cli(script, monkeypatch, capsys, "--into", small_record, "--record", tmp_path / "p.safetensors",
                           "--quantity", "loss", "--step", "2", "--size", "0.5")
    assert code == 0 and out == f"wrote {tmp_path}/p.safetensors: {small_record} with loss at step 2 moved by 0.5\n"
    moved = records.read(tmp_path / "p.safetensors").tensors["loss"] - records.read(small_record).tensors["loss"]
    assert np.flatnonzero(moved).tolist() == [2]
    code, out, _ = run_cli(script, monkeypatch, capsys, "--bug", "eps_inside_sqrt", "--steps", "3", "--record",
                           tmp_path / "b.safetensors")
    assert code == 0 and out == f"wrote {tmp_path}/b.safetensors: the twin with eps_inside_sqrt planted, 3 steps\n"
    assert records.read(tmp_path / "b.safetensors").metadata["implementation"] == "torch+planted:eps_inside_sqrt"


def test_equal_infinities_are_no_crossing_and_one_sided_ones_are(small_record):
    """A run that diverged has inf and NaN in its record: the same inf on both sides is no difference (inf - inf is
    NaN, which was read as a crossing), an inf against a number is one."""
    a = records.read(small_record)
    inf_loss = {**a.tensors, "loss": a.tensors["loss"].copy()}
    inf_loss["loss"][4] = np.inf
    both = records.Record(inf_loss, a.metadata)
    assert diverge.walk(both, both).first is None
    first = diverge.walk(both, a).first
    assert (first.step, first.quantity, first.ratio) == (4, "loss", np.inf)


@pytest.mark.parametrize("out, line", [("folder", "{path}: is a folder"), ("", ": an empty path")])
def test_calibrate_refuses_an_out_file_that_cannot_be_written_before_the_runs(tmp_path, out, line):
    """--out was written with a plain write_text after every seed's runs (minutes): a folder failed then with a
    traceback. Now refused before the first run, in one line, and the file is written whole (params_io.save_text)."""
    path = tmp_path / out if out else ""
    if out:
        path.mkdir()
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "diverge_calibrate.py"), "--seeds", "1", "--steps",
                           "1", "--out", str(path)], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"diverge_calibrate.py: error: --out{' ' if out else ''}{line.format(path=path)}\n"
