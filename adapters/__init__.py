"""Everything Skyline talks to, in one place: S3 storage and the manifest store, bundles on disk
and in archives, the CDN providers, and the Temporal connection.

Layers (checked by tests/test_architecture.py): skyline (the pure domain) <
adapters < activities < workflows < worker; the API uses skyline, adapters
and the workflows' handles; the CLI only talks HTTP.
"""
