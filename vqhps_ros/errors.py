"""Exceptions shared by every stage. Each message says what was expected and what was found."""


class VqhpsError(Exception):
    """Base class of the package's own errors."""


class CheckpointError(VqhpsError):
    """A weights file is unreadable or does not match the model it is loaded into."""


class ConnectionMatrixError(VqhpsError):
    """A mesh connection matrix file is malformed or does not fit its neighbours in the hierarchy."""


class InputError(VqhpsError, ValueError):
    """Data handed to a model or a function has the wrong shape, dtype or values."""


class EngineError(VqhpsError):
    """An inference engine cannot be built, loaded or run (missing backend, failed build, device failure)."""


class EngineOutOfMemory(EngineError):
    """The device ran out of memory while an engine was built, loaded or run; `auto` engines fall back on it."""
