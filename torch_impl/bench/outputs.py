"""The benchmarks' output files, checked before the minutes of work that make them (no jax, no torch here: the
check runs first)."""

import pathlib

from jax_impl.files.params_io import InputError, check_writable


def check_file(path, flag: str) -> pathlib.Path | None:
    """Before any work: an output FILE that a benchmark writes at its end (params_io.atomic_path) can be written at
    `path` (params_io.check_writable: not empty, not a folder, a folder that takes a new file), else InputError naming
    `flag`. Its folder is made if missing, as the benchmarks always made it (bench/results-cpu.json's), but only once
    the path is known not to be empty or a folder: a refused path leaves nothing behind. None (the flag not given)
    passes."""
    if path is None:
        return None
    target = pathlib.Path(path)
    if str(path).strip() and not target.is_dir() and not target.parent.exists():
        try:
            target.parent.mkdir(parents=True)
        except OSError as e:  # a file where a folder should be, no permission: one line
            raise InputError(f"{flag} {target}: cannot make {target.parent}: {e.strerror or e}") from None
    return check_writable(path, flag)
