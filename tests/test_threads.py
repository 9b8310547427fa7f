"""The CPU thread policy (pyg_ssgm.threads)."""
import pytest
import torch

from pyg_ssgm import threads
from pyg_ssgm.errors import ConfigError
from pyg_ssgm.threads import AUTO_MAX_THREADS, apply_thread_policy, auto_threads


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("cores,load,expected", [
    (2, 0.0, 2), (2, 0.4, 2), (2, 1.0, 1), (2, 2.0, 1), (2, 12.0, 1),  # never below 1
    (16, 0.0, AUTO_MAX_THREADS), (16, 14.0, 2),
])
def test_auto_threads_leaves_the_busy_cores_alone(cores, load, expected):
    assert auto_threads(load=load, cores=cores) == expected


def test_explicit_threads_win(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert apply_thread_policy(1) == 1 and torch.get_num_threads() == 1
    assert apply_thread_policy(0) == 2  # the user's OMP_NUM_THREADS counts as explicit
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "auto_threads", lambda: 3)  # the load average moves: fix it
    assert apply_thread_policy(0) == 3 and torch.get_num_threads() == 3


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
def test_bad_threads_are_named_errors(bad):
    with pytest.raises(ConfigError, match="threads"):
        apply_thread_policy(bad)
