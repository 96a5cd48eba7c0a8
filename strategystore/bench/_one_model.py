"""The least any package that defines a pydantic model pays on import.

One model of one field, built lazily as ``StrategyDocument`` is; the import
time of ``strategystore`` is reported above the import time of this module.
"""

from pydantic import BaseModel, ConfigDict


class Floor(BaseModel):
    """A model of one field."""

    model_config = ConfigDict(defer_build=True)
    name: str
