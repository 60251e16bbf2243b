//! Billing: subscriptions, add-ons, payment methods and plan transitions
//! ([`BillingStore`](crate::BillingStore)), which change together under the
//! tenant's row lock. Part of the shared SQL implementation (compiled per
//! engine).

use std::collections::BTreeMap;
use tollgate_domain::ids::{PlanName, TenantId};

use jiff::Timestamp;
use sqlx::{Pool, Row};
use tollgate_domain::audit::AuditAction;
use tollgate_domain::contact::Contact;
use tollgate_domain::payment::{self, PaymentMethod, PaymentRole, RoleChange, Slot};
use tollgate_domain::rating::TaxTreatment;
use tollgate_domain::subscription::{AddonSpan, Subscription};
use tollgate_domain::transition::{PlanTransition, TransitionState};
use tollgate_domain::webhook::EventType;
use tollgate_domain::{Error, ErrorKind, Reason};

use super::{Db, DbRow, LOCK_TENANT, SYSTEM, SqlStore, Tx, audit_in, micros, opt_timestamp, timestamp};
use crate::{
    Actor, LeasedTransition, PaymentChange, Result, StoreError, TransitionFilter, TransitionOutcome,
};

/// The columns of a plan transition, in the order [`transition_from`] reads them.
macro_rules! transition_columns {
    () => {
        "id, tenant_id, from_plan, to_plan, catalog_version, state, payload, requested_by, created_at, updated_at, reason"
    };
}

/// A domain refusal as a storage error of the same meaning and reason.
fn refused(e: Error) -> StoreError {
    match e.kind {
        ErrorKind::NotFound => StoreError::NotFound(e.message),
        ErrorKind::AlreadyExists => StoreError::AlreadyExists(e.reason, e.message),
        _ => StoreError::Conflict(e.reason, e.message),
    }
}

#[async_trait::async_trait]
impl crate::BillingStore for SqlStore {
    async fn subscriptions(&self, tenant_id: &TenantId) -> Result<Vec<Subscription>> {
        subscriptions(self, tenant_id).await
    }

    async fn addons(&self, tenant_id: &TenantId) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT addon FROM tenant_addons WHERE tenant_id = $1 ORDER BY addon")
            .bind(tenant_id.as_str())
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("addon")?)).collect()
    }

    async fn set_addon(
        &self,
        tenant_id: &TenantId,
        plan: &PlanName,
        addon: &str,
        subscribed: bool,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<bool> {
        set_addon(self, tenant_id, plan, addon, subscribed, actor, now).await
    }

    async fn tax_treatment(&self, tenant_id: &TenantId) -> Result<TaxTreatment> {
        let row = sqlx::query("SELECT treatment, tax_id FROM tenant_tax WHERE tenant_id = $1")
            .bind(tenant_id.as_str())
            .fetch_optional(&self.read)
            .await?;
        let Some(row) = row else {
            return Ok(TaxTreatment::Standard);
        };
        let treatment: String = row.try_get("treatment")?;
        let tax_id: Option<String> = row.try_get("tax_id")?;
        match (treatment.as_str(), tax_id) {
            ("standard", _) => Ok(TaxTreatment::Standard),
            ("exempt", _) => Ok(TaxTreatment::Exempt),
            ("reverse_charge", Some(tax_id)) => Ok(TaxTreatment::ReverseCharge { tax_id }),
            (other, _) => Err(StoreError::Corrupt(format!("tenant_tax.treatment: {other:?}"))),
        }
    }

    async fn set_tax_treatment(
        &self,
        tenant_id: &TenantId,
        treatment: &TaxTreatment,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<()> {
        let (tenant_id, treatment, actor) = (tenant_id.clone(), treatment.clone(), actor.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(LOCK_TENANT)
                    .bind(tenant_id.as_str())
                    .fetch_optional(&mut **tx)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant_id:?} does not exist")))?;
                let (name, tax_id) = match &treatment {
                    TaxTreatment::Standard => ("standard", None),
                    TaxTreatment::Exempt => ("exempt", None),
                    TaxTreatment::ReverseCharge { tax_id } => ("reverse_charge", Some(tax_id.as_str())),
                };
                sqlx::query(
                    "INSERT INTO tenant_tax (tenant_id, treatment, tax_id, updated_by, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id) DO UPDATE SET treatment = excluded.treatment, \
                     tax_id = excluded.tax_id, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                )
                .bind(tenant_id.as_str())
                .bind(name)
                .bind(tax_id)
                .bind(&actor)
                .bind(micros(now))
                .execute(&mut **tx)
                .await?;
                audit_in(
                    tx,
                    Some(&tenant_id),
                    &actor,
                    AuditAction::TenantTax,
                    "tenant/tax",
                    None,
                    Some(serde_json::json!({"treatment": name, "tax_id": tax_id})),
                    now,
                )
                .await
            })
        })
        .await
    }

    async fn addon_history(&self, tenant_id: &TenantId) -> Result<Vec<AddonSpan>> {
        let rows = sqlx::query(
            "SELECT addon, start_at, end_at FROM addon_history WHERE tenant_id = $1 ORDER BY addon, start_at",
        )
        .bind(tenant_id.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AddonSpan {
                    addon: r.try_get("addon")?,
                    start: timestamp("addon_history.start_at", r.try_get("start_at")?)?,
                    end: opt_timestamp("addon_history.end_at", r.try_get("end_at")?)?,
                })
            })
            .collect()
    }

    async fn provider_customer(&self, tenant_id: &TenantId, provider: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT customer FROM provider_customers WHERE tenant_id = $1 AND provider = $2",
        )
        .bind(tenant_id.as_str())
        .bind(provider)
        .fetch_optional(&self.read)
        .await?)
    }

    async fn add_provider_customer(
        &self,
        tenant_id: &TenantId,
        provider: &str,
        customer: &str,
        now: Timestamp,
    ) -> Result<String> {
        let (tenant_id, provider, customer) = (tenant_id.clone(), provider.to_owned(), customer.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO provider_customers (tenant_id, provider, customer, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, provider) DO NOTHING",
                )
                .bind(tenant_id.as_str())
                .bind(&provider)
                .bind(&customer)
                .bind(micros(now))
                .execute(&mut **tx)
                .await?;
                Ok(sqlx::query_scalar(
                    "SELECT customer FROM provider_customers WHERE tenant_id = $1 AND provider = $2",
                )
                .bind(tenant_id.as_str())
                .bind(&provider)
                .fetch_one(&mut **tx)
                .await?)
            })
        })
        .await
    }

    async fn payment_methods(&self, tenant_id: &TenantId) -> Result<Vec<PaymentMethod>> {
        payment_methods(&self.read, tenant_id).await
    }

    async fn change_payment_methods(
        &self,
        tenant_id: &TenantId,
        change: &PaymentChange,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<Vec<PaymentMethod>> {
        let (tenant_id, change, actor, now) = (tenant_id.clone(), change.clone(), actor.to_owned(), now);
        self.write(move |tx| {
            Box::pin(async move { change_payment_methods_in(tx, &tenant_id, &change, &actor, now).await })
        })
        .await
    }

    async fn create_transition(&self, transition: &PlanTransition, actor: Actor<'_>) -> Result<()> {
        create_transition(self, transition, actor).await
    }

    async fn transition(&self, id: &str) -> Result<Option<PlanTransition>> {
        transition(&self.read, id).await
    }

    async fn transitions(&self, filter: &TransitionFilter) -> Result<Vec<PlanTransition>> {
        transitions(self, filter).await
    }

    async fn decide_transition(
        &self,
        id: &str,
        approve: bool,
        reason: Option<&str>,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<PlanTransition> {
        decide_transition(self, id, approve, reason, actor, now).await
    }

    async fn claim_transition(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<LeasedTransition>> {
        claim_transition(self, owner, now, lease_until).await
    }

    async fn retry_transition(&self, id: &str, owner: &str, error: &str, retry_at: Timestamp) -> Result<()> {
        retry_transition(self, id, owner, error, retry_at).await
    }

    async fn cancel_transition(
        &self,
        id: &str,
        reason: &str,
        actor: Actor<'_>,
        now: Timestamp,
    ) -> Result<PlanTransition> {
        cancel_transition(self, id, reason, actor, now).await
    }

    async fn complete_transition(&self, outcome: &TransitionOutcome) -> Result<()> {
        complete_transition(self, outcome).await
    }

    async fn fail_transition(&self, id: &str, owner: &str, reason: &str, now: Timestamp) -> Result<()> {
        fail_transition(self, id, owner, reason, now).await
    }
}

pub(super) async fn insert_subscription(tx: &mut Tx, s: &Subscription) -> Result<()> {
    sqlx::query(
        "INSERT INTO subscriptions (id, tenant_id, plan, catalog_version, start_at, trial_end, end_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&s.id)
    .bind(s.tenant_id.as_str())
    .bind(&s.plan)
    .bind(s.catalog_version)
    .bind(micros(s.start))
    .bind(s.trial_end.map(micros))
    .bind(s.end.map(micros))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn subscription_from(row: &DbRow) -> Result<Subscription> {
    Ok(Subscription {
        id: row.try_get("id")?,
        tenant_id: TenantId::new(row.try_get::<String, _>("tenant_id")?),
        plan: row.try_get("plan")?,
        catalog_version: row.try_get("catalog_version")?,
        start: timestamp("subscriptions.start_at", row.try_get("start_at")?)?,
        trial_end: opt_timestamp("subscriptions.trial_end", row.try_get("trial_end")?)?,
        end: opt_timestamp("subscriptions.end_at", row.try_get("end_at")?)?,
    })
}

async fn subscriptions(store: &SqlStore, tenant_id: &TenantId) -> Result<Vec<Subscription>> {
    let rows = sqlx::query(
        "SELECT id, tenant_id, plan, catalog_version, start_at, trial_end, end_at FROM subscriptions \
         WHERE tenant_id = $1 ORDER BY CASE WHEN end_at IS NULL THEN 0 ELSE 1 END, start_at DESC, id DESC",
    )
    .bind(tenant_id.as_str())
    .fetch_all(&store.read)
    .await?;
    rows.iter().map(subscription_from).collect()
}

async fn set_addon(
    store: &SqlStore,
    tenant_id: &TenantId,
    plan: &PlanName,
    addon: &str,
    subscribed: bool,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<bool> {
    let (tenant_id, plan, addon, subscribed, actor, now) = (
        tenant_id.clone(),
        plan.clone(),
        addon.to_owned(),
        subscribed,
        actor.to_owned(),
        now,
    );
    store
        .write(move |tx| {
            Box::pin(
                async move { set_addon_in(tx, &tenant_id, &plan, &addon, subscribed, &actor, now).await },
            )
        })
        .await
}

async fn set_addon_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    plan: &PlanName,
    addon: &str,
    subscribed: bool,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<bool> {
    // Under the tenant's lock, which a plan transition's completion also
    // takes: the change applies only to the plan it was checked against.
    sqlx::query(LOCK_TENANT)
        .bind(tenant_id.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant_id:?} does not exist")))?;
    let current: String = sqlx::query_scalar("SELECT plan FROM tenants WHERE id = $1")
        .bind(tenant_id.as_str())
        .fetch_one(&mut **tx)
        .await?;
    if current != plan.as_str() {
        return Err(StoreError::Conflict(
            Reason::PlanChanged,
            format!("the tenant moved to plan {current:?} while its add-ons were being changed; try again"),
        ));
    }
    let changed = if subscribed {
        sqlx::query("INSERT INTO tenant_addons (tenant_id, addon, subscribed_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(tenant_id.as_str())
            .bind(addon)
            .bind(micros(now))
            .execute(&mut **tx)
            .await?
            .rows_affected()
    } else {
        sqlx::query("DELETE FROM tenant_addons WHERE tenant_id = $1 AND addon = $2")
            .bind(tenant_id.as_str())
            .bind(addon)
            .execute(&mut **tx)
            .await?
            .rows_affected()
    } > 0;
    if changed {
        record_addon_in(tx, tenant_id, addon, subscribed, now).await?;
    }
    if changed {
        let action = if subscribed {
            AuditAction::AddonSubscribe
        } else {
            AuditAction::AddonUnsubscribe
        };
        let state = |on: bool| Some(serde_json::json!({"subscribed": on}));
        audit_in(
            tx,
            Some(tenant_id),
            actor,
            action,
            &format!("addon/{addon}"),
            state(!subscribed),
            state(subscribed),
            now,
        )
        .await?;
    }
    Ok(changed)
}

fn method_from(row: &DbRow) -> Result<PaymentMethod> {
    let role: String = row.try_get("role")?;
    let contact: Contact =
        crate::records::decode_contact("payment_methods.contact", row.try_get("contact")?)?;
    Ok(PaymentMethod {
        name: row.try_get("name")?,
        role: PaymentRole::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("payment role {role:?}")))?,
        provider: row.try_get("provider")?,
        token: row.try_get("token")?,
        display: row.try_get("display")?,
        contact,
        created_at: timestamp("payment_methods.created_at", row.try_get("created_at")?)?,
    })
}

const SELECT_METHODS: &str = "SELECT name, role, provider, token, display, contact, created_at FROM payment_methods \
     WHERE tenant_id = $1 ORDER BY created_at, name";

async fn payment_methods(pool: &Pool<Db>, tenant_id: &TenantId) -> Result<Vec<PaymentMethod>> {
    let rows = sqlx::query(SELECT_METHODS)
        .bind(tenant_id.as_str())
        .fetch_all(pool)
        .await?;
    rows.iter().map(method_from).collect()
}

fn roles_json(methods: &[Slot]) -> serde_json::Value {
    let map: BTreeMap<&str, &str> = methods
        .iter()
        .map(|s| (s.name.as_str(), s.role.as_str()))
        .collect();
    serde_json::json!(map)
}

/// Applies a payment-method change inside `tx` under the tenant's lock.
async fn change_payment_methods_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    change: &PaymentChange,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<Vec<PaymentMethod>> {
    let locked = sqlx::query(LOCK_TENANT)
        .bind(tenant_id.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    if locked.is_none() {
        return Err(StoreError::NotFound(format!(
            "tenant {tenant_id:?} does not exist"
        )));
    }
    let rows = sqlx::query(SELECT_METHODS)
        .bind(tenant_id.as_str())
        .fetch_all(&mut **tx)
        .await?;
    let methods: Vec<PaymentMethod> = rows.iter().map(method_from).collect::<Result<_>>()?;
    let before: Vec<Slot> = methods
        .iter()
        .map(|m| Slot {
            name: m.name.clone(),
            role: m.role,
        })
        .collect();
    let (role_change, target) = match change {
        PaymentChange::Create { method, requested } => (
            RoleChange::Create {
                name: method.name.clone(),
                requested: *requested,
            },
            method.name.as_str(),
        ),
        PaymentChange::Role(rc) => match rc {
            RoleChange::Create { name, .. } | RoleChange::Delete { name, .. } => (rc.clone(), name.as_str()),
            RoleChange::MakePrimary(n) | RoleChange::MakeSecondary(n) | RoleChange::Swap(n) => {
                (rc.clone(), n.as_str())
            }
        },
    };
    let action = AuditAction::payment_method(&role_change);
    if let PaymentChange::Role(RoleChange::Create { .. }) = change {
        return Err(StoreError::Conflict(
            Reason::UnsupportedPaymentChange,
            "create payment methods with PaymentChange::Create".into(),
        ));
    }
    let after = payment::apply(&before, &role_change).map_err(refused)?;

    match change {
        PaymentChange::Create { method, .. } => {
            sqlx::query(
                "INSERT INTO payment_methods (tenant_id, name, role, provider, token, display, contact, created_at) \
                 VALUES ($1, $2, 'NORMAL', $3, $4, $5, $6, $7)",
            )
            .bind(tenant_id.as_str())
            .bind(&method.name)
            .bind(&method.provider)
            .bind(&method.token)
            .bind(&method.display)
            .bind(crate::records::encode_contact("payment_methods.contact", &method.contact)?)
            .bind(micros(now))
            .execute(&mut **tx)
            .await?;
        }
        PaymentChange::Role(RoleChange::Delete { name, .. }) => {
            sqlx::query("DELETE FROM payment_methods WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id.as_str())
                .bind(name)
                .execute(&mut **tx)
                .await?;
        }
        PaymentChange::Role(_) => {}
    }
    // Demote first, then promote: the unique indexes on PRIMARY and SECONDARY
    // are checked row by row.
    let was = |name: &str| {
        before
            .iter()
            .find(|s| s.name == name)
            .map_or(PaymentRole::Normal, |s| s.role)
    };
    for slot in &after {
        if slot.role != was(&slot.name) && was(&slot.name) != PaymentRole::Normal {
            set_role(tx, tenant_id, &slot.name, PaymentRole::Normal).await?;
        }
    }
    for slot in &after {
        if slot.role != was(&slot.name) && slot.role != PaymentRole::Normal {
            set_role(tx, tenant_id, &slot.name, slot.role).await?;
        }
    }
    audit_in(
        tx,
        Some(tenant_id),
        actor,
        action,
        &format!("payment_method/{target}"),
        Some(roles_json(&before)),
        Some(roles_json(&after)),
        now,
    )
    .await?;
    let rows = sqlx::query(SELECT_METHODS)
        .bind(tenant_id.as_str())
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(method_from).collect()
}

async fn set_role(tx: &mut Tx, tenant_id: &TenantId, name: &str, role: PaymentRole) -> Result<()> {
    sqlx::query("UPDATE payment_methods SET role = $3 WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id.as_str())
        .bind(name)
        .bind(role.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn transition_from(row: &DbRow) -> Result<PlanTransition> {
    let state: String = row.try_get("state")?;
    Ok(PlanTransition {
        id: row.try_get("id")?,
        tenant_id: TenantId::new(row.try_get::<String, _>("tenant_id")?),
        from_plan: row.try_get("from_plan")?,
        to_plan: row.try_get("to_plan")?,
        catalog_version: row.try_get("catalog_version")?,
        state: TransitionState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("transition state {state:?}")))?,
        payload: crate::records::decode_transition_payload(row.try_get("payload")?)?,
        requested_by: row.try_get("requested_by")?,
        created_at: timestamp("plan_transitions.created_at", row.try_get("created_at")?)?,
        updated_at: timestamp("plan_transitions.updated_at", row.try_get("updated_at")?)?,
        reason: row.try_get("reason")?,
    })
}

fn transition_json(t: &PlanTransition) -> serde_json::Value {
    serde_json::json!({
        "from_plan": t.from_plan,
        "to_plan": t.to_plan,
        "state": t.state.as_str(),
        "reason": t.reason,
        "deletion_reason": t.payload.deletion_reason.map(|r| r.as_str()),
        "deletion_feedback": t.payload.deletion_feedback,
    })
}

async fn create_transition(store: &SqlStore, t: &PlanTransition, actor: Actor<'_>) -> Result<()> {
    let t = t.clone();
    let actor = actor.to_owned();
    store
        .write(move |tx| {
            Box::pin(async move {
                let inserted = sqlx::query(
                    "INSERT INTO plan_transitions (id, tenant_id, from_plan, to_plan, catalog_version, state, payload, \
                     requested_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&t.id)
                .bind(t.tenant_id.as_str())
                .bind(&t.from_plan)
                .bind(&t.to_plan)
                .bind(t.catalog_version)
                .bind(t.state.as_str())
                .bind(crate::records::encode_transition_payload(&t.payload)?)
                .bind(&t.requested_by)
                .bind(micros(t.created_at))
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Err(StoreError::Conflict(
                        Reason::TransitionAlreadyOpen,
                        "the tenant already has an open plan transition".into(),
                    ));
                }
                audit_in(
                    tx,
                    Some(&t.tenant_id),
                    &actor,
                    AuditAction::PlanTransitionCreate,
                    &format!("plan_transition/{}", t.id),
                    None,
                    Some(transition_json(&t)),
                    t.created_at,
                )
                .await?;
                if t.state == TransitionState::WaitingForApproval {
                    let target = format!("plan_transition/{}", t.id);
                    let waiting = EventType::PlanTransitionWaitingForApproval;
                    super::webhooks::emit_in(tx, &t.tenant_id, waiting, &target, None, t.created_at).await?;
                }
                Ok(())
            })
        })
        .await
}

async fn transition<'e, E>(executor: E, id: &str) -> Result<Option<PlanTransition>>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    let row = sqlx::query(concat!(
        "SELECT ",
        transition_columns!(),
        " FROM plan_transitions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(transition_from).transpose()
}

async fn transitions(store: &SqlStore, f: &TransitionFilter) -> Result<Vec<PlanTransition>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        transition_columns!(),
        " FROM plan_transitions WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR state = $2) \
             ORDER BY created_at DESC, id"
    ))
    .bind(f.tenant_id.as_deref())
    .bind(f.state.map(TransitionState::as_str))
    .fetch_all(&store.read)
    .await?;
    rows.iter().map(transition_from).collect()
}

/// Moves a transition from one of `from` to `to` with a reason, releasing
/// any lease, and audits it; `NotFound` or `Conflict` (naming its state)
/// otherwise.
#[allow(clippy::too_many_arguments)]
async fn move_transition(
    tx: &mut Tx,
    id: &str,
    from: &[TransitionState],
    to: TransitionState,
    reason: Option<&str>,
    actor: &str,
    action: AuditAction,
    now: Timestamp,
) -> Result<PlanTransition> {
    let mut update = sqlx::QueryBuilder::<Db>::new("UPDATE plan_transitions SET state = ");
    update
        .push_bind(to.as_str())
        .push(", reason = ")
        .push_bind(reason)
        .push(", updated_at = ")
        .push_bind(micros(now))
        .push(", lease_owner = NULL, lease_until = NULL WHERE id = ")
        .push_bind(id)
        .push(" AND state IN (");
    let mut states = update.separated(", ");
    for state in from {
        states.push_bind(state.as_str());
    }
    update.push(concat!(") RETURNING ", transition_columns!()));
    let row = update.build().fetch_optional(&mut **tx).await?;
    let Some(row) = row else {
        return Err(match transition(&mut **tx, id).await? {
            None => StoreError::NotFound(format!("plan transition {id:?} not found")),
            Some(t) => StoreError::Conflict(
                Reason::TransitionWrongState,
                format!(
                    "plan transition {id:?} is {}, not {}",
                    t.state.describe(),
                    match from {
                        [one] => one.describe().to_owned(),
                        _ => format!(
                            "open ({})",
                            from.iter().map(|s| s.describe()).collect::<Vec<_>>().join(" or ")
                        ),
                    },
                ),
            ),
        });
    };
    let t = transition_from(&row)?;
    audit_in(
        tx,
        Some(&t.tenant_id),
        actor,
        action,
        &format!("plan_transition/{id}"),
        None,
        Some(transition_json(&t)),
        now,
    )
    .await?;
    Ok(t)
}

async fn decide_transition(
    store: &SqlStore,
    id: &str,
    approve: bool,
    reason: Option<&str>,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<PlanTransition> {
    let (next, action) = if approve {
        (TransitionState::Creating, AuditAction::PlanTransitionApprove)
    } else {
        (TransitionState::Failed, AuditAction::PlanTransitionReject)
    };
    let (id, reason, actor) = (id.to_owned(), reason.map(str::to_owned), actor.to_owned());
    store
        .write(move |tx| {
            Box::pin(async move {
                move_transition(
                    tx,
                    &id,
                    &[TransitionState::WaitingForApproval],
                    next,
                    reason.as_deref(),
                    &actor,
                    action,
                    now,
                )
                .await
            })
        })
        .await
}

async fn cancel_transition(
    store: &SqlStore,
    id: &str,
    reason: &str,
    actor: Actor<'_>,
    now: Timestamp,
) -> Result<PlanTransition> {
    let (id, reason, actor) = (id.to_owned(), reason.to_owned(), actor.to_owned());
    store
        .write(move |tx| {
            Box::pin(async move {
                move_transition(
                    tx,
                    &id,
                    &[TransitionState::Creating, TransitionState::WaitingForApproval],
                    TransitionState::Failed,
                    Some(&reason),
                    &actor,
                    AuditAction::PlanTransitionCancel,
                    now,
                )
                .await
            })
        })
        .await
}

async fn claim_transition(
    store: &SqlStore,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Option<LeasedTransition>> {
    let owner = owner.to_owned();
    store
        .write(move |tx| {
            Box::pin(async move {
                let row = sqlx::query(concat!(
                    "UPDATE plan_transitions SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
                     WHERE id = (SELECT id FROM plan_transitions WHERE state = 'CREATING' \
                                 AND (lease_until IS NULL OR lease_until <= $3) ORDER BY created_at, id LIMIT 1) \
                       AND state = 'CREATING' AND (lease_until IS NULL OR lease_until <= $3) RETURNING attempts, \
                       last_error, ",
                    transition_columns!()
                ))
                .bind(&owner)
                .bind(micros(lease_until))
                .bind(micros(now))
                .fetch_optional(&mut **tx)
                .await?;
                row.as_ref()
                    .map(|r| {
                        let attempt: i64 = r.try_get("attempts")?;
                        Ok(LeasedTransition {
                            transition: transition_from(r)?,
                            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                            last_error: r.try_get("last_error")?,
                        })
                    })
                    .transpose()
            })
        })
        .await
}

async fn retry_transition(
    store: &SqlStore,
    id: &str,
    owner: &str,
    error: &str,
    retry_at: Timestamp,
) -> Result<()> {
    let (id, owner, error) = (id.to_owned(), owner.to_owned(), error.to_owned());
    store
        .write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE plan_transitions SET last_error = $3, lease_owner = NULL, lease_until = $4 \
                     WHERE id = $1 AND state = 'CREATING' AND lease_owner = $2",
                )
                .bind(&id)
                .bind(&owner)
                .bind(&error)
                .bind(micros(retry_at))
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        })
        .await
}

async fn complete_transition(store: &SqlStore, o: &TransitionOutcome) -> Result<()> {
    let o = o.clone();
    store
        .write(move |tx| Box::pin(async move { complete_transition_in(tx, &o).await }))
        .await
}

async fn complete_transition_in(tx: &mut Tx, o: &TransitionOutcome) -> Result<()> {
    let held = sqlx::query(concat!(
        "UPDATE plan_transitions SET state = 'FINISHED', updated_at = $3, lease_owner = NULL, lease_until = NULL \
         WHERE id = $1 AND state = 'CREATING' AND lease_owner = $2 AND tenant_id = $4 RETURNING ",
        transition_columns!()
    ))
    .bind(&o.transition_id)
    .bind(&o.lease_owner)
    .bind(micros(o.now))
    .bind(o.tenant_id.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = held else {
        return Err(StoreError::Conflict(
            Reason::TransitionLeaseLost,
            format!(
                "plan transition {:?} is no longer held by {:?}",
                o.transition_id, o.lease_owner
            ),
        ));
    };
    let t = transition_from(&row)?;
    let actor = format!("{SYSTEM}/transition-worker");
    sqlx::query(LOCK_TENANT)
        .bind(o.tenant_id.as_str())
        .fetch_one(&mut **tx)
        .await?;
    if let Some(method) = &o.payment_method {
        let change = PaymentChange::Create {
            method: Box::new(method.clone()),
            requested: Some(PaymentRole::Primary),
        };
        change_payment_methods_in(tx, &o.tenant_id, &change, &actor, o.now).await?;
    }
    let closed = sqlx::query(
        "UPDATE subscriptions SET end_at = $2 WHERE tenant_id = $1 AND end_at IS NULL RETURNING id, plan",
    )
    .bind(o.tenant_id.as_str())
    .bind(micros(o.now))
    .fetch_optional(&mut **tx)
    .await?;
    let Some(closed) = closed else {
        return Err(StoreError::Corrupt(format!(
            "tenant {:?} has no current subscription",
            o.tenant_id
        )));
    };
    let closed_id: String = closed.try_get("id")?;
    // Its last period now ends at `now`: it is due for period close then.
    super::invoicing::lower_billing_due_in(tx, &o.tenant_id, o.now).await?;
    insert_subscription(tx, &o.subscription).await?;
    // A pending move to a newer catalog version was for the closed
    // subscription: the new one starts at the version it was created with.
    super::catalogs::drop_catalog_move_in(tx, &o.tenant_id, &closed_id, o.now).await?;
    let before = sqlx::query("SELECT plan, tenant_type, domain FROM tenants WHERE id = $1")
        .bind(o.tenant_id.as_str())
        .fetch_one(&mut **tx)
        .await?;
    let before = serde_json::json!({
        "plan": before.try_get::<Option<String>, _>("plan")?,
        "tenant_type": before.try_get::<String, _>("tenant_type")?,
        "domain": before.try_get::<Option<String>, _>("domain")?,
    });
    sqlx::query(
        "UPDATE tenants SET plan = $2, catalog_version = $3, tenant_type = $4, domain = COALESCE($5, domain), \
         contacts = COALESCE($6, contacts) WHERE id = $1",
    )
    .bind(o.tenant_id.as_str())
    .bind(&o.subscription.plan)
    .bind(o.subscription.catalog_version)
    .bind(o.tenant_type.as_str())
    .bind(o.domain.as_deref())
    .bind(
        o.contacts
            .as_deref()
            .map(|c| crate::records::encode_contacts("tenants.contacts", c))
            .transpose()?,
    )
    .execute(&mut **tx)
    .await?;
    // The add-ons the tenant has now, under its lock: one subscribed while the
    // transition ran is kept if the new plan allows it.
    let had: Vec<String> = sqlx::query("SELECT addon FROM tenant_addons WHERE tenant_id = $1 ORDER BY addon")
        .bind(o.tenant_id.as_str())
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get("addon"))
        .collect::<std::result::Result<_, _>>()?;
    let addons = o.addons.apply(&had);
    for addon in had.iter().filter(|a| !addons.contains(a)) {
        record_addon_in(tx, &o.tenant_id, addon, false, o.now).await?;
    }
    for addon in addons.iter().filter(|a| !had.contains(a)) {
        record_addon_in(tx, &o.tenant_id, addon, true, o.now).await?;
    }
    sqlx::query("DELETE FROM tenant_addons WHERE tenant_id = $1")
        .bind(o.tenant_id.as_str())
        .execute(&mut **tx)
        .await?;
    for addon in &addons {
        sqlx::query("INSERT INTO tenant_addons (tenant_id, addon, subscribed_at) VALUES ($1, $2, $3)")
            .bind(o.tenant_id.as_str())
            .bind(addon)
            .bind(micros(o.now))
            .execute(&mut **tx)
            .await?;
    }
    let after = serde_json::json!({
        "plan": o.subscription.plan,
        "tenant_type": o.tenant_type.as_str(),
        "domain": o.domain,
        "addons": addons,
        "closed_subscription": closed_id,
        "subscription": o.subscription.id,
    });
    let target = format!("plan_transition/{}", t.id);
    audit_in(
        tx,
        Some(&o.tenant_id),
        &actor,
        AuditAction::PlanTransitionFinish,
        &target,
        Some(before),
        Some(after),
        o.now,
    )
    .await
}

async fn fail_transition(
    store: &SqlStore,
    id: &str,
    owner: &str,
    reason: &str,
    now: Timestamp,
) -> Result<()> {
    let (id, owner, reason) = (id.to_owned(), owner.to_owned(), reason.to_owned());
    store
        .write(move |tx| {
            Box::pin(async move {
                let row = sqlx::query(concat!(
                    "UPDATE plan_transitions SET state = 'FAILED', reason = $3, updated_at = $4, lease_owner = NULL, \
                     lease_until = NULL WHERE id = $1 AND state = 'CREATING' AND lease_owner = $2 RETURNING ",
                    transition_columns!()
                ))
                .bind(&id)
                .bind(&owner)
                .bind(&reason)
                .bind(micros(now))
                .fetch_optional(&mut **tx)
                .await?
                .ok_or_else(|| {
                    StoreError::Conflict(
                        Reason::TransitionLeaseLost,
                        format!("plan transition {id:?} is no longer held by {owner:?}"),
                    )
                })?;
                let t = transition_from(&row)?;
                let actor = format!("{SYSTEM}/transition-worker");
                audit_in(
                    tx,
                    Some(&t.tenant_id),
                    &actor,
                    AuditAction::PlanTransitionFail,
                    &format!("plan_transition/{id}"),
                    None,
                    Some(transition_json(&t)),
                    now,
                )
                .await
            })
        })
        .await
}

/// Records in `addon_history` that `addon` was subscribed (a span opens;
/// one that closed at this very moment is reopened instead) or
/// unsubscribed (its open span closes) at `now`.
async fn record_addon_in(
    tx: &mut Tx,
    tenant_id: &TenantId,
    addon: &str,
    subscribed: bool,
    now: Timestamp,
) -> Result<()> {
    if subscribed {
        let reopened = sqlx::query(
            "UPDATE addon_history SET end_at = NULL WHERE tenant_id = $1 AND addon = $2 AND end_at = $3",
        )
        .bind(tenant_id.as_str())
        .bind(addon)
        .bind(micros(now))
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if reopened == 0 {
            sqlx::query(
                "INSERT INTO addon_history (tenant_id, addon, start_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(tenant_id.as_str())
            .bind(addon)
            .bind(micros(now))
            .execute(&mut **tx)
            .await?;
        }
    } else {
        sqlx::query(
            "UPDATE addon_history SET end_at = $3 WHERE tenant_id = $1 AND addon = $2 AND end_at IS NULL",
        )
        .bind(tenant_id.as_str())
        .bind(addon)
        .bind(micros(now))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
