//! Every operation Tollgate serves, named by the contract's operationIds (and
//! `tollgate.*` names for extensions). The name is also the key of
//! `api_limits`, so rate limits and quotas use one vocabulary.

use tollgate_domain::access::Permission;

macro_rules! operations {
    ($($variant:ident = $id:literal => $permission:ident),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation { $($variant),+ }

        impl Operation {
            pub const ALL: &[Operation] = &[$(Self::$variant),+];

            /// The operationId (contract operations) or extension RPC name.
            pub const fn id(self) -> &'static str {
                match self { $(Self::$variant => $id),+ }
            }

            /// What a token needs to call it.
            pub const fn permission(self) -> Permission {
                match self { $(Self::$variant => Permission::$permission),+ }
            }
        }
    };
}

operations! {
    QuotaCreate = "ves.io.schema.quota.API.Create" => ManageQuota,
    QuotaReplace = "ves.io.schema.quota.API.Replace" => ManageQuota,
    QuotaGet = "ves.io.schema.quota.API.Get" => Read,
    QuotaList = "ves.io.schema.quota.API.List" => Read,
    QuotaDelete = "ves.io.schema.quota.API.Delete" => ManageQuota,
    QuotaLimits = "ves.io.schema.quota.CustomAPI.CustomGetQuotaLimits" => Read,
    QuotaUsage = "ves.io.schema.quota.CustomAPI.GetQuotaUsage" => Read,
    QuotaReserve = "tollgate.quota.Reserve" => ReportUsage,
    QuotaRelease = "tollgate.quota.Release" => ReportUsage,
    QuotaReconcile = "tollgate.quota.Reconcile" => ReportUsage,
    ListUsagePlans = "ves.io.schema.usage.plan.CustomAPI.ListUsagePlans" => Read,
    GetCurrentPlan = "ves.io.schema.usage.plan.CustomAPI.GetCurrentPlan" => Read,
    ListSubscriptions = "ves.io.schema.usage.subscription.CustomAPI.ListSubscriptions" => Read,
    AddonSubscribe = "ves.io.schema.subscription.CustomAPI.Subscribe" => ManageBilling,
    AddonUnsubscribe = "ves.io.schema.subscription.CustomAPI.Unsubscribe" => ManageBilling,
    PaymentMethodCreate = "ves.io.schema.billing.payment_method.CustomAPI.Create" => ManageBilling,
    PaymentMethodDelete = "ves.io.schema.billing.payment_method.CustomAPI.Delete" => ManageBilling,
    PaymentMethodPrimary = "ves.io.schema.billing.payment_method.CustomAPI.MakePaymentMethodPrimary" => ManageBilling,
    PaymentMethodSecondary = "ves.io.schema.billing.payment_method.CustomAPI.MakePaymentMethodSecondary" => ManageBilling,
    PaymentMethodSwap = "ves.io.schema.billing.payment_method.CustomAPI.SwapPaymentMethodRole" => ManageBilling,
    PaymentMethodList = "tollgate.billing.ListPaymentMethods" => Read,
    PlanTransitionInitiate = "ves.io.schema.billing.plan_transition.CustomAPI.InitiatePlanTransition" => ManageBilling,
    IngestEvents = "tollgate.usage.IngestEvents" => ReportUsage,
    ListMeters = "tollgate.usage.ListMeters" => Read,
    ListUsageDetails = "ves.io.schema.usage.CustomAggregatedUsageAPI.ListUsageDetails" => Read,
    ListHourlyUsageDetails = "ves.io.schema.usage.CustomAggregatedUsageAPI.ListHourlyUsageDetails" => Read,
    ListCurrentUsage = "ves.io.schema.usage.CustomCalculatedUsageAPI.ListCurrentUsage" => Read,
    ListMonthlyUsage = "ves.io.schema.usage.CustomCalculatedUsageAPI.ListMonthlyUsage" => Read,
    BillingUsageSummary = "ves.io.schema.billing.CustomPublicAPI.BillingUsageSummary" => Read,
    ListInvoices = "ves.io.schema.usage.invoice.CustomAPI.ListInvoices" => Read,
    DownloadInvoicePdf = "ves.io.schema.usage.invoice.CustomAPI.DownloadInvoicePdf" => Read,
    ListCreditNotes = "tollgate.billing.ListCreditNotes" => Read,
    DownloadCreditNotePdf = "tollgate.billing.DownloadCreditNotePdf" => Read,
    CreditsGet = "tollgate.billing.GetCredits" => Read,
    CreditsLedger = "tollgate.billing.ListCreditLedger" => Read,
    CreditsSettings = "tollgate.billing.SetCreditSettings" => ManageBilling,
    AlertCreate = "tollgate.alerts.CreateAlert" => ManageBilling,
    AlertList = "tollgate.alerts.ListAlerts" => Read,
    AlertGet = "tollgate.alerts.GetAlert" => Read,
    AlertDelete = "tollgate.alerts.DeleteAlert" => ManageBilling,
    WebhookCreate = "tollgate.webhooks.CreateEndpoint" => ManageBilling,
    WebhookList = "tollgate.webhooks.ListEndpoints" => Read,
    WebhookGet = "tollgate.webhooks.GetEndpoint" => Read,
    WebhookDelete = "tollgate.webhooks.DeleteEndpoint" => ManageBilling,
    WebhookRotateSecret = "tollgate.webhooks.RotateSecret" => ManageBilling,
    WebhookEnable = "tollgate.webhooks.EnableEndpoint" => ManageBilling,
    WebhookDeliveries = "tollgate.webhooks.ListDeliveries" => Read,
    WebhookRedeliver = "tollgate.webhooks.Redeliver" => ManageBilling,
}

/// Display name and description of an `api_limits` key that names one of
/// the quota operations, as `quota/limits` shows them.
pub fn rate_limit_info(key: &str) -> Option<(&'static str, &'static str)> {
    let op = Operation::ALL.iter().copied().find(|op| op.id() == key)?;
    Some(match op {
        Operation::QuotaCreate => ("Create quota", "Rate of quota object creation"),
        Operation::QuotaReplace => ("Replace quota", "Rate of quota object replacement"),
        Operation::QuotaDelete => ("Delete quota", "Rate of quota object deletion"),
        Operation::QuotaGet => ("Get quota", "Rate of quota object reads"),
        Operation::QuotaList => ("List quotas", "Rate of quota object listings"),
        Operation::QuotaUsage => ("Quota usage", "Rate of quota usage queries"),
        Operation::QuotaLimits => ("Quota limits", "Rate of quota limit queries"),
        Operation::QuotaReserve => ("Reserve quota", "Rate of quota reservations by platform services"),
        Operation::QuotaRelease => ("Release quota", "Rate of quota releases by platform services"),
        Operation::QuotaReconcile => (
            "Reconcile quota",
            "Rate of usage reconciliations by platform services",
        ),
        _ => return None,
    })
}
