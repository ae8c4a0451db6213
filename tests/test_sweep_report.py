"""sweep_report: the rows, best configuration, table and divergence lines of a sweep, from hand-made records."""

import numpy as np

from jax_impl.app import sweep_report


def records():
    """Two configurations of three seeds: lr 0.1 all finite; lr 3 with seed 2 diverged at step 7."""
    make = lambda seed, lr, loss, at=None: {"seed": seed, "lr": lr, "hidden": 20, "optimizer": "sgd",  # noqa: E731
                                            "final_loss": loss, "diverged_at": at,
                                            "losses": np.array([1.0, loss if loss is not None else np.nan])}
    return [make(0, 0.1, 0.01), make(1, 0.1, 0.03), make(2, 0.1, 0.02),
            make(0, 3.0, 0.5), make(1, 3.0, 0.7), make(2, 3.0, None, 7)]


def test_rows_best_and_table():
    rows = sweep_report.summarise(records(), seeds=[0, 1, 2])
    assert [(r["lr"], r["seeds"], r["diverged"], r["first"]) for r in rows] == [(0.1, 3, 0, 0), (3.0, 3, 1, 3)]
    np.testing.assert_allclose([rows[0]["mean"], rows[0]["min"], rows[0]["max"]], [0.02, 0.01, 0.03])
    np.testing.assert_allclose(rows[1]["mean"], 0.6)  # over the finite seeds only
    best = sweep_report.best_row(rows)
    assert best is rows[0]  # the only configuration with no diverged seed
    table = sweep_report.table_text(rows, best).splitlines()
    assert table[0].split()[:3] == ["hidden", "optimizer", "lr"] and table[1].endswith("<- best")
    assert not table[2].endswith("<- best")


def test_divergence_lines_and_json_records():
    recs = records()
    rows = sweep_report.summarise(recs, seeds=[0, 1, 2])
    lines = sweep_report.divergence_lines(rows, recs)
    assert lines[0].startswith("1 of 6 models diverged")
    assert lines[1] == "  hidden 20, sgd, lr 3: 1 of 3 seeds, non-finite from step 7 (seeds 2)"
    assert sweep_report.model_record(recs[5], curves=True)["losses"] == [1.0, None]  # JSON has no NaN
    assert "losses" not in sweep_report.model_record(recs[0], curves=False)
    assert sweep_report.divergence_lines(rows[:1], recs[:3]) == []
