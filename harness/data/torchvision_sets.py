"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 through torchvision's dataset classes.

Each set is read whole into one float tensor (N, C, H, W) in [0, 1]. File names and folders are
taken from the torchvision classes themselves, so error messages list exactly what torchvision
looks for. Downloading is only attempted when files are missing and download=True, and any
failure becomes a DatasetUnavailableError saying which files to put where. CIFAR's pickled
batches are read only after every file matched the official md5 (a pickle can run code).
"""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from .errors import DatasetUnavailableError
from .registry import register_dataset
from .splits import RawData

# Per-socket-operation timeout while downloading: an unreachable mirror that swallows packets
# would otherwise block urllib forever (it has no default timeout).
DOWNLOAD_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class _Spec:
    cls_name: str  # attribute of torchvision.datasets
    family: str  # "mnist" (IDX files) or "cifar" (pickled batches)
    num_classes: int
    input_shape: tuple[int, int, int]


_SPECS = {
    "mnist": _Spec("MNIST", "mnist", 10, (1, 28, 28)),
    "fashion_mnist": _Spec("FashionMNIST", "mnist", 10, (1, 28, 28)),
    "cifar10": _Spec("CIFAR10", "cifar", 10, (3, 32, 32)),
    "cifar100": _Spec("CIFAR100", "cifar", 100, (3, 32, 32)),
}


def _tv_class(spec: _Spec) -> type:
    import torchvision.datasets as tvd

    return getattr(tvd, spec.cls_name)


def expected_files(name: str, root: str | Path) -> tuple[Path, list[str]]:
    """Return (folder, file names) that torchvision needs for dataset `name` under `root`."""
    spec = _SPECS[name]
    cls = _tv_class(spec)
    if spec.family == "mnist":
        # MNIST._check_exists: the *uncompressed* raw files in <root>/<ClassName>/raw.
        files = [os.path.splitext(os.path.basename(url))[0] for url, _ in cls.resources]
        return Path(root) / cls.__name__ / "raw", files
    files = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return Path(root) / cls.base_folder, files


def _missing(folder: Path, files: list[str]) -> list[str]:
    return [f for f in files if not (folder / f).is_file()]


def _unavailable(name: str, root: Path, folder: Path, files: list[str], reason: str) -> DatasetUnavailableError:
    spec = _SPECS[name]
    cls = _tv_class(spec)
    missing = _missing(folder, files)
    if spec.family == "mnist":
        urls = [f"{cls.mirrors[0]}{fname}" for fname, _ in cls.resources]
        how = (f"download {', '.join(urls)} and gunzip them into {folder} (or leave the .gz files there; "
               f"they are unpacked on load)")
    else:
        how = f"download {cls.url} and extract it into {root} (it unpacks to {folder.name}/)"
    return DatasetUnavailableError(
        f"Dataset {name!r} is not available: {reason}\n"
        f"Searched folder: {folder}\n"
        f"Expected files: {', '.join(str(folder / f) for f in files)}\n"
        f"Missing: {', '.join(missing) if missing else '(none)'}\n"
        f"To fix: on a machine with internet access run "
        f"`python -c \"import torchvision; torchvision.datasets.{cls.__name__}(root='data', download=True)\"` "
        f"and copy data/{folder.relative_to(root)} to {folder}; or {how}."
    )


def _unpack_gz(folder: Path, files: list[str]) -> None:
    # Hand-downloaded MNIST often arrives as the original .gz files; torchvision only reads the
    # unpacked ones, so unpack them here with torchvision's own helper.
    from torchvision.datasets.utils import extract_archive

    for f in _missing(folder, files):
        gz = folder / f"{f}.gz"
        if gz.is_file():
            extract_archive(str(gz), str(folder), remove_finished=False)


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _ensure_files(name: str, root: Path, download: bool) -> tuple[Path, list[str]]:
    folder, files = expected_files(name, root)
    if _SPECS[name].family == "mnist":
        _unpack_gz(folder, files)
    if not _missing(folder, files):
        return folder, files
    if not download:
        raise _unavailable(name, root, folder, files, "files are missing and download=False.")
    cls = _tv_class(_SPECS[name])
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            cls(root=str(root), train=True, download=True)
    except Exception as e:  # URLError, HTTPError, RuntimeError("Error downloading"), md5 mismatch, ...
        raise _unavailable(name, root, folder, files,
                           f"files are missing and the download failed ({type(e).__name__}: {e}).") from e
    if _missing(folder, files):
        raise _unavailable(name, root, folder, files, "the download finished but files are still missing.")
    return folder, files


def _read_mnist(cls: type, root: Path) -> tuple[torch.Tensor, ...]:
    out = []
    for train in (True, False):
        ds = cls(root=str(root), train=train, download=False)
        out += [ds.data.unsqueeze(1), ds.targets]  # (N, 28, 28) uint8 -> (N, 1, 28, 28)
    return tuple(out)


def _cifar_checksum_failures(cls: type, folder: Path) -> list[str]:
    """The CIFAR files in `folder` whose md5 differs from the official release's, as
    "name (md5 got, expected want)"; empty when every batch and the meta file match."""
    from torchvision.datasets.utils import calculate_md5

    entries = cls.train_list + cls.test_list + [[cls.meta["filename"], cls.meta["md5"]]]
    failures = []
    for name, expected in entries:
        got = calculate_md5(folder / name)
        if got != expected:
            failures.append(f"{folder / name} (md5 {got}, expected {expected})")
    return failures


def _read_cifar(name: str, cls: type, root: Path, folder: Path, files: list[str]) -> tuple[torch.Tensor, ...]:
    # CIFAR batches are pickles, and unpickling runs whatever code a file names: a crafted
    # data_batch_1 in a data folder could do anything. So every file is checked against the
    # official md5 before torchvision unpickles any of them, and a mismatch is an error, never a
    # warning: re-packed copies must be replaced by the official release.
    failures = _cifar_checksum_failures(cls, folder)
    if failures:
        raise _unavailable(name, root, folder, files,
                           "these files do not match the official release's md5 checksums and were not "
                           "read (a pickled batch can run code when loaded): " + "; ".join(failures) + ".")
    out = []
    for train in (True, False):
        ds = cls(root=str(root), train=train, download=False)
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2)  # torchvision stores HWC
        out += [x, torch.as_tensor(ds.targets, dtype=torch.int64)]
    return tuple(out)


def _load(name: str, root: Path, download: bool) -> RawData:
    spec = _SPECS[name]
    folder, files = _ensure_files(name, root, download)
    cls = _tv_class(spec)
    if spec.family == "mnist":
        x_tr, y_tr, x_te, y_te = _read_mnist(cls, root)
    else:
        x_tr, y_tr, x_te, y_te = _read_cifar(name, cls, root, folder, files)
    # One float copy in [0, 1]; normalisation happens in load_dataset with train statistics.
    to01 = lambda x: x.to(torch.float32).div_(255.0)  # noqa: E731
    return RawData(
        x_train=to01(x_tr), y_train=y_tr.long(), x_test=to01(x_te), y_test=y_te.long(),
        num_classes=spec.num_classes, input_shape=spec.input_shape, kind="image",
        default_normalize="standard",
        meta={"source": f"torchvision.datasets.{cls.__name__}", "folder": str(folder), "reader": "torchvision"},
    )


@register_dataset("mnist")
def load_mnist(*, root: Path, seed: int, download: bool) -> RawData:
    """MNIST, 60000/10000 images (1, 28, 28) from `<root>/MNIST/raw`. `seed` is unused."""
    return _load("mnist", root, download)


@register_dataset("fashion_mnist")
def load_fashion_mnist(*, root: Path, seed: int, download: bool) -> RawData:
    """Fashion-MNIST, 60000/10000 images (1, 28, 28) from `<root>/FashionMNIST/raw`. `seed` is unused."""
    return _load("fashion_mnist", root, download)


@register_dataset("cifar10")
def load_cifar10(*, root: Path, seed: int, download: bool) -> RawData:
    """CIFAR-10, 50000/10000 images (3, 32, 32) from `<root>/cifar-10-batches-py`. `seed` is unused."""
    return _load("cifar10", root, download)


@register_dataset("cifar100")
def load_cifar100(*, root: Path, seed: int, download: bool) -> RawData:
    """CIFAR-100 (fine labels, 100 classes), 50000/10000 images from `<root>/cifar-100-python`."""
    return _load("cifar100", root, download)
