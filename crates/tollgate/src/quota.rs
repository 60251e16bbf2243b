//! Operator commands for quota objects: list a tenant's, delete one.
//!
//! The way out when a quota object blocks its own tenant, e.g. an API limit
//! on quota writes that refuses the very writes that could lift it (limits
//! are validated since, but one stored earlier may remain).

use anyhow::Result;
use clap::Subcommand;
use jiff::Timestamp;
use tollgate_domain::names::Name;
use tollgate_domain::quota::{Limit, ResourceAmount};
use tollgate_store::Store;

use crate::cli::{ACTOR, find_tenant};
use crate::table::Table;

/// Quota objects live in this namespace only.
const NAMESPACE: &str = "system";

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// List a tenant's quota objects and every limit they set; API limits
    /// that are not in force (invalid, stored before limits were validated)
    /// are marked IGNORED with the reason.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Delete one of a tenant's quota objects (audited as the operator).
    /// Running servers apply the change within 5 seconds.
    Delete {
        #[arg(long)]
        tenant: String,
        name: String,
    },
}

fn count(l: Limit) -> String {
    match l {
        Limit::Unlimited => "unlimited".into(),
        Limit::Max(m) => m.to_string(),
    }
}

fn amount(l: Limit) -> String {
    match l {
        Limit::Unlimited => "unlimited".into(),
        Limit::Max(m) => ResourceAmount::from_micros(m).to_string(),
    }
}

pub async fn quota(store: &dyn Store, cmd: QuotaCommand) -> Result<()> {
    match cmd {
        QuotaCommand::List { tenant } => {
            let t = find_tenant(store, &tenant).await?;
            let objects = store.quotas(&t.id, NAMESPACE).await?;
            if objects.is_empty() {
                println!("tenant {} has no quota objects", t.name);
                return Ok(());
            }
            let mut table = Table::new(&["QUOTA", "STATE", "MODIFIED", "LIMIT", ">MAXIMUM", "NOTE"]);
            for q in objects {
                let state = if q.meta.disable { "disabled" } else { "enabled" };
                let name = q.meta.name.to_string();
                let modified = q.meta.modified_at.to_string();
                let mut row = |key: String, max: String, note: String| {
                    table.row([name.clone(), state.to_owned(), modified.clone(), key, max, note]);
                };
                for (key, limit) in &q.spec.object_limits {
                    row(format!("object_limits.{key}"), count(*limit), String::new());
                }
                for (key, limit) in &q.spec.resource_limits {
                    row(format!("resource_limits.{key}"), amount(*limit), String::new());
                }
                for (key, limit) in &q.spec.api_limits {
                    let shown = if limit.is_unlimited() && limit.is_valid() {
                        "unlimited".to_owned()
                    } else {
                        format!("rate {} burst {} per {}", limit.rate, limit.burst, limit.unit)
                    };
                    let note = match limit.check(&format!("api_limits.{key}")) {
                        Ok(()) => String::new(),
                        Err(e) => format!("IGNORED: {}", e.message),
                    };
                    row(format!("api_limits.{key}"), shown, note);
                }
                if q.spec.object_limits.is_empty()
                    && q.spec.resource_limits.is_empty()
                    && q.spec.api_limits.is_empty()
                {
                    row(String::new(), String::new(), "no limits".to_owned());
                }
            }
            table.print();
        }
        QuotaCommand::Delete { tenant, name } => {
            let t = find_tenant(store, &tenant).await?;
            let name = Name::parse("name", &name)?;
            tollgate_app::quotas::delete(store, &t, &Name::system(), &name, ACTOR, Timestamp::now()).await?;
            println!("deleted quota object {name} of tenant {}", t.name);
        }
    }
    Ok(())
}
