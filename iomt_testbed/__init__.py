"""iomt-testbed: an MQTT testbed for secure federated intrusion detection in hospitals."""

__version__ = "0.1.0"
