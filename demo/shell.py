"""The demo's shell page: the one the API serves per apartment (api/shell_page.py)."""

from __future__ import annotations

from api.shell_page import manifest_url, publish_shell, shell_html, shell_key

__all__ = ["manifest_url", "publish_shell", "shell_html", "shell_key"]
