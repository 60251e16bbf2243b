//! Plan transitions that cannot finish: retried with backoff, failed after a
//! bounded number of attempts with the last error as the reason, and
//! cancelled by the operator whatever their state, even while a worker holds
//! them.

use std::sync::Arc;

use tollgate_payments::Providers;

use axum::http::Method;
use serde_json::{Value, json};
use tollgate_app::transitions::{MAX_ATTEMPTS, backoff, run_until_idle};
use tollgate_domain::access::Role;
use tollgate_domain::clock::Clock;
use tollgate_store::Store;
use tollgate_testkit::each_backend;

use crate::billing_support::{OPERATOR_TRANSITIONS, current_plan, initiate, to_organization, to_team};
use crate::provider_support::Hooked;
use crate::support::{Resp, TestApp};

async fn cancel(app: &TestApp, id: &str, body: Option<Value>) -> Resp {
    app.operator(Method::POST, &format!("{OPERATOR_TRANSITIONS}/{id}/cancel"), body)
        .await
}

#[tokio::test]
async fn a_transition_that_cannot_finish_is_retried_with_backoff_then_fails_with_the_last_error() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        let (id, _) = initiate(&app, &admin, to_team("tok-visa-4242")).await;
        let mut ctx = app.job_context("worker", None);
        ctx.providers = Providers::new(Arc::new(Hooked::unreachable(app.provider.clone())));
        for attempt in 1..=MAX_ATTEMPTS {
            // Each run makes one attempt and leaves it alone until its backoff is over.
            assert_eq!(run_until_idle(&ctx).await.unwrap(), 0, "attempt {attempt}");
            assert_eq!(app.transition_state(&id).await, "STATE_CREATING");
            assert_eq!(
                run_until_idle(&ctx).await.unwrap(),
                0,
                "nothing before the backoff"
            );
            app.clock.advance(backoff(attempt));
        }
        assert_eq!(run_until_idle(&ctx).await.unwrap(), 1);
        assert_eq!(app.transition_state(&id).await, "STATE_FAILED");
        let t = app.store.transition(&id).await.unwrap().unwrap();
        let reason = t.reason.unwrap_or_default();
        assert!(
            reason.contains(&format!("gave up after {MAX_ATTEMPTS} attempts"))
                && reason.contains("payment provider unavailable: connection refused"),
            "{reason}"
        );
        assert_eq!(current_plan(&app, &admin).await["name"], "free");
        // The tenant is free to try again; this time it goes through.
        let (again, _) = initiate(&app, &admin, to_team("tok-visa-4242")).await;
        assert_eq!(app.run_jobs().await, 1);
        assert_eq!(app.transition_state(&again).await, "STATE_FINISHED");
    })
    .await;
}

#[test]
fn backoff_doubles_from_a_second_up_to_ten_minutes() {
    let waits: Vec<i64> = (1..=12).map(|a| backoff(a).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
}

#[tokio::test]
async fn the_operator_cancels_a_transition_waiting_for_approval() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        let (id, _) = initiate(&app, &admin, to_organization()).await;
        cancel(&app, &id, Some(json!({"reason": "x".repeat(1025)})))
            .await
            .error(400, 3);
        let cancelled = cancel(&app, &id, None).await;
        assert_eq!(cancelled.ok()["state"], "STATE_FAILED");
        assert_eq!(cancelled.ok()["reason"], "cancelled by the operator");
        assert_eq!(app.transition_state(&id).await, "STATE_FAILED");
        let again = cancel(&app, &id, None).await;
        assert!(
            again
                .reason("TRANSITION_WRONG_STATE")
                .error(409, 9)
                .contains("not open"),
            "{}",
            again.body
        );
        cancel(&app, &uuid::Uuid::new_v4().to_string(), None)
            .await
            .error(404, 5);
        let audit = app.store.audit(Some(&acme.id), 10).await.unwrap();
        assert_eq!(audit[0].action, "plan_transition.cancel");
        assert_eq!(audit[0].actor, "operator");
        // Its tenant may ask again at once.
        initiate(&app, &admin, to_organization()).await;
    })
    .await;
}

#[tokio::test]
async fn a_transition_cancelled_while_a_worker_executes_it_is_not_applied() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "free").await;
        let admin = app.token(&acme, Role::Admin).await;
        let (id, _) = initiate(&app, &admin, to_team("tok-visa-4242")).await;
        let store: Arc<dyn Store> = app.store.clone();
        let clock = app.clock.clone();
        let cancel_id = id.clone();
        let mut ctx = app.job_context("worker", None);
        // The operator cancels while the worker talks to the provider.
        ctx.providers = Providers::new(Arc::new(Hooked {
            before_register: Some(Box::new(move || {
                let (store, clock, id) = (store.clone(), clock.clone(), cancel_id.clone());
                Box::pin(async move {
                    store
                        .cancel_transition(&id, "customer changed their mind", "operator", clock.now())
                        .await
                        .expect("cancel while leased");
                    Ok(())
                })
            })),
            ..Hooked::new(app.provider.clone())
        }));
        run_until_idle(&ctx).await.unwrap();
        let t = app.store.transition(&id).await.unwrap().unwrap();
        assert_eq!(t.state, tollgate_domain::transition::TransitionState::Failed);
        assert_eq!(t.reason.as_deref(), Some("customer changed their mind"));
        // Nothing of it was applied.
        assert_eq!(current_plan(&app, &admin).await["name"], "free");
        assert!(app.store.payment_methods(&acme.id).await.unwrap().is_empty());
        assert_eq!(run_until_idle(&ctx).await.unwrap(), 0);
    })
    .await;
}
