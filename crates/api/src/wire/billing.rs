//! Wire shapes of plans, subscriptions, add-ons, payment methods and plan
//! transitions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tollgate_domain::Error;
use tollgate_domain::catalog::{Catalog, LocalizedText, Plan};
use tollgate_domain::contact::{Contact, ContactType};
use tollgate_domain::transition::TransitionPayload;
use utoipa::ToSchema;

use super::quota::{QuotaSpecOutput, RateLimitType};

/// `planAddonServiceDetails`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AddonServiceDetails {
    pub name: String,
    pub display_name: String,
    /// What the add-on costs per billing period on this plan, in cents
    /// (int64 as a string), prorated by the time subscribed (beyond the
    /// contract; absent when free or included in the plan).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub price_cents: Option<String>,
}

/// `planUsagePlanTransitionFlow`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransitionFlow {
    pub method: String,
    pub required_fields: Vec<String>,
    pub requires_manual_approval: bool,
}

/// `schemaquotaGlobalSpecType`: a plan's default quota.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuotaGlobalSpec {
    pub object_limits: BTreeMap<String, super::quota::LimitType>,
    pub resource_limits: BTreeMap<String, super::quota::FloatLimitType>,
    pub api_limits: BTreeMap<String, RateLimitType>,
    /// Always empty: Tollgate enforces API limits itself.
    pub apigw_limits: BTreeMap<String, RateLimitType>,
}

/// `planPlanInternal`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanInternal {
    pub name: String,
    pub title: String,
    pub subtitle: String,
    pub description: String,
    pub usage_plan_type: String,
    pub tenant_type: String,
    /// Flat fee per billing period, in cents.
    pub flat_price: i64,
    pub renewal_period_unit: String,
    pub trial_period: u32,
    pub trial_period_unit: String,
    pub billing_disabled: bool,
    /// The plan is offered to customers.
    pub current: bool,
    pub state: String,
    pub included_addon_services: Vec<AddonServiceDetails>,
    pub allowed_addon_services: Vec<AddonServiceDetails>,
    pub default_quota: QuotaGlobalSpec,
    pub transition_flow: TransitionFlow,
    /// The catalog version the tenant's plan is priced at (beyond the
    /// contract; `usage_plans/current` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub catalog_version: Option<i64>,
    /// A newer catalog version an operator moved the tenant to, from
    /// `next_catalog_version_at` (the start of its next billing period;
    /// beyond the contract; `usage_plans/current` only, absent when none is
    /// pending).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_catalog_version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_catalog_version_at: Option<String>,
}

/// How one plan is shown.
pub struct PlanView<'a> {
    pub catalog: &'a Catalog,
    pub plan: &'a Plan,
    pub texts: LocalizedText,
    pub current: bool,
    pub transition_pending: bool,
    /// The tenant's subscribed add-ons, shown as included (on its own plan).
    pub subscribed: &'a [String],
}

impl PlanInternal {
    pub fn new(v: PlanView<'_>) -> Self {
        let details = |names: &mut dyn Iterator<Item = &String>| -> Vec<AddonServiceDetails> {
            names
                .map(|n| AddonServiceDetails {
                    name: n.clone(),
                    display_name: v
                        .catalog
                        .addon(n)
                        .map_or_else(|| n.clone(), |a| a.display_name.clone()),
                    price_cents: v
                        .catalog
                        .addon(n)
                        .filter(|a| a.flat_price_cents > 0 && !v.plan.included_addons.contains(n))
                        .map(|a| a.flat_price_cents.to_string()),
                })
                .collect()
        };
        let p = v.plan;
        let quota = QuotaSpecOutput::from(&p.default_quota);
        Self {
            name: p.name.clone(),
            title: v.texts.title,
            subtitle: v.texts.subtitle,
            description: v.texts.description,
            usage_plan_type: p.usage_plan_type.as_str().to_owned(),
            tenant_type: p.tenant_type.as_str().to_owned(),
            flat_price: p.flat_price_cents,
            renewal_period_unit: format!("PERIOD_{}", p.renewal_period.as_str()),
            trial_period: p.trial_period,
            trial_period_unit: format!("PERIOD_{}", p.trial_period_unit.as_str()),
            billing_disabled: p.billing_disabled,
            current: v.current,
            state: if v.transition_pending {
                "STATE_TRANSITION_PENDING"
            } else {
                "STATE_READY"
            }
            .to_owned(),
            included_addon_services: details(&mut p.included_addons.iter().chain(v.subscribed.iter())),
            allowed_addon_services: details(
                &mut p.allowed_addons.iter().filter(|a| !v.subscribed.contains(a)),
            ),
            default_quota: QuotaGlobalSpec {
                object_limits: quota.object_limits,
                resource_limits: quota.resource_limits,
                api_limits: quota.api_limits,
                apigw_limits: BTreeMap::new(),
            },
            transition_flow: TransitionFlow {
                method: format!("TRANSITION_METHOD_{}", p.transition.method.as_str()),
                required_fields: p
                    .transition
                    .required_fields
                    .iter()
                    .map(|f| format!("TRANSITION_REQUIRED_FIELD_{}", f.as_str()))
                    .collect(),
                requires_manual_approval: p.transition.requires_manual_approval,
            },
            catalog_version: None,
            next_catalog_version: None,
            next_catalog_version_at: None,
        }
    }
}

/// `planLocalizedPlan`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LocalizedPlan {
    pub locale: String,
    pub plans: Vec<PlanInternal>,
}

/// `planListUsagePlansRsp`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListUsagePlansRsp {
    pub usage_plans: Vec<LocalizedPlan>,
}

/// `subscriptionPeriod`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodType {
    pub uid: String,
    pub start_date: String,
    pub end_date: String,
    pub internal_start_date: String,
    pub internal_end_date: String,
    pub trial: bool,
    pub invoices: Vec<String>,
    pub pending_invoice: Vec<String>,
    pub closed_invoice: Vec<String>,
}

/// `subscriptionSubscriptionType`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionType {
    pub name: String,
    pub plan_name: String,
    pub plan_object_name: String,
    pub start_date: String,
    pub current: bool,
    pub cancelled: bool,
    /// When the subscription ended; absent while it is current.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub cancellation_date: Option<String>,
    pub last_billing_period_start_date: String,
    pub last_billing_period_end_date: String,
    pub previous_billing_periods: Vec<PeriodType>,
}

/// `subscriptionListSubscriptionsRsp`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListSubscriptionsRsp {
    pub subscriptions: Vec<SubscriptionType>,
}

/// `contactGlobalSpecType` as sent.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ContactInput {
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub contact_type: Option<EnumInput>,
    pub country: Option<String>,
    pub county: Option<String>,
    pub phone_number: Option<String>,
    pub state: Option<String>,
    pub state_code: Option<String>,
    pub zip_code: Option<String>,
}

/// An enum value as proto3 JSON accepts it: its name or its number.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EnumInput {
    Name(String),
    Number(i64),
}

impl EnumInput {
    pub fn text(&self) -> String {
        match self {
            Self::Name(n) => n.clone(),
            Self::Number(n) => n.to_string(),
        }
    }
}

impl ContactInput {
    pub fn into_domain(self, field: &str) -> Result<Contact, Error> {
        let contact_type = match &self.contact_type {
            Some(t) => ContactType::parse(&format!("{field}.contact_type"), &t.text())?,
            None => ContactType::Mailing,
        };
        let c = Contact {
            contact_type,
            address1: self.address1.unwrap_or_default(),
            address2: self.address2.unwrap_or_default(),
            city: self.city.unwrap_or_default(),
            state: self.state.unwrap_or_default(),
            state_code: self.state_code.unwrap_or_default(),
            county: self.county.unwrap_or_default(),
            zip_code: self.zip_code.unwrap_or_default(),
            country: self.country.unwrap_or_default(),
            phone_number: self.phone_number.unwrap_or_default(),
        };
        c.validate(field, false)?;
        Ok(c)
    }
}

/// `contactGlobalSpecType` in responses.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactOutput {
    pub contact_type: String,
    pub address1: String,
    pub address2: String,
    pub city: String,
    pub state: String,
    pub state_code: String,
    pub county: String,
    pub zip_code: String,
    pub country: String,
    pub phone_number: String,
}

impl From<&Contact> for ContactOutput {
    fn from(c: &Contact) -> Self {
        Self {
            contact_type: c.contact_type.as_str().to_owned(),
            address1: c.address1.clone(),
            address2: c.address2.clone(),
            city: c.city.clone(),
            state: c.state.clone(),
            state_code: c.state_code.clone(),
            county: c.county.clone(),
            zip_code: c.zip_code.clone(),
            country: c.country.clone(),
            phone_number: c.phone_number.clone(),
        }
    }
}

/// `payment_methodCreatePaymentMethodRequest`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreatePaymentMethodRequest {
    pub contact: Option<ContactInput>,
    pub namespace: Option<String>,
    #[schema(value_type = Option<String>)]
    pub role: Option<EnumInput>,
    pub token: Option<String>,
}

/// `payment_methodCreatePaymentMethodResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatePaymentMethodResponse {
    pub name: String,
}

/// Body of the role calls (`payment_methodPaymentMethodPrimaryReq`, …).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PaymentMethodRoleRequest {
    pub name: Option<String>,
    pub namespace: Option<String>,
}

/// One entry of `GET billing/payment_methods` (beyond the contract).
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentMethodItem {
    pub name: String,
    /// `PAYMENT_METHOD_ROLE_PRIMARY`, `_SECONDARY` or `_NORMAL`.
    pub role: String,
    /// What may be shown, e.g. "test card ending 4242"; never card numbers.
    pub display: String,
    pub contact: ContactOutput,
    pub created: String,
}

/// `GET billing/payment_methods` (beyond the contract).
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentMethodList {
    pub items: Vec<PaymentMethodItem>,
}

/// `plan_transitionTransitionPayload` as sent.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TransitionPayloadInput {
    pub billing_address: Option<ContactInput>,
    pub payment_address: Option<ContactInput>,
    pub payment_provider_token: Option<String>,
    pub domain: Option<String>,
    pub subscribe_addon_services: Option<Vec<String>>,
    pub unsubscribe_addon_services: Option<Vec<String>>,
    #[schema(value_type = Option<String>)]
    pub deletion_reason: Option<EnumInput>,
    pub deletion_feedback: Option<String>,
    pub create_support_ticket: Option<bool>,
    pub support_ticket_info: Option<String>,
    /// Set by the backend; ignored on input.
    pub billing_provider_account_id: Option<String>,
    /// Set by the backend; ignored on input.
    pub tp_subscription_id: Option<String>,
}

impl TransitionPayloadInput {
    pub fn into_domain(self) -> Result<TransitionPayload, Error> {
        let contact = |c: Option<ContactInput>, field: &str| c.map(|c| c.into_domain(field)).transpose();
        let deletion_reason = self
            .deletion_reason
            .map(|r| crate::wire::enums::parse_deletion_reason("payload.deletion_reason", &r.text()))
            .transpose()?;
        Ok(TransitionPayload {
            payment_provider_token: self.payment_provider_token.filter(|t| !t.is_empty()),
            billing_address: contact(self.billing_address, "payload.billing_address")?,
            payment_address: contact(self.payment_address, "payload.payment_address")?,
            domain: self.domain.filter(|d| !d.is_empty()),
            subscribe_addons: self.subscribe_addon_services.unwrap_or_default(),
            unsubscribe_addons: self.unsubscribe_addon_services.unwrap_or_default(),
            deletion_reason,
            deletion_feedback: self.deletion_feedback.filter(|f| !f.is_empty()),
            create_support_ticket: self.create_support_ticket.unwrap_or(false),
            support_ticket_info: self.support_ticket_info.filter(|i| !i.is_empty()),
        })
    }
}

/// `plan_transitionInitiatePlanTransitionReq`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct InitiatePlanTransitionReq {
    pub namespace: Option<String>,
    pub new_plan: Option<String>,
    pub payload: Option<TransitionPayloadInput>,
}

/// `plan_transitionInitiatePlanTransitionRsp`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InitiatePlanTransitionRsp {
    pub id: String,
    pub requires_manual_approval: bool,
}

/// `plan_transitionGetPlanTransitionRsp`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GetPlanTransitionRsp {
    pub state: String,
}

/// The add-on request of subscribe and unsubscribe: exactly one of the 13
/// fields (the contract's `addon_choice` one-of), each an object (the empty
/// message; fields in it are unknown, so ignored).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AddonRequest {
    #[schema(value_type = Option<Object>)]
    pub f5xc_appstack_standard: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub f5xc_big_ip_irule_standard: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub f5xc_bigip_utilities_standard: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub f5xc_content_delivery_network_advanced: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub f5xc_content_delivery_network_standard: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub f5xc_delegated_access_standard: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub f5xc_securemesh_advanced: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub f5xc_securemesh_standard: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub f5xc_site_management_standard: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub f5xc_synthetic_monitoring_standard: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub f5xc_waap_advanced: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub f5xc_waap_standard: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub f5xc_web_app_scanning_standard: Option<serde_json::Value>,
}

impl AddonRequest {
    /// The one add-on chosen; every field set must be an object. Unknown
    /// fields, at the top level or inside the chosen object, do not count.
    pub fn choice(&self) -> Result<&'static str, Error> {
        let fields: [(&'static str, &Option<serde_json::Value>); 13] = [
            ("f5xc_appstack_standard", &self.f5xc_appstack_standard),
            ("f5xc_big_ip_irule_standard", &self.f5xc_big_ip_irule_standard),
            (
                "f5xc_bigip_utilities_standard",
                &self.f5xc_bigip_utilities_standard,
            ),
            (
                "f5xc_content_delivery_network_advanced",
                &self.f5xc_content_delivery_network_advanced,
            ),
            (
                "f5xc_content_delivery_network_standard",
                &self.f5xc_content_delivery_network_standard,
            ),
            (
                "f5xc_delegated_access_standard",
                &self.f5xc_delegated_access_standard,
            ),
            ("f5xc_securemesh_advanced", &self.f5xc_securemesh_advanced),
            ("f5xc_securemesh_standard", &self.f5xc_securemesh_standard),
            (
                "f5xc_site_management_standard",
                &self.f5xc_site_management_standard,
            ),
            (
                "f5xc_synthetic_monitoring_standard",
                &self.f5xc_synthetic_monitoring_standard,
            ),
            ("f5xc_waap_advanced", &self.f5xc_waap_advanced),
            ("f5xc_waap_standard", &self.f5xc_waap_standard),
            (
                "f5xc_web_app_scanning_standard",
                &self.f5xc_web_app_scanning_standard,
            ),
        ];
        let mut set = Vec::new();
        for (name, value) in fields {
            match value {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::Object(_)) => set.push(name),
                Some(other) => {
                    return Err(Error::invalid(format!(
                        "{name}: expected an object {{}}, got {other}"
                    )));
                }
            }
        }
        match set.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::invalid(format!(
                "addon_choice: exactly one of {} is required, e.g. {{\"f5xc_waap_standard\": {{}}}}",
                fields.map(|(name, _)| name).join(", ")
            ))),
            many => Err(Error::invalid(format!(
                "addon_choice: exactly one add-on field is allowed, got {}",
                many.join(", ")
            ))),
        }
    }
}
