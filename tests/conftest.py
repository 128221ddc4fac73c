import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def openai_server():
    from support.openai_server import OpenAIServer

    with OpenAIServer() as server:
        yield server


@pytest.fixture
def openai_env(openai_server):
    """Environment for a CLI subprocess that talks to the loopback server."""
    return {"OPENAI_API_KEY": openai_server.api_key, "OPENAI_BASE_URL": openai_server.url}
