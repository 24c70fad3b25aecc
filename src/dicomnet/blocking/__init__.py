"""Blocking API for scripts: ``with dicomnet.blocking.associate(...) as assoc: assoc.echo()``."""

from __future__ import annotations

from .client import BlockingAssociation, associate, echo, store

__all__ = ["BlockingAssociation", "associate", "echo", "store"]
