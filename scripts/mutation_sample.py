"""Mutation testing on a sample, by hand and outside CI: mutmut's mutants of the core, the weight files and the
checkers, a seeded random sample of them, each run against the tests that cover its module.

    pip install mutmut                                 # not a project dependency
    python scripts/mutation_sample.py --jobs 2         # 100 mutants, random.Random(19): ~30 min on 2 cores
    python scripts/mutation_sample.py --only ID ...    # some again; --list: the ids and changes, nothing run

`mutmut run` would run the whole suite first (which tests reach which function), then all ~5800 mutants: days on 2
cores with JAX compiling in every test process. Here: mutmut's own mutants and ids (module.x_function__mutmut_N,
numbered as `mutmut run` numbers them), one at a time in a copy of the tree under mutants/ (git-ignored), each against
its module's TESTS; killed when they fail, error or pass --timeout. Prints a line per mutant, the kill ratio per
layer and the survivors; exit 0 whatever survives. The last run, its survivors and the tests that kill them:
docs/testing.md, "Mutation testing".
"""

import concurrent.futures
import contextlib
import os
import pathlib
import queue
import random
import re
import shutil
import subprocess
import sys
import time

from jax_impl.app import cli

try:
    import libcst as cst
    from mutmut.mutation.file_mutation import create_mutations, deep_replace
    from mutmut.mutation.trampoline_templates import mangle_function_name
except ImportError:
    sys.exit("mutation_sample.py: error: mutmut is not installed (pip install mutmut; it is not a project dependency)")

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYERS = ("jax_impl/core", "jax_impl/files", "torch_impl/checks")
COPIED = ("jax_impl", "torch_impl", "scripts", "tests", "docs", "README.md", "pyproject.toml")
# The tests that cover each module, fast ones first (pytest -x stops at the first failure).
TESTS = {
    "data": ["test_data.py", "test_torch_rng.py"], "ensemble": ["test_model.py", "test_sweep.py"],
    "experiment": ["test_cli.py"], "footprint": ["test_sizes.py"], "grid": ["test_sweep.py", "test_cli.py"],
    "layout": ["test_model.py"], "model": ["test_model.py", "test_grads.py"],
    "optimizers": ["test_cli.py", "test_optimizer_parity.py"], "sharding": ["test_sharding.py"],
    "steps": ["test_train.py", "test_plots.py"], "torch_optim": ["test_train.py", "test_optimizer_parity.py"],
    "torch_rng": ["test_torch_rng.py", "test_claims.py::test_the_float32_fma_is_exact",
                  "test_claims.py::test_the_float32_fma_leaves_an_odd_float64_sum_alone"],
    "train": ["test_train.py", "test_model.py"], "xla_cpu": ["test_xla_cpu.py"],
    **dict.fromkeys(["params_io", "weights"], ["test_weights.py", "test_torch_file_odd.py"]),
    "torch_file": ["test_torch_file_odd.py", "test_weights.py"], "grad_check": ["test_grads.py"],
    **dict.fromkeys(["adam_torch", "compare", "compare_report"], ["test_compare.py"]),
    "grad_error": ["test_grad_error.py"], "jax_grads": ["test_grads.py"],
    "optimizer_parity": ["test_optimizer_parity.py"], "precision": ["test_compare.py", "test_grads.py"],
    "torch_grads": ["test_grads.py"],
}


def all_mutants():
    """Every mutmut mutant of LAYERS: (id, path, original source, one-line change, mutated source)."""
    for layer in LAYERS:
        for path in sorted((ROOT / layer).glob("*.py")):
            code = path.read_text()
            module, mutations, _, _ = create_mutations(str(path), code)
            owner = {}  # top-level function or method node -> mutmut's mangled name
            for node in module.body:
                inner = ([(f, node.name.value) for f in node.body.body] if isinstance(node, cst.ClassDef)
                         else [(node, None)])
                owner.update({f: mangle_function_name(name=f.name.value, class_name=c) for f, c in inner
                              if isinstance(f, cst.FunctionDef)})
            count = {}
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for m in mutations:
                if m.contained_by_top_level_function not in owner:
                    continue  # mutmut mutates only inside functions and methods
                name = owner[m.contained_by_top_level_function]
                count[name] = count.get(name, 0) + 1
                change = f"{module.code_for_node(m.original_node)} -> {module.code_for_node(m.mutated_node)}"
                yield (f"{dotted}.{name}__mutmut_{count[name]}", path, code, " ".join(change.split()),
                       lambda module=module, m=m: deep_replace(module, m.original_node, m.mutated_node).code)


def importers(stem: str) -> list[str]:
    """A module not in TESTS (newer than the table): the test files with an import line naming it."""
    named = re.compile(rf"^\s*(from|import)\b.*\b{stem}\b", re.MULTILINE)
    return sorted(p.name for p in (ROOT / "tests").glob("test_*.py") if named.search(p.read_text()))


def run_one(mutant, copy: pathlib.Path, timeout: float) -> str:
    """Write the mutant into the copy, run its module's tests there, put the file back: killed/survived/timeout."""
    ident, path, code, _, mutated = mutant
    tests = [f"tests/{name}" for name in TESTS.get(path.stem) or importers(path.stem)]
    if not tests:
        return "survived"  # no test imports its module
    target, env = copy / path.relative_to(ROOT), {**os.environ, "PYTHONPATH": str(copy)}
    target.write_text(mutated())
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=copy, env=env, capture_output=True, timeout=timeout)
        return "survived" if done.returncode == 0 else "killed"
    except subprocess.TimeoutExpired:
        return "timeout"
    finally:
        target.write_text(code)


def main(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--count", type=cli.positive_int, default=100, help="mutants to draw (default 100)")
    p.add_argument("--seed", type=cli.seed, default=19, help="random.Random(SEED).sample of the ids (default 19)")
    p.add_argument("--only", nargs="+", metavar="ID", help="run these mutants instead of a sample")
    p.add_argument("--list", action="store_true", help="print the sample's ids and changes, run nothing")
    p.add_argument("--timeout", type=cli.positive_float, default=300, help="seconds until killed (default 300)")
    p.add_argument("--jobs", type=cli.positive_int, default=1,
                   help="mutants run at once, each in its own copy of the tree (default 1)")
    args = p.parse_args(argv)
    with contextlib.chdir(ROOT):  # mutmut reads its configuration (pyproject.toml's [tool.mutmut]) from the cwd
        mutants = {m[0]: m for m in all_mutants()}
    if args.only:
        if unknown := [i for i in args.only if i not in mutants]:
            p.error(f"no such mutant: {unknown[0]}")
        chosen = args.only
    elif args.count > len(mutants):
        p.error(f"--count {args.count}: there are {len(mutants)} mutants")
    else:
        chosen = sorted(random.Random(args.seed).sample(sorted(mutants), args.count))
    print(f"{len(chosen)} of {len(mutants)} mutants", flush=True)
    if args.list:
        for ident in chosen:
            print(ident, "|", mutants[ident][3])
        return 0
    copies = queue.Queue()  # one copy of the tree per job: a job writes its mutant into its own copy
    for job in range(args.jobs):
        copy = ROOT / "mutants" / f"tree{job}"
        shutil.rmtree(copy, ignore_errors=True)
        for name in COPIED:
            src = ROOT / name
            (shutil.copytree(src, copy / name, ignore=shutil.ignore_patterns("__pycache__")) if src.is_dir()
             else shutil.copy2(src, copy / name))
        copies.put(copy)

    def run(ident):
        copy, start = copies.get(), time.perf_counter()
        result = run_one(mutants[ident], copy, args.timeout)
        copies.put(copy)
        print(f"{result:8} {time.perf_counter() - start:6.1f} s  {ident} | {mutants[ident][3]}", flush=True)
        return result

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(chosen, pool.map(run, chosen)))
    for layer in LAYERS:
        mine = [r for i, r in results.items() if i.startswith(layer.replace("/", ".") + ".")]
        killed = sum(r != "survived" for r in mine)
        print(f"{layer}: {killed}/{len(mine)} killed" + (f" ({100 * killed / len(mine):.0f} %)" if mine else ""))
    for ident, result in results.items():
        if result == "survived":
            print("survivor:", ident, "|", mutants[ident][3])
    return 0


if __name__ == "__main__":
    sys.exit(main())
