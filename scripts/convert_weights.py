"""Convert weights between a torch checkpoint, safetensors and the port's .npz, strictly.

    python scripts/convert_weights.py net.pt net.npz                # torch.save(net.state_dict()) -> the port's layout
    python scripts/convert_weights.py out/params.npz net.safetensors # the port's -> torch's names and layout
    python scripts/convert_weights.py out/model.safetensors net.pt   # -> a file torch.load(weights_only=True) reads

Formats by suffix (jax_impl/files/weights.py), none of them needing torch: .pt/.pth, a torch state_dict (torch.save's
zip, read as torch.load(..., weights_only=True) reads it, unpickling nothing but tensors and plain containers:
jax_impl/files/torch_file.py); .safetensors, torch's names and layout with metadata {"format": "pt"}; .npz, the
port's w1 (1,H), b1 (H,), w2 (H,1), b2 (1,). Every direction; float32 and float64 are kept bit for bit, float16 and
bfloat16 become float32 (exactly), so a round trip changes nothing, and a file written for torch loads into the
notebook's Net(1, H, 1) with load_state_dict(..., strict=True).
What the reader accepted on the way (a checkpoint dict, a DataParallel prefix, half precision) is one note on stderr.
Exit codes: 2 bad input (one line naming the problem; OUT is left as it was): a folder as IN, or an OUT it cannot
write (a folder, a path under a file), is refused before anything is read; OUT's missing folder is made.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from jax_impl.app import cli, out_dir  # noqa: E402
from jax_impl.files import weights
from jax_impl.files.params_io import refuse_empty


def parse_args(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("source", metavar="IN", help="the weights to read: .pt/.pth, .safetensors or .npz")
    p.add_argument("target", metavar="OUT", help="the file to write, in the format its suffix names")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for name, path in (("IN", args.source), ("OUT", args.target)):
        refuse_empty(path, name)
    weights.format_of(args.target)  # an unknown OUT suffix is refused before anything is read
    weights.refuse_folder(args.source)  # IN's folder refused before OUT is checked or anything read
    out_dir.check_file(args.target, "OUT")  # a folder in OUT's place, no way to write there: before the reading
    params, note = weights.read(args.source)
    if note:
        cli.note(f"{args.source}: {note}")
    print(f"wrote {args.target} ({weights.write(args.target, params)})")


if __name__ == "__main__":
    cli.run_main(main)
