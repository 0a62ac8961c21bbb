import pytest
import torch


@pytest.fixture
def one_thread():
    """Exact equality across processes needs one reduction order: with several threads the BLAS may
    split sums differently from run to run (e.g. by load), and Adam turns tiny gradient differences
    into lr-sized steps."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
