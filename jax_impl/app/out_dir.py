"""A script's output folder, complete or absent: checked before any work (check), built whole in a fresh folder
beside it and moved into place at the end (replaced), so that a failure, Ctrl-C, SIGTERM or a full disk leaves the
previous run's complete set, never a mix of new and old files, nor an earlier run's files beside the new ones."""

import contextlib
import os
import pathlib
import shutil
import tempfile

from jax_impl.files.params_io import InputError, check_writable, give_umask_mode, signals_held

# The folders this run made for its outputs (make_folders), each after the folder above it: a run that fails, or
# is refused by a check that comes after one was made, takes them out again while they are empty (undo_on_failure).
_made: list[pathlib.Path] = []


def make_folders(folder) -> None:
    """`folder` and any missing folder above it made (mkdir -p), each remembered for undo_on_failure; OSError as
    mkdir raises it."""
    folder = pathlib.Path(folder)
    missing = [path for path in (folder, *folder.parents) if not os.path.lexists(path)][::-1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    finally:  # a failure halfway made some of them
        _made.extend(path for path in missing if path.is_dir())


@contextlib.contextmanager
def undo_on_failure():
    """Around a script's main (cli.run_main): when it ends by an exception other than a SystemExit of 0 (a refusal,
    an error, Ctrl-C, SIGTERM), the folders it made (make_folders) that are still empty go, deepest first, so a run
    that wrote nothing leaves nothing, not even a folder. One that holds anything stays: nothing written is lost."""
    _made.clear()
    try:
        yield
    except BaseException as e:
        if not (isinstance(e, SystemExit) and e.code in (0, None)):
            for folder in reversed(_made):
                with contextlib.suppress(OSError):  # not empty (rmdir removes only an empty folder), or gone
                    folder.rmdir()
        raise
    finally:
        _made.clear()


def _target(out) -> pathlib.Path:
    """The folder itself (a symbolic link's target: the link stays a link)."""
    return pathlib.Path(os.path.realpath(out))


def check(out, ours) -> pathlib.Path:
    """Before any work: `out` is a folder, or nothing yet; its entries named in `ours` (the script's files) are files;
    a fresh folder can be made beside it. InputError (one line) otherwise; returns `out` as a path."""
    refuse_non_folder(out)
    out, target = pathlib.Path(out), _target(out)
    try:
        make_folders(target.parent)
        os.rmdir(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new-"))
        if target.exists():
            refuse_non_files(target, ours, out)
    except OSError as e:
        raise InputError(f"cannot write to output folder {out}: {e.strerror or e}") from None
    return out


def refuse_non_folder(out) -> None:
    """InputError (one line) for an output folder path that cannot be a folder: empty (refuse_empty), naming
    something that is not a folder, or under a file (mkdir would say "File exists" or "Not a directory", naming
    nothing)."""
    refuse_empty(out)
    out, target = pathlib.Path(out), _target(out)
    if target.exists() and not target.is_dir():
        raise InputError(f"output folder {out} is not a folder")
    if blocker := _file_above(out.parent):
        raise InputError(f"cannot write to output folder {out}: {blocker} is not a folder")


def refuse_empty(out) -> None:
    """InputError for an empty output folder path: pathlib would make it ".", and the run's files would land in the
    current folder unasked."""
    if not str(out).strip():
        raise InputError("output folder: an empty path (name a folder; . is the current one)")


def check_file(path, flag: str) -> pathlib.Path | None:
    """Before any work: an output FILE that a script writes at its end (params_io.atomic_path) can be written at
    `path` (params_io.check_writable: not empty, not a folder, a folder that takes a new file), else InputError naming
    `flag`. Its folder is made if missing (bench/results-cpu.json's, a picture's), but only once the path is known not
    to be empty or a folder: a refused path leaves nothing behind; a later refusal of the run takes the folder out
    again (make_folders, undo_on_failure). None (the flag not given) passes."""
    if path is None:
        return None
    target = pathlib.Path(path)
    if str(path).strip() and not target.is_dir() and not target.parent.exists():
        try:
            make_folders(target.parent)
        except OSError as e:  # a file where a folder should be, no permission: one line
            raise InputError(f"{flag} {target}: cannot make {target.parent}: {e.strerror or e}") from None
    return check_writable(path, flag)

def _file_above(folder: pathlib.Path) -> pathlib.Path | None:
    """The nearest of `folder` and its ancestors that exists, if it is not a folder: a file where a folder must go."""
    existing = next((path for path in (folder, *folder.parents) if path.exists()), None)
    return existing if existing is not None and not existing.is_dir() else None


def refuse_non_files(target: pathlib.Path, ours, out) -> None:
    """InputError naming the first entry of `target` (shown as `out`) named in `ours` that is not a file."""
    for name in ours:
        if (target / name).exists() and not (target / name).is_file():
            raise InputError(f"{pathlib.Path(out) / name} is not a file: it cannot be replaced by this run's {name}")


@contextlib.contextmanager
def replaced(out, ours):
    """Yield a fresh, empty folder beside `out`, for the run to write its files into; when the block succeeds, they
    take the place of the old `out`'s entries named in `ours` (this script's files: an earlier run's that the new
    set lacks go too), and nothing else in `out` is touched (the user's files, another script's outputs). When the
    block fails, the fresh folder goes and `out` stays as it was. A new `out` gets the umask's mode."""
    target = _target(out)
    try:
        make_folders(target.parent)
        staged = pathlib.Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new-"))
    except OSError as e:
        raise InputError(f"cannot write to output folder {out}: {e.strerror or e}") from None
    try:
        give_umask_mode(staged, 0o777)  # mkdtemp makes 0700
        yield staged
        if target.exists():
            refuse_non_files(target, ours, out)  # before any file moves: never half a set
        _move_into_place(staged, target, ours)
    except OSError as e:
        raise InputError(f"cannot write to output folder {out}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _move_into_place(staged: pathlib.Path, target: pathlib.Path, ours) -> None:
    """staged's files into target, in renames on one file system (no data copied, no space needed). A new target,
    or one that holds only files in `ours`, is swapped whole: at every instant it is the old set, absent, or the new
    set. Otherwise each file moves by itself, with Ctrl-C and SIGTERM held until the last has moved (they act just
    after), so only SIGKILL or a power cut in those microseconds could leave a mix."""
    if not target.exists():
        os.rename(staged, target)
        return
    # (not the current folder: the shell would be left in a deleted one)
    if all(entry.name in ours for entry in target.iterdir()) and target != pathlib.Path.cwd().resolve():
        os.chmod(staged, target.stat().st_mode & 0o7777)  # the folder keeps its mode
        old = pathlib.Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        try:
            os.rename(target, old)  # onto an empty folder, which rename allows
            try:
                os.rename(staged, target)
            except OSError:
                os.rename(old, target)
                raise
        finally:
            shutil.rmtree(old, ignore_errors=True)  # the old set (or, undone, an empty folder)
        return
    with signals_held():
        for name in ours:
            if (staged / name).exists():
                os.replace(staged / name, target / name)
            elif (target / name).exists():
                os.unlink(target / name)  # an earlier run's file that this run does not write
