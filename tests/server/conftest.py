"""Server fixtures: a key ring, a small organisation and the test forms, on both databases."""

from __future__ import annotations

import pytest

from fieldsync.services import keyring
from tests.server.support import make_org, publish_test_forms


@pytest.fixture
def world(app, client):
    """The test client over an app with a key ring, services, sites, users and test forms."""
    keyring.ensure(app)
    make_org()
    publish_test_forms()
    return client
