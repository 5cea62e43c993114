"""PostgreSQL backend for the test suite: its database flush may truncate the audit trail.

The audit trail's trigger refuses TRUNCATE unless the transaction sets
``fintech.allow_audit_truncate``; only the flush between transactional tests does so.
"""

from django.db.backends.postgresql import base, operations


class DatabaseOperations(operations.DatabaseOperations):
    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = super().sql_flush(style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        if statements:
            statements = ["SET LOCAL fintech.allow_audit_truncate = 'on';", *statements]
        return statements


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
