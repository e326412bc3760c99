"""Where the fused CPU kernels are built and how they are loaded (harness/activations/kernels.py).

None of these tests compiles anything: the build itself is replaced by a fake wherever a test
needs a fresh build folder, so the suite builds the real kernels at most once per environment.
"""
import logging
import shutil
import threading
import time

import pytest
import torch

from harness.activations import kernels


def test_build_folder_is_named_after_sources_and_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    key = kernels.build_key()
    assert kernels.build_dir() == tmp_path / "ext" / f"harness_gate_kernels-{key}"
    assert kernels.build_key() == key  # stable between calls and processes: a pure hash

    monkeypatch.setattr(kernels, "_CFLAGS", ("-O2", "-fopenmp"))
    assert kernels.build_key() != key

    monkeypatch.undo()
    csrc = tmp_path / "csrc"
    shutil.copytree(kernels._CSRC, csrc)
    monkeypatch.setattr(kernels, "_CSRC", csrc)
    assert kernels.build_key() == key  # same bytes, other checkout: the same build is shared
    source = csrc / "gate_kernels.cpp"
    source.write_text(source.read_text() + "\n// edited\n")
    assert kernels.build_key() != key


class _FakeBuild:
    """Stands in for the compiler: records calls, returns a sentinel module."""

    def __init__(self, seconds=0.0):
        self.builds, self.imports, self.seconds = 0, 0, seconds

    def build(self, directory):
        self.builds += 1
        time.sleep(self.seconds)
        (directory / "harness_gate_kernels.so").write_bytes(b"built")
        return "module"

    def load(self, directory):
        self.imports += 1
        assert (directory / "harness_gate_kernels.so").read_bytes() == b"built"
        return "module"


@pytest.fixture
def fake_build(tmp_path, monkeypatch):
    fake = _FakeBuild()
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(kernels, "_build_here", fake.build)
    monkeypatch.setattr(kernels, "_import_built", fake.load)
    return fake


def test_first_use_builds_once_and_says_so_on_one_line(fake_build, capsys):
    module, facts = kernels._build_or_import()
    assert module == "module" and fake_build.builds == 1
    assert facts["built_in_process"] is True and facts["build_seconds"] >= 0
    assert facts["build_dir"] == str(kernels.build_dir())

    module, facts = kernels._build_or_import()  # a later process: imports, builds nothing
    assert fake_build.builds == 1 and fake_build.imports == 1
    assert facts == {"build_dir": str(kernels.build_dir()), "built_in_process": False, "build_seconds": None}


def test_the_message_names_the_build_and_a_killed_build_is_not_reused(tmp_path, monkeypatch, capsys):
    """The real `_build_here`, with torch's compiler call replaced: one stderr line, stale library gone."""
    import torch.utils.cpp_extension as cpp_extension

    calls = []
    monkeypatch.setattr(cpp_extension, "load", lambda **kw: calls.append(kw) or "module")
    (tmp_path / "harness_gate_kernels.so").write_bytes(b"half written")
    assert kernels._build_here(tmp_path) == "module"
    assert not (tmp_path / "harness_gate_kernels.so").exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("harness: building the fused CPU kernels (first use")
    assert calls[0]["build_directory"] == str(tmp_path) and calls[0]["with_cuda"] is False
    assert calls[0]["extra_cflags"] == list(kernels._CFLAGS)


def test_a_second_process_waits_for_the_build_under_way_instead_of_building(fake_build):
    fake_build.seconds = 0.3
    results = []
    threads = [threading.Thread(target=lambda: results.append(kernels._build_or_import()[1])) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake_build.builds == 1 and fake_build.imports == 1
    assert sorted(r["built_in_process"] for r in results) == [False, True]


def test_a_failed_build_leaves_no_completion_mark(fake_build, monkeypatch):
    def broken(directory):
        raise RuntimeError("no compiler")

    monkeypatch.setattr(kernels, "_build_here", broken)
    with pytest.raises(RuntimeError, match="no compiler"):
        kernels._build_or_import()
    assert not (kernels.build_dir() / kernels._COMPLETE).exists()


def test_cuda_home_warning_of_cpp_extension_is_dropped(caplog):
    logger = logging.getLogger("torch.utils.cpp_extension")
    with caplog.at_level(logging.WARNING, logger="torch.utils.cpp_extension"):
        logger.warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local/cuda")
        logger.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]


def test_loaded_kernels_report_where_they_came_from():
    if kernels.load() is None:
        pytest.skip(f"compiled kernels unavailable: {kernels.status()['error']}")
    status = kernels.status()
    assert status["build_dir"] == str(kernels.build_dir())
    assert (kernels.build_dir() / kernels._COMPLETE).exists()
    assert isinstance(status["built_in_process"], bool)
    assert (status["build_seconds"] is not None) == status["built_in_process"]


def test_count_correct_and_fold_steps_follow_torch_argmax_ties_and_nans():
    """The trainer's C++ accuracy counter: torch.argmax's first maximum on ties, a NaN as the
    maximum (the first NaN), all-equal rows; fold_steps sums the losses in float64."""
    if kernels.load() is None:
        pytest.skip("compiled kernels unavailable")
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 7, generator=gen).round()  # rounding makes ties common
    logits[3] = 0.0
    logits[5, 2] = float("nan")
    logits[6, [1, 4]] = float("nan")
    logits[7] = float("nan")
    logits[8, 0] = float("inf")
    labels = torch.randint(0, 7, (500,), generator=gen)
    labels[3], labels[5], labels[6], labels[7] = 0, 2, 1, 0
    expected = int((logits.argmax(1) == labels).sum())
    assert 0 < kernels.count_correct(logits, labels) == expected < 500
    assert kernels.count_correct(logits.t().contiguous().t(), labels) == expected  # non-contiguous input
    halves = [logits[:250], logits[250:]], [labels[:250], labels[250:]]
    losses = [torch.tensor(0.1), torch.tensor(0.2, dtype=torch.float64)]
    loss_sum, correct = kernels.fold_steps(losses, *halves)
    assert correct == expected and loss_sum == pytest.approx(float(torch.tensor(0.1)) + 0.2, abs=1e-15)
    with pytest.raises(RuntimeError, match="int64 CPU labels"):
        kernels.count_correct(logits, labels.int())
