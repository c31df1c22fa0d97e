"""The one error hierarchy of the testbed, and the CLI exit code of each branch.

    TestbedError                      every error the testbed raises on purpose
     ├── UsageError        (exit 2)   a bad command line or option
     ├── ScenarioError     (exit 2)   a scenario file that does not validate
     ├── DataError         (exit 1)   a dataset or capture that is missing or malformed
     ├── BrokerError       (exit 1)   the broker cannot be started, reached or joined
     ├── RunError          (exit 1)   a run that cannot go on (no HMU online, ...)
     │    └── IncompleteRun (exit 3)  a run that ended without completing (results say why)
     ├── QkdError          (exit 1)   key distribution that cannot run as configured
     ├── EnvironmentProblem (exit 4)  the machine: a directory that is unwritable or full
     ├── Interrupted     (exit 130)  the user stopped a command with Ctrl-C; what finished is kept
 ├── StateError        (exit 1)   an agent fed its own state machine an event its
     │                                phase does not take (a bug, never a peer's doing)
     └── PeerError         (never fatal) a peer sent something we refuse
          ├── DecodeError              the bytes are not a valid frame or message
          ├── ProtocolViolation        a valid message at the wrong time or place
          │    └── UnexpectedEvent     ... that the receiver's phase does not accept
          └── AuthenticationError      a message that fails its MAC or AEAD tag

A ``PeerError`` is the peer's fault: agents count it, log it and go on; it never
reaches the CLI.  Every other branch maps to an exit code and a one-line message
that says what to do.
"""

from __future__ import annotations


class TestbedError(Exception):
    """Base of every error raised on purpose by the testbed."""

    __test__ = False  # not a pytest test class, despite the name
    exit_code = 1


class UsageError(TestbedError):
    """A bad command line: unknown option, malformed ``--set`` and the like."""

    exit_code = 2


class ScenarioError(TestbedError):
    """A scenario file that cannot be read or does not validate."""

    exit_code = 2


class DataError(TestbedError):
    """A dataset, pcap or feature table that is missing or malformed."""


class BrokerError(TestbedError):
    """The MQTT broker cannot be started, reached or authenticated against."""


class RunError(TestbedError):
    """A run that cannot go on, for example because no HMU came online."""


class Interrupted(TestbedError):
    """Ctrl-C: the command stopped; the message says what was kept and how to go on."""

    exit_code = 130


class IncompleteRun(RunError):
    """A run that ended before its last round or lost a round's updates; its results say why."""

    exit_code = 3


class QkdError(TestbedError):
    """Key distribution that cannot run with the given parameters."""


class EnvironmentProblem(TestbedError):
    """The machine refuses: a directory that cannot be created or written, a full disk."""

    exit_code = 4


class StateError(TestbedError):
    """An event the agent itself raised that its state machine's phase does not take."""


class PeerError(TestbedError):
    """Something a peer sent that we refuse; counted and dropped, never fatal."""


class DecodeError(PeerError):
    """Bytes that are not a valid frame, envelope, message or tensor bundle."""


class ProtocolViolation(PeerError):
    """A well-formed message that is not allowed in the receiver's current state."""


class ReplayError(ProtocolViolation):
    """A sealed payload whose counter (or pad offset) was already used or is too old."""


class AuthenticationError(PeerError):
    """A message whose MAC or AEAD tag does not verify (tampered or wrong key)."""


class UnexpectedEvent(ProtocolViolation):
    """A peer's message that the receiver's state machine does not accept in its phase."""
