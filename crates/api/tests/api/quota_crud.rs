//! The five CRUD operations of quota objects: success shapes and every error.

use jiff::SignedDuration;
use serde_json::json;
use tollgate_testkit::each_backend;

use crate::snapshot;
use crate::support::{TestApp, quota_body};

const QUOTAS: &str = "/api/web/namespaces/system/quotas";

#[tokio::test]
async fn create_returns_the_object_with_system_metadata() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let created = app.create_quota(&admin, quota_body("prod", 10)).await;
        snapshot!("create_response", &created);
        assert_eq!(created["system_metadata"]["tenant"], "acme");
        assert_eq!(
            created["system_metadata"]["creation_timestamp"],
            "2026-11-20T10:00:00Z"
        );
        assert_eq!(created["system_metadata"]["creator_class"], "api_token");
        let uid = created["system_metadata"]["uid"].as_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(uid).unwrap().get_version_num(), 4);
        // What create returned is what get returns.
        let got = app.get(&format!("{QUOTAS}/prod"), &admin).await;
        for field in ["metadata", "system_metadata", "spec"] {
            assert_eq!(got.ok()[field], created[field], "{field}");
        }
    })
    .await;
}

#[tokio::test]
async fn create_accepts_minimal_and_proto3_json_forms() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        // Only a name: an empty spec.
        let created = app
            .create_quota(&admin, json!({"metadata": {"name": "empty"}}))
            .await;
        assert_eq!(
            created["spec"],
            json!({"object_limits": {}, "resource_limits": {}, "api_limits": {}})
        );
        // int32 as a string, doubles as strings, missing maximum = 0, unit by number.
        let created = app
            .create_quota(
                &admin,
                json!({
                    "metadata": {"name": "proto", "namespace": ""},
                    "spec": {
                        "object_limits": {"site": {"maximum": "7"}, "namespace": {}},
                        "resource_limits": {"vcpu": {"maximum": "0.25"}, "memory_gib": {"maximum": -1}},
                        "api_limits": {"tollgate.quota.Reserve": {"rate": "3", "unit": "1"}}
                    }
                }),
            )
            .await;
        assert_eq!(
            created["spec"]["object_limits"],
            json!({"namespace": {"maximum": 0}, "site": {"maximum": 7}})
        );
        assert_eq!(
            created["spec"]["resource_limits"],
            json!({"memory_gib": {"maximum": -1}, "vcpu": {"maximum": 0.25}})
        );
        assert_eq!(
            created["spec"]["api_limits"],
            json!({"tollgate.quota.Reserve": {"rate": 3, "burst": 0, "unit": "MINUTE"}})
        );
    })
    .await;
}

#[tokio::test]
async fn create_refuses_a_duplicate_name_with_409() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        app.create_quota(&admin, quota_body("prod", 10)).await;
        let dup = app.post(QUOTAS, &admin, quota_body("prod", 99)).await;
        let message = dup.reason("QUOTA_OBJECT_EXISTS").error(409, 6);
        assert!(
            message.contains("\"prod\"") && message.contains("already exists"),
            "{message}"
        );
        // The original is untouched.
        let got = app.get(&format!("{QUOTAS}/prod"), &admin).await;
        assert_eq!(got.ok()["spec"]["object_limits"]["virtual_host"]["maximum"], 10);
    })
    .await;
}

#[tokio::test]
async fn quota_objects_live_only_in_system() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = app.admin("acme").await;
        app.namespace(&acme, "shop").await;
        let shop = "/api/web/namespaces/shop/quotas";
        let msg = app
            .post(shop, &admin, quota_body("prod", 1))
            .await
            .error(400, 3)
            .to_owned();
        assert!(msg.starts_with("namespace: ") && msg.contains("system"), "{msg}");
        app.get(shop, &admin).await.error(400, 3);
        app.get(&format!("{shop}/prod"), &admin).await.error(400, 3);
        app.put(&format!("{shop}/prod"), &admin, quota_body("prod", 1))
            .await
            .error(400, 3);
        app.delete(&format!("{shop}/prod"), &admin).await.error(400, 3);
        // A namespace that does not exist is 404; a malformed one 400.
        app.get("/api/web/namespaces/nowhere/quotas", &admin)
            .await
            .error(404, 5);
        app.get("/api/web/namespaces/No_Way/quotas", &admin)
            .await
            .error(400, 3);
    })
    .await;
}

/// Every invalid body is refused with 400, a message naming the field, and
/// nothing stored.
#[tokio::test]
async fn create_validates_every_field_and_stores_nothing_on_error() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let spec = |s: serde_json::Value| json!({"metadata": {"name": "q"}, "spec": s});
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (json!({}), "metadata.name: is required"),
            (json!({"metadata": {}}), "metadata.name: is required"),
            (
                json!({"metadata": {"name": "Prod"}}),
                "metadata.name: \"Prod\" is not a valid name",
            ),
            (json!({"metadata": {"name": "a".repeat(64)}}), "metadata.name: "),
            (
                json!({"metadata": {"name": "q", "namespace": "shop"}}),
                "metadata.namespace: \"shop\" does not match",
            ),
            (json!({"metadata": "q"}), "metadata: invalid type: string"),
            (
                json!({"metadata": {"name": "q", "labels": {"env": "bad value"}}}),
                "metadata.labels.env: invalid label value",
            ),
            (
                json!({"metadata": {"name": "q", "labels": {"-x": "a"}}}),
                "metadata.labels: invalid label key",
            ),
            (
                json!({"metadata": {"name": "q", "annotations": {"k": "v".repeat(1025)}}}),
                "metadata.annotations.k: value must be",
            ),
            (
                json!({"metadata": {"name": "q", "annotations": {"k".repeat(65): "v"}}}),
                "metadata.annotations: key",
            ),
            (
                json!({"metadata": {"name": "q", "description": "d".repeat(1201)}}),
                "metadata.description: must be at most 1200 bytes",
            ),
            (
                json!({"metadata": {"name": "q", "disable": "yes"}}),
                "metadata.disable: invalid type",
            ),
            (
                spec(json!({"object_limits": {"1bad": {"maximum": 1}}})),
                "spec.object_limits: key \"1bad\" must match",
            ),
            (
                spec(json!({"object_limits": {"x": {"maximum": 1}}})),
                "spec.object_limits: key \"x\" must match",
            ),
            (
                spec(json!({"object_limits": {"vh": {"maximum": -2}}})),
                "spec.object_limits.vh.maximum: must be -1 (unlimited)",
            ),
            (
                spec(json!({"object_limits": {"vh": {"maximum": 2147483648u64}}})),
                "spec.object_limits.vh.maximum: must be -1",
            ),
            (
                spec(json!({"object_limits": {"vh": {"maximum": "abc"}}})),
                "spec.object_limits.vh.maximum: expected an integer",
            ),
            (
                spec(json!({"object_limits": {"vh": {"maximum": 1.5}}})),
                "spec.object_limits.vh.maximum: expected an integer",
            ),
            (
                spec(json!({"object_limits": [1]})),
                "spec.object_limits: invalid type: sequence",
            ),
            (
                spec(json!({"resource_limits": {"vcpu": {"maximum": 0.0000001}}})),
                "spec.resource_limits.vcpu.maximum: ",
            ),
            (
                spec(json!({"resource_limits": {"vcpu": {"maximum": -3}}})),
                "spec.resource_limits.vcpu.maximum: must be -1",
            ),
            (
                spec(json!({"resource_limits": {"vcpu": {"maximum": true}}})),
                "spec.resource_limits.vcpu.maximum: expected a number",
            ),
            (
                spec(json!({"resource_limits": {"vcpu": {"maximum": "NaN"}}})),
                "spec.resource_limits.vcpu.maximum: ",
            ),
            (
                spec(json!({"api_limits": {"ves.io.x.API.Get": {"rate": 1, "unit": "FORTNIGHT"}}})),
                "spec.api_limits.ves.io.x.API.Get.unit: unknown unit",
            ),
            (
                spec(json!({"api_limits": {"ves.io.x.API.Get": {"rate": -5}}})),
                "spec.api_limits.ves.io.x.API.Get.rate: must be -1",
            ),
            (
                spec(json!({"api_limits": {"ves.io.x.API.Get": {"rate": 1, "burst": -1}}})),
                "spec.api_limits.ves.io.x.API.Get.burst: must be 0 (the rate) or between 1 and",
            ),
        ];
        for (body, expected) in cases {
            let resp = app.post(QUOTAS, &admin, body.clone()).await;
            let message = resp.reason("INVALID_ARGUMENT").error(400, 3);
            assert!(
                message.starts_with(expected),
                "body {body}\n  expected message starting {expected:?}\n  got {message:?}"
            );
            // Where the error names its field in metadata, it is the message's;
            // names and the JSON decoder's errors always name it.
            if let Some(field) = resp.body["details"][0]["metadata"]["field"].as_str() {
                assert!(message.starts_with(&format!("{field}: ")), "{}", resp.body);
            }
            for always in ["metadata.name", "metadata.disable"] {
                if expected.starts_with(&format!("{always}: ")) {
                    assert_eq!(resp.metadata("field"), always);
                }
            }
        }
        let raw = |body: &'static str| {
            let app = &app;
            let admin = &admin;
            async move {
                app.request(axum::http::Method::POST, QUOTAS, Some(admin), body, &[])
                    .await
            }
        };
        assert!(
            raw("{\"metadata\": ")
                .await
                .error(400, 3)
                .starts_with("metadata: EOF while parsing")
        );
        assert!(
            raw("[1,2]")
                .await
                .error(400, 3)
                .starts_with("invalid JSON body: expected a JSON object")
        );
        assert!(
            raw("{\"metadata\":{\"name\":\"q\"}} {}")
                .await
                .error(400, 3)
                .contains("trailing characters")
        );
        assert!(
            raw("not json")
                .await
                .error(400, 3)
                .starts_with("invalid JSON body")
        );
        let listed = app.get(QUOTAS, &admin).await;
        assert_eq!(
            listed.ok()["items"],
            json!([]),
            "a refused create stored something"
        );
    })
    .await;
}

/// Fields the contract does not define are ignored at every level, as
/// grpc-gateway does: a client built from a newer contract keeps working. The
/// price is that a misspelt field is a silent default, as in proto3.
#[tokio::test]
async fn create_ignores_fields_it_does_not_know() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let created = app
            .create_quota(
                &admin,
                json!({
                    "metadata": {"name": "q", "uid": "x", "future_field": 1},
                    "system_metadata": {"uid": "y"},
                    "status": [],
                    "spec": {
                        "apigw_limits": {"ves.io.x.API.Get": {"rate": 1}},
                        "object_limits": {"vh": {"max": 1}, "site": {"maximum": 2, "soft": true}}
                    }
                }),
            )
            .await;
        let uid = created["system_metadata"]["uid"].as_str().unwrap();
        assert_ne!(uid, "x", "a client cannot choose the uid");
        assert_ne!(uid, "y", "a client cannot choose the uid");
        assert_eq!(
            created["spec"],
            json!({
                "object_limits": {"site": {"maximum": 2}, "vh": {"maximum": 0}},
                "resource_limits": {},
                "api_limits": {}
            }),
            "apigw_limits, soft and max are not quota fields; vh has no maximum, so 0"
        );
    })
    .await;
}

#[tokio::test]
async fn replace_changes_metadata_and_spec_and_keeps_identity() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let created = app.create_quota(&admin, quota_body("prod", 10)).await;
        app.clock.advance(SignedDuration::from_hours(3));
        let replaced = app
            .put(
                &format!("{QUOTAS}/prod"),
                &admin,
                json!({
                    "metadata": {"name": "prod", "namespace": "system", "labels": {"env": "staging"}, "disable": true},
                    "spec": {"object_limits": {"origin_pool": {"maximum": -1}}}
                }),
            )
            .await;
        assert_eq!(replaced.ok(), &json!({}));
        let got = app.get(&format!("{QUOTAS}/prod"), &admin).await;
        let got = got.ok();
        assert_eq!(got["system_metadata"]["uid"], created["system_metadata"]["uid"]);
        assert_eq!(got["system_metadata"]["creation_timestamp"], "2026-11-20T10:00:00Z");
        assert_eq!(got["system_metadata"]["modification_timestamp"], "2026-11-20T13:00:00Z");
        assert_eq!(got["metadata"]["labels"], json!({"env": "staging"}));
        assert_eq!(got["metadata"]["annotations"], json!({}));
        assert_eq!(got["metadata"]["disable"], true);
        assert_eq!(
            got["spec"],
            json!({"object_limits": {"origin_pool": {"maximum": -1}}, "resource_limits": {}, "api_limits": {}})
        );
        // The name may be omitted from the body: the path names the object.
        app.put(&format!("{QUOTAS}/prod"), &admin, json!({"spec": {}})).await.ok();
    })
    .await;
}

#[tokio::test]
async fn replace_errors() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let msg = app
            .put(&format!("{QUOTAS}/ghost"), &admin, quota_body("ghost", 1))
            .await
            .error(404, 5)
            .to_owned();
        assert!(msg.contains("\"ghost\""), "{msg}");
        app.create_quota(&admin, quota_body("prod", 10)).await;
        let msg = app
            .put(&format!("{QUOTAS}/prod"), &admin, quota_body("other", 1))
            .await
            .error(400, 3)
            .to_owned();
        assert!(
            msg.starts_with("metadata.name: \"other\" does not match"),
            "{msg}"
        );
        let bad = json!({"metadata": {"name": "prod"}, "spec": {"object_limits": {"vh": {"maximum": -7}}}});
        app.put(&format!("{QUOTAS}/prod"), &admin, bad)
            .await
            .error(400, 3);
        // Nothing changed.
        let got = app.get(&format!("{QUOTAS}/prod"), &admin).await;
        assert_eq!(got.ok()["spec"]["object_limits"]["virtual_host"]["maximum"], 10);
    })
    .await;
}

#[tokio::test]
async fn get_answers_in_every_response_format_by_name_or_number() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        app.create_quota(&admin, quota_body("prod", 10)).await;
        let formats = [
            ("GET_RSP_FORMAT_DEFAULT", "0"),
            ("GET_RSP_FORMAT_FOR_CREATE", "1"),
            ("GET_RSP_FORMAT_FOR_REPLACE", "2"),
            ("GET_RSP_FORMAT_STATUS", "3"),
            ("GET_RSP_FORMAT_READ", "4"),
            ("GET_RSP_FORMAT_REFERRING_OBJECTS", "5"),
            ("GET_RSP_FORMAT_BROKEN_REFERENCES", "6"),
        ];
        for (name, number) in formats {
            let by_name = app
                .get(&format!("{QUOTAS}/prod?response_format={name}"), &admin)
                .await;
            let by_number = app
                .get(&format!("{QUOTAS}/prod?response_format={number}"), &admin)
                .await;
            assert_eq!(by_name.ok(), by_number.ok(), "{name}");
            snapshot!(format!("get_{}", name.to_ascii_lowercase()), by_name.ok());
        }
        let default = app.get(&format!("{QUOTAS}/prod"), &admin).await;
        let explicit = app
            .get(
                &format!("{QUOTAS}/prod?response_format=GET_RSP_FORMAT_DEFAULT"),
                &admin,
            )
            .await;
        assert_eq!(default.ok(), explicit.ok());
        let create_form = app.get(&format!("{QUOTAS}/prod?response_format=1"), &admin).await;
        assert_eq!(create_form.ok()["create_form"]["metadata"]["name"], "");
        // A create form can be posted back (with a name) to clone the object.
        let mut clone = create_form.ok()["create_form"].clone();
        clone["metadata"]["name"] = json!("prod-copy");
        app.create_quota(&admin, clone).await;
        // Unknown extra query parameters are ignored, unknown formats are not.
        app.get(
            &format!("{QUOTAS}/prod?namespace=system&name=prod&foo=bar"),
            &admin,
        )
        .await
        .ok();
        let msg = app
            .get(
                &format!("{QUOTAS}/prod?response_format=GET_RSP_FORMAT_XML"),
                &admin,
            )
            .await
            .error(400, 3)
            .to_owned();
        assert!(msg.starts_with("response_format: unknown value"), "{msg}");
        app.get(&format!("{QUOTAS}/prod?response_format=7"), &admin)
            .await
            .error(400, 3);
    })
    .await;
}

#[tokio::test]
async fn get_of_a_missing_object_is_404_naming_it() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let resp = app.get(&format!("{QUOTAS}/ghost"), &admin).await;
        assert_eq!(
            resp.error(404, 5),
            "quota \"ghost\" not found in namespace \"system\""
        );
        app.get(&format!("{QUOTAS}/Not_A_Name"), &admin)
            .await
            .error(400, 3);
    })
    .await;
}

#[tokio::test]
async fn list_filters_by_labels_and_adds_requested_fields() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        for (name, env, tier) in [("a", "prod", "web"), ("b", "prod", "db"), ("c", "dev", "web")] {
            let body = json!({"metadata": {"name": name, "labels": {"env": env, "tier": tier}}, "spec": {}});
            app.create_quota(&admin, body).await;
        }
        let names = |resp: &crate::support::Resp| -> Vec<String> {
            resp.ok()["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let all = app.get(QUOTAS, &admin).await;
        assert_eq!(names(&all), ["a", "b", "c"]);
        let item = &all.ok()["items"][0];
        for absent in ["metadata", "system_metadata", "get_spec", "status_set"] {
            assert!(item.get(absent).is_none(), "{absent} without report fields");
        }
        assert_eq!(all.ok()["errors"], json!([]));
        snapshot!("list_item", item);

        let cases = [
            ("env%3Dprod", vec!["a", "b"]),
            ("env%21%3Dprod", vec!["c"]),
            ("env%3Dprod%2Ctier%3Dweb", vec!["a"]),
            ("tier%20in%20(db%2Cweb)", vec!["a", "b", "c"]),
            ("tier%20notin%20(web)", vec!["b"]),
            ("tier", vec!["a", "b", "c"]),
            ("%21tier", vec![]),
        ];
        for (filter, expected) in cases {
            let resp = app.get(&format!("{QUOTAS}?label_filter={filter}"), &admin).await;
            assert_eq!(names(&resp), expected, "label_filter={filter}");
        }
        let with_fields = app
            .get(&format!("{QUOTAS}?report_fields=a&report_fields=b"), &admin)
            .await;
        let item = &with_fields.ok()["items"][0];
        assert_eq!(item["metadata"]["name"], "a");
        assert_eq!(item["system_metadata"]["tenant"], "acme");
        assert_eq!(item["get_spec"]["object_limits"], json!({}));
        assert!(item.get("status_set").is_none());
        let with_status = app.get(&format!("{QUOTAS}?report_status_fields=x"), &admin).await;
        assert_eq!(with_status.ok()["items"][0]["status_set"], json!([]));

        let msg = app
            .get(&format!("{QUOTAS}?label_filter=env%20in%20(a"), &admin)
            .await
            .error(400, 3)
            .to_owned();
        assert!(msg.starts_with("label_filter: "), "{msg}");
    })
    .await;
}

#[tokio::test]
async fn delete_takes_options_from_the_body_the_query_or_nothing() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        for name in ["one", "two", "three"] {
            app.create_quota(&admin, quota_body(name, 1)).await;
        }
        assert_eq!(
            app.delete(&format!("{QUOTAS}/one"), &admin).await.ok(),
            &json!({})
        );
        let body = json!({"fail_if_referred": true, "name": "two", "namespace": "system"}).to_string();
        let resp = app
            .request(
                axum::http::Method::DELETE,
                &format!("{QUOTAS}/two"),
                Some(&admin),
                body,
                &[],
            )
            .await;
        assert_eq!(resp.ok(), &json!({}));
        app.delete(&format!("{QUOTAS}/three?fail_if_referred=true"), &admin)
            .await
            .ok();
        assert_eq!(app.get(QUOTAS, &admin).await.ok()["items"], json!([]));

        let msg = app
            .delete(&format!("{QUOTAS}/one"), &admin)
            .await
            .error(404, 5)
            .to_owned();
        assert!(msg.contains("\"one\""), "{msg}");
        app.create_quota(&admin, quota_body("four", 1)).await;
        let mismatch = json!({"name": "five"}).to_string();
        let resp = app
            .request(
                axum::http::Method::DELETE,
                &format!("{QUOTAS}/four"),
                Some(&admin),
                mismatch,
                &[],
            )
            .await;
        assert!(
            resp.error(400, 3)
                .starts_with("name: \"five\" in the body does not match")
        );
        app.delete(&format!("{QUOTAS}/four?fail_if_referred=maybe"), &admin)
            .await
            .error(400, 3);
        let bad_json = app
            .request(
                axum::http::Method::DELETE,
                &format!("{QUOTAS}/four"),
                Some(&admin),
                "{",
                &[],
            )
            .await;
        bad_json.error(400, 3);
        // None of the refused deletes deleted.
        app.get(&format!("{QUOTAS}/four"), &admin).await.ok();
    })
    .await;
}
