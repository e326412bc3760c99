"""Tests for harness.measure.threads: the block runs at n threads and the old count comes back."""
import pytest
import torch

from harness.measure import num_threads


def test_sets_and_restores_the_thread_count():
    before = torch.get_num_threads()
    with num_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_restores_when_the_block_raises():
    before = torch.get_num_threads()
    with pytest.raises(KeyError):
        with num_threads(1):
            raise KeyError("x")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_rejects_a_bad_count(bad):
    before = torch.get_num_threads()
    with pytest.raises(ValueError, match="positive integer"):
        with num_threads(bad):
            pass
    assert torch.get_num_threads() == before
