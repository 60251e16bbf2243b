//! Wire shapes of usage ingestion (beyond the contract) and the five usage
//! reports.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::DecimalLit;

/// One usage event as platform services send it (beyond the contract).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct EventInput {
    /// Unique per tenant; a re-sent id is acknowledged and not counted again.
    pub id: Option<String>,
    pub metric_label: Option<String>,
    pub object_name: Option<String>,
    /// In the meter's unit; a number or a string holding one; not negative.
    #[schema(value_type = Option<f64>)]
    pub quantity: Option<DecimalLit>,
    /// RFC 3339, or unix seconds.
    #[schema(value_type = Option<String>)]
    pub timestamp: Option<TimeInput>,
    pub deployment: Option<String>,
    pub container: Option<String>,
    /// What the event is about, as name → string value (at most 16; names of
    /// letters, digits, `_`, `-`, `.`): stored with the event; a unique-count
    /// meter counts the distinct values of its property.
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    pub properties: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// A time as RFC 3339 text or unix seconds.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TimeInput {
    Text(String),
    Seconds(f64),
}

impl TimeInput {
    pub fn text(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            Self::Seconds(s) => s.to_string(),
        }
    }
}

/// `POST …/usage/events` (beyond the contract).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct IngestRequest {
    pub events: Option<Vec<EventInput>>,
}

/// What happened to one event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventResult {
    pub id: String,
    /// `ACCEPTED`, `DUPLICATE` (stored before; not counted again) or `REJECTED`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

/// Answer of `POST …/usage/events`, one result per event in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResponse {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub results: Vec<EventResult>,
}

/// `usageListUsageDetailsReq` and `usageListCurrentUsageReq`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RangeRequest {
    pub namespace: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// `usageHourlyItem`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HourlyItem {
    pub start_timestamp: String,
    pub end_timestamp: String,
    pub quantity: f64,
    pub unit_name: String,
    pub deployment: String,
    pub container: String,
}

/// `usageUsageItem`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageItem {
    pub namespace: String,
    pub metric_label: String,
    pub object_name: String,
    pub usage_type: String,
    pub unit_name: String,
    pub quantity: f64,
    pub start_timestamp: String,
    pub end_timestamp: String,
    /// Pass to `hourly_usage_details` for the hourly items.
    pub hourly_breakdown_query: String,
    /// Deprecated by the contract in favour of `hourly_breakdown_query`; empty.
    pub hourly_breakdown: Vec<HourlyItem>,
}

/// `usageListUsageDetailsResp`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListUsageDetailsResp {
    pub usage_items: Vec<UsageItem>,
}

/// `usageListHourlyUsageDetailsReq`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct HourlyRequest {
    pub namespace: Option<String>,
    pub query: Option<String>,
}

/// `usageListHourlyUsageDetailsResp`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListHourlyUsageDetailsResp {
    pub hourly_usage_items: Vec<HourlyItem>,
}

/// `usageCalculatedUsageItem`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalculatedUsageItem {
    pub usage_type: String,
    pub metric_labels: Vec<String>,
    pub quantity: f64,
    pub unit_name: String,
    /// int64 as a string.
    pub quantity_billable: String,
    pub unit_name_billable: String,
    /// Minor units of the currency (cents; whole yen for JPY), int64 as a string.
    pub amount: String,
    pub currency_code: String,
    pub start_timestamp: String,
    pub end_timestamp: String,
    /// True for lines that do not come from usage (the plan's flat fee, an
    /// add-on's price, a meter's flat amount, the true-up to a minimum
    /// commitment).
    pub fixed: bool,
    pub status: String,
    /// How a tiered or package price came to `amount` (beyond the
    /// contract; absent for per-unit prices and fixed lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub pricing: Option<PricingItem>,
}

/// The steps of a tiered or package price (beyond the contract). The line's
/// amount is the sum of the steps' exact amounts, rounded once, half up.
#[derive(Debug, Serialize, ToSchema)]
pub struct PricingItem {
    /// `graduated`, `volume` or `package`.
    pub model: String,
    pub steps: Vec<StepItem>,
}

/// One tier used (`from`/`to`, chargeable units, 1-based and inclusive; no
/// `to` for the last tier), or the packages (`package_size`).
#[derive(Debug, Serialize, ToSchema)]
pub struct StepItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub package_size: Option<String>,
    /// Units (packages) priced at this step; exact decimal.
    pub quantity: String,
    /// Cents per unit (per package); exact decimal.
    pub unit_price_cents: String,
    /// The tier's flat amount in cents; exact decimal.
    pub flat_cents: String,
    /// quantity × unit price + flat amount, exact cents.
    pub amount_cents: String,
}

impl PricingItem {
    pub fn new(model: tollgate_domain::catalog::ModelKind, steps: &[tollgate_domain::rating::Step]) -> Self {
        use tollgate_domain::rating::StepKind;
        Self {
            model: model.as_str().to_owned(),
            steps: steps
                .iter()
                .map(|s| {
                    let (from, to, package_size) = match &s.kind {
                        StepKind::Tier { from, to } => (
                            Some(from.normalize().to_string()),
                            to.map(|t| t.normalize().to_string()),
                            None,
                        ),
                        StepKind::Package { size } => (None, None, Some(size.normalize().to_string())),
                    };
                    StepItem {
                        from,
                        to,
                        package_size,
                        quantity: s.quantity.normalize().to_string(),
                        unit_price_cents: s.unit_price_cents.normalize().to_string(),
                        flat_cents: s.flat_cents.normalize().to_string(),
                        amount_cents: s.amount_cents.normalize().to_string(),
                    }
                })
                .collect(),
        }
    }
}

/// One tier of a meter's price (beyond the contract).
#[derive(Debug, Serialize, ToSchema)]
pub struct TierItem {
    /// Last chargeable unit of the tier; absent on the last tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub up_to: Option<String>,
    pub unit_price_cents: String,
    pub flat_amount_cents: String,
}

/// `usageCoupon`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CouponType {
    pub title: String,
    /// `DISCOUNT_TYPE_FIXED_AMOUNT` or `DISCOUNT_TYPE_PERCENTAGE`.
    pub discount_type: String,
    /// Cents, or 0.01 % units.
    pub discount_amount: i64,
}

/// `usageListCurrentUsageResp`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListCurrentUsageResp {
    pub usage_items: Vec<CalculatedUsageItem>,
    pub coupons: Vec<CouponType>,
    /// Minor units of the currency (cents; whole yen for JPY), int64 as a string.
    pub discount: String,
    /// Minor units of the currency (cents; whole yen for JPY), int64 as a string.
    pub total_cost: String,
}

/// `usageListMonthlyUsageReq`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct MonthlyRequest {
    pub namespace: Option<String>,
}

/// `usageMonthlyUsageType`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthlyUsageType {
    pub start_timestamp: String,
    pub end_timestamp: String,
    /// Minor units of the currency (cents; whole yen for JPY), int64 as a string.
    pub amount: String,
    pub currency_code: String,
}

/// `usageListMonthlyUsageResp`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListMonthlyUsageResp {
    pub monthly_usage_items: Vec<MonthlyUsageType>,
}

/// `billingBillingUsageSummaryRequest`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UsageSummaryRequest {
    #[schema(value_type = Option<String>)]
    pub start_time: Option<TimeInput>,
    #[schema(value_type = Option<String>)]
    pub end_time: Option<TimeInput>,
}

/// `schemabillingMetricValue`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricValue {
    /// Unix seconds.
    pub timestamp: f64,
    pub value: String,
}

/// `billingUsageMetricData`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageMetricData {
    pub unit: String,
    pub metric_value: MetricValue,
}

/// `billingBillingMetricData`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillingMetricData {
    pub unit: String,
    /// Usage ÷ the division factor (the meter's divisor).
    pub value: String,
}

/// `billingUsageSummaryItem`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageSummaryItem {
    pub name: String,
    pub service: String,
    pub usage_metric_data: UsageMetricData,
    pub billing_metric_data: BillingMetricData,
}

/// `billingBillingUsageSummaryResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillingUsageSummaryResponse {
    pub usage_summary_items: Vec<UsageSummaryItem>,
}

/// A meter and its price under the caller's plan (beyond the contract).
#[derive(Debug, Serialize, ToSchema)]
pub struct MeterItem {
    pub metric_label: String,
    pub usage_type: String,
    pub service: String,
    pub unit: String,
    pub unit_billable: String,
    /// `sum`, `max`, `latest`, `count` or `unique_count`.
    pub aggregation: String,
    /// The event property a `unique_count` meter counts distinct values of.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub property: Option<String>,
    /// Minor units of `currency_code` (cents; whole yen for JPY) per billable unit (one
    /// `unit_billable`), an exact decimal as a string ("0" when free).
    pub unit_price_cents: String,
    /// The same price for people: `"0.60 USD per million requests"`.
    pub price: String,
    /// The same as `unit_price_cents`, under its first name (kept for
    /// clients written against it).
    pub unit_price: String,
    pub currency_code: String,
    /// Billable units (`unit_billable`) free per billing period, an exact
    /// decimal as a string.
    pub free_allowance: String,
    /// `per_unit`, `graduated`, `volume` or `package`. Under a tiered or
    /// package price, `unit_price_cents` is the first chargeable unit's.
    pub price_model: String,
    /// Tiers of a graduated or volume price (empty for other models).
    pub tiers: Vec<TierItem>,
    /// Units per package, of a package price.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub package_size: Option<String>,
    /// Cents per package, of a package price.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub package_price_cents: Option<String>,
    /// Cents charged per billing period for the meter whatever its usage
    /// (0: none).
    pub flat_amount_cents: String,
}

/// `GET …/usage/meters` (beyond the contract).
#[derive(Debug, Serialize, ToSchema)]
pub struct MeterList {
    pub items: Vec<MeterItem>,
}
