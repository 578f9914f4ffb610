"""hangar-cloud: version control for tensor data, directly on object stores."""

from __future__ import annotations

from . import exceptions
from .exceptions import (
    AlreadyExistsError,
    HangarError,
    InvalidKeyError,
    InvalidStoreURLError,
    ObjectNotFoundError,
    StoreCapabilityError,
    VersionConflictError,
)
from .repository import Repository
from .store import open_store

__version__ = "0.1.0.dev0"

__all__ = [
    "AlreadyExistsError",
    "HangarError",
    "InvalidKeyError",
    "InvalidStoreURLError",
    "ObjectNotFoundError",
    "Repository",
    "StoreCapabilityError",
    "VersionConflictError",
    "__version__",
    "exceptions",
    "open_store",
]
