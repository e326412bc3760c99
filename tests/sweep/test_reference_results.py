"""Slow end-to-end checks against published numbers (run by CI via `make test-slow`)."""
import pytest

from harness.sweep.run import execute
from support.configs import compose_config


@pytest.mark.slow
def test_mnist1d_cnn_with_published_settings_reaches_92_percent(tmp_path):
    """Greydanus 2020: CNN, Adam lr 1e-2, batch 100, 6000 steps -> 94% published; we require >= 92%."""
    cfg = compose_config("model=cnn1d", "optimizer=adam", "optimizer.lr=1e-2", "trainer.batch_size=100", "trainer.steps=6000")
    record = execute(cfg, tmp_path)
    assert record["status"] == "ok"
    assert record["metrics"]["params"] == 5210
    assert record["metrics"]["final_test_acc"] >= 0.92, record["metrics"]["final_test_acc"]
