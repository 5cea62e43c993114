"""Ledger integrity in the database: balanced entries, append-only journal.

Whatever the application does, a journal entry commits only with at least two postings whose
amounts sum to zero per currency (deferred constraint triggers, checked at commit), a posting's
currency is its account's, and entries and postings are never updated or deleted; corrections
are reversing entries. TRUNCATE is refused too, except by a transaction that sets
fintech.allow_audit_truncate = 'on' (the test suite's flush between tests, as for the audit trail).
"""

from django.db import migrations

INTEGRITY = r"""
CREATE FUNCTION payments_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('fintech.allow_audit_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the ledger is append-only: % on % is refused; post a reversing entry instead',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER payments_journalentry_append_only BEFORE UPDATE OR DELETE ON payments_journalentry
    FOR EACH ROW EXECUTE FUNCTION payments_ledger_append_only();
CREATE TRIGGER payments_journalentry_no_truncate BEFORE TRUNCATE ON payments_journalentry
    FOR EACH STATEMENT EXECUTE FUNCTION payments_ledger_append_only();
CREATE TRIGGER payments_posting_append_only BEFORE UPDATE OR DELETE ON payments_posting
    FOR EACH ROW EXECUTE FUNCTION payments_ledger_append_only();
CREATE TRIGGER payments_posting_no_truncate BEFORE TRUNCATE ON payments_posting
    FOR EACH STATEMENT EXECUTE FUNCTION payments_ledger_append_only();

CREATE FUNCTION payments_posting_currency() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM payments_ledgeraccount WHERE id = NEW.account_id AND currency = NEW.currency) THEN
        RAISE EXCEPTION 'posting currency % differs from the currency of ledger account %', NEW.currency, NEW.account_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER payments_posting_currency BEFORE INSERT ON payments_posting
    FOR EACH ROW EXECUTE FUNCTION payments_posting_currency();

CREATE FUNCTION payments_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    checked_entry bigint;
    posting_count integer;
    unbalanced text;
BEGIN
    IF TG_TABLE_NAME = 'payments_journalentry' THEN
        checked_entry := NEW.id;
    ELSE
        checked_entry := NEW.entry_id;
    END IF;
    SELECT count(*) INTO posting_count FROM payments_posting WHERE entry_id = checked_entry;
    IF posting_count < 2 THEN
        RAISE EXCEPTION 'journal entry % has % posting(s); a double entry needs at least two', checked_entry, posting_count
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT string_agg(currency || ' ' || total, ', ') INTO unbalanced FROM (
        SELECT currency, sum(amount_minor) AS total FROM payments_posting
        WHERE entry_id = checked_entry GROUP BY currency HAVING sum(amount_minor) <> 0
    ) AS totals;
    IF unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'journal entry % does not balance: debits minus credits = %', checked_entry, unbalanced
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER payments_journalentry_balanced AFTER INSERT ON payments_journalentry
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION payments_entry_balanced();
CREATE CONSTRAINT TRIGGER payments_posting_balanced AFTER INSERT ON payments_posting
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION payments_entry_balanced();
"""

DROP_INTEGRITY = r"""
DROP TRIGGER payments_posting_balanced ON payments_posting;
DROP TRIGGER payments_journalentry_balanced ON payments_journalentry;
DROP FUNCTION payments_entry_balanced();
DROP TRIGGER payments_posting_currency ON payments_posting;
DROP FUNCTION payments_posting_currency();
DROP TRIGGER payments_posting_no_truncate ON payments_posting;
DROP TRIGGER payments_posting_append_only ON payments_posting;
DROP TRIGGER payments_journalentry_no_truncate ON payments_journalentry;
DROP TRIGGER payments_journalentry_append_only ON payments_journalentry;
DROP FUNCTION payments_ledger_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("payments", "0001_initial")]

    operations = [migrations.RunSQL(INTEGRITY, DROP_INTEGRITY)]
