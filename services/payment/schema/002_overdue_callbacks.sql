-- Reconciliation's claim: submitted payments whose callback is overdue,
-- oldest first (payment_reconcile.c).
CREATE INDEX payments_submitted ON payments (updated_at) WHERE status = 'submitted';
