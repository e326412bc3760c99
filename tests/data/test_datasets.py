"""load_dataset: shapes, numbers, caching, seeding, splits, normalisation, errors, configs.

The torchvision sets cannot be downloaded here, so these tests write small files in the real
on-disk formats (IDX for MNIST/Fashion-MNIST, pickled batches for CIFAR) and load them back
through the same code a user's real files go through.
"""
from __future__ import annotations

import gzip
import json
import pickle
import random
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from harness.errors import ConfigError, ParameterError, UnknownNameError
from harness.data import DATASETS, DatasetUnavailableError, dataset_params, load_dataset

CONF_DIR = Path(__file__).resolve().parents[2] / "harness" / "conf" / "dataset"
ALL_NAMES = {"mnist1d", "mnist1d_large", "digits", "hamming", "teacher_student", "spirals",
             "mnist", "fashion_mnist", "cifar10", "cifar100"}


@pytest.fixture(scope="module")
def mnist1d_root(tmp_path_factory) -> Path:
    """A root holding the cached default mnist1d set (generated once for the whole module)."""
    root = tmp_path_factory.mktemp("m1d")
    load_dataset("mnist1d", root=root)
    return root


# --------------------------------------------------------------------------- generic shape checks

# (name, params, num_train, num_test, num_classes, input_shape, kind)
CASES = [
    ("mnist1d", {}, 4000, 1000, 10, (40,), "sequence"),
    ("digits", {}, 1437, 360, 10, (64,), "vector"),
    ("digits", {"as_image": True}, 1437, 360, 10, (1, 8, 8), "image"),
    ("digits", {"as_image": True, "image_size": 28}, 1437, 360, 10, (1, 28, 28), "image"),
    ("hamming", {}, 1600, 400, 2, (10,), "vector"),
    ("teacher_student", {}, 4000, 1000, 4, (20,), "vector"),
    ("spirals", {}, 1000, 1000, 2, (2,), "vector"),
]


def test_registry_holds_every_dataset():
    assert set(DATASETS) == ALL_NAMES


@pytest.mark.parametrize("name,params,n_tr,n_te,n_cls,shape,kind", CASES,
                         ids=[f"{c[0]}{'-' + '-'.join(c[1]) if c[1] else ''}" for c in CASES])
def test_shapes_dtypes_and_labels(name, params, n_tr, n_te, n_cls, shape, kind, mnist1d_root):
    d = load_dataset(name, root=mnist1d_root, **params)
    assert d.name == name and d.kind == kind and d.num_classes == n_cls and d.input_shape == shape
    assert d.x_train.shape == (n_tr, *shape) and d.x_test.shape == (n_te, *shape)
    assert d.y_train.shape == (n_tr,) and d.y_test.shape == (n_te,)
    assert d.x_train.dtype == d.x_test.dtype == torch.float32
    assert d.y_train.dtype == d.y_test.dtype == torch.int64
    assert d.x_val is None and d.y_val is None
    for y in (d.y_train, d.y_test):
        assert int(y.min()) >= 0 and int(y.max()) < n_cls
    # every class present in train: the sets are usable as classification tasks
    assert torch.bincount(d.y_train, minlength=n_cls).min() > 0
    assert torch.isfinite(d.x_train).all()
    s = d.summary()
    json.dumps(s)  # goes into the run record as JSON
    assert (s["num_train"], s["num_test"], s["num_val"], s["input_shape"]) == (n_tr, n_te, 0, list(shape))
    assert sum(s["train_class_counts"]) == n_tr


# --------------------------------------------------------------------------- mnist1d

def test_mnist1d_cache_hit_returns_identical_tensors_without_generating(mnist1d_root, monkeypatch):
    files = list((mnist1d_root / "mnist1d").glob("*.npz"))
    assert len(files) == 1
    first = load_dataset("mnist1d", root=mnist1d_root)
    assert first.meta["cache_hit"] and first.meta["cache_file"] == str(files[0])

    import mnist1d.data

    def boom(*a, **k):
        raise AssertionError("generator called despite a cache file")

    monkeypatch.setattr(mnist1d.data, "make_dataset", boom)
    second = load_dataset("mnist1d", root=mnist1d_root)
    for a, b in [(first.x_train, second.x_train), (first.y_train, second.y_train),
                 (first.x_test, second.x_test), (first.y_test, second.y_test)]:
        assert torch.equal(a, b)


@pytest.mark.slow  # subprocess or large model: runs with make test-slow (CI)
def test_mnist1d_matches_the_package_and_keeps_global_rng(mnist1d_root):
    import mnist1d.data

    np.random.seed(123)
    random.seed(123)
    expect_np, expect_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    d = load_dataset("mnist1d", root=mnist1d_root / "fresh")  # forces generation
    assert not d.meta["cache_hit"]
    # Generating must not reseed the caller's global RNGs (the package calls np.random.seed).
    assert np.random.rand() == expect_np and random.random() == expect_py

    ref = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())  # package defaults, seed 42
    np.testing.assert_allclose(d.x_train.numpy(), ref["x"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(d.y_train.numpy(), ref["y"])
    np.testing.assert_allclose(d.x_test.numpy(), ref["x_test"], rtol=0, atol=1e-6)
    # "raw" values: the package standardises the whole set itself
    assert abs(float(d.x_train.mean())) < 0.02 and abs(float(d.x_train.std()) - 1) < 0.02


def test_mnist1d_custom_sizes_and_cache_key(tmp_path):
    a = load_dataset("mnist1d", root=tmp_path, num_train=95, num_test=10)  # 105 -> 110 generated, trimmed
    assert a.x_train.shape == (95, 40) and a.x_test.shape == (10, 40)
    b = load_dataset("mnist1d", root=tmp_path, num_train=95, num_test=10, data_seed=7)
    assert len(list((tmp_path / "mnist1d").glob("*.npz"))) == 2  # different args, different key
    assert not torch.equal(a.x_train, b.x_train)
    c = load_dataset("mnist1d", root=tmp_path, num_train=95, num_test=10, data_seed=None, seed=7)
    assert torch.equal(b.x_train, c.x_train)  # data_seed=None generates from `seed`


# --------------------------------------------------------------------------- digits

def test_digits_resized_images_keep_the_digit():
    """image_size=28 is a bilinear upsampling: each 8x8 image's mean survives (within the border
    effect), the values stay in [0, 1], and a bad size or a vector request is refused."""
    small = load_dataset("digits", as_image=True)
    big = load_dataset("digits", as_image=True, image_size=28)
    assert big.x_train.shape[1:] == (1, 28, 28)
    assert float(big.x_train.min()) >= 0.0 and float(big.x_train.max()) <= 1.0 + 1e-6
    assert torch.equal(small.y_train, big.y_train)
    means_small = small.x_train.mean(dim=(1, 2, 3))
    means_big = big.x_train.mean(dim=(1, 2, 3))
    assert torch.allclose(means_small, means_big, atol=0.02)
    # Shrunk back by area averaging, each 28x28 image is far closer to its own source than to another digit's.
    back = torch.nn.functional.interpolate(big.x_train[:50], size=(8, 8), mode="area")
    own = (back - small.x_train[:50]).abs().mean()
    other = (back - small.x_train[:50].roll(1, dims=0)).abs().mean()
    assert own < 0.1 and own < 0.4 * other
    with pytest.raises(ConfigError, match="image_size must be an integer in \\[8, 64\\]"):
        load_dataset("digits", as_image=True, image_size=4)
    with pytest.raises(ConfigError, match="needs as_image=true"):
        load_dataset("digits", image_size=16)


def test_digits_scaled_by_16_and_stratified():
    d = load_dataset("digits")
    assert float(d.x_train.max()) == 1.0 and float(d.x_train.min()) == 0.0
    raw = load_dataset("digits", normalize="none")
    assert torch.equal(raw.x_train / 16, d.x_train)
    assert torch.equal(raw.x_train, raw.x_train.round()) and float(raw.x_train.max()) == 16.0
    tr = torch.bincount(d.y_train, minlength=10).double() / len(d.y_train)
    te = torch.bincount(d.y_test, minlength=10).double() / len(d.y_test)
    assert (tr - te).abs().max() < 0.01
    other = load_dataset("digits", seed=1)
    assert not torch.equal(d.y_test, other.y_test)  # the split is seeded


# --------------------------------------------------------------------------- synthetic sets

def test_hamming_labels_follow_the_weight_rule():
    d = load_dataset("hamming")
    for x, y in [(d.x_train, d.y_train), (d.x_test, d.y_test)]:
        assert set(x.unique().tolist()) == {0.0, 1.0}
        weights = [sum(1 for v in row if v == 1.0) for row in x.tolist()]
        assert y.tolist() == [int(w > 5) for w in weights]
    d3 = load_dataset("hamming", dim=6, threshold=2, num_samples=300)
    assert d3.y_train.tolist() == [int(sum(r) > 2) for r in d3.x_train.tolist()]


def test_teacher_student_labels_not_constant():
    d = load_dataset("teacher_student", num_classes=3, dim=5, num_train=500, num_test=100)
    assert d.x_train.shape == (500, 5) and d.num_classes == 3
    assert torch.bincount(d.y_train, minlength=3).min() > 0


def test_spirals_balanced_two_arms():
    d = load_dataset("spirals", noise=0.0, turns=1.5)
    assert torch.bincount(d.y_train).tolist() == [500, 500]
    x, y = d.x_train.double(), d.y_train.double()
    r = x.norm(dim=1)
    assert float(r.max()) <= 1.0 + 1e-6  # radius in [0, 1] without noise
    # Without noise every point sits on its arm: angle = r * turns * 2pi, plus pi for class 1.
    theta = r * 1.5 * 2 * torch.pi + y * torch.pi
    on_arm = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=1)
    torch.testing.assert_close(x, on_arm, atol=1e-5, rtol=0)
    noisy = load_dataset("spirals", noise=0.1)
    resid = noisy.x_train.double() - on_arm  # same seed -> same radii/angles, plus noise
    assert abs(float(resid.std()) - 0.1) < 0.01


@pytest.mark.parametrize("name", ["hamming", "teacher_student", "spirals"])
def test_synthetic_same_seed_identical_different_seed_different(name):
    a, b, c = load_dataset(name, seed=3), load_dataset(name, seed=3), load_dataset(name, seed=4)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)


# --------------------------------------------------------------------------- val split and normalisation

def _rows(x: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(r) for r in x.tolist()}


def test_val_split_sizes_disjoint_and_seeded():
    full = load_dataset("teacher_student", seed=5)
    d = load_dataset("teacher_student", seed=5, val_fraction=0.1)
    assert d.x_val.shape == (400, 20) and d.x_train.shape == (3600, 20) and d.y_val.shape == (400,)
    tr, va = _rows(d.x_train), _rows(d.x_val)
    assert not tr & va
    assert tr | va == _rows(full.x_train)  # carved from train, nothing lost or invented
    assert torch.equal(d.x_test, full.x_test)  # test untouched
    again = load_dataset("teacher_student", seed=5, val_fraction=0.1)
    assert torch.equal(again.x_val, d.x_val)
    assert d.summary()["num_val"] == 400 and sum(d.summary()["val_class_counts"]) == 400


def test_standard_normalisation_uses_train_only_statistics():
    d = load_dataset("digits", normalize="standard", val_fraction=0.2)
    raw = load_dataset("digits", normalize="none", val_fraction=0.2)
    mean = raw.x_train.mean(0)
    std = raw.x_train.std(0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))  # constant pixels are left at 0
    torch.testing.assert_close(d.x_train, (raw.x_train - mean) / std)
    torch.testing.assert_close(d.x_val, (raw.x_val - mean) / std)
    torch.testing.assert_close(d.x_test, (raw.x_test - mean) / std)
    stats = d.summary()["normalize"]
    assert stats["method"] == "standard" and stats["per"] == "feature" and len(stats["mean"]) == 64


def test_sequence_standardises_globally_and_minmax(mnist1d_root):
    d = load_dataset("mnist1d", root=mnist1d_root, normalize="standard")
    assert len(d.meta["normalize"]["mean"]) == 1
    assert abs(float(d.x_train.mean())) < 1e-5 and abs(float(d.x_train.std(unbiased=False)) - 1) < 1e-4
    m = load_dataset("spirals", normalize="minmax")
    assert torch.allclose(m.x_train.amin(0), torch.zeros(2)) and torch.allclose(m.x_train.amax(0), torch.ones(2))


# --------------------------------------------------------------------------- errors

def test_unknown_name_suggests_close_match():
    with pytest.raises(ValueError) as e:
        load_dataset("mnist1")
    msg = str(e.value)
    assert "'mnist1d'" in msg and "Did you mean" in msg
    for n in ALL_NAMES:
        assert n in msg
    assert isinstance(e.value, UnknownNameError)


@pytest.mark.parametrize("kwargs,needle", [
    ({"val_fraction": 1.0}, "val_fraction must be in [0, 1)"),
    ({"val_fraction": -0.1}, "val_fraction must be in [0, 1)"),
    ({"num_train": 0}, "num_train must be an integer >= 1"),
    ({"num_test": 2.5}, "num_test must be an integer"),
    ({"num_trian": 10}, "did you mean 'num_train'"),
    ({"normalize": "zscore"}, "Allowed: none, standard, minmax, scale16"),
])
def test_invalid_params_say_what_is_allowed(kwargs, needle, tmp_path):
    with pytest.raises(ValueError) as e:
        load_dataset("mnist1d", root=tmp_path, **kwargs)
    assert needle in str(e.value)
    assert isinstance(e.value, ParameterError)  # the one error family the app catches
    assert not (tmp_path / "mnist1d").exists()  # rejected before any generation


def test_unknown_param_lists_allowed_ones():
    with pytest.raises(ValueError, match=r"Allowed: test_fraction, stratify, as_image"):
        load_dataset("digits", num_train=10)


# --------------------------------------------------------------------------- torchvision sets

def _write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> None:
    magic = 2051 if arr.ndim == 3 else 2049  # images / labels
    payload = struct.pack(">i", magic) + b"".join(struct.pack(">i", s) for s in arr.shape)
    payload += arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def _write_mnist(root: Path, folder: str, gz: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 20, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 10, dtype=np.uint8),
    }
    for fname, arr in arrays.items():
        _write_idx(root / folder / "raw" / fname, arr, gz=gz)
    return arrays


@pytest.mark.parametrize("name,folder,gz", [("mnist", "MNIST", False), ("fashion_mnist", "FashionMNIST", True)])
def test_mnist_family_reads_idx_files(tmp_path, name, folder, gz):
    w = _write_mnist(tmp_path, folder, gz=gz)
    d = load_dataset(name, root=tmp_path, download=False, normalize="none")
    assert d.x_train.shape == (20, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28)
    assert d.kind == "image" and d.num_classes == 10
    np.testing.assert_array_equal((d.x_train[:, 0] * 255).round().numpy().astype(np.uint8),
                                  w["train-images-idx3-ubyte"])
    np.testing.assert_array_equal((d.x_test[:, 0] * 255).round().numpy().astype(np.uint8),
                                  w["t10k-images-idx3-ubyte"])
    assert d.y_train.tolist() == w["train-labels-idx1-ubyte"].tolist()
    assert d.y_test.tolist() == w["t10k-labels-idx1-ubyte"].tolist()
    # default "standard": one mean/std for the single channel, fitted on train pixels in [0, 1]
    s = load_dataset(name, root=tmp_path, download=False)
    px = w["train-images-idx3-ubyte"].astype(np.float64) / 255
    assert s.summary()["normalize"]["mean"] == pytest.approx([px.mean()], rel=1e-5)
    assert s.summary()["normalize"]["std"] == pytest.approx([px.std()], rel=1e-5)
    assert abs(float(s.x_train.mean())) < 1e-5


def _write_cifar(root: Path, name: str) -> dict[str, tuple[np.ndarray, list[int]]]:
    rng = np.random.default_rng(1)
    if name == "cifar10":
        folder, files, key, n_cls = "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], "labels", 10
        meta = ("batches.meta", {"label_names": [f"c{i}" for i in range(10)], "num_vis": 3072})
    else:
        folder, files, key, n_cls = "cifar-100-python", ["train", "test"], "fine_labels", 100
        meta = ("meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                         "coarse_label_names": [f"k{i}" for i in range(20)]})
    (root / folder).mkdir(parents=True)
    written = {}
    for i, f in enumerate(files):
        n = 3 + i % 2
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, n_cls, n).tolist()
        entry = {"data": data, key: labels, "filenames": [f"img{j}.png" for j in range(n)]}
        if name == "cifar100":
            entry["coarse_labels"] = [lab // 5 for lab in labels]
        with open(root / folder / f, "wb") as fh:
            pickle.dump(entry, fh)
        written[f] = (data, labels)
    with open(root / folder / meta[0], "wb") as fh:
        pickle.dump(meta[1], fh)
    return written


def _cat(written, files):
    x = np.concatenate([written[f][0] for f in files]).reshape(-1, 3, 32, 32)
    return x, sum((written[f][1] for f in files), [])


def _trust_written_files(monkeypatch, root: Path, name: str) -> None:
    """Make torchvision's class expect the md5s of the files `_write_cifar` wrote (instead of the
    official release's), as if they were the real set."""
    import hashlib

    import torchvision.datasets as tvd

    cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
    folder = root / cls.base_folder
    md5 = lambda f: hashlib.md5((folder / f).read_bytes()).hexdigest()  # noqa: E731
    monkeypatch.setattr(cls, "train_list", [[f, md5(f)] for f, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[f, md5(f)] for f, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(cls.meta["filename"])})


@pytest.mark.parametrize("name,n_cls,train_files,test_files", [
    ("cifar10", 10, [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]),
    ("cifar100", 100, ["train"], ["test"]),
])
def test_cifar_reads_verified_batches(tmp_path, monkeypatch, name, n_cls, train_files, test_files):
    w = _write_cifar(tmp_path, name)
    _trust_written_files(monkeypatch, tmp_path, name)
    d = load_dataset(name, root=tmp_path, download=False, normalize="none")
    assert d.meta["reader"] == "torchvision" and d.num_classes == n_cls
    x_tr, y_tr = _cat(w, train_files)
    x_te, y_te = _cat(w, test_files)
    assert d.x_train.shape == (len(y_tr), 3, 32, 32) and d.x_test.shape == (len(y_te), 3, 32, 32)
    np.testing.assert_array_equal((d.x_train * 255).round().numpy().astype(np.uint8), x_tr)
    np.testing.assert_array_equal((d.x_test * 255).round().numpy().astype(np.uint8), x_te)
    assert d.y_train.tolist() == y_tr and d.y_test.tolist() == y_te
    s = load_dataset(name, root=tmp_path, download=False)  # default: per-channel standard
    stats = s.summary()["normalize"]
    assert stats["per"] == "channel" and len(stats["mean"]) == 3
    assert stats["mean"] == pytest.approx((x_tr / 255).mean(axis=(0, 2, 3)).tolist(), rel=1e-5)


class _CreatesAFile:
    """Unpickling this calls open(path, 'w'): a stand-in for any code a crafted batch could run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_cifar_batch_failing_its_md5_is_refused_before_anything_is_unpickled(tmp_path, monkeypatch):
    _write_cifar(tmp_path, "cifar10")
    _trust_written_files(monkeypatch, tmp_path, "cifar10")
    ran = tmp_path / "code_ran"
    crafted = pickle.dumps({"data": _CreatesAFile(ran), "labels": [0]})
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(crafted)
    with pytest.raises(DatasetUnavailableError) as e:
        load_dataset("cifar10", root=tmp_path, download=False)
    reason = str(e.value).splitlines()[0]  # the lines after it list every expected file
    assert f"{tmp_path / 'cifar-10-batches-py' / 'data_batch_1'} (md5 " in reason and "were not read" in reason
    assert "data_batch_2" not in reason  # only the file that failed is named
    assert not ran.exists()
    pickle.loads(crafted)  # the file was a real threat: loading it does run code
    assert ran.exists()


def test_cifar_copies_that_are_not_the_official_release_are_refused(tmp_path):
    """Our small test files have their own md5s: without the official ones, nothing is read."""
    _write_cifar(tmp_path, "cifar100")
    with pytest.raises(DatasetUnavailableError, match="do not match the official release's md5") as e:
        load_dataset("cifar100", root=tmp_path, download=False)
    for f in ("train", "test", "meta"):
        assert f"{tmp_path / 'cifar-100-python' / f} (md5 " in str(e.value)
    assert isinstance(e.value, ConfigError)


@pytest.mark.parametrize("name,folder,expected", [
    ("mnist", "MNIST/raw", "train-images-idx3-ubyte"),
    ("fashion_mnist", "FashionMNIST/raw", "t10k-labels-idx1-ubyte"),
    ("cifar10", "cifar-10-batches-py", "data_batch_5"),
    ("cifar100", "cifar-100-python", "train"),
])
def test_missing_files_offline_raise_clear_error(tmp_path, name, folder, expected):
    with pytest.raises(DatasetUnavailableError) as e:
        load_dataset(name, root=tmp_path, download=False)
    msg = str(e.value)
    assert str(tmp_path / folder) in msg and expected in msg and "download=False" in msg
    assert isinstance(e.value, RuntimeError) and isinstance(e.value, ConfigError)


@pytest.mark.parametrize("name,module", [("mnist", "mnist"), ("cifar10", "cifar")])
def test_failed_download_becomes_clear_error(tmp_path, monkeypatch, name, module):
    import importlib

    calls = []

    def no_network(url, *a, **k):
        calls.append(url)
        raise URLError("[Errno -3] Temporary failure in name resolution")

    # Patch the helper torchvision's download() calls, so its real mirror loop runs.
    monkeypatch.setattr(importlib.import_module(f"torchvision.datasets.{module}"),
                        "download_and_extract_archive", no_network)
    with pytest.raises(DatasetUnavailableError, match="download failed") as e:
        load_dataset(name, root=tmp_path, download=True)
    assert calls, "download was not attempted"
    assert "name resolution" in str(e.value) and str(tmp_path) in str(e.value)
    assert e.value.__cause__ is not None


# --------------------------------------------------------------------------- device and configs

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_load_onto_cuda():
    d = load_dataset("digits", device="cuda", val_fraction=0.1)
    assert all(t.is_cuda for t in (d.x_train, d.y_train, d.x_val, d.y_val, d.x_test, d.y_test))
    assert d.summary()["device"].startswith("cuda")


def _configs():
    from omegaconf import OmegaConf

    return {p.stem: OmegaConf.to_container(OmegaConf.load(p)) for p in sorted(CONF_DIR.glob("*.yaml"))}


def test_every_dataset_has_a_config_with_valid_keys():
    cfgs = _configs()
    assert set(cfgs) == ALL_NAMES
    common = {"val_fraction", "normalize", "download"}
    for stem, cfg in cfgs.items():
        assert cfg["name"] == stem
        allowed = set(dataset_params(cfg["name"])) | common | {"name"}
        assert set(cfg) <= allowed, (stem, set(cfg) - allowed)
        for k, v in dataset_params(cfg["name"]).items():  # configs spell out the loader defaults
            if k in cfg:
                assert cfg[k] == v, (stem, k)


@pytest.mark.parametrize("stem", ["mnist1d", "digits", "hamming", "teacher_student", "spirals"])
def test_config_loads_as_kwargs(stem, mnist1d_root):
    cfg = _configs()[stem]
    d = load_dataset(**cfg, root=mnist1d_root)
    assert d.name == stem and d.x_train.shape[0] > 0
