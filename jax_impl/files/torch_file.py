"""torch.save's file format, read and written without torch: a state_dict of dense tensors in a .pt/.pth file.

The format (torch/serialization.py: _save and _load; torch/_utils.py: the _rebuild_* functions) is a zip archive,
every record stored uncompressed under one folder:
    <folder>/data.pkl            a pickle (protocol 2) of the object, each tensor a call
                                 torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
                                 backward_hooks[, metadata]), offset and strides counted in elements, each storage a
                                 persistent id ('storage', torch.<Dtype>Storage, key, location, numel)
    <folder>/data/<key>          a storage's bytes, in the byte order of the record below
    <folder>/byteorder           'little' or 'big' (little where absent, as torch.load assumes)
    <folder>/version, .format_version, .storage_alignment, .data/serialization_id: bookkeeping, not read
Dtypes without a legacy <Dtype>Storage class (float8s, uint16/32/64, complex32, ...) go through _rebuild_tensor_v3
instead, with a torch.storage.UntypedStorage (numel in bytes) and the dtype (torch.<name>) as an argument.

load() unpickles with find_class restricted to what such a state_dict (or a checkpoint dict holding one, with the
ints, floats, strings, lists and dicts of an optimizer's state) needs, each global mapped to a stand-in defined here:
nothing of the file's is imported or called, and any other global is refused with one line naming it, as
torch.load(weights_only=True) refuses what it does not allow. Tensors come back as numpy arrays (C-contiguous
copies; a view, such as a transpose, a strided slice or a slice at an offset into a larger storage, read through its
offset and strides as torch.load reads it); those numpy cannot hold as weights come back as Unreadable (a meta,
sparse, quantized or nested tensor, a dtype numpy lacks), so that the caller names the tensor. save() writes what
torch.load(weights_only=True) reads back bit for bit: the pickle is written opcode by opcode (_Pickle), since the
standard Pickler cannot name torch's globals without torch.
"""

import dataclasses
import math
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Mapping

import ml_dtypes  # numpy's bfloat16 and float8s
import numpy as np

from jax_impl.files.params_io import InputError

# torch's dtypes by the name torch pickles them under (GLOBAL torch <name>) -> numpy's dtype, None where numpy (with
# ml_dtypes) has none. torch/storage.py: _dtype_to_storage_type_map and _new_dtypes; torch.uint1-7 and int1-7.
NUMPY_DTYPES = {
    "float64": np.dtype(np.float64), "float32": np.dtype(np.float32), "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16), "int64": np.dtype(np.int64), "int32": np.dtype(np.int32),
    "int16": np.dtype(np.int16), "int8": np.dtype(np.int8), "uint8": np.dtype(np.uint8), "bool": np.dtype(np.bool_),
    "complex128": np.dtype(np.complex128), "complex64": np.dtype(np.complex64), "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32), "uint64": np.dtype(np.uint64),
    **{name: np.dtype(getattr(ml_dtypes, name)) if hasattr(ml_dtypes, name) else None for name in
       ("float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz", "float8_e4m3fnuz", "float8_e8m0fnu")},  # by version
    **dict.fromkeys(["complex32", "float4_e2m1fn_x2", "bits8", "bits16", "bits1x8", "bits2x4", "bits4x2",
                     *(f"{u}int{n}" for u in ("", "u") for n in range(1, 8))]),
    **dict.fromkeys(["qint8", "qint32", "quint8", "quint4x2", "quint2x4"]),  # quantized: _rebuild_qtensor's
}
# torch's legacy typed storage classes (GLOBAL torch <Name>) -> (their dtype, bytes per element)
STORAGE_CLASSES = {
    "DoubleStorage": ("float64", 8), "FloatStorage": ("float32", 4), "HalfStorage": ("float16", 2),
    "BFloat16Storage": ("bfloat16", 2), "LongStorage": ("int64", 8), "IntStorage": ("int32", 4),
    "ShortStorage": ("int16", 2), "CharStorage": ("int8", 1), "ByteStorage": ("uint8", 1), "BoolStorage": ("bool", 1),
    "ComplexDoubleStorage": ("complex128", 16), "ComplexFloatStorage": ("complex64", 8),
    "QInt8Storage": ("qint8", 1), "QInt32Storage": ("qint32", 4), "QUInt8Storage": ("quint8", 1),
    "QUInt4x2Storage": ("quint4x2", 1), "QUInt2x4Storage": ("quint2x4", 1),
}
UNTYPED = "untyped"  # torch.storage.UntypedStorage's bytes: _rebuild_tensor_v3 names their dtype
QSCHEMES = ("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric",
            "per_channel_affine_float_qparams")

ARCHIVE = "archive"  # the folder name torch.save gives when it writes to a file object
FILE_FORMAT_VERSION = b"3\n"  # the 'version' record torch 2.x writes (caffe2/serialize: kProducedFileFormatVersion)
ALIGNMENT = 64  # torch.save starts each storage's bytes at a multiple of this (torch.load(mmap=True) maps them)
# The first pickle of the format before torch 1.6 (torch.save(..., _use_new_zipfile_serialization=False)): its magic
# number, torch/serialization.py MAGIC_NUMBER, pickled with the default protocol 2
LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)


@dataclasses.dataclass(frozen=True, slots=True)
class Unreadable:
    """A tensor in the file that numpy cannot hold as a weight: its dtype's name (torch's) and, where it is no dense
    tensor, what it is and what to save instead (`what` completes "'NAME' is ..."; None for a dense tensor of a
    dtype numpy lacks, which the dtype check names)."""

    dtype: str
    what: str | None = None


def is_tensor(value) -> bool:
    """Whether load() built `value` from a tensor."""
    return isinstance(value, np.ndarray | Unreadable)


# ---- reading ---------------------------------------------------------------------------------------------------
# The stand-ins find_class hands the unpickler for torch's globals: plain data and functions of this module. slots:
# pickle's BUILD opcode cannot set attributes on them.

@dataclasses.dataclass(frozen=True, slots=True)
class _Dtype:
    """GLOBAL torch <dtype name>."""

    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class _StorageClass:
    """GLOBAL torch <Dtype>Storage (dtype, bytes per element), or torch.storage UntypedStorage (UNTYPED, 1)."""

    dtype: str
    itemsize: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Storage:
    """A storage's bytes as in the file, and its dtype (UNTYPED for an UntypedStorage's)."""

    dtype: str
    data: bytes


class _Corrupt(Exception):
    """What the pickle says does not fit the format: load() reports it as one line."""


def _elements(storage: _Storage, dtype: str, swap: bool) -> np.ndarray | None:
    """The storage's bytes as a flat array of `dtype` in native byte order; None where numpy lacks the dtype."""
    if NUMPY_DTYPES[dtype] is None:
        return None
    numpy_dtype = NUMPY_DTYPES[dtype]
    if len(storage.data) % numpy_dtype.itemsize:
        raise _Corrupt(f"a storage of {len(storage.data)} bytes read as {dtype}")
    flat = np.frombuffer(storage.data, dtype=numpy_dtype)
    if not swap:
        return flat
    if numpy_dtype.kind == "c":
        return flat.byteswap()  # a complex's two parts each, as torch swaps them
    # Through unsigned integers of the same width: ml_dtypes 0.5's bfloat16 (the declared minimum) ignores byteswap
    return flat.view(f"u{numpy_dtype.itemsize}").byteswap().view(numpy_dtype)


def _view(flat: np.ndarray, storage_offset, size, stride) -> np.ndarray:
    """torch's tensor.set_(storage, storage_offset, size, stride) in numpy, as a C-contiguous copy: offset and strides
    count elements. _Corrupt where the view reaches outside the storage."""
    numbers = [storage_offset, *size, *stride]
    if not all(isinstance(n, int) and n >= 0 for n in numbers) or len(size) != len(stride):
        raise _Corrupt(f"a tensor with storage offset {storage_offset!r}, size {size!r}, stride {stride!r}")
    size, stride = tuple(size), tuple(stride)
    if math.prod(size) == 0:
        return np.empty(size, flat.dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= flat.size:
        raise _Corrupt(f"a tensor (storage offset {storage_offset}, size {size}, stride {stride}) that reaches "
                       f"element {last} of a storage of {flat.size}")
    # the view over the storage's bytes (as_strided cannot take ml_dtypes' dtypes), then a copy of just its elements
    view = np.ndarray(size, flat.dtype, buffer=flat.view(np.uint8), offset=storage_offset * flat.itemsize,
                      strides=[s * flat.itemsize for s in stride])
    return np.array(view, order="C")


def _with_metadata(array: np.ndarray, metadata) -> np.ndarray:
    """torch's conj and neg bits (torch/_utils.py set_tensor_metadata), applied to the values as torch.load's
    tensor.resolve_conj().resolve_neg() would give them."""
    if not metadata:
        return array
    if not isinstance(metadata, dict) or set(metadata) - {"conj", "neg"}:
        raise _Corrupt(f"tensor metadata {metadata!r}")
    if metadata.get("conj"):
        array = np.conj(array)
    if metadata.get("neg"):
        array = np.negative(array)
    return array


class _Rebuild:
    """torch._utils' rebuild functions for the tensors a state_dict holds, in numpy; `swap` where the file's byte
    order is not this machine's."""

    def __init__(self, swap: bool):
        self.swap = swap

    def tensor_v2(self, storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
        """_rebuild_tensor_v2: a typed storage (a legacy <Dtype>Storage), offset and strides in its elements."""
        if not isinstance(storage, _Storage) or storage.dtype == UNTYPED:
            raise _Corrupt("_rebuild_tensor_v2 without a typed storage")
        return self._tensor(storage, storage.dtype, storage_offset, size, stride, metadata)

    def tensor_v3(self, storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
        """_rebuild_tensor_v3: an UntypedStorage's bytes read as `dtype`, offset and strides in its elements."""
        if not isinstance(storage, _Storage) or not isinstance(dtype, _Dtype):
            raise _Corrupt("_rebuild_tensor_v3 without a storage and a dtype")
        return self._tensor(storage, dtype.name, storage_offset, size, stride, metadata)

    def _tensor(self, storage, dtype, storage_offset, size, stride, metadata):
        flat = _elements(storage, dtype, self.swap)
        if flat is None:
            return Unreadable(dtype)
        return _with_metadata(_view(flat, storage_offset, size, stride), metadata)

    @staticmethod
    def parameter(data, requires_grad, backward_hooks, state=None):
        """_rebuild_parameter and _rebuild_parameter_with_state: a Parameter is its tensor (its Python attributes,
        `state`, are no values)."""
        return data

    @staticmethod
    def meta(dtype, size, stride, requires_grad):
        """_rebuild_meta_tensor_no_storage: a tensor on device 'meta', which has a shape and no values."""
        name = dtype.name if isinstance(dtype, _Dtype) else "?"
        return Unreadable(name, f"a meta tensor ({name}, shape {tuple(size)}), which holds no values: save the "
                                "tensor from the device that holds them")

    @staticmethod
    def sparse(layout, data):
        """_rebuild_sparse_tensor: indices and values, not the dense tensor the port takes."""
        # coo: (indices, values, size[, is_coalesced]); compressed: (compressed indices, plain indices, values, size)
        values = data[1 if str(layout).endswith("coo") else 2] if isinstance(data, tuple) and len(data) > 2 else None
        dtype = values.dtype.name if isinstance(values, np.ndarray) else "?"
        return Unreadable(dtype, f"a sparse tensor ({layout}), and weights are dense: save tensor.to_dense()")

    @staticmethod
    def nested(buffer, sizes, strides, storage_offsets):
        """_rebuild_nested_tensor: tensors of different shapes in one buffer, not the one tensor a weight is."""
        dtype = buffer.dtype.name if isinstance(buffer, np.ndarray) else "?"
        return Unreadable(dtype, "a nested tensor (torch.nested), and a weight is one dense tensor: save each of "
                                 "tensor.unbind() under a name of its own")

    @staticmethod
    def qtensor(storage, storage_offset, size, stride, quantizer_params, requires_grad, backward_hooks):
        """_rebuild_qtensor: integers and a scale, not the float values the port takes."""
        dtype = storage.dtype if isinstance(storage, _Storage) else "?"
        scheme = quantizer_params[0] if isinstance(quantizer_params, tuple) and quantizer_params else "?"
        return Unreadable(dtype, f"a quantized tensor (torch.{dtype}, {scheme}), and weights are floats: save "
                                 "tensor.dequantize()")


def _layout(name):
    """torch.serialization._get_layout: a sparse tensor's layout, by its name ('torch.sparse_coo')."""
    return str(name)


class _Unpickler(pickle.Unpickler):
    """pickle's Unpickler with find_class limited to the stand-ins above and persistent_load reading storages from the
    archive (each once: tensors that view one storage share it)."""

    def __init__(self, file, archive: zipfile.ZipFile, folder: str, swap: bool, where: str):
        super().__init__(file)
        self.archive, self.folder, self.where = archive, folder, where
        self.storages: dict[str, bytes] = {}
        rebuild = _Rebuild(swap)
        self.globals = {
            ("collections", "OrderedDict"): OrderedDict,
            ("torch", "Size"): tuple,
            ("torch.serialization", "_get_layout"): _layout,
            ("torch._utils", "_rebuild_tensor_v2"): rebuild.tensor_v2,
            ("torch._utils", "_rebuild_tensor_v3"): rebuild.tensor_v3,
            ("torch._utils", "_rebuild_parameter"): rebuild.parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): rebuild.parameter,
            ("torch._utils", "_rebuild_meta_tensor_no_storage"): rebuild.meta,
            ("torch._utils", "_rebuild_sparse_tensor"): rebuild.sparse,
            ("torch._utils", "_rebuild_qtensor"): rebuild.qtensor,
            ("torch._utils", "_rebuild_nested_tensor"): rebuild.nested,
            ("torch.storage", "UntypedStorage"): _StorageClass(UNTYPED, 1),
            **{("torch", name): _StorageClass(*spec) for name, spec in STORAGE_CLASSES.items()},
            **{("torch", name): _Dtype(name) for name in NUMPY_DTYPES},
            **{("torch", name): name for name in QSCHEMES},
        }

    def find_class(self, module, name):
        if (module, name) not in self.globals:
            raise InputError(f"{self.where}refused: it pickles {module}.{name}, and the reader unpickles nothing but "
                             "tensors and plain containers (nothing was run); save model.state_dict() instead")
        return self.globals[module, name]

    def persistent_load(self, pid):
        """('storage', storage class, key, location, numel) -> _Storage; numel counts the class's elements (bytes for
        an UntypedStorage). The location (the device it was saved from) does not matter: the bytes are here."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageClass)
                and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise _Corrupt(f"a persistent id {pid!r}")
        _, storage_class, key, _, numel = pid
        if key not in self.storages:
            name = f"{self.folder}/data/{key}"
            try:
                info = self.archive.getinfo(name)
            except KeyError:
                raise _Corrupt(f"no record {name} for a storage") from None
            if info.file_size != numel * storage_class.itemsize:  # before reading: a bad size reads nothing
                raise _Corrupt(f"{name} holds {info.file_size} bytes, not {numel} x {storage_class.itemsize}")
            self.storages[key] = self.archive.read(info)
        return _Storage(storage_class.dtype, self.storages[key])


def _folder(archive: zipfile.ZipFile, where: str) -> str:
    """The archive's one folder (torch's reader takes it from the first record's name), holding data.pkl."""
    names = archive.namelist()
    folder = names[0].partition("/")[0] if names else ""
    if f"{folder}/data.pkl" not in names:
        if names and all(name.endswith(".npy") for name in names):
            raise InputError(f"{where}an .npz (numpy's zip of .npy arrays), not a torch checkpoint: name it .npz")
        raise InputError(f"{where}not a torch checkpoint: a zip archive without the <folder>/data.pkl torch.save "
                         "writes")
    return folder


def load(path, where: str = ""):
    """What torch.save pickled into `path`: dicts (OrderedDicts), lists, tuples, numbers and strings as pickled,
    each tensor a numpy array of its dtype (bfloat16 and float8s as ml_dtypes'), C-contiguous, with its shape, or an
    Unreadable. InputError (where + one line): a global other than a state_dict's (named), a file that is not a zip
    (the pre-1.6 format is named as such), a zip that is not torch.save's, or a damaged one."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(LEGACY_MAGIC))
        if head == LEGACY_MAGIC:
            raise InputError(f"{where}a torch checkpoint in the format before torch 1.6 (_use_new_zipfile_"
                             "serialization=False), which the reader does not take: torch.save it again with torch "
                             "1.6 or later")
        if not zipfile.is_zipfile(path):
            raise InputError(f"{where}not a torch checkpoint (torch.save writes a zip archive; this is none)")
        with zipfile.ZipFile(path) as archive:
            folder = _folder(archive, where)
            records = set(archive.namelist())
            order = archive.read(f"{folder}/byteorder") if f"{folder}/byteorder" in records else b"little"
            if order not in (b"little", b"big"):
                raise _Corrupt(f"byte order {order!r}")
            with archive.open(f"{folder}/data.pkl") as pickled:
                return _Unpickler(pickled, archive, folder, order.decode() != sys.byteorder, where).load()
    except InputError:
        raise
    except OSError as e:  # the file itself: unreadable, a folder (zipfile's own errors are no OSError)
        raise InputError(f"{where}cannot read it: {e.strerror or e}") from None
    except Exception as e:  # _Corrupt, or what zipfile and pickle raise for bytes that are not their format
        detail = (str(e).strip().splitlines() or [""])[0]
        raise InputError(f"{where}not a torch checkpoint the reader can read (damaged: "
                         + (f"{detail})" if isinstance(e, _Corrupt) else f"{type(e).__name__}: {detail})")) from None


# ---- writing ---------------------------------------------------------------------------------------------------

class _Pickle:
    """Protocol 2 opcodes (Lib/pickletools.py documents each), just those a state_dict of tensors needs: each method
    returns the bytes that push one value."""

    @staticmethod
    def global_(module: str, name: str) -> bytes:
        return pickle.GLOBAL + f"{module}\n{name}\n".encode()

    @staticmethod
    def str_(text: str) -> bytes:
        data = text.encode("utf-8")
        return pickle.BINUNICODE + struct.pack("<I", len(data)) + data

    @staticmethod
    def int_(n: int) -> bytes:
        """A non-negative int, in the shortest of BININT1, BININT2, BININT (signed 32 bits) and LONG1."""
        if n < 0x100:
            return pickle.BININT1 + struct.pack("<B", n)
        if n < 0x10000:
            return pickle.BININT2 + struct.pack("<H", n)
        if n < 0x80000000:
            return pickle.BININT + struct.pack("<i", n)
        data = n.to_bytes(n.bit_length() // 8 + 1, "little", signed=True)
        return pickle.LONG1 + struct.pack("<B", len(data)) + data

    @staticmethod
    def tuple_(*items: bytes) -> bytes:
        return pickle.MARK + b"".join(items) + pickle.TUPLE

    @classmethod
    def call(cls, function: bytes, *args: bytes) -> bytes:
        """function(*args): REDUCE, as every torch rebuild is pickled."""
        return function + cls.tuple_(*args) + pickle.REDUCE


# numpy dtype name -> the legacy storage class torch.save names for it (those numpy has)
STORAGE_OF = {dtype: name for name, (dtype, _) in STORAGE_CLASSES.items() if NUMPY_DTYPES[dtype] is not None}


def _state_dict_pickle(arrays: Mapping[str, np.ndarray]) -> bytes:
    """data.pkl for an OrderedDict of the arrays as tensors, as torch.save pickles a state_dict: storage i is
    data/i, each tensor C-contiguous from offset 0, requires_grad False, no backward hooks."""
    p = _Pickle
    ordered_dict = p.call(p.global_("collections", "OrderedDict"))
    items = b""
    for key, (name, array) in enumerate(arrays.items()):
        storage = p.tuple_(p.str_("storage"), p.global_("torch", STORAGE_OF[array.dtype.name]), p.str_(str(key)),
                           p.str_("cpu"), p.int_(array.size)) + pickle.BINPERSID
        strides = [math.prod(max(n, 1) for n in array.shape[i + 1:]) for i in range(array.ndim)]  # torch's contiguous
        tensor = p.call(p.global_("torch._utils", "_rebuild_tensor_v2"), storage, p.int_(0),
                        p.tuple_(*map(p.int_, array.shape)), p.tuple_(*map(p.int_, strides)), pickle.NEWFALSE,
                        ordered_dict)
        items += p.str_(name) + tensor
    return pickle.PROTO + b"\x02" + ordered_dict + pickle.MARK + items + pickle.SETITEMS + pickle.STOP


def _write_record(archive: zipfile.ZipFile, file, name: str, data: bytes, align: bool = False) -> None:
    """One stored record; with `align`, its bytes start at a multiple of ALIGNMENT in the file, padded as torch's
    writer pads (an extra field 'FB' of 'Z's in the local header: caffe2/serialize/inline_container.cc)."""
    info = zipfile.ZipInfo(f"{ARCHIVE}/{name}")  # dated 1980-01-01: the same tensors give the same bytes
    info.compress_type = zipfile.ZIP_STORED
    if align:
        header = 30 + len(info.filename.encode()) + 4  # the local header, the name, the extra field's id and length
        padding = -(file.tell() + header) % ALIGNMENT
        info.extra = b"FB" + struct.pack("<H", padding) + b"Z" * padding
    archive.writestr(info, data)


def save(arrays: Mapping[str, np.ndarray], file, where: str = "") -> None:
    """The named arrays as torch.save(OrderedDict of tensors) writes them, into `file` (open for binary writing, at its
    start, seekable): torch.load(weights_only=True) gives back the same tensors, names in order, dtypes, shapes and
    bits. Dtypes: those with a legacy storage class (float16, bfloat16, float32, float64, the ints, bool, complex);
    InputError (where + one line) for others, before anything is written. Bytes in this machine's order, recorded in
    'byteorder' as torch.save records it."""
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    for name, array in arrays.items():
        if array.dtype.name not in STORAGE_OF:
            raise InputError(f"{where}{name!r} has dtype {array.dtype.name}, which this writer of torch checkpoints "
                             f"does not take (it takes {', '.join(STORAGE_OF)})")
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
        _write_record(archive, file, "data.pkl", _state_dict_pickle(arrays))
        _write_record(archive, file, ".format_version", b"1")
        _write_record(archive, file, ".storage_alignment", str(ALIGNMENT).encode())
        _write_record(archive, file, "byteorder", sys.byteorder.encode())
        for key, array in enumerate(arrays.values()):
            native = array.astype(array.dtype.newbyteorder("="), copy=False)
            _write_record(archive, file, f"data/{key}", np.ascontiguousarray(native).tobytes(), align=True)
        _write_record(archive, file, "version", FILE_FORMAT_VERSION)
