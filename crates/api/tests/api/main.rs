//! The HTTP API end to end: real router, real store (SQLite, and PostgreSQL
//! when `TOLLGATE_TEST_POSTGRES_URL` is set), injected clock.

mod auth;
mod billing_isolation;
mod billing_support;
mod errors;
mod faults;
mod http_layer;
mod input_text;
mod input_times;
mod invoice_adjustments;
mod invoice_charging;
mod invoice_invariants;
mod invoice_isolation;
mod invoice_lifecycle;
mod invoice_pdf;
mod invoice_support;
mod invoices;
mod isolation;
mod meters;
mod openapi;
mod operator;
mod payment_methods;
mod plans;
mod quota_crud;
mod quota_usage;
mod rate_limits;
mod subscriptions;
mod support;
mod transitions;
mod unknown_fields;
mod usage_ingest;
mod usage_isolation;
mod usage_rating;
mod usage_reports;
mod usage_summary;
mod usage_support;
