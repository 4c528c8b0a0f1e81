"""Dagster resources: the lakehouse root, the landing folder and the exports root.

All default from the environment (``WATTLAKE_LAKE``, ``WATTLAKE_LANDING``, ``WATTLAKE_EXPORTS``) so ``dagster dev``,
the daemon, the CLI and the tests share one configuration. Assets receive them by type
annotation, never through globals.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import dagster as dg

from wattlake.keys import install_log_redaction
from wattlake.lake import Lake

DEFAULT_LANDING = "./landing"


def landing_root(root: str | None = None) -> Path:
    """The landing folder: ``root``, else ``$WATTLAKE_LANDING``, else ``./landing``."""
    return Path(root or os.environ.get("WATTLAKE_LANDING") or DEFAULT_LANDING).expanduser().resolve()


class LakeResource(dg.ConfigurableResource):
    """The Delta lakehouse (local folder or ``s3://bucket/prefix``; credentials from AWS env)."""

    root: Optional[str] = None

    def lake(self) -> Lake:
        install_log_redaction()  # every run that touches the lake logs without secrets
        return Lake.from_env(self.root)


class LandingResource(dg.ConfigurableResource):
    """The folder where raw files arrive (``<source>/<YYYY-MM-DD>/...`` and ``registry/``), and
    the optional S3 inbox they may be delivered to instead (``inbox``, else ``$WATTLAKE_INBOX``;
    :mod:`wattlake.inbox` moves its objects into the folder)."""

    root: Optional[str] = None
    inbox: Optional[str] = None

    def path(self) -> Path:
        return landing_root(self.root)

    def inbox_uri(self) -> Optional[str]:
        from wattlake.inbox import inbox_uri

        return inbox_uri(self.inbox)


class ExportsResource(dg.ConfigurableResource):
    """What leaves the company (local folder or ``s3://bucket/prefix``): ``root``, else
    ``$WATTLAKE_EXPORTS``, else ``./exports`` (:class:`wattlake.exports.ExportRoot`)."""

    root: Optional[str] = None

    def export_root(self):
        from wattlake.exports import ExportRoot

        return ExportRoot.from_env(self.root)
