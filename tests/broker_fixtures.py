"""Session-scoped real Mosquitto brokers for integration tests.

Wire into ``tests/conftest.py`` with ``pytest_plugins = ["tests.broker_fixtures"]`` (or
import the fixtures).  ``mosquitto_broker`` is one broker for the whole session, run
``SESSION_RUN_ID`` with the HMUs ``SESSION_HMU_IDS``; it is started synchronously (it is a
subprocess), so it works with any event-loop scope.  Tests sharing it share its
retained messages: publish retained only on topics a test owns, or use
``broker_fixture`` to make another session broker with its own run id::

    qkd_broker = broker_fixture("qkd-tests", ["hmu-01", "hmu-02"], tls=True)

Connect as an agent with ``aiomqtt.Client(**client_kwargs(handle, "hmu-01"))``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

from iomt.broker import BrokerConfig, BrokerHandle, MosquittoBroker, find_mosquitto
from iomt.wire.topics import hmu_id

SESSION_RUN_ID = "test-session"
SESSION_HMU_IDS: tuple[str, ...] = tuple(hmu_id(i) for i in range(20))


def run_session_broker(
    tmp_path_factory: pytest.TempPathFactory,
    run_id: str,
    hmu_ids: Sequence[str],
    *,
    tls: bool = False,
) -> Iterator[BrokerHandle]:
    """Start Mosquitto for ``run_id``, yield its handle, stop it whatever happens."""
    if find_mosquitto() is None:
        pytest.fail("integration tests need Mosquitto: apt-get install mosquitto", pytrace=False)
    run_dir = tmp_path_factory.mktemp(f"broker-{run_id}")
    broker = MosquittoBroker(BrokerConfig(tls=tls, persistence=False), run_dir, run_id, hmu_ids)
    with broker as handle:
        yield handle


def broker_fixture(
    run_id: str, hmu_ids: Sequence[str], *, tls: bool = False
) -> Callable[..., Iterator[BrokerHandle]]:
    """A session-scoped fixture yielding a Mosquitto handle for ``run_id`` and ``hmu_ids``."""
    ids = tuple(hmu_ids)

    @pytest.fixture(scope="session")
    def _broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerHandle]:
        yield from run_session_broker(tmp_path_factory, run_id, ids, tls=tls)

    return _broker


mosquitto_broker = broker_fixture(SESSION_RUN_ID, SESSION_HMU_IDS)
