//! `tollgate credits`: grant a tenant prepaid credits, show its balance,
//! grants and ledger, take back what is left of a grant.

use anyhow::Result;
use clap::Subcommand;
use jiff::Timestamp;
use tollgate_app::catalogs::Versions;
use tollgate_app::credits::{self, GrantAsk};
use tollgate_domain::currency::money;
use tollgate_store::Store;

use crate::cli::{ACTOR, find_tenant, flags, time_arg};
use crate::table::Table;

#[derive(Debug, Subcommand)]
pub enum CreditsCommand {
    /// Grant a tenant prepaid credits: they pay its invoices as they are
    /// finalized (highest priority first, then the soonest expiry), before
    /// anything is charged. Audited.
    Grant {
        tenant: String,
        /// In major units, e.g. 50.00.
        #[arg(long)]
        amount: String,
        /// ISO 4217; default: the tenant's currency.
        #[arg(long)]
        currency: Option<String>,
        /// 0 to 1000; higher is used first.
        #[arg(long, default_value_t = 0)]
        priority: i64,
        /// When what is left expires (RFC 3339); default: never.
        #[arg(long, value_parser = time_arg)]
        expires: Option<Timestamp>,
        /// Why (the tenant sees it in its ledger and on its invoices).
        #[arg(long)]
        reason: String,
    },
    /// Show a tenant's balance per currency and its grants.
    Show { tenant: String },
    /// Show a tenant's credits ledger, newest first.
    Ledger {
        tenant: String,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Take back what is left of a grant (or --amount of it). Audited.
    Reverse {
        tenant: String,
        grant: String,
        #[arg(long)]
        amount: Option<String>,
        #[arg(long)]
        reason: String,
    },
}

pub async fn credits_cmd(store: &dyn Store, cmd: CreditsCommand) -> Result<()> {
    let versions = Versions::default();
    match cmd {
        CreditsCommand::Grant {
            tenant,
            amount,
            currency,
            priority,
            expires,
            reason,
        } => {
            let t = find_tenant(store, &tenant).await?;
            let ask = GrantAsk {
                amount,
                currency,
                priority: Some(priority),
                expires_at: expires,
                reason,
            };
            let g = credits::grant(store, &versions, &t, &ask, ACTOR, Timestamp::now())
                .await
                .map_err(flags(&["amount", "currency", "priority", "expires_at", "reason"]))?;
            println!(
                "granted {} to tenant {} (grant {}, priority {}{})",
                money(g.amount_cents, &g.currency),
                t.name,
                g.id,
                g.priority,
                g.expires_at.map(|e| format!(", expires {e}")).unwrap_or_default()
            );
        }
        CreditsCommand::Show { tenant } => {
            let t = find_tenant(store, &tenant).await?;
            let s = credits::summary(store, &versions, &t).await?;
            for (currency, balance) in &s.balances {
                println!("balance: {}", money(*balance, currency));
            }
            if let Some(th) = s.low_balance_threshold_cents {
                println!("low-balance threshold: {}", money(th, &s.currency));
            }
            let mut table = Table::new(&["GRANT", "AMOUNT", "LEFT", "PRIORITY", "EXPIRES", "REASON"]);
            for g in &s.grants {
                table.row([
                    g.id.clone(),
                    money(g.amount_cents, &g.currency),
                    money(g.remaining_cents, &g.currency),
                    g.priority.to_string(),
                    g.expires_at.map_or_else(|| "never".to_owned(), |e| e.to_string()),
                    g.reason.clone(),
                ]);
            }
            table.print();
        }
        CreditsCommand::Ledger { tenant, limit } => {
            let t = find_tenant(store, &tenant).await?;
            let entries = credits::ledger(store, &t.id, None, Some(limit))
                .await
                .map_err(flags(&["limit"]))?;
            let mut table = Table::new(&["SEQ", "AT", "KIND", "AMOUNT", "GRANT", "INVOICE", "NOTE", "BY"]);
            for e in entries {
                table.row([
                    e.seq.to_string(),
                    e.at.to_string(),
                    e.kind.to_string(),
                    money(e.amount_cents, &e.currency),
                    e.grant_id,
                    e.invoice.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                    e.actor,
                ]);
            }
            table.print();
        }
        CreditsCommand::Reverse {
            tenant,
            grant,
            amount,
            reason,
        } => {
            let t = find_tenant(store, &tenant).await?;
            let g = credits::reverse(
                store,
                &versions,
                &t,
                &grant,
                amount.as_deref(),
                &reason,
                ACTOR,
                Timestamp::now(),
            )
            .await
            .map_err(flags(&["amount", "reason"]))?;
            println!(
                "grant {} of tenant {}: {} left",
                g.id,
                t.name,
                money(g.remaining_cents, &g.currency)
            );
        }
    }
    Ok(())
}
