"""Errors of the deploy package.

    DeployError
    ├── SettingsError        a setting is unknown, missing or malformed
    ├── StackError           the embedded stack cannot start, is not running, or a part died
    └── TopicError           topics cannot be created
"""


class DeployError(Exception):
    """Base of every error raised by ``deploy``."""


class SettingsError(DeployError):
    pass


class StackError(DeployError):
    pass


class TopicError(DeployError):
    pass
