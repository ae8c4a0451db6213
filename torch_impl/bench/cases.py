"""The benchmark's cases, one row each: framework, variant, the sizes it runs at, and the builder of its timed
callable. Adding a case is adding a row to CASES.

Every case at a size gets the same data and initial weights (inputs: data.run_inputs, the scripts' own rule);
a builder takes those inputs and a model count and returns run(), which returns when its work is done.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch_impl.bench import jax_runs, process, torch_runs
from torch_impl.bench.plan import EVERY, LR, NOTEBOOK


@dataclass(frozen=True)
class Inputs:
    """One size's inputs: x, y (N, 1) and params (model.py's layout), JAX arrays on the JAX device."""

    x: Any
    y: Any
    params: dict
    hidden: int
    steps: int
    device: str  # "cpu" or "gpu"
    lr: float = LR
    every: int = EVERY


def inputs(points: int, hidden: int, steps: int, device: str, jax_device) -> Inputs:
    """The notebook's data and weights at its size, else fresh draws (data key 0, weights key 1), by data.run_inputs."""
    import jax

    from jax_impl.core import data

    flags = {} if (points, hidden) == NOTEBOOK else {"seed": 1, "points": points}
    params, x, y = jax.device_put(data.run_inputs(hidden=hidden, **flags), jax_device)
    return Inputs(x, y, params, hidden, steps, device)


@dataclass(frozen=True)
class Case:
    framework: str
    variant: str
    build: Callable  # (Inputs, models) -> run()
    sizes: str = "run"  # "run": each (points, hidden) of the run; "ensemble": plan.ensemble_size, each model count
    runs_if: Callable = lambda plan: True  # whether this run (bench.py's completed flags) includes the case
    needs: str = ""  # runs_if in words, for --variants' refusal (idle_word)

    @property
    def name(self) -> str:
        return f"{self.framework} {self.variant}"


# plan.py's MODES: torch_compile in the full mode only, func_eager not in --quick, func_compile not in --tiny
FULL, NOT_QUICK, NOT_TINY = "the full mode (no --quick, no --tiny)", "no --quick", "no --tiny"
CASES = (
    Case("torch", "eager", torch_runs.eager),
    Case("torch", "compile", torch_runs.compiled, runs_if=lambda plan: plan.torch_compile, needs=FULL),
    Case("torch", "cuda graph", torch_runs.cuda_graph, runs_if=lambda plan: plan.device == "gpu",
         needs="--device gpu"),
    Case("torch", "func step", torch_runs.whole_step, runs_if=lambda plan: plan.func_eager, needs=NOT_QUICK),
    Case("torch", "func step compiled", partial(torch_runs.whole_step, mode="default"),
         runs_if=lambda plan: plan.func_compile, needs=NOT_TINY),
    Case("torch", "func step max-autotune", partial(torch_runs.whole_step, mode="max-autotune-no-cudagraphs"),
         runs_if=lambda plan: plan.torch_compile and plan.device == "cpu", needs=f"{FULL} on --device cpu"),
    Case("torch", "func step reduce-overhead", partial(torch_runs.whole_step, mode="reduce-overhead"),
         runs_if=lambda plan: plan.torch_compile and plan.device == "gpu", needs=f"{FULL} and --device gpu"),
    Case("jax", "train.fit", jax_runs.fused),
    Case("jax", "jit step loop", jax_runs.step_loop),
    Case("torch", "ensemble", torch_runs.ensemble, sizes="ensemble"),
    Case("torch", "func ensemble", torch_runs.func_ensemble, sizes="ensemble", runs_if=lambda plan: plan.func_eager,
         needs=NOT_QUICK),
    Case("torch", "func ensemble compiled", partial(torch_runs.func_ensemble, mode="default"), sizes="ensemble",
         runs_if=lambda plan: plan.func_compile, needs=NOT_TINY),
    Case("jax", "ensemble", jax_runs.ensemble, sizes="ensemble"),
)
FLOOR = "jax arithmetic floor"  # not a timed case: floor.py computes it from this core's rates
# Every row's name that --variants' words may name: the cases, the floor, and the whole processes (--process, which
# run whatever the words: `--variants process` picks no case, for the processes only)
PROCESSES = tuple(f"{framework} {variant}" for framework, variant, *_ in process.CASES)
NAMES = (*(c.name for c in CASES), FLOOR, *PROCESSES)


def wanted(name: str, words) -> bool:
    """--variants: a case runs when its name contains one of the words (None: every case)."""
    return words is None or any(word in name for word in words)


def unknown(words) -> list[str]:
    """--variants' words that no row's name (NAMES) contains: each would pick nothing on any machine or mode."""
    return [word for word in words or () if not any(wanted(name, [word]) for name in NAMES)]


def left_out(plan) -> dict[str, str]:
    """Each row (NAMES) this run (bench.py's completed flags) leaves out, with what it would need, in words."""
    out = {c.name: c.needs for c in CASES if not c.runs_if(plan)}
    if not plan.models:  # --no-ensemble
        out |= {c.name: "the ensembles (no --no-ensemble)" for c in CASES
                if c.sizes == "ensemble" and c.name not in out}
    if plan.device != "cpu":  # floor.py measures this CPU's rates
        out[FLOOR] = "--device cpu"
    if not plan.process:
        out |= {name: "--process RUNS (above 0)" for name in PROCESSES}
    return out


def idle_word(plan) -> str | None:
    """The first --variants word whose every row this run leaves out (left_out), as one phrase naming those rows and
    what each needs, or None: such a word ran the set-up and printed a table without it (an empty one, exit 0, when
    no word picked anything). Words no row contains at all are unknown's."""
    missing = left_out(plan)
    for word in plan.variants or ():
        picked = [name for name in NAMES if wanted(name, [word])]
        if picked and all(name in missing for name in picked):
            needs = {}  # each need once, with the rows that have it (quoted: a process row's name has a comma)
            for name in picked:
                needs.setdefault(missing[name], []).append(name)
            return f"--variants {word}: nothing it names runs here: " + "; ".join(
                f"{', '.join(map(repr, names))} {'needs' if len(names) == 1 else 'need'} {need}"
                for need, names in needs.items())
    return None


def selected(plan, framework: str, sizes: str) -> list[Case]:
    """The cases of one framework and kind of sizes that this run includes, in CASES's order."""
    return [c for c in CASES if (c.framework, c.sizes) == (framework, sizes) and c.runs_if(plan)
            and wanted(c.name, plan.variants)]
