//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

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

/// The process is up and its database answers.
#[utoipa::path(get, path = "/readyz", operation_id = "tollgate.Readyz", tag = "operations",
    responses(
        (status = 200, body = Health),
        (status = 503, body = ErrorBody, description = "The database does not answer.")
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.store().ping().await?;
    Ok(Json(Health {
        status: "ready",
        database: Some(state.store().backend()),
    }))
}
