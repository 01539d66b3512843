"""Fixtures shared by several test files."""
import pytest

from tests.test_train import train


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A tiny model (stage 0, then 4 VQA steps), trained once for the session: out/ckpt.pt, out/vit.pt, data/."""
    tmp = tmp_path_factory.mktemp("trained")
    train(tmp, "--vit_iters=4", "--max_iters=4", "--eval_interval=4")
    return tmp
