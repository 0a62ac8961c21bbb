import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine every small op would wait
    for a second core (as in tests/methods, where these tests lived)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
