"""The package's own error types: every error a user can cause is one of these."""


class WorkbenchError(Exception):
    """Base class of every error the workbench raises on purpose."""


class NotFoundError(WorkbenchError, LookupError):
    """A project, data set, configuration, model, job or user that does not exist."""


class ValidationError(WorkbenchError, ValueError):
    """Input that cannot be used as given: a bad file, a missing column, a bad parameter."""


class CatalogBusyError(WorkbenchError):
    """The catalog stayed locked by another process for longer than the allowed wait."""


class CatalogDamagedError(WorkbenchError):
    """The catalog file is unreadable (truncated, zeroed, not a catalog): `workbench doctor --rebuild`."""


class ReadOnlyWorkspaceError(WorkbenchError):
    """A change was asked of a workspace that can only be read (a read-only volume or folder)."""


class DiskFullError(WorkbenchError):
    """The disk filled up while writing; nothing was changed."""


class ModelFileError(WorkbenchError):
    """A model file that cannot be trusted or read. Subclasses say why."""


class NotAModelFileError(ModelFileError):
    """The file does not start with the workbench model magic bytes."""


class UnsupportedModelVersionError(ModelFileError):
    """The file has the model magic bytes but a format version this workbench cannot read."""


class TruncatedModelFileError(ModelFileError):
    """The file ends before its declared header or payload does."""


class OversizedModelFileError(ModelFileError):
    """The file or one of its sections is larger than the allowed maximum."""


class UnknownKeyError(ModelFileError):
    """The file was signed with a key id that none of the configured keys has."""


class SignatureMismatchError(ModelFileError):
    """The HMAC does not match: the file was altered or signed with another key."""


class ForbiddenPickleError(ModelFileError):
    """A correctly signed payload refers to something outside the unpickling allow-list."""


class SnapshotMismatchError(WorkbenchError):
    """A tuning worker was handed a data snapshot other than the one its study was created on."""


class JobFailedError(WorkbenchError):
    """A background job ended in FAILURE."""


def check_choice(name: str, value, allowed):
    """`value` if it is one of `allowed`, else a ValidationError naming the parameter and its choices."""
    if value not in allowed:
        raise ValidationError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}.")
    return value


def describe_error(error: BaseException) -> str:
    """One line for a person: our own errors' message, an interrupt as such, type and message of others."""
    if isinstance(error, WorkbenchError):
        return str(error)
    if isinstance(error, KeyboardInterrupt):
        return "Interrupted."
    return f"{type(error).__name__}: {error}"
