//! Every operation Tollgate serves, named by the contract's operationIds (and
//! `tollgate.*` names for extensions). The name is also the key of
//! `api_limits`, so rate limits and quotas use one vocabulary.

use tollgate_domain::access::Permission;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    QuotaCreate,
    QuotaReplace,
    QuotaGet,
    QuotaList,
    QuotaDelete,
    QuotaLimits,
    QuotaUsage,
    QuotaReserve,
    QuotaRelease,
    QuotaReconcile,
}

impl Operation {
    pub const ALL: &[Operation] = &[
        Self::QuotaCreate,
        Self::QuotaReplace,
        Self::QuotaGet,
        Self::QuotaList,
        Self::QuotaDelete,
        Self::QuotaLimits,
        Self::QuotaUsage,
        Self::QuotaReserve,
        Self::QuotaRelease,
        Self::QuotaReconcile,
    ];

    /// The operationId (contract operations) or extension RPC name.
    pub const fn id(self) -> &'static str {
        match self {
            Self::QuotaCreate => "ves.io.schema.quota.API.Create",
            Self::QuotaReplace => "ves.io.schema.quota.API.Replace",
            Self::QuotaGet => "ves.io.schema.quota.API.Get",
            Self::QuotaList => "ves.io.schema.quota.API.List",
            Self::QuotaDelete => "ves.io.schema.quota.API.Delete",
            Self::QuotaLimits => "ves.io.schema.quota.CustomAPI.CustomGetQuotaLimits",
            Self::QuotaUsage => "ves.io.schema.quota.CustomAPI.GetQuotaUsage",
            Self::QuotaReserve => "tollgate.quota.Reserve",
            Self::QuotaRelease => "tollgate.quota.Release",
            Self::QuotaReconcile => "tollgate.quota.Reconcile",
        }
    }

    /// What a token needs to call it.
    pub const fn permission(self) -> Permission {
        match self {
            Self::QuotaGet | Self::QuotaList | Self::QuotaLimits | Self::QuotaUsage => Permission::Read,
            Self::QuotaCreate | Self::QuotaReplace | Self::QuotaDelete => Permission::ManageQuota,
            Self::QuotaReserve | Self::QuotaRelease | Self::QuotaReconcile => Permission::ReportUsage,
        }
    }
}
