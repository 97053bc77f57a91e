"""One exception hierarchy for everything genkit reports to a user.

Every message names the file, key or plugin involved and what was expected, so the CLI
can print it as a single line.
"""

from __future__ import annotations

import shlex


class GenkitError(Exception):
    """Base of every error genkit raises on purpose. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ConfigError(GenkitError):
    """A recipe, an override or a command-line argument is not what was expected.

    An error about the value at one key carries ``file``, ``key`` and ``detail`` (what follows the key
    in the message), so that :meth:`blamed_on` can name the ``--set`` option the value came from
    instead of the recipe file.
    """

    exit_code = 2
    file: str | None = None
    key: str | None = None
    detail: str = ""

    @classmethod
    def at(cls, file: str | None, key: str, detail: str) -> ConfigError:
        """``file: key: detail``."""
        error = cls(_located(file, key, detail))
        error.file, error.key, error.detail = file, key, detail
        return error

    def blamed_on(self, file: str) -> ConfigError:
        """The same error about the same key, naming ``file`` (say ``--set 'train.lr=x'``) as where the value is."""
        error = type(self).__new__(type(self))
        error.__dict__.update(self.__dict__)
        error.file = file
        Exception.__init__(error, _located(file, self.key, self.detail))
        return error

    def noting(self, note: str) -> ConfigError:
        """The same error with ``note`` after its message (say `` (with --set 'model.image_size=9')``)."""
        error = type(self).__new__(type(self))
        error.__dict__.update(self.__dict__)
        error.detail = self.detail + note
        Exception.__init__(error, str(self) + note)
        return error


class RecipeError(ConfigError):
    """A recipe value is wrong. Carries the file, the dotted key path, what was expected and what was found."""

    def __init__(self, file: str | None, key: str, expected: str, found: object = None, *, note: str = ""):
        found_txt = "" if found is None else f", found {_describe(found)}"
        self.file, self.key, self.expected, self.found = file, key, expected, found
        self.detail = f"expected {expected}{found_txt}{note}"
        super().__init__(_located(file, key, self.detail))


class PluginError(ConfigError):
    """An unknown, duplicate or missing plugin."""


class DataError(GenkitError):
    """A data file is missing, corrupt or not in the expected format."""


class CheckpointError(GenkitError):
    """A checkpoint or model directory is missing, corrupt, or does not match the model."""


class DivergedError(GenkitError):
    """A model whose weights are finite but whose figures are not: it has diverged, and no figure is reported."""


class HubError(GenkitError):
    """Talking to the Hugging Face Hub (or its cache) failed."""


def first_line(text: str | BaseException) -> str:
    """The first non-empty line of a docstring or message (an exception without one: its type's name)."""
    if isinstance(text, BaseException):
        return first_line(str(text)) or type(text).__name__
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def printable(text: object) -> str:
    """``text`` safe to show on a terminal, for every string genkit prints that came from outside it (a model
    directory, a plugin, a server).

    Each character that is not printable — a control character such as the ESC that starts an ANSI escape
    sequence, a newline or carriage return that would forge a line of its own, a bidirectional override — is
    written as its escape (``\\x1b``, ``\\n``, ``\\u202e``): shown, never obeyed.
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def shell_word(text: str, *, path: bool = False) -> str | None:
    """``text`` as one word of a command genkit suggests, quoted for the shell (:func:`shlex.quote`); ``None`` when
    no command should be offered with it: it holds unprintable characters, or it starts with ``-`` and would be read
    as an option (a ``path`` is given a leading ``./`` instead)."""
    if not text.isprintable():
        return None
    if text.startswith("-"):
        if not path:
            return None
        text = "./" + text
    return shlex.quote(text)


def _located(file: str | None, key: str | None, detail: str) -> str:
    return "".join([f"{file}: " if file else "", f"{key}: " if key else "", detail])


def _describe(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return f"{str(value).lower()} (bool)"
    if isinstance(value, (int, float)):
        return f"{value!r} ({type(value).__name__})"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"an array of {len(value)}"
    return f"{value!r}"


#: what torch's allocators say when an allocation fails (CPU: "DefaultCPUAllocator: can't allocate memory: you tried
#: to allocate 1000000000000 bytes"; CUDA and MPS raise torch.OutOfMemoryError, "… out of memory. Tried to allocate …")
ALLOCATOR_PHRASES = ("can't allocate memory", "not enough memory", "out of memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed allocation: code that turns a reader's failures into "damaged file" lets these
    through, so that a file too large for the memory left is not reported as damaged."""
    if isinstance(exc, MemoryError) or any(kind.__name__ == "OutOfMemoryError" for kind in type(exc).__mro__):
        return True
    return isinstance(exc, RuntimeError) and any(phrase in str(exc) for phrase in ALLOCATOR_PHRASES)
