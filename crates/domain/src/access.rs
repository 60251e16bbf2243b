//! Who may do what: token roles and the permissions each operation needs.

use std::fmt;

use crate::Error;
use crate::names::Name;

/// The role of an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything within the tenant.
    Admin,
    /// Reads everything; manages payment methods, plans, add-ons.
    Billing,
    /// Reads only.
    Monitor,
    /// A platform service: reserves, releases and reconciles quota usage and
    /// reports metered usage; nothing else.
    Platform,
}

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Any read of the tenant's data.
    Read,
    /// Create, replace or delete quota objects.
    ManageQuota,
    /// Change billing state: payment methods, plan transitions, add-ons.
    ManageBilling,
    /// Reserve, release and reconcile quota usage; ingest usage events.
    ReportUsage,
}

impl Role {
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "admin" => Ok(Self::Admin),
            "billing" => Ok(Self::Billing),
            "monitor" => Ok(Self::Monitor),
            "platform" => Ok(Self::Platform),
            _ => Err(Error::invalid(format!(
                "role: unknown role {s:?}; use admin, billing, monitor or platform"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Billing => "billing",
            Self::Monitor => "monitor",
            Self::Platform => "platform",
        }
    }

    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Self::Admin => true,
            Self::Billing => matches!(p, Read | ManageBilling),
            Self::Monitor => matches!(p, Read),
            Self::Platform => matches!(p, ReportUsage),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The namespaces a token may act in: all of its tenant's, or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceScope {
    All,
    Only(Vec<Name>),
}

impl NamespaceScope {
    /// A scope from a list of namespace names; an empty list means all.
    pub fn from_names<S: AsRef<str>>(field: &str, names: &[S]) -> Result<Self, Error> {
        if names.is_empty() {
            return Ok(Self::All);
        }
        let names = names
            .iter()
            .map(|n| Name::parse(field, n.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self::Only(names))
    }

    pub fn allows(&self, ns: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(list) => list.iter().any(|n| n.as_str() == ns),
        }
    }
}

/// Checks that a token with `role` and `scope` may use `permission` in `ns`.
pub fn authorize(role: Role, scope: &NamespaceScope, permission: Permission, ns: &str) -> Result<(), Error> {
    if !role.allows(permission) {
        return Err(Error::permission_denied(format!(
            "a {role} token may not perform this operation"
        )));
    }
    if !scope.allows(ns) {
        return Err(Error::permission_denied(format!(
            "this token is not scoped to namespace {ns:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    #[test]
    fn role_matrix() {
        let all = [Read, ManageQuota, ManageBilling, ReportUsage];
        let expect = |role: Role, allowed: &[Permission]| {
            for p in all {
                assert_eq!(role.allows(p), allowed.contains(&p), "{role} {p:?}");
            }
        };
        expect(Role::Admin, &all);
        expect(Role::Billing, &[Read, ManageBilling]);
        expect(Role::Monitor, &[Read]);
        expect(Role::Platform, &[ReportUsage]);
    }

    #[test]
    fn namespace_scope_is_enforced() {
        let scope = NamespaceScope::Only(vec![Name::parse("ns", "app").unwrap()]);
        assert!(authorize(Role::Admin, &scope, Read, "app").is_ok());
        let e = authorize(Role::Admin, &scope, Read, "system").unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::PermissionDenied);
        assert!(authorize(Role::Monitor, &NamespaceScope::All, ManageQuota, "system").is_err());
    }
}

/// The role of an operator token (the operator API, not a tenant's API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorRole {
    /// Everything the operator CLI does: tenants, tokens, catalogs, coupons,
    /// transitions, invoices, jobs, operator tokens.
    Admin,
    /// Reads only: lists, invoices and their PDFs, the audit trail.
    Read,
}

impl OperatorRole {
    pub const ALL: [Self; 2] = [Self::Admin, Self::Read];

    pub fn parse(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "role: unknown operator role {s:?}; use operator-admin or operator-read"
                ))
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "operator-admin",
            Self::Read => "operator-read",
        }
    }

    /// Whether the role may change anything.
    pub fn may_write(self) -> bool {
        self == Self::Admin
    }
}

impl std::fmt::Display for OperatorRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod operator_role_tests {
    use super::*;

    #[test]
    fn operator_roles_parse_their_names_only() {
        for r in OperatorRole::ALL {
            assert_eq!(OperatorRole::parse(r.as_str()).unwrap(), r);
        }
        assert_eq!(OperatorRole::parse("OPERATOR-READ").unwrap(), OperatorRole::Read);
        assert!(OperatorRole::parse("admin").is_err());
        assert!(OperatorRole::Admin.may_write() && !OperatorRole::Read.may_write());
    }
}
