"""Output folders, complete or absent: a run's files appear all new or not at all, an earlier run's files do not stay
beside them, the user's own files are left alone, and files get the user's umask."""

import contextlib
import errno
import os
import pathlib
import stat
import subprocess
import sys

import pytest
from conftest import ROOT, import_script, run_main, run_script

from jax_impl.app import cli, out_dir
from jax_impl.app.outputs import RUN_FILES
from jax_impl.files import params_io
from jax_impl.files.params_io import InputError

QUICK = ["--steps", "3", "--no-cache"]


@pytest.fixture(scope="module")
def train_jax():
    return import_script("train_jax")


def snapshot(folder) -> dict:
    """{name: bytes} of a folder's files, and the names of its folders."""
    return {p.name: p.read_bytes() if p.is_file() else "folder" for p in folder.iterdir()}


def hidden_beside(folder) -> list[str]:
    return [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_a_no_plots_run_leaves_no_earlier_pictures_and_keeps_the_users_files(train_jax, tmp_path, monkeypatch,
                                                                            capsys):
    out = tmp_path / "out"
    assert run_main(train_jax, monkeypatch, capsys, *QUICK, "--out", out)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(RUN_FILES)
    (out / "notes.txt").write_text("mine")
    (out / "sweep").mkdir()
    (out / "sweep" / "table.txt").write_text("a sweep's")
    assert run_main(train_jax, monkeypatch, capsys, *QUICK, "--no-plots", "--lr", "0.1", "--out", out)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["losses.json", "model.safetensors", "notes.txt", "params.npz",
                                                    "sweep"]
    assert (out / "notes.txt").read_text() == "mine" and (out / "sweep" / "table.txt").read_text() == "a sweep's"
    assert hidden_beside(out) == []


def test_a_folder_of_only_a_runs_files_is_replaced_whole_and_keeps_its_mode(train_jax, tmp_path, monkeypatch, capsys):
    """Swapped whole (a new folder), unless it is the current folder: then file by file (the shell stays in it)."""
    out = tmp_path / "out"
    assert run_main(train_jax, monkeypatch, capsys, *QUICK, "--out", out)[0] == 0
    out.chmod(0o750)
    inode = out.stat().st_ino
    assert run_main(train_jax, monkeypatch, capsys, *QUICK, "--no-plots", "--out", out)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["losses.json", "model.safetensors", "params.npz"]
    assert out.stat().st_ino != inode and stat.S_IMODE(out.stat().st_mode) == 0o750  # a new folder, the old mode
    assert hidden_beside(out) == []
    monkeypatch.chdir(out)
    inode = out.stat().st_ino
    assert run_main(train_jax, monkeypatch, capsys, *QUICK, "--out", ".")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(RUN_FILES) and out.stat().st_ino == inode


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_files_and_folders_get_the_users_umask(train_jax, tmp_path, monkeypatch, capsys, umask):
    out = tmp_path / "new" / "out"
    old = os.umask(umask)
    try:
        assert run_main(train_jax, monkeypatch, capsys, *QUICK, "--out", out)[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    for name in RUN_FILES:  # model.safetensors included (its writer makes the file anew)
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o666 & ~umask, name


@pytest.mark.parametrize("user_file", [False, True])
def test_a_write_that_fails_midway_leaves_the_earlier_set_whole(train_jax, tmp_path, monkeypatch, capsys, user_file):
    """A full disk while the GIF is written (after the weights, the losses and two pictures): exit 2 with one line,
    and the folder holds the earlier run's files, byte for byte, and nothing half-made beside it."""
    from jax_impl.app import plots

    out = tmp_path / "out"
    assert run_main(train_jax, monkeypatch, capsys, *QUICK, "--out", out)[0] == 0
    if user_file:
        (out / "notes.txt").write_text("mine")
    before = snapshot(out)

    def full_disk(frames, path, fps=2):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(plots, "save_gif", full_disk)
    with pytest.raises(InputError, match="No space left on device"):
        train_jax.main([*QUICK, "--lr", "0.1", "--out", str(out)])
    assert snapshot(out) == before and hidden_beside(out) == []


@pytest.mark.parametrize("existing", [False, True])
def test_an_interrupted_block_changes_nothing(tmp_path, existing):
    """Ctrl-C (and SIGTERM, which run_main turns into an exception too) inside replaced: the fresh folder goes."""
    out = tmp_path / "out"
    if existing:
        out.mkdir()
        (out / "losses.json").write_text("[1.0]")
    with pytest.raises(KeyboardInterrupt):
        with out_dir.replaced(out, RUN_FILES) as staged:
            (staged / "losses.json").write_text("[2.0]")
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out"] if existing else [])
    if existing:
        assert snapshot(out) == {"losses.json": b"[1.0]"}


def test_a_folder_that_cannot_be_an_output_folder_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "loss.png").mkdir()
    cases = {"/proc/no-such/out": "cannot write to output folder", str(tmp_path / "file"): "is not a folder",
             str(tmp_path / "out"): "loss.png is not a file", "": "^output folder: an empty path",
             str(tmp_path / "file" / "a" / "b"): f"^cannot write to output folder .*/b: {tmp_path / 'file'} is not a "
                                                  "folder$"}
    for folder, message in cases.items():
        with pytest.raises(InputError, match=message):
            out_dir.check(folder, RUN_FILES)
    with pytest.raises(InputError, match="^output folder: an empty path"):  # compare.py's --out ""
        cli.prepare_out_dir("")
    (tmp_path / "out" / "loss.png").rmdir()
    assert out_dir.check(tmp_path / "new", RUN_FILES) == tmp_path / "new" and not (tmp_path / "new").exists()


def test_a_sweep_without_pictures_leaves_no_earlier_pictures(tmp_path, monkeypatch, capsys):
    sweep, out = import_script("sweep"), tmp_path / "sweep"
    flags = ["--seeds", "2", "--lrs", "0.1,0.2", "--steps", "3", "--no-cache", "--out", out]
    assert run_main(sweep, monkeypatch, capsys, *flags)[0] == 0
    assert {"heatmap.png", "curves.png", "best_fit.png"} < {p.name for p in out.iterdir()}
    assert run_main(sweep, monkeypatch, capsys, *flags, "--no-plots")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json", "table.txt"] and hidden_beside(out) == []


def test_check_writable_refuses_what_the_end_of_a_run_could_not_write(tmp_path):
    """params_io.check_writable: one InputError line for each path a script's last write would fail on; a good
    path passes and leaves nothing behind."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    cases = {"": "--record: an empty path", " ": "--record: an empty path",
             tmp_path / "adir": f"--record {tmp_path / 'adir'}: is a folder",
             tmp_path / "no" / "r.safetensors": f"--record {tmp_path / 'no' / 'r.safetensors'}: {tmp_path / 'no'} "
                                                 "does not exist",
             tmp_path / "afile" / "r.safetensors": f"--record {tmp_path / 'afile' / 'r.safetensors'}: "
                                                   f"{tmp_path / 'afile'} is not a folder",
             "/proc/r.safetensors": "--record /proc/r.safetensors: cannot write there: "}
    for path, message in cases.items():
        with pytest.raises(InputError) as e:
            params_io.check_writable(path, "--record")
        assert str(e.value).startswith(message) and "\n" not in str(e.value), (path, str(e.value))
    before = sorted(tmp_path.iterdir())
    assert params_io.check_writable(tmp_path / "r.safetensors", "--record") == tmp_path / "r.safetensors"
    assert params_io.check_writable(tmp_path / "afile", "--record") == tmp_path / "afile"  # a file is replaced
    assert sorted(tmp_path.iterdir()) == before


def test_atomic_path_fails_in_one_line_and_leaves_no_temporary_file(tmp_path):
    (tmp_path / "adir").mkdir()
    with pytest.raises(InputError, match=r"^cannot write .*adir: Is a directory$"):
        params_io.save_text(tmp_path / "adir", "text")
    with pytest.raises(InputError, match=r"^cannot write .*missing/x\.json: No such file or directory$"):
        params_io.save_text(tmp_path / "missing" / "x.json", "text")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"] and not any((tmp_path / "adir").iterdir())
    assert params_io.same_file(tmp_path / "adir", f"{tmp_path}/./adir") and not params_io.same_file(tmp_path, "/")


def earlier_run(out) -> dict:
    """An earlier run's complete set in `out` (stand-ins: each file holds its name) and a file of the user's."""
    out.mkdir()
    for name in (*RUN_FILES, "notes.txt"):
        (out / name).write_bytes(name.encode())
    return snapshot(out)


def refused(script, argv, monkeypatch, capsys) -> str:
    """scripts/SCRIPT.py run as its command line runs it (cli.run_main): exit 2 and one line on stderr, returned."""
    module = import_script(script)
    monkeypatch.setattr("sys.argv", [f"{script}.py", *map(str, argv)])
    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(module.main)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("script", ["train_jax", "train_torch"])
@pytest.mark.parametrize("flags, message", [
    (["--record", "/proc/rec.safetensors"], "--record /proc/rec.safetensors: cannot write there: "),
    (["--record", "{tmp}/adir"], "--record {tmp}/adir: is a folder\n"),
    (["--save-state", "/proc/st.safetensors"], "--save-state /proc/st.safetensors: cannot write there: "),
    (["--save-state", "{tmp}/adir"], "--save-state {tmp}/adir: is a folder\n"),
    (["--save-state", "{tmp}/s.st", "--record", "{tmp}/./s.st"],
     "--save-state {tmp}/s.st and --record {tmp}/./s.st name one file: give each its own\n"),
    (["--save-state", "{tmp}/out/params.npz"],
     "--save-state {tmp}/out/params.npz: the run writes its params.npz there (--out {tmp}/out): give another file\n"),
    (["--record", "{tmp}/adir/../out/learning.gif"], "--record {tmp}/adir/../out/learning.gif: the run writes its "
                                                      "learning.gif there (--out {tmp}/out): give another file\n"),
    (["--out", "{tmp}/new", "--save-state", "{tmp}/new"],
     "--save-state {tmp}/new: is the output folder (--out {tmp}/new): give a file outside it\n"),
    (["--out", ""], "output folder: an empty path (name a folder; . is the current one)\n"),
    (["--out", "{tmp}/afile/sub"], "cannot write to output folder {tmp}/afile/sub: {tmp}/afile is not a folder\n"),
    (["--save-state", "{tmp}/afile/sub/s.st"], "--save-state {tmp}/afile/sub/s.st: cannot make {tmp}/afile/sub: Not a "
                                                "directory\n"),
    (["--record", "{tmp}/afile/r.st"], "--record {tmp}/afile/r.st: {tmp}/afile is not a folder\n"),
])
def test_outputs_that_cannot_be_written_are_refused_before_any_work(tmp_path, monkeypatch, capsys, script, flags,
                                                                    message):
    """Files a run writes at its end (--record, --save-state) that could not be written, or that collide with each
    other or with --out's files, and an --out that is empty or lies under a file: one line and exit 2 before any
    work; the earlier run's folder keeps every file, and nothing is written anywhere."""
    before = earlier_run(tmp_path / "out")
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    monkeypatch.chdir(tmp_path / "adir")  # where --out "" would write
    argv = ["--out", tmp_path / "out", "--steps", "3", "--no-plots", "--no-cache", "--log-every", "1",
            *[flag.format(tmp=tmp_path) for flag in flags]]
    err = refused(script, argv, monkeypatch, capsys)
    assert f"error: {message.format(tmp=tmp_path)}" in err and "Traceback" not in err, err
    assert snapshot(tmp_path / "out") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile", "out"] and not any(
        (tmp_path / "adir").iterdir())


@pytest.mark.parametrize("script, flags, written", [
    ("train_jax", ["--save-state", "out/state.safetensors"], ["out/params.npz", "out/state.safetensors"]),
    ("train_jax", ["--record", "runs/run.safetensors"], ["out/params.npz", "runs/run.safetensors"]),
    ("train_jax", ["--out", "out/new", "--save-state", "out/new/s.safetensors"],
     ["out/new/params.npz", "out/new/s.safetensors"]),
    ("train_torch", ["--save-state", "out/state.safetensors"], ["out/params.npz", "out/state.safetensors"]),
    ("compare", ["--record", "out/run.safetensors"], ["out/run-jax.safetensors", "out/run-torch.safetensors"]),
])
def test_a_missing_folder_of_an_output_file_is_made(tmp_path, monkeypatch, capsys, script, flags, written):
    """The documented `train_jax.py --save-state out/state.safetensors` on a fresh checkout (no out/ yet) was refused
    ("out does not exist"), though the run makes --out: --save-state's and --record's folder is made, as --plot's
    and the benchmarks' are (out_dir.check_file)."""
    monkeypatch.chdir(tmp_path)
    code, _ = run_main(import_script(script), monkeypatch, capsys, *QUICK, "--no-plots", *flags)
    assert code == 0
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() and
                  p.name in {pathlib.PurePath(w).name for w in written}) == written


def test_a_file_in_place_of_compares_and_profile_fits_folder_is_one_clear_line(tmp_path, monkeypatch, capsys):
    """compare.py --out net.pt and profile_fit.py --hlo net.pt (an existing file) said "cannot write to output
    folder net.pt: File exists", the OS's words, where train_jax.py and sweep.py say "is not a folder"
    (cli.prepare_out_dir now checks as out_dir.check does); the file stays as it was."""
    (tmp_path / "net.pt").write_text("weights")
    monkeypatch.chdir(tmp_path)
    cases = {"net.pt": "output folder net.pt is not a folder",
             "net.pt/sub": "cannot write to output folder net.pt/sub: net.pt is not a folder"}
    for folder, message in cases.items():
        with pytest.raises(InputError) as e:
            cli.prepare_out_dir(folder)
        assert str(e.value) == message
        for script, flags in (("compare", ["--out", folder, "--steps", "3"]), ("profile_fit", ["--hlo", folder])):
            assert refused(script, flags, monkeypatch, capsys) == f"{script}.py: error: {message}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.pt"] and (tmp_path / "net.pt").read_text() == "weights"


@pytest.mark.parametrize("script, flags, message", [
    ("train_jax", ["--save-state", "{tmp}/new/a/s.safetensors", "--record-every", "3"],
     "--record-every needs --record FILE"),
    ("train_torch", ["--record", "{tmp}/new/r.safetensors", "--out", "{tmp}/afile"],
     "output folder {tmp}/afile is not a folder"),
    ("compare", ["--record", "{tmp}/new/r.safetensors", "--out", "{tmp}/afile"],
     "output folder {tmp}/afile is not a folder"),
    ("convert_weights", ["{tmp}/none.npz", "{tmp}/new/w.safetensors"], "{tmp}/none.npz: no such file"),
    ("profile_fit", ["--json", "{tmp}/new/p.json", "--hlo", "{tmp}/afile"],
     "output folder {tmp}/afile is not a folder"),
])
def test_a_refused_run_leaves_no_folder_it_made(tmp_path, script, flags, message):
    """A folder made for one output flag (--save-state's, --record's, --out's, --json's) before a later check refused
    the run (another flag, --out, the input file) was left behind, empty: the run's end (cli.run_main,
    out_dir.undo_on_failure) takes it out, with the folders made above it. A process of its own: run_main's end."""
    (tmp_path / "afile").write_text("x")
    run = run_script(f"{script}.py", *[flag.format(tmp=tmp_path) for flag in flags])
    assert (run.returncode, run.stdout, run.stderr) == (2, "", f"{script}.py: error: {message.format(tmp=tmp_path)}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_undo_on_failure_takes_out_only_the_empty_folders_a_failed_run_made(tmp_path):
    """A failure (a refusal's SystemExit 2, Ctrl-C) removes the folders made in the block that are still empty, and
    keeps one that holds a file and the folders above it; a folder there before, and any after a success (SystemExit
    0 too), stay."""
    (tmp_path / "before").mkdir()
    for ending in (SystemExit(2), KeyboardInterrupt()):
        with pytest.raises(type(ending)), out_dir.undo_on_failure():
            out_dir.make_folders(tmp_path / "before" / "a" / "b")
            out_dir.make_folders(tmp_path / "kept" / "c")
            (tmp_path / "kept" / "c" / "file").write_text("written")
            out_dir.make_folders(tmp_path / "kept" / "d")
            raise ending
        assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == \
            ["before", "kept", "kept/c", "kept/c/file"]
    for ending in (None, SystemExit(0)):
        with contextlib.suppress(SystemExit), out_dir.undo_on_failure():
            out_dir.make_folders(tmp_path / "new" / "e")
            if ending is not None:
                raise ending
        assert (tmp_path / "new" / "e").is_dir()
        (tmp_path / "new" / "e").rmdir()


@pytest.mark.parametrize("script, flags, line", [
    ("train_jax", ["--init", ""], "--init: an empty path"),
    ("train_torch", ["--resume", " "], "--resume: an empty path"),
    ("compare", ["--record", ""], "--record: an empty path"),
    ("convert_weights", ["", "w.npz"], "IN: an empty path"),
    ("convert_weights", ["net.npz", ""], "OUT: an empty path"),
    ("plant_fault", ["--record", "r.safetensors", "--into", ""], "--into: an empty path"),
    ("validate_grads", ["--params", ""], "--params: an empty path"),
    ("diverge", ["", "b.safetensors"], "an empty path, not a record file"),
])
def test_an_empty_file_path_is_one_line_naming_its_flag(tmp_path, script, flags, line):
    """An empty (or blank) path is "." to pathlib: --init "" said ": is a folder, not a weights file", --resume ""
    "--resume : is a folder", diverge.py "" ".: is a folder", convert_weights.py's OUT "" "unknown weight format ''"
    and compare.py --record "" ended in a traceback (pair_paths). Each is now one line naming the flag
    (params_io.refuse_empty), exit 2, with nothing written in the current folder, which "" would have named."""
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / f"{script}.py"), *flags], cwd=tmp_path, text=True,
                         capture_output=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert (run.returncode, run.stdout, run.stderr) == (2, "", f"{script}.py: error: {line}\n")
    assert not any(tmp_path.iterdir())
