//! Published catalog versions, parsed once and shared. Versions are
//! immutable, so a parsed version is cached forever.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tollgate_domain::catalog::{self, Catalog, Issuer};
use tollgate_store::{Store, StoreError};

#[derive(Debug, Default)]
pub struct Versions {
    parsed: RwLock<HashMap<i64, Arc<Catalog>>>,
    /// Views of versions in their other currencies ([`Catalog::in_currency`]).
    views: RwLock<HashMap<(i64, String), Arc<Catalog>>>,
}

impl Versions {
    /// Catalog `version`, parsed.
    pub async fn get(&self, store: &dyn Store, version: i64) -> Result<Arc<Catalog>, StoreError> {
        if let Some(c) = self
            .parsed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&version)
        {
            return Ok(c.clone());
        }
        let stored = store
            .catalog(Some(version))
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("catalog version {version} is missing")))?;
        let parsed = catalog::parse(&format!("catalog v{version}"), &stored.source)
            .map_err(|e| StoreError::Corrupt(format!("stored catalog v{version} does not parse: {e}")))?;
        let parsed = Arc::new(parsed);
        self.parsed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(version, parsed.clone());
        Ok(parsed)
    }

    /// Catalog `version` as it prices `currency` (its plans and add-ons
    /// carry that currency's prices); `None` if it does not price it. A
    /// tenant's catalog for billing is `in_currency(version,
    /// catalog.currency_of(tenant.currency))`, see [`Versions::for_tenant`].
    pub async fn in_currency(
        &self,
        store: &dyn Store,
        version: i64,
        currency: &str,
    ) -> Result<Option<Arc<Catalog>>, StoreError> {
        let catalog = self.get(store, version).await?;
        if catalog.currency == currency {
            return Ok(Some(catalog));
        }
        let key = (version, currency.to_owned());
        if let Some(c) = self.views.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(Some(c.clone()));
        }
        let Some(view) = catalog.in_currency(currency) else {
            return Ok(None);
        };
        let view = Arc::new(view);
        self.views
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, view.clone());
        Ok(Some(view))
    }

    /// Catalog `version` in the currency of a tenant (`tenant_currency`,
    /// `None` for one from before currencies: the version's first). A
    /// version that does not price the tenant's currency is corrupt state:
    /// transitions and moves refuse such versions, and the currency can only
    /// be set to one the tenant's version prices.
    pub async fn for_tenant(
        &self,
        store: &dyn Store,
        version: i64,
        tenant_currency: Option<&str>,
    ) -> Result<Arc<Catalog>, StoreError> {
        let catalog = self.get(store, version).await?;
        let currency = catalog.currency_of(tenant_currency).to_owned();
        self.in_currency(store, version, &currency).await?.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "catalog v{version} does not price {currency}, the tenant's currency"
            ))
        })
    }

    /// The latest catalog, parsed.
    /// (The version is read first, then that version: a publish in between
    /// cannot pair one version's number with another's plans.)
    pub async fn latest(&self, store: &dyn Store) -> Result<(i64, Arc<Catalog>), StoreError> {
        let version = store
            .latest_catalog_version()
            .await?
            .ok_or_else(|| StoreError::Corrupt("no catalog is published".into()))?;
        Ok((version, self.get(store, version).await?))
    }

    /// Who issues invoices now: the latest catalog's issuer.
    pub async fn issuer(&self, store: &dyn Store) -> Result<Issuer, StoreError> {
        Ok(self
            .latest(store)
            .await?
            .1
            .issuer
            .clone()
            .unwrap_or_else(Issuer::unnamed))
    }
}

/// Publishes a catalog as the next version, after every rule a new catalog
/// must meet (`catalog::parse_for_publish`; errors name the line and field).
/// It takes effect at once on every replica.
pub async fn publish(
    store: &dyn Store,
    source_name: &str,
    source: &str,
    actor: &str,
    now: jiff::Timestamp,
) -> Result<i64, crate::AppError> {
    catalog::parse_for_publish(source_name, source).map_err(tollgate_domain::Error::from)?;
    Ok(store.publish_catalog(source, source_name, actor, now).await?)
}

/// Gives every tenant without a plan (created by a Tollgate from before
/// plans) a first subscription to the latest catalog's default plan,
/// starting when the tenant was created. Every entry point runs it after
/// opening the database (the CLI's `open`, hence `serve` too); idempotent.
/// Returns how many tenants it adopted.
pub async fn adopt_planless_tenants(
    store: &dyn Store,
    versions: &Versions,
    now: jiff::Timestamp,
) -> Result<usize, crate::AppError> {
    let planless = store.planless_tenants().await?;
    if planless.is_empty() {
        return Ok(0);
    }
    let (version, catalog) = versions.latest(store).await?;
    let plan = catalog
        .plan(&catalog.default_plan)
        .ok_or_else(|| tollgate_domain::Error::internal("the catalog's default plan is missing"))?;
    let mut adopted = 0;
    for (tenant_id, created_at) in planless {
        let sub = tollgate_domain::subscription::Subscription::new(
            uuid::Uuid::new_v4().to_string(),
            tenant_id,
            plan,
            version,
            created_at,
        );
        if store.adopt_planless_tenant(&sub, now).await? {
            adopted += 1;
        }
    }
    Ok(adopted)
}

/// Gives every tenant without a currency (created before currencies, or by
/// an older Tollgate sharing the database) its catalog version's first
/// currency, the one it has been invoiced in, so that a later move to a
/// catalog listing another currency first does not change it. Every entry
/// point runs it after opening the database, with
/// [`adopt_planless_tenants`]; idempotent. Returns how many it pinned.
pub async fn pin_tenant_currencies(store: &dyn Store, versions: &Versions) -> Result<u64, crate::AppError> {
    let mut pinned = 0;
    for version in store.unpinned_currency_versions().await? {
        let catalog = versions.get(store, version).await?;
        pinned += store
            .pin_tenant_currencies(version, catalog.currency_of(None))
            .await?;
    }
    Ok(pinned)
}

/// Which tenants a catalog move names.
#[derive(Debug, Clone)]
pub enum MoveSelection {
    /// These tenants, by name.
    Tenants(Vec<String>),
    /// Every tenant on this plan now.
    Plan(String),
}

/// A tenant left out of a move, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveSkipped {
    pub tenant: String,
    pub reason: String,
}

/// What scheduling a move did.
#[derive(Debug, Clone, Default)]
pub struct MovePlan {
    /// Scheduled, with each tenant's name.
    pub scheduled: Vec<(String, tollgate_store::CatalogMove)>,
    pub skipped: Vec<MoveSkipped>,
}

/// Schedules tenants' moves to catalog `version` (`None`: the latest) of the
/// plan each is on, taking effect at the start of each one's next billing
/// period; audited. Tenants already on that version or a newer one are
/// skipped with the reason; a tenant whose plan the version does not have
/// is an error (it needs a plan transition), as is an unknown tenant or
/// version. All moves are stored at once or none.
pub async fn schedule_moves(
    store: &dyn Store,
    versions: &Versions,
    selection: &MoveSelection,
    version: Option<i64>,
    actor: &str,
    now: jiff::Timestamp,
) -> Result<MovePlan, crate::AppError> {
    use tollgate_domain::Error;
    let (version, catalog) = match version {
        None => versions.latest(store).await?,
        Some(v) => match store.catalog(Some(v)).await? {
            Some(_) => (v, versions.get(store, v).await?),
            None => {
                return Err(Error::not_found(format!("version: no catalog version {v} is published")).into());
            }
        },
    };
    let tenants = match selection {
        MoveSelection::Tenants(names) => {
            if names.is_empty() {
                return Err(Error::invalid("tenants: name at least one tenant").into());
            }
            let mut out = Vec::new();
            for name in names {
                let t = store
                    .tenant_by_name(name)
                    .await?
                    .ok_or_else(|| Error::not_found(format!("tenant {name:?} does not exist")))?;
                out.push(t);
            }
            out
        }
        MoveSelection::Plan(plan) => {
            if catalog.plan(plan).is_none() {
                return Err(Error::invalid(format!(
                    "plan: catalog version {version} has no plan {plan:?}; tenants leave it with a plan transition"
                ))
                .into());
            }
            let mut all = store.tenants().await?;
            all.retain(|t| t.plan.as_str() == plan);
            all
        }
    };
    let mut plan = MovePlan::default();
    for t in tenants {
        let name = t.name.to_string();
        let skip = |reason: String| MoveSkipped {
            tenant: name.clone(),
            reason,
        };
        if t.catalog_version >= version {
            plan.skipped
                .push(skip(format!("already on catalog version {}", t.catalog_version)));
            continue;
        }
        if catalog.plan(t.plan.as_str()).is_none() {
            return Err(Error::invalid(format!(
                "tenants: catalog version {version} has no plan {:?}, which tenant {name:?} is on; move it with a plan transition",
                t.plan.as_str()
            ))
            .into());
        }
        let currency = versions
            .get(store, t.catalog_version)
            .await?
            .currency_of(t.currency.as_deref())
            .to_owned();
        if !catalog.prices_in(&currency) {
            return Err(Error::invalid(format!(
                "tenants: catalog version {version} does not price {currency}, tenant {name:?}'s currency \
                 (it prices {})",
                catalog.currencies.join(", ")
            ))
            .into());
        }
        let Some(sub) = store
            .subscriptions(&t.id)
            .await?
            .into_iter()
            .find(|s| s.is_current())
        else {
            plan.skipped.push(skip("has no current subscription".into()));
            continue;
        };
        let effective_at = sub.period_at(now).end;
        plan.scheduled.push((
            name,
            tollgate_store::CatalogMove {
                tenant_id: t.id.clone(),
                subscription_id: sub.id.clone(),
                from_version: sub.catalog_version,
                catalog_version: version,
                effective_at,
                created_by: actor.to_owned(),
                created_at: now,
            },
        ));
    }
    let moves: Vec<_> = plan.scheduled.iter().map(|(_, m)| m.clone()).collect();
    if !moves.is_empty() {
        store.schedule_catalog_moves(&moves, actor, now).await?;
    }
    Ok(plan)
}

/// Makes every move whose time has come take effect (a subscription to the
/// same plan at the new version, starting when the period ended). One
/// tenant's failure is logged and the rest go on; the last error is
/// returned. Returns how many took effect.
pub async fn apply_due_moves(
    store: &dyn Store,
    versions: &Versions,
    now: jiff::Timestamp,
) -> Result<usize, StoreError> {
    let mut applied = 0;
    let mut failed = None;
    loop {
        let due = store.due_catalog_moves(now, 100).await?;
        let mut progressed = false;
        for mv in &due {
            match apply_move(store, versions, mv, now).await {
                Ok(done) => {
                    applied += usize::from(done);
                    progressed = true;
                }
                Err(e) => {
                    tracing::error!(tenant = %mv.tenant_id, error = %e, "cannot move the tenant to its new catalog version");
                    failed = Some(e);
                }
            }
        }
        if !progressed || due.len() < 100 {
            break;
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(applied),
    }
}

async fn apply_move(
    store: &dyn Store,
    versions: &Versions,
    mv: &tollgate_store::CatalogMove,
    now: jiff::Timestamp,
) -> Result<bool, StoreError> {
    let Some(tenant) = store.tenant(&mv.tenant_id).await? else {
        return Ok(false);
    };
    let catalog = versions.get(store, mv.catalog_version).await?;
    let plan = catalog.plan(tenant.plan.as_str()).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "plan {:?} is missing from catalog v{}",
            tenant.plan.as_str(),
            mv.catalog_version
        ))
    })?;
    let sub = tollgate_domain::subscription::Subscription::new(
        uuid::Uuid::new_v4().to_string(),
        mv.tenant_id.clone(),
        plan,
        mv.catalog_version,
        mv.effective_at,
    )
    .without_trial();
    store.apply_catalog_move(mv, &sub, now).await
}

/// One line of a text diff: unchanged (`' '`), removed (`'-'`) or added
/// (`'+'`), with its line numbers in the old and new source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    pub tag: char,
    pub old_line: Option<usize>,
    pub new_line: Option<usize>,
    pub text: String,
}

/// What changed from one catalog version to another: the changes by name
/// ([`catalog::diff`]) and the sources' line diff in hunks (three lines of
/// context; `None` separates hunks).
#[derive(Debug, Clone)]
pub struct VersionDiff {
    pub from: i64,
    pub to: i64,
    pub changes: Vec<catalog::Change>,
    pub lines: Vec<Option<DiffLine>>,
}

/// Compares two published versions (either order).
pub async fn diff_versions(
    store: &dyn Store,
    versions: &Versions,
    from: i64,
    to: i64,
) -> Result<VersionDiff, crate::AppError> {
    let source = |v: i64| async move {
        store.catalog(Some(v)).await?.ok_or_else(|| {
            crate::AppError::Rule(tollgate_domain::Error::not_found(format!(
                "catalog version {v} does not exist"
            )))
        })
    };
    let (a, b) = (source(from).await?, source(to).await?);
    let (ca, cb) = (versions.get(store, from).await?, versions.get(store, to).await?);
    Ok(VersionDiff {
        from,
        to,
        changes: catalog::diff(&ca, &cb),
        lines: text_diff(&a.source, &b.source),
    })
}

/// The line diff of two texts in hunks of three lines of context.
pub fn text_diff(old: &str, new: &str) -> Vec<Option<DiffLine>> {
    let diff = similar::TextDiff::from_lines(old, new);
    let mut out = Vec::new();
    for (i, group) in diff.grouped_ops(3).iter().enumerate() {
        if i > 0 {
            out.push(None);
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let tag = match change.tag() {
                    similar::ChangeTag::Equal => ' ',
                    similar::ChangeTag::Delete => '-',
                    similar::ChangeTag::Insert => '+',
                };
                out.push(Some(DiffLine {
                    tag,
                    old_line: change.old_index().map(|n| n + 1),
                    new_line: change.new_index().map(|n| n + 1),
                    text: change.value().trim_end_matches(['\n', '\r']).to_owned(),
                }));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_diff_keeps_three_lines_of_context_and_numbers_lines() {
        let old: String = (1..=20).map(|n| format!("{n}\n")).collect();
        let new = old.replacen("3\n", "three\n", 1).replace("20\n", "20\n21\n");
        let lines = text_diff(&old, &new);
        let shown: Vec<String> = lines
            .iter()
            .map(|l| match l {
                Some(l) => format!("{}{}", l.tag, l.text),
                None => "@@".to_owned(),
            })
            .collect();
        assert_eq!(
            shown,
            [
                " 1", " 2", "-3", "+three", " 4", " 5", " 6", "@@", " 18", " 19", " 20", "+21"
            ]
        );
        let added = lines.iter().flatten().find(|l| l.text == "three").unwrap();
        assert_eq!((added.old_line, added.new_line), (None, Some(3)));
        assert!(text_diff(&old, &old).is_empty());
    }
}
