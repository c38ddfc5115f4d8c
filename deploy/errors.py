"""Errors of the deploy package (a bad setting is ``schemas.errors.SettingsError``).

    DeployError
    ├── StackError           the embedded stack cannot start, is not running, or a part died
    ├── StartError           a long-running part cannot start: a setting it needs, a bad option, its metrics port
    └── TopicError           topics cannot be created

``PART_ERRORS`` are what a running part raises when it cannot go on (the worker shell
exits 70); ``COMMAND_ERRORS`` are every error a ``roadx`` command reports as
``roadx: error: …`` with exit status 2.
"""

from producers.errors import ProducerError
from schemas.errors import ContractError
from sinks.errors import SinkError
from streams.errors import StreamError


class DeployError(Exception):
    """Base of every error raised by ``deploy``."""


class StackError(DeployError):
    pass


class StartError(DeployError):
    pass


class TopicError(DeployError):
    pass


# What a part raises when it cannot go on: the worker shell exits 70 (``deploy.worker``).
PART_ERRORS: tuple[type[Exception], ...] = (ProducerError, StreamError, SinkError)

# What ``deploy.cli.main`` (and ``python -m deploy.commands.chaos``) print as ``roadx: error: …``, exit 2.
# ``ContractError`` is the base of ``schemas.errors.SettingsError``.
COMMAND_ERRORS: tuple[type[Exception], ...] = (DeployError, ContractError, *PART_ERRORS)
