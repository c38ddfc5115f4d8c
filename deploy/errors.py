"""Errors of the deploy package (a bad setting is ``schemas.errors.SettingsError``).

    DeployError
    ├── StackError           the embedded stack cannot start, is not running, or a part died
    ├── StartError           a long-running part cannot start: a setting it needs, a bad option, its metrics port
    └── TopicError           topics cannot be created
"""


class DeployError(Exception):
    """Base of every error raised by ``deploy``."""


class StackError(DeployError):
    pass


class StartError(DeployError):
    pass


class TopicError(DeployError):
    pass
