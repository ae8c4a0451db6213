"""What the main job's pictures cost: train_jax.py's default run against its --no-plots run, and against
train_torch.py's default run, as whole processes in paired rounds (torch_impl/bench/pictures.py).

    python scripts/bench_pictures.py                                   # 7 rounds, the table on stderr, JSON on stdout
    python scripts/bench_pictures.py --rounds 11 --json bench/pictures-inprocess.json
    python scripts/bench_pictures.py --root /path/to/another/checkout  # time that tree's scripts instead

Targets: the default run at most 1.6x its --no-plots run (median of the paired ratios), and faster than
train_torch.py's default run. Timings on a shared machine are noisy: compare numbers from one invocation.
"""

import json
import pathlib
import sys

from jax_impl.app import cli, out_dir
from jax_impl.files.params_io import InputError, save_text
from torch_impl.bench import pictures, report

ROOT = pathlib.Path(__file__).resolve().parents[1]
TARGET_RATIO = report.TARGETS["pictures"]  # default run / --no-plots run, paired median


def main(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=cli.positive_int, default=7, help="rounds of the three runs (default 7)")
    p.add_argument("--root", type=pathlib.Path, default=ROOT, help="the checkout whose scripts run (default this one)")
    p.add_argument("--json", metavar="FILE", help="write the results here instead of stdout")
    args = p.parse_args(argv)
    root = args.root.resolve()
    if not (root / "scripts" / "train_jax.py").is_file():
        raise InputError(f"--root {root}: no scripts/train_jax.py there")
    # written after minutes of rounds: a path that cannot take it is refused now, a missing folder made (bench.py's)
    out_dir.check_file(args.json, "--json")
    before = pictures.machine()
    rounds = pictures.measure_rounds(root, args.rounds)
    summary = pictures.summarise(rounds)
    ratio = summary["jax pictures / jax no pictures"]["paired_ratio_median"]
    versus_torch = summary["jax pictures / torch pictures"]["paired_ratio_median"]
    result = {"what": "wall seconds of whole processes, each round the three commands side by side (order reversed "
                      "every other round); ratios taken within a round",
              "command": "python scripts/bench_pictures.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "root": "." if root == ROOT else str(root), "machine": before,
              "load_avg_end": pictures.machine()["load_avg"],
              "targets": {"pictures / no pictures at most": TARGET_RATIO, "met": ratio <= TARGET_RATIO,
                          "faster than torch with pictures": versus_torch < 1},
              "summary": summary, "rounds": rounds}
    text = json.dumps(result, indent=1) + "\n"
    if args.json is not None:
        save_text(args.json, text)
    else:
        print(text, end="")
    print(f"bench_pictures: jax pictures / no pictures {ratio:.2f}x (paired median of {len(rounds)}, target <= "
          f"{TARGET_RATIO}), jax pictures / torch pictures {versus_torch:.2f}x; {before['cpu']}", file=sys.stderr)


if __name__ == "__main__":
    cli.run_main(main)
