"""The broker's books from Mosquitto's debug log lines (pure parsing)."""

from iomt.broker.log_account import BrokerAccount

TOPIC = "iomt/r-1/tier/server/hmu-03/update"
LOG = f"""\
2026-12-04T18:16:52: Received PUBLISH from hmu-03 (d0, q1, r0, m7, '{TOPIC}', ... (4096 bytes))
2026-12-04T18:16:52: Sending PUBLISH to server (d0, q1, r0, m2, '{TOPIC}', ... (4096 bytes))
2026-12-04T18:16:52: Received PUBLISH from hmu-03 (d0, q1, r0, m8, '{TOPIC}', ... (4096 bytes))
2026-12-04T18:16:52: Received PUBLISH from hmu-03 (d0, q1, r0, m9, '{TOPIC}', ... (4096 bytes))
2026-12-04T18:16:52: Outgoing messages are being dropped for client server.
2026-12-04T18:16:53: Denied PUBLISH from hmu-03 (d0, q1, r0, m10, '{TOPIC}', ... (4096 bytes))
T: Received PUBLISH from hmu-01 (d0, q1, r0, m1, 'iomt/r-1/st/hmu-01', ... (9 bytes))
2026-12-04T18:16:53: New client connected from 127.0.0.1:5 as hmu-01 (p2, c0, k60, u'hmu-01').
"""


def test_the_books_of_one_topic():
    account = BrokerAccount().feed(LOG.splitlines())
    books = account.topic("hmu-03", TOPIC, "server")
    assert books == {"received": 3, "denied": 1, "sent": 1, "dropped": 2}
    assert account.dropping == {"server": 1}
    assert account.received[("hmu-01", "iomt/r-1/st/hmu-01")] == 1


def test_unrelated_lines_count_nothing():
    account = BrokerAccount().feed(["Client hmu-03 disconnected.", "", "garbage ' m1 '"])
    assert not account.received and not account.sent and not account.dropping
    assert account.topic("hmu-03", TOPIC, "server")["dropped"] == 0
