//! Tenants.

use std::fmt;

use crate::Error;

/// The contract's `schemaTenantType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantType {
    Freemium,
    Enterprise,
}

impl TenantType {
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s.to_ascii_uppercase().as_str() {
            "FREEMIUM" => Ok(Self::Freemium),
            "ENTERPRISE" => Ok(Self::Enterprise),
            _ => Err(Error::invalid(format!(
                "type: unknown tenant type {s:?}; use FREEMIUM or ENTERPRISE"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Freemium => "FREEMIUM",
            Self::Enterprise => "ENTERPRISE",
        }
    }
}

impl fmt::Display for TenantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: crate::ids::TenantId,
    pub name: crate::names::Name,
    pub tenant_type: TenantType,
    pub created_at: jiff::Timestamp,
    /// The plan of the current subscription.
    pub plan: crate::ids::PlanName,
    /// The catalog version of the current subscription.
    pub catalog_version: i64,
    /// The ISO 4217 currency it is priced and invoiced in, set at creation
    /// and changed only while no invoice is unpaid; `None` for a tenant
    /// from before currencies, which is in its catalog's first currency
    /// ([`crate::catalog::Catalog::currency_of`]) until the store pins it.
    pub currency: Option<String>,
    /// Enterprise domain, once given in a plan transition.
    pub domain: Option<String>,
    /// Set while the tenant is suspended for unpaid invoices (dunning): its
    /// quota reservations are refused. Read with the tenant, so that the
    /// reservation path needs no other query to know.
    pub suspension: Option<crate::dunning::Suspension>,
    /// How many times its quota objects have changed: the store adds one
    /// with every write to them, in the same transaction. With the plan and
    /// catalog version, it says whether limits computed earlier still hold.
    pub quota_version: i64,
}

/// A namespace of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub tenant_id: crate::ids::TenantId,
    pub name: crate::names::Name,
    pub uid: String,
    pub created_at: jiff::Timestamp,
}
