"""Shared test setup: only purenng's own plugins load by themselves (CONVENTIONS §3)."""

from __future__ import annotations

import os

os.environ["PURENNG_DISABLE_PLUGIN_AUTOLOAD"] = "1"
