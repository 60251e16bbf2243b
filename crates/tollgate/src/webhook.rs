//! `tollgate webhook`: the operator's webhook endpoints (for every tenant's
//! events, or one tenant's), their deliveries and redeliveries.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use jiff::Timestamp;
use tollgate_app::webhooks::{self, EndpointInput};
use tollgate_domain::clock::SystemClock;
use tollgate_store::{EndpointScope, Store};

use crate::cli::ACTOR;
use crate::table::Table;

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Register an endpoint; prints its signing secret (shown this once).
    Create {
        /// Where events are POSTed (http or https).
        #[arg(long)]
        url: String,
        /// Only these event types (comma-separated); default: every type.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Only this tenant's events; default: every tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// Accept a loopback, link-local or private address (as `serve
        /// --webhook-allow-private` delivers to).
        #[arg(long, env = "TOLLGATE_WEBHOOK_ALLOW_PRIVATE")]
        webhook_allow_private: bool,
    },
    /// List endpoints (every one, or one tenant's).
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Delete an endpoint and its deliveries.
    Delete { id: String },
    /// Give an endpoint a new secret (the old one signs too for 24 hours).
    RotateSecret { id: String },
    /// Enable an endpoint Tollgate disabled after it failed for too long.
    Enable { id: String },
    /// An endpoint's deliveries, newest first.
    Deliveries {
        id: String,
        /// At most this many.
        #[arg(long, default_value = "50")]
        limit: u32,
    },
    /// Send a delivery's event to its endpoint again (same event id).
    Redeliver { id: String, delivery: String },
}

pub async fn webhook(store: Arc<dyn Store>, cmd: WebhookCommand) -> Result<()> {
    let now = Timestamp::now();
    let scope = EndpointScope::Operator;
    match cmd {
        WebhookCommand::Create {
            url,
            events,
            description,
            tenant,
            webhook_allow_private,
        } => {
            let tenant = match tenant {
                Some(name) => Some(crate::cli::find_tenant(&*store, &name).await?.id),
                None => None,
            };
            let settings = tollgate_app::webhooks::WebhookSettings {
                allow_private: webhook_allow_private,
                ..Default::default()
            };
            let hooks = tollgate_api::events::standalone(store.clone(), Arc::new(SystemClock), settings);
            let input = EndpointInput {
                url,
                events: events.into_iter().filter(|e| !e.trim().is_empty()).collect(),
                description,
            };
            let e = webhooks::create_endpoint(&*store, &hooks, tenant, input, ACTOR, now)
                .await
                .map_err(crate::cli::flags(&["url", "events", "description"]))?;
            println!("created webhook endpoint {} for {}", e.id, e.url);
            println!("signing secret (shown once): {}", e.secret);
        }
        WebhookCommand::List { tenant } => {
            let tenant = match tenant {
                Some(name) => Some(crate::cli::find_tenant(&*store, &name).await?.id),
                None => None,
            };
            let mut table = Table::new(&["ID", "TENANT", "URL", "EVENTS", "STATE"]);
            // Tenant names by id, read once.
            let names: std::collections::HashMap<_, _> = store
                .tenants()
                .await?
                .into_iter()
                .map(|t| (t.id, t.name.to_string()))
                .collect();
            for e in store.webhook_endpoints(&scope, tenant.as_ref()).await? {
                let owner = match &e.tenant_id {
                    Some(id) => names.get(id).cloned().unwrap_or_else(|| id.to_string()),
                    None => "(every tenant)".to_owned(),
                };
                let events = if e.events.is_empty() {
                    "all".to_owned()
                } else {
                    e.events.join(",")
                };
                let state = match &e.disabled {
                    Some((at, _)) => format!("disabled {at}"),
                    None if e.failing_since.is_some() => "failing".to_owned(),
                    None => "enabled".to_owned(),
                };
                table.row([e.id, owner, e.url, events, state]);
            }
            table.print();
        }
        WebhookCommand::Delete { id } => {
            store
                .delete_webhook_endpoint(&scope, &id, ACTOR, now)
                .await
                .with_context(|| format!("deleting {id}"))?;
            println!("deleted webhook endpoint {id}");
        }
        WebhookCommand::RotateSecret { id } => {
            let e = webhooks::rotate_secret(&*store, &scope, &id, ACTOR, now).await?;
            println!(
                "rotated the secret of {id}; the old one signs too until {}",
                e.previous_secret.map(|(_, u)| u.to_string()).unwrap_or_default()
            );
            println!("signing secret (shown once): {}", e.secret);
        }
        WebhookCommand::Enable { id } => {
            store.enable_webhook_endpoint(&scope, &id, ACTOR, now).await?;
            println!("enabled webhook endpoint {id}");
        }
        WebhookCommand::Deliveries { id, limit } => {
            let mut table = Table::new(&["DELIVERY", "EVENT", "TYPE", "STATUS", "ATTEMPTS", "LAST"]);
            for d in store.webhook_deliveries(&scope, &id, limit).await? {
                let last = match (d.last_status, d.last_error) {
                    (_, Some(e)) => e,
                    (Some(s), None) => format!("HTTP {s}"),
                    (None, None) => String::new(),
                };
                table.row([
                    d.id,
                    d.event_id,
                    d.event_type,
                    d.status.as_str().to_owned(),
                    d.attempts.to_string(),
                    last,
                ]);
            }
            table.print();
        }
        WebhookCommand::Redeliver { id, delivery } => {
            let d = store
                .redeliver_webhook(&scope, &id, &delivery, ACTOR, now)
                .await?;
            println!("queued {} (event {}) for {id}", d.id, d.event_id);
        }
    }
    Ok(())
}
