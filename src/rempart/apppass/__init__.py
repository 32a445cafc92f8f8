"""App passwords: one secret per device or mail app, scoped to protocols, checked by Dovecot.

`secret` generates and hashes them, `store` keeps them (the one writer of their SQLite files,
and the in-memory index the decision path reads), `api` serves them over HTTP, `cli` is the
operator's `rempart app-passwords`, `settings` the `[app_passwords]` table.
"""
