"""The project's own error types. Everything a user can cause or fix is one of these, with a message
that says what to change; the CLI turns them into one line on stderr and exit code 2."""


class WhazzatError(Exception):
    """Base class of every error Whazzat raises on purpose."""


class InputError(WhazzatError, ValueError):
    """The need (or another user input) is not usable: empty, too long, control characters..."""


class ModelLoadError(WhazzatError):
    """The model or adapter could not be found or loaded."""


class ParseError(WhazzatError, ValueError):
    """The model's output could not be parsed into anything usable."""
