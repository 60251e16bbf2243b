//! The HTTP API end to end: real router, real store (SQLite, and PostgreSQL
//! when `TOLLGATE_TEST_POSTGRES_URL` is set), injected clock.

mod auth;
mod errors;
mod isolation;
mod openapi;
mod quota_crud;
mod quota_usage;
mod rate_limits;
mod support;
