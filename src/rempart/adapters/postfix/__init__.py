"""Postfix policy delegation: Postfix's SMTPD policy protocol (`check_policy_service`) served by
`rempart serve`, refusing mail from accounts Rempart considers taken over or restricted and
limiting recipients per account per hour (docs/postfix.md).

`protocol` reads and writes the wire format, `decide` turns one request into an answer from the
engine's lists and the leak oracle, `rate` counts recipients per account, `service` is the
asyncio listener (TCP and/or UNIX socket), `metrics` its Prometheus view and `settings` the
`[postfix]` table.
"""
