"""Errors of the deploy package (a bad setting is ``schemas.errors.SettingsError``).

    DeployError
    ├── StackError           the embedded stack cannot start, is not running, or a part died
    └── TopicError           topics cannot be created
"""


class DeployError(Exception):
    """Base of every error raised by ``deploy``."""


class StackError(DeployError):
    pass


class TopicError(DeployError):
    pass
