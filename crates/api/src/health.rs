//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use tollgate_domain::{ErrorKind, Reason};

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub database: Option<&'static str>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", operation_id = "tollgate.Healthz", tag = "operations",
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        database: None,
    })
}

/// The process is up and its database can take writes: a trivial write
/// commits, the database has room to grow, and no write failed with a storage
/// fault in the last seconds. Otherwise 503 (code 14) with `Retry-After`.
#[utoipa::path(get, path = "/readyz", operation_id = "tollgate.Readyz", tag = "operations",
    responses(
        (status = 200, body = Health),
        (status = 503, body = ErrorBody, description = "The database does not answer.")
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    if let Err(e) = state.store().ready(state.now()).await {
        // Not ready is an answer, not a failure of this request: say why.
        let mut error =
            ApiError::new(ErrorKind::Unavailable, format!("not ready: {e}")).with_reason(Reason::NotReady);
        error.retry_after = Some(crate::error::UNAVAILABLE_RETRY_AFTER_SECS);
        tracing::warn!(error = %e, "not ready");
        return Err(error);
    }
    Ok(Json(Health {
        status: "ready",
        database: Some(state.store().backend()),
    }))
}
