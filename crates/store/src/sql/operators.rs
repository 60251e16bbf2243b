//! Operator tokens: named credentials of the operator API, stored hashed.

use jiff::Timestamp;
use sqlx::Row;
use tollgate_domain::access::OperatorRole;
use tollgate_domain::token::OperatorToken;

use super::{DbRow, SqlStore, Tx, audit_in, hex, micros, opt_timestamp, timestamp, unhex};
use crate::{NewOperatorToken, Result, StoreError};

macro_rules! columns {
    () => {
        "id, name, role, digest, created_at, created_by, revoked_at"
    };
}

fn token_from(row: &DbRow) -> Result<OperatorToken> {
    let role: String = row.try_get("role")?;
    Ok(OperatorToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: OperatorRole::parse(&role).map_err(|e| StoreError::Corrupt(e.message))?,
        digest: unhex("operator_tokens.digest", row.try_get("digest")?)?,
        created_at: timestamp("operator_tokens.created_at", row.try_get("created_at")?)?,
        created_by: row.try_get("created_by")?,
        revoked_at: opt_timestamp("operator_tokens.revoked_at", row.try_get("revoked_at")?)?,
    })
}

/// What the audit trail records of an operator token: never its secret or digest.
fn token_json(t: &OperatorToken) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "name": t.name,
        "role": t.role.as_str(),
        "revoked_at": t.revoked_at.map(|e| e.to_string()),
    })
}

pub(super) async fn create_operator_token_in(tx: &mut Tx, new: &NewOperatorToken) -> Result<OperatorToken> {
    let taken = sqlx::query("SELECT 1 FROM operator_tokens WHERE name = $1 AND revoked_at IS NULL")
        .bind(&new.name)
        .fetch_optional(&mut **tx)
        .await?;
    if taken.is_some() {
        return Err(StoreError::AlreadyExists(
            tollgate_domain::Reason::OperatorTokenExists,
            format!(
                "an operator token named {:?} exists; revoke it first or choose another name",
                new.name
            ),
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO operator_tokens (id, name, role, digest, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(&new.name)
    .bind(new.role.as_str())
    .bind(hex(&new.digest))
    .bind(micros(new.now))
    .bind(&new.actor)
    .execute(&mut **tx)
    .await?;
    let token = OperatorToken {
        id,
        name: new.name.clone(),
        role: new.role,
        digest: new.digest,
        created_at: new.now,
        created_by: new.actor.clone(),
        revoked_at: None,
    };
    audit_in(
        tx,
        None,
        &new.actor,
        "operator_token.create",
        &format!("operator-token/{}", token.name),
        None,
        Some(token_json(&token)),
        new.now,
    )
    .await?;
    Ok(token)
}

pub(super) async fn operator_token_by_digest(
    store: &SqlStore,
    digest: &[u8; 32],
) -> Result<Option<OperatorToken>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM operator_tokens WHERE digest = $1"
    ))
    .bind(hex(digest))
    .fetch_optional(&store.read)
    .await?;
    row.as_ref().map(token_from).transpose()
}

pub(super) async fn operator_tokens(store: &SqlStore) -> Result<Vec<OperatorToken>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM operator_tokens ORDER BY created_at, id"
    ))
    .fetch_all(&store.read)
    .await?;
    rows.iter().map(token_from).collect()
}

pub(super) async fn revoke_operator_token_in(
    tx: &mut Tx,
    name: &str,
    actor: &str,
    now: Timestamp,
) -> Result<OperatorToken> {
    let row = sqlx::query(concat!(
        "UPDATE operator_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL RETURNING ",
        columns!()
    ))
    .bind(name)
    .bind(micros(now))
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("no live operator token is named {name:?}")))?;
    let token = token_from(&row)?;
    audit_in(
        tx,
        None,
        actor,
        "operator_token.revoke",
        &format!("operator-token/{}", token.name),
        None,
        Some(token_json(&token)),
        now,
    )
    .await?;
    Ok(token)
}
