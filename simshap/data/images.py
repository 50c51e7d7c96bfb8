"""Image arrays: CIFAR-10 and Fashion-MNIST as ``uint8`` tensors ``(N, C, 32, 32)``.

The Lightning DataModules that serve them live in :mod:`simshap.data.image_modules`.

CIFAR-10 comes from torchvision's ``CIFAR10`` folder (``source="torchvision"``; downloaded only
when absent and online) or from the 6,102-image ``cifar10-subset.npz`` (``source="subset"``).
Fashion-MNIST comes from the idx files (Debian's ``dataset-fashion-mnist`` package or
torchvision's ``FashionMNIST/raw`` folder) and is zero-padded from 28x28 to 32x32 so the same
16x16 grid of 2x2 superpixels applies.
"""

from __future__ import annotations

import gzip
import os
import socket
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from simshap.data.tabular import resolve_data_dir
from simshap.errors import MissingFileError, UserError

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR10_SUBSET_FILE",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DEBIAN_DIR",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "load_cifar10_arrays",
    "load_fashion_mnist_arrays",
]

CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_SUBSET_FILE = "cifar10-subset.npz"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

# statistics of the 28x28 training images (the zero padding is normalized with them too)
FASHION_MNIST_MEAN: tuple[float] = (0.2860,)
FASHION_MNIST_STD: tuple[float] = (0.3530,)
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_URL = "https://github.com/zalandoresearch/fashion-mnist"

Arrays = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _online(host: str, timeout: float = 3.0) -> bool:
    """Whether ``host`` accepts an HTTPS connection within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- raw arrays


def load_cifar10_arrays(
    source: str = "auto",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool | None = None,
) -> Arrays:
    """CIFAR-10 as ``uint8`` images ``(N, 3, 32, 32)`` and ``int64`` labels.

    Args:
        source: ``"torchvision"`` (torchvision's ``cifar-10-batches-py`` folder in
            ``data_dir``), ``"subset"`` (``cifar10-subset.npz`` in ``data_dir``) or ``"auto"``
            (torchvision's files when present, else the subset file).
        data_dir: folder (default: ``$SIMSHAP_DATA``, else ``~/.cache/simshap``).
        download: let torchvision download the official archive when it is absent and the
            machine is online (default: yes unless ``SIMSHAP_OFFLINE=1``).

    Returns:
        ``(x_train, y_train, x_test, y_test)``.

    Raises:
        FileNotFoundError: the files are absent (and could not be downloaded).
        ValueError: unknown ``source`` or a malformed file.

    """
    folder = resolve_data_dir(data_dir)
    if source not in ("auto", "torchvision", "subset"):
        raise UserError(f"source must be 'torchvision', 'subset' or 'auto', got {source!r}")
    if source == "auto":
        has_tv = (folder / "cifar-10-batches-py").is_dir()
        source = (
            "torchvision" if has_tv or not (folder / CIFAR10_SUBSET_FILE).is_file() else ("subset")
        )
    if source == "subset":
        return _cifar10_subset(folder)
    return _cifar10_torchvision(folder, download)


def _cifar10_subset(folder: Path) -> Arrays:
    path = folder / CIFAR10_SUBSET_FILE
    if not path.is_file():
        raise MissingFileError(
            f"CIFAR-10 subset file {CIFAR10_SUBSET_FILE} not found in {folder}; put it there "
            "(keys x_train, y_train, x_test, y_test; uint8 images (N, 3, 32, 32)), point "
            "data_dir= or SIMSHAP_DATA at its folder, or use source='torchvision' for the "
            "official data set"
        )
    with np.load(path) as npz:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(npz.files)
        if missing:
            raise UserError(f"{path} lacks the keys {sorted(missing)}")
        arrays = [npz[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    for x in arrays[0::2]:
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (3, 32, 32):
            raise UserError(f"{path}: images must be uint8 (N, 3, 32, 32), got {x.dtype} {x.shape}")
    x_tr, y_tr, x_te, y_te = arrays
    return (
        torch.from_numpy(x_tr.copy()),
        torch.from_numpy(y_tr.astype(np.int64)),
        torch.from_numpy(x_te.copy()),
        torch.from_numpy(y_te.astype(np.int64)),
    )


def _cifar10_torchvision(folder: Path, download: bool | None) -> Arrays:
    from torchvision.datasets import CIFAR10

    if download is None:
        download = os.environ.get("SIMSHAP_OFFLINE", "") not in ("1", "true", "yes")
    present = (folder / "cifar-10-batches-py").is_dir()
    online = not present and download and _online("www.cs.toronto.edu")
    try:
        train = CIFAR10(str(folder), train=True, download=online)
        test = CIFAR10(str(folder), train=False, download=online)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise MissingFileError(
            f"CIFAR-10 not found in {folder / 'cifar-10-batches-py'} ({err}); "
            f"{'the machine is offline; ' if download and not present else ''}download "
            f"{CIFAR10_URL} and extract it into {folder}, point data_dir= or SIMSHAP_DATA at "
            f"the folder holding cifar-10-batches-py, or use source='subset' with "
            f"{CIFAR10_SUBSET_FILE}"
        ) from err

    def arrays(ds: CIFAR10) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        return x, torch.as_tensor(ds.targets, dtype=torch.int64)

    return (*arrays(train), *arrays(test))


def _read_idx(path: Path) -> np.ndarray:
    """Read an idx file (optionally gzipped): unsigned bytes, any number of dimensions."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise UserError(f"{path} is not an unsigned-byte idx file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise UserError(f"{path} is truncated: expected {int(np.prod(shape))} values")
    return arr.reshape(shape)


def _fashion_mnist_folders(data_dir: str | os.PathLike[str] | None) -> list[Path]:
    folder = resolve_data_dir(data_dir)
    return [
        folder / "FashionMNIST" / "raw",  # torchvision's layout
        folder / "fashion-mnist",
        folder,
        FASHION_MNIST_DEBIAN_DIR,  # apt-get install dataset-fashion-mnist
    ]


def load_fashion_mnist_arrays(
    data_dir: str | os.PathLike[str] | None = None, pad_to: int = 32
) -> Arrays:
    """Fashion-MNIST as ``uint8`` images ``(N, 1, pad_to, pad_to)`` (zero-padded) and labels.

    Searches, in order: ``<data_dir>/FashionMNIST/raw`` (torchvision), ``<data_dir>/fashion-mnist``,
    ``<data_dir>`` and ``/usr/share/datasets/fashion-mnist`` (Debian's package); the idx files
    may be gzipped.

    Args:
        data_dir: folder (default: ``$SIMSHAP_DATA``, else ``~/.cache/simshap``).
        pad_to: output side (28 keeps the original size).

    Returns:
        ``(x_train, y_train, x_test, y_test)``: 60,000 and 10,000 images.

    Raises:
        FileNotFoundError: no folder holds the four idx files.

    """
    if pad_to < 28 or (pad_to - 28) % 2:
        raise UserError(f"pad_to must be 28 + an even number of pixels, got {pad_to}")
    stems = {
        "x_train": "train-images-idx3-ubyte",
        "y_train": "train-labels-idx1-ubyte",
        "x_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels-idx1-ubyte",
    }
    folders = _fashion_mnist_folders(data_dir)
    for folder in folders:
        paths = {}
        for key, stem in stems.items():
            found = [folder / (stem + ext) for ext in ("", ".gz")]
            found = [p for p in found if p.is_file()]
            if found:
                paths[key] = found[0]
        if len(paths) == len(stems):
            break
    else:
        raise MissingFileError(
            "Fashion-MNIST idx files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte, "
            "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) not found in any of "
            f"{', '.join(map(str, folders))}; install them with `apt-get install "
            "dataset-fashion-mnist` (Debian/Ubuntu), or download them from "
            f"{FASHION_MNIST_URL} into {folders[1]}"
        )
    pad = (pad_to - 28) // 2
    out = []
    for key in stems:
        arr = torch.from_numpy(_read_idx(paths[key]).copy())
        if key.startswith("x"):
            if arr.ndim != 3 or arr.shape[1:] != (28, 28):
                raise UserError(f"{paths[key]}: expected 28x28 images, got {tuple(arr.shape)}")
            arr = F.pad(arr.unsqueeze(1), (pad, pad, pad, pad))
        else:
            arr = arr.long()
        out.append(arr)
    return out[0], out[1], out[2], out[3]
