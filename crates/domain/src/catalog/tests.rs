use super::*;

#[test]
fn the_builtin_catalog_has_a_plan_of_every_type_and_every_addon() {
    let c = Catalog::builtin();
    assert_eq!(c.default_plan, "free");
    for t in PlanType::ALL {
        assert!(c.plans.iter().any(|p| p.usage_plan_type == *t), "{t}");
    }
    assert_eq!(c.addons.len(), 13);
    for a in ADDON_SERVICES {
        assert!(c.addon(a).is_some(), "{a}");
    }
    let team = c.plan("team").unwrap();
    assert_eq!(team.transition.method, TransitionMethod::Wizard);
    assert_eq!(team.transition.required_fields, [RequiredField::PaymentToken]);
    assert_eq!(team.trial_period, 14);
    let org = c.plan("organization").unwrap();
    assert!(org.transition.requires_manual_approval);
    assert_eq!(
        org.transition.required_fields,
        [RequiredField::Domain, RequiredField::Contacts]
    );
    assert!(c.plan("free").unwrap().billing_disabled);
    let price = &c.plan("individual").unwrap().prices["cdn_data_transfer"];
    assert_eq!(price.unit_price_cents(), Some(Decimal::new(45, 1)));
    assert_eq!(
        c.meter("lb_data_transfer").unwrap().divisor,
        Decimal::from(1_000_000_000)
    );
}

/// A minimal valid catalog to break in tests, one line per field.
const MINIMAL: &str = r#"format = 1
currency = "EUR"
default_plan = "basic"

[[addons]]
name = "f5xc_waap_standard"
display_name = "WAAP"

[[meters]]
metric_label = "requests"
usage_type = "Requests"
service = "LB"
unit = "request"
unit_billable = "million requests"
divisor = 1000000
aggregation = "sum"

[[plans]]
name = "basic"
title = "Basic"
usage_plan_type = "FREE"
tenant_type = "FREEMIUM"
flat_price_cents = 0
offered = true
allowed_addons = ["f5xc_waap_standard"]
transition = { method = "WIZARD" }

[plans.default_quota.resource_limits]
vcpu = "2.5"

[plans.prices.requests]
unit_price_cents = "0.5"
"#;

fn broken(find: &str, replace: &str) -> CatalogError {
    assert!(MINIMAL.contains(find), "{find}");
    parse("cat.toml", &MINIMAL.replacen(find, replace, 1)).unwrap_err()
}

#[test]
fn a_minimal_catalog_parses() {
    let c = parse("cat.toml", MINIMAL).unwrap();
    assert_eq!(c.currency, "EUR");
    let basic = c.plan("basic").unwrap();
    assert_eq!(basic.renewal_period, PeriodUnit::Month);
    assert_eq!(
        basic
            .default_quota
            .limit(crate::quota::KeyFamily::Resource, "vcpu"),
        Some(crate::quota::Limit::Max(2_500_000))
    );
    assert_eq!(basic.prices["requests"].free_allowance, Decimal::ZERO);
}

#[test]
fn errors_name_the_file_the_line_and_the_field() {
    let cases = [
        (
            broken("format = 1", "format = 3"),
            1,
            "format",
            "this Tollgate reads formats 1 to 2",
        ),
        (broken("\"EUR\"", "\"euro\""), 2, "currency", "ISO 4217"),
        (
            broken("default_plan = \"basic\"", "default_plan = \"gold\""),
            3,
            "default_plan",
            "no plan is named \"gold\"",
        ),
        (
            broken("f5xc_waap_standard\"\ndisplay", "f5xc_waap_turbo\"\ndisplay"),
            6,
            "addons[0].name",
            "unknown add-on service",
        ),
        (
            broken("divisor = 1000000", "divisor = 0"),
            15,
            "meters[0].divisor",
            "must be more than zero",
        ),
        (
            broken("divisor = 1000000", "divisor = 0.5"),
            15,
            "meters[0].divisor",
            "write decimals as strings",
        ),
        (
            broken("\"sum\"", "\"avg\""),
            16,
            "meters[0].aggregation",
            "sum, max, latest, count or unique_count",
        ),
        (
            broken("\"sum\"", "\"count\""),
            16,
            "meters[0].aggregation",
            "needs format = 2",
        ),
        (
            broken("name = \"basic\"", "name = \"Basic Plan\""),
            19,
            "plans[0].name",
            "not a valid name",
        ),
        (
            broken("\"FREE\"", "\"GOLD\""),
            21,
            "plans[0].usage_plan_type",
            "\"GOLD\" is not one of",
        ),
        (
            broken("flat_price_cents = 0", "flat_price_cents = -5"),
            23,
            "plans[0].flat_price_cents",
            "between 0",
        ),
        (
            broken("[\"f5xc_waap_standard\"]", "[\"f5xc_waap_advanced\"]"),
            25,
            "plans[0].allowed_addons",
            "unknown add-on",
        ),
        (
            broken("{ method = \"WIZARD\" }", "{ method = \"EMAIL\" }"),
            26,
            "plans[0].transition.method",
            "not one of",
        ),
        (
            broken("vcpu = \"2.5\"", "vcpu = \"2.1234567\""),
            29,
            "plans[0].default_quota.resource_limits.vcpu",
            "decimal places",
        ),
        (
            broken("vcpu = \"2.5\"", "vcpu = 2.5"),
            29,
            "plans[0].default_quota.resource_limits.vcpu",
            "strings",
        ),
        (
            broken("[plans.prices.requests]", "[plans.prices.bytes]"),
            31,
            "plans[0].prices.bytes",
            "no meter has metric_label",
        ),
        (
            broken("unit_price_cents = \"0.5\"", "unit_price_cents = \"-1\""),
            31,
            "plans[0].prices.requests.unit_price_cents",
            "must not be negative",
        ),
    ];
    for (err, line, field, message) in cases {
        assert_eq!(err.file, "cat.toml");
        assert_eq!((err.line, err.field.as_str()), (line, field), "{err}");
        assert!(err.message.contains(message), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("cat.toml:{line}: {field}: ")),
            "{err}"
        );
    }
}

#[test]
fn syntax_and_type_errors_carry_their_line() {
    let unknown = broken("offered = true", "offered = true\nshiny = true");
    assert_eq!(unknown.line, 25, "{unknown}");
    assert!(unknown.message.contains("shiny"), "{unknown}");
    let wrong_type = broken("offered = true", "offered = \"yes\"");
    assert_eq!(wrong_type.line, 24, "{wrong_type}");
    let syntax = broken("title = \"Basic\"", "title = \"Basic");
    assert_eq!(syntax.line, 20, "{syntax}");
    let missing = broken("offered = true\n", "");
    assert!(missing.message.contains("offered"), "{missing}");
}

#[test]
fn the_default_plan_must_be_offered_and_plans_unique() {
    let e = broken("offered = true", "offered = false");
    assert_eq!((e.line, e.field.as_str()), (3, "default_plan"), "{e}");
    let twice = format!(
        "{MINIMAL}\n[[plans]]\nname = \"basic\"\ntitle = \"Again\"\nusage_plan_type = \"TEAM\"\ntenant_type = \"ENTERPRISE\"\nflat_price_cents = 1\noffered = true\ntransition = {{ method = \"WIZARD\" }}\n"
    );
    let e = parse("cat.toml", &twice).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (35, "plans[1].name"), "{e}");
}

#[test]
fn accept_language_picks_the_best_localization() {
    let team = Catalog::builtin().plan("team").unwrap().clone();
    // The caller's preferences, as the API reads them from `Accept-Language`.
    let prefs = |h: Option<&str>| -> Vec<String> {
        h.map(|h| {
            h.split(',')
                .filter_map(|p| {
                    let mut pieces = p.split(';');
                    let tag = pieces.next()?.trim().to_ascii_lowercase();
                    (!pieces.any(|q| q.trim() == "q=0")).then_some(tag)
                })
                .collect()
        })
        .unwrap_or_default()
    };
    let pick = |h: Option<&str>| {
        let (locale, text) = team.texts_for(&prefs(h));
        (locale, text.title)
    };
    assert_eq!(pick(None), ("en-us".into(), "Teams".into()));
    assert_eq!(
        pick(Some("fr-FR,fr;q=0.9,en;q=0.8")),
        ("fr-fr".into(), "Équipes".into())
    );
    assert_eq!(pick(Some("de")), ("de-de".into(), "Teams".into()));
    assert_eq!(pick(Some("ja-JP, en-GB;q=0.5")), ("en-us".into(), "Teams".into()));
    assert_eq!(pick(Some("fr, en")), ("fr-fr".into(), "Équipes".into()));
    assert_eq!(pick(Some("fr;q=0")), ("en-us".into(), "Teams".into()));
    // A regional variant stands for its language.
    assert_eq!(pick(Some("en-GB, de;q=0.8")), ("en-us".into(), "Teams".into()));
    assert_eq!(pick(Some("fr-CA")), ("fr-fr".into(), "Équipes".into()));
    assert_eq!(Catalog::builtin().locale_for(&["de-at".to_owned()]), "de-de");
}

#[test]
fn offered_plan_explains_refusals() {
    let c = Catalog::builtin();
    assert!(c.offered_plan("new_plan", "team").is_ok());
    let e = c.offered_plan("new_plan", "platinum").unwrap_err();
    assert!(
        e.message
            .starts_with("new_plan: unknown plan \"platinum\"; offered plans: free, individual"),
        "{}",
        e.message
    );
}

#[test]
fn a_rate_of_zero_is_refused_on_publish_and_ignored_in_published_versions() {
    let with_limit = |rate: i64| {
        MINIMAL.replace(
            "[plans.default_quota.resource_limits]",
            &format!(
                "[plans.default_quota.api_limits]\n\"ves.io.schema.quota.API.Create\" = {{ rate = {rate}, unit = \"MINUTE\" }}\n\n[plans.default_quota.resource_limits]"
            ),
        )
    };
    let e = parse_for_publish("cat.toml", &with_limit(0)).unwrap_err();
    assert_eq!(
        e.field,
        "plans[0].default_quota.api_limits.ves.io.schema.quota.API.Create"
    );
    assert!(e.message.contains("a rate of 0 would refuse every call"), "{e}");
    let line = with_limit(0)
        .lines()
        .position(|l| l.contains("API.Create"))
        .unwrap();
    assert_eq!(e.line, line + 1);
    // A version published before the rule still loads; the limit is then
    // left out of the effective quota.
    let stored = parse("cat.toml", &with_limit(0)).unwrap();
    let quota = &stored.plan("basic").unwrap().default_quota;
    let eff = crate::quota::EffectiveQuota::compute(quota, &[]);
    assert!(eff.apis.is_empty());
    assert_eq!(eff.ignored_api_limits.len(), 1);
    // Other broken limits are refused either way.
    assert!(parse("cat.toml", &with_limit(-2)).is_err());
    assert_eq!(
        parse_for_publish("cat.toml", &with_limit(5)).unwrap().plans[0]
            .default_quota
            .api_limit("ves.io.schema.quota.API.Create")
            .map(|l| l.rate),
        Some(5)
    );
}

#[test]
fn the_issuer_is_optional_and_checked() {
    assert_eq!(parse("cat.toml", MINIMAL).unwrap().issuer, None);
    // A table after the last one of the file is a top-level table.
    let with = |table: &str| parse("cat.toml", &format!("{MINIMAL}\n{table}\n"));
    let c = with(
        "[issuer]\nname = \" Acme Billing Ltd \"\naddress = [\"1 Road\", \"London\"]\ntax_id = \"GB123\"\nemail = \"billing@acme.example\"",
    )
    .unwrap();
    assert_eq!(
        c.issuer,
        Some(Issuer {
            name: "Acme Billing Ltd".into(),
            address: vec!["1 Road".into(), "London".into()],
            tax_id: Some("GB123".into()),
            email: Some("billing@acme.example".into()),
        })
    );
    for (table, field) in [
        ("[issuer]\nname = \"  \"", "issuer.name"),
        ("[issuer]\nname = \"A\\nB\"", "issuer.name"),
        (
            "[issuer]\nname = \"A\"\naddress = [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\"]",
            "issuer.address",
        ),
        (
            "[issuer]\nname = \"A\"\naddress = [\"ok\", \"bad\\u0007\"]",
            "issuer.address[1]",
        ),
        ("[issuer]\nname = \"A\"\nemail = \"nobody\"", "issuer.email"),
    ] {
        let e = with(table).unwrap_err();
        assert_eq!(e.field, field, "{table}: {e}");
    }
    assert!(
        with("[issuer]\nname = \"A\"\nphone = \"1\"").is_err(),
        "unknown keys are refused"
    );
    assert_eq!(
        Catalog::builtin().issuer.map(|i| i.name),
        Some("Tollgate".to_owned()),
        "the built-in catalog names an issuer"
    );
}

#[test]
fn a_metric_without_a_meter_sums_in_the_catalog_and_in_its_aggregations() {
    let catalog = Catalog::builtin();
    let meter = catalog.meters.iter().find(|m| m.aggregation != Aggregation::Sum);
    let aggregations = catalog.aggregations();
    for m in &catalog.meters {
        assert_eq!(aggregations.of(&m.metric_label), m.aggregation);
        assert_eq!(catalog.aggregation(&m.metric_label), m.aggregation);
    }
    assert!(meter.is_some(), "the built-in catalog has a max or latest meter");
    assert_eq!(aggregations.of("no_such_meter"), Aggregation::Sum);
    assert_eq!(catalog.aggregation("no_such_meter"), Aggregation::Sum);
    assert_eq!(Aggregations::default().of("anything"), Aggregation::Sum);
}

/// A format 2 catalog with one meter priced four ways, on four plans.
pub(crate) const PRICED: &str = r#"
format = 2
currency = "USD"
default_plan = "graduated"

[[addons]]
name = "f5xc_waap_standard"
display_name = "WAAP"
flat_price_cents = 3100

[[meters]]
metric_label = "requests"
usage_type = "Requests"
service = "LB"
unit = "request"
unit_billable = "request"
divisor = 1
aggregation = "sum"

[[plans]]
name = "graduated"
title = "Graduated"
usage_plan_type = "TEAM"
tenant_type = "ENTERPRISE"
flat_price_cents = 0
minimum_commitment_cents = 10000
offered = true
allowed_addons = ["f5xc_waap_standard"]
transition = { method = "WIZARD" }

[plans.prices.requests]
model = "graduated"
free_allowance = 10
flat_amount_cents = 1000
tiers = [
  { up_to = 100, unit_price_cents = 50 },
  { up_to = 1000, unit_price_cents = 40, flat_amount_cents = 200 },
  { unit_price_cents = "30" },
]

[[plans]]
name = "volume"
title = "Volume"
usage_plan_type = "TEAM"
tenant_type = "ENTERPRISE"
flat_price_cents = 0
offered = true
transition = { method = "WIZARD" }

[plans.prices.requests]
model = "volume"
tiers = [
  { up_to = 100, unit_price_cents = 50 },
  { up_to = 1000, unit_price_cents = 40, flat_amount_cents = 200 },
  { unit_price_cents = "30" },
]

[[plans]]
name = "package"
title = "Package"
usage_plan_type = "TEAM"
tenant_type = "ENTERPRISE"
flat_price_cents = 2500
offered = true
transition = { method = "WIZARD" }

[plans.prices.requests]
model = "package"
package_size = 10
package_price_cents = 100

[[plans]]
name = "per-unit"
title = "Per unit"
usage_plan_type = "TEAM"
tenant_type = "ENTERPRISE"
flat_price_cents = 0
offered = true
included_addons = ["f5xc_waap_standard"]
transition = { method = "WIZARD" }

[plans.prices.requests]
unit_price_cents = "0.5"
"#;

#[test]
fn a_format_two_catalog_reads_every_price_model() {
    use super::{ModelKind, PriceModel, Tier};
    let c = parse("priced.toml", PRICED).unwrap();
    let g = c.plan("graduated").unwrap();
    assert_eq!(g.minimum_cents, 10000);
    let p = &g.prices["requests"];
    assert_eq!((p.free_allowance, p.flat_cents), (Decimal::from(10), 1000));
    assert_eq!(
        p.model,
        PriceModel::Graduated(vec![
            Tier {
                up_to: Some(Decimal::from(100)),
                unit_price_cents: Decimal::from(50),
                flat_cents: Decimal::ZERO
            },
            Tier {
                up_to: Some(Decimal::from(1000)),
                unit_price_cents: Decimal::from(40),
                flat_cents: Decimal::from(200)
            },
            Tier {
                up_to: None,
                unit_price_cents: Decimal::from(30),
                flat_cents: Decimal::ZERO
            },
        ])
    );
    assert_eq!(
        c.plan("volume").unwrap().prices["requests"].model.kind(),
        ModelKind::Volume
    );
    assert_eq!(
        c.plan("package").unwrap().prices["requests"].model,
        PriceModel::Package {
            size: Decimal::from(10),
            price_cents: Decimal::from(100)
        }
    );
    assert_eq!(
        c.plan("per-unit").unwrap().prices["requests"].unit_price_cents(),
        Some(Decimal::new(5, 1))
    );
    assert_eq!(c.addon("f5xc_waap_standard").unwrap().flat_price_cents, 3100);
    assert!(c.plan("graduated").unwrap().charges_fixed());
    assert!(!c.plan("volume").unwrap().charges_fixed());
}

#[test]
fn price_model_errors_name_the_field() {
    let bad = |find: &str, replace: &str| {
        assert!(PRICED.contains(find), "{find}");
        parse("priced.toml", &PRICED.replacen(find, replace, 1)).unwrap_err()
    };
    let cases = [
        (
            bad("model = \"graduated\"", "model = \"stairstep\""),
            "plans[0].prices.requests.model",
            "is not one of",
        ),
        (
            bad(
                "  { unit_price_cents = \"30\" },",
                "  { up_to = 5000, unit_price_cents = \"30\" },",
            ),
            "plans[0].prices.requests.tiers[2].up_to",
            "the last tier has no up_to",
        ),
        (
            bad(
                "{ up_to = 1000, unit_price_cents = 40, flat_amount_cents = 200 },\n  { unit_price_cents = \"30\" },\n]\n\n[[plans]]\nname = \"package\"",
                "{ unit_price_cents = 40 },\n  { unit_price_cents = \"30\" },\n]\n\n[[plans]]\nname = \"package\"",
            ),
            "plans[1].prices.requests.tiers[1].up_to",
            "is required on every tier but the last",
        ),
        (
            bad(
                "{ up_to = 1000, unit_price_cents = 40, flat_amount_cents = 200 }",
                "{ up_to = 100, unit_price_cents = 40 }",
            ),
            "plans[0].prices.requests.tiers[1].up_to",
            "must be more than the tier before's (100)",
        ),
        (
            bad(
                "{ up_to = 100, unit_price_cents = 50 }",
                "{ up_to = \"99.5\", unit_price_cents = 50 }",
            ),
            "plans[0].prices.requests.tiers[0].up_to",
            "whole number",
        ),
        (
            bad(
                "tiers = [\n  { up_to = 100, unit_price_cents = 50 },\n  { up_to = 1000, unit_price_cents = 40, flat_amount_cents = 200 },\n  { unit_price_cents = \"30\" },\n]\n\n[[plans]]\nname = \"package\"",
                "tiers = []\n\n[[plans]]\nname = \"package\"",
            ),
            "plans[1].prices.requests.tiers",
            "needs 1 to 32 tiers",
        ),
        (
            bad("package_size = 10", "package_size = 0"),
            "plans[2].prices.requests.package_size",
            "whole number of units, more than 0",
        ),
        (
            bad("package_size = 10\n", ""),
            "plans[2].prices.requests.package_size",
            "is required",
        ),
        (
            bad("model = \"package\"", "model = \"package\"\nunit_price_cents = 5"),
            "plans[2].prices.requests.unit_price_cents",
            "does not apply to a package price",
        ),
        (
            bad("flat_amount_cents = 1000", "flat_amount_cents = -1"),
            "plans[0].prices.requests.flat_amount_cents",
            "between 0 and",
        ),
        (
            bad(
                "minimum_commitment_cents = 10000",
                "minimum_commitment_cents = -5",
            ),
            "plans[0].minimum_commitment_cents",
            "between 0 and",
        ),
        (
            bad("unit_price_cents = 50 }", "unit_price_cents = -50 }"),
            "plans[0].prices.requests.tiers[0].unit_price_cents",
            "must not be negative",
        ),
        (
            bad("unit_price_cents = \"0.5\"", "free_allowance = 1"),
            "plans[3].prices.requests.unit_price_cents",
            "is required",
        ),
    ];
    for (err, field, message) in cases {
        assert_eq!(err.field, field, "{err}");
        assert!(err.message.contains(message), "{err}");
    }
    // Format 1 has per-unit prices only: the new settings need format 2.
    let old = PRICED.replacen("format = 2", "format = 1", 1);
    let err = parse("priced.toml", &old).unwrap_err();
    assert!(err.message.contains("needs format = 2"), "{err}");
    assert_eq!(err.field, "addons[0].flat_price_cents", "{err}");
    let err = parse("priced.toml", &old.replacen("flat_price_cents = 3100\n", "", 1)).unwrap_err();
    assert!(err.message.contains("needs format = 2"), "{err}");
    assert_eq!(err.field, "plans[0].prices.requests", "{err}");
    let err = broken(
        "display_name = \"WAAP\"",
        "display_name = \"WAAP\"\nflat_price_cents = 100",
    );
    assert_eq!(err.field, "addons[0].flat_price_cents", "{err}");
    assert!(err.message.contains("needs format = 2"), "{err}");
    let err = broken(
        "flat_price_cents = 0",
        "flat_price_cents = 0\nminimum_commitment_cents = 100",
    );
    assert_eq!(err.field, "plans[0].minimum_commitment_cents", "{err}");
    assert!(err.message.contains("needs format = 2"), "{err}");
}

#[test]
fn unique_count_meters_name_a_property() {
    let with_meter = |aggregation: &str, property: Option<&str>| {
        let property = property.map_or(String::new(), |p| format!("property = \"{p}\"\n"));
        let meter = format!(
            "[[meters]]\nmetric_label = \"users\"\nusage_type = \"Users\"\nservice = \"Id\"\nunit = \"user\"\n\
             unit_billable = \"user\"\ndivisor = 1\naggregation = \"{aggregation}\"\n{property}\n[[meters]]\n"
        );
        parse("priced.toml", &PRICED.replacen("[[meters]]\n", &meter, 1))
    };
    let c = with_meter("unique_count", Some("user_id")).unwrap();
    let m = c.meter("users").unwrap();
    assert_eq!(
        (m.aggregation, m.property.as_deref()),
        (Aggregation::UniqueCount, Some("user_id"))
    );
    assert_eq!(c.aggregations().unique_property("users"), Some("user_id"));
    assert_eq!(c.aggregations().unique_property("requests"), None);
    for (aggregation, property, message) in [
        ("unique_count", None, "names the event property"),
        ("sum", Some("user_id"), "only a unique_count meter"),
        ("unique_count", Some("user id"), "not a property name"),
    ] {
        let e = with_meter(aggregation, property).unwrap_err();
        assert_eq!(e.field, "meters[0].property", "{e}");
        assert!(e.message.contains(message), "{e}");
    }
}

#[test]
fn tax_rates_apply_by_country_region_and_date() {
    let taxes = "\n[[taxes]]\nname = \"VAT\"\ncountry = \"DE\"\nrate = 19\nuntil = 2027-07-01\n\n\
                 [[taxes]]\nname = \"VAT\"\ncountry = \"DE\"\nrate = 16\nfrom = 2027-07-01\n\n\
                 [[taxes]]\nname = \"GST\"\ncountry = \"CA\"\nrate = 5\n\n\
                 [[taxes]]\nname = \"PST\"\ncountry = \"CA\"\nregion = \"BC\"\nrate = \"7\"\n";
    let c = parse("priced.toml", &format!("{PRICED}{taxes}")).unwrap();
    let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
    let rates = |country: &str, region: &str, when: &str| -> Vec<(String, Decimal)> {
        c.tax_rates(country, region, at(when))
            .into_iter()
            .map(|r| (r.name.clone(), r.percent))
            .collect()
    };
    assert_eq!(
        rates("DE", "", "2027-06-30T23:59:59Z"),
        [("VAT".to_owned(), Decimal::from(19))]
    );
    assert_eq!(
        rates("de", "", "2027-07-01T00:00:00Z"),
        [("VAT".to_owned(), Decimal::from(16))]
    );
    assert_eq!(
        rates("CA", "ON", "2027-01-01T00:00:00Z"),
        [("GST".to_owned(), Decimal::from(5))]
    );
    assert_eq!(rates("CA", "BC", "2027-01-01T00:00:00Z").len(), 2);
    assert!(rates("FR", "", "2027-01-01T00:00:00Z").is_empty());
    let bad = |find: &str, replace: &str| {
        let t = taxes.replacen(find, replace, 1);
        parse("priced.toml", &format!("{PRICED}{t}")).unwrap_err()
    };
    for (err, field, message) in [
        (
            bad("country = \"DE\"", "country = \"Germany\""),
            "taxes[0].country",
            "ISO 3166-1",
        ),
        (
            bad("rate = 19", "rate = 119"),
            "taxes[0].rate",
            "between 0 and 100",
        ),
        (
            bad("rate = 19", "rate = 19.5"),
            "taxes[0].rate",
            "write decimals as strings",
        ),
        (
            bad("until = 2027-07-01", "until = 2027-07-02"),
            "taxes[1]",
            "overlaps",
        ),
        (
            bad("until = 2027-07-01", "until = 2027-07-01T10:00:00Z"),
            "taxes[0].until",
            "a date",
        ),
    ] {
        assert_eq!(err.field, field, "{err}");
        assert!(err.message.contains(message), "{err}");
    }
    let old = format!("{}{taxes}", MINIMAL);
    let err = parse("cat.toml", &old).unwrap_err();
    assert!(err.message.contains("needs format = 2"), "{err}");
}

/// A catalog priced in three currencies: the plans' own fields are USD (the
/// first), `[plans.currencies.X]` restates the money in the others.
pub(crate) const MULTI: &str = r#"format = 2
currencies = ["USD", "EUR", "JPY"]
default_plan = "basic"

[[addons]]
name = "f5xc_waap_standard"
display_name = "WAAP"
flat_price_cents = 3100

[addons.currencies.EUR]
flat_price_cents = 2900

[addons.currencies.JPY]
flat_price_cents = 4500

[[addons]]
name = "f5xc_appstack_standard"
display_name = "App Stack"

[[meters]]
metric_label = "requests"
usage_type = "Requests"
service = "LB"
unit = "request"
unit_billable = "request"
divisor = 1
aggregation = "sum"

[[plans]]
name = "basic"
title = "Basic"
usage_plan_type = "FREE"
tenant_type = "FREEMIUM"
flat_price_cents = 0
offered = true
transition = { method = "WIZARD" }

[[plans]]
name = "pro"
title = "Pro"
usage_plan_type = "INDIVIDUAL"
tenant_type = "FREEMIUM"
flat_price_cents = 2500
minimum_commitment_cents = 10000
offered = true
allowed_addons = ["f5xc_waap_standard"]
transition = { method = "WIZARD" }

[plans.prices.requests]
unit_price_cents = "60"
free_allowance = "5"

[plans.currencies.EUR]
flat_price_cents = 2300
minimum_commitment_cents = 9000

[plans.currencies.EUR.prices.requests]
unit_price_cents = "55"
free_allowance = "5"

[plans.currencies.JPY]
flat_price_cents = 3800
minimum_commitment_cents = 15000

[plans.currencies.JPY.prices.requests]
model = "graduated"
free_allowance = "5"
tiers = [
  { up_to = 1000, unit_price_cents = "0.5" },
  { unit_price_cents = "0.25", flat_amount_cents = "100" },
]
"#;

#[test]
fn a_catalog_prices_its_plans_in_each_of_its_currencies() {
    let c = parse_for_publish("multi.toml", MULTI).unwrap();
    assert_eq!(
        (c.currency.as_str(), c.currencies.as_slice()),
        ("USD", &["USD".to_owned(), "EUR".into(), "JPY".into()][..])
    );
    assert!(c.prices_in("JPY") && !c.prices_in("GBP"));
    assert_eq!(c.currency_of(None), "USD");
    assert_eq!(c.currency_of(Some("EUR")), "EUR");
    assert!(c.in_currency("GBP").is_none());
    // The first currency's view is the catalog itself.
    assert_eq!(c.in_currency("USD").unwrap(), c);

    let yen = c.in_currency("JPY").unwrap();
    assert_eq!(yen.currency, "JPY");
    let pro = yen.plan("pro").unwrap();
    assert_eq!((pro.flat_price_cents, pro.minimum_cents), (3800, 15000));
    assert!(matches!(&pro.prices["requests"].model, PriceModel::Graduated(t) if t.len() == 2));
    assert_eq!(yen.addon("f5xc_waap_standard").unwrap().flat_price_cents, 4500);
    // A free plan and a free add-on are free in every currency.
    assert_eq!(yen.plan("basic").unwrap().flat_price_cents, 0);
    assert_eq!(yen.addon("f5xc_appstack_standard").unwrap().flat_price_cents, 0);

    let euro = c.in_currency("EUR").unwrap();
    let pro = euro.plan("pro").unwrap();
    assert_eq!((pro.flat_price_cents, pro.minimum_cents), (2300, 9000));
    assert_eq!(pro.prices["requests"].unit_price_cents(), Some(Decimal::from(55)));
    // Everything else is the catalog's.
    assert_eq!(euro.meters, c.meters);
    assert_eq!(
        euro.plan("pro").unwrap().allowed_addons,
        c.plan("pro").unwrap().allowed_addons
    );

    // A single `currency` is a list of one.
    let one = parse("cat.toml", MINIMAL).unwrap();
    assert_eq!(one.currencies, ["EUR"]);
    assert_eq!(one.in_currency("EUR").unwrap(), one);
}

fn multi_broken(find: &str, replace: &str) -> CatalogError {
    assert!(MULTI.contains(find), "{find}");
    parse_for_publish("multi.toml", &MULTI.replacen(find, replace, 1)).unwrap_err()
}

/// Every table of one currency renamed.
fn renamed(from: &str, to: &str) -> CatalogError {
    parse_for_publish("multi.toml", &MULTI.replace(from, to)).unwrap_err()
}

#[test]
fn every_priced_plan_and_addon_states_its_money_in_every_currency() {
    let line_of = |needle: &str| MULTI.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let cases = [
        (
            multi_broken(
                "[plans.currencies.EUR]\nflat_price_cents = 2300\nminimum_commitment_cents = 9000\n\n[plans.currencies.EUR.prices.requests]\nunit_price_cents = \"55\"\nfree_allowance = \"5\"\n",
                "",
            ),
            line_of("name = \"pro\""),
            "plans[1].currencies.EUR",
            "the catalog prices in EUR too",
        ),
        (
            multi_broken("minimum_commitment_cents = 15000\n", ""),
            line_of("[plans.currencies.JPY]"),
            "plans[1].currencies.JPY.minimum_commitment_cents",
            "is required: the plan has a minimum commitment",
        ),
        (
            multi_broken(
                "[plans.currencies.EUR.prices.requests]\nunit_price_cents = \"55\"\nfree_allowance = \"5\"\n",
                "",
            ),
            line_of("[plans.currencies.EUR]"),
            "plans[1].currencies.EUR.prices.requests",
            "give its price in EUR too",
        ),
        (
            multi_broken(
                "[plans.currencies.EUR.prices.requests]",
                "[plans.currencies.EUR.prices.bytes]",
            ),
            line_of("[plans.currencies.EUR.prices.requests]"),
            "plans[1].currencies.EUR.prices.bytes",
            "the plan has no price for \"bytes\"",
        ),
        (
            renamed("plans.currencies.EUR", "plans.currencies.GBP"),
            line_of("[plans.currencies.EUR]"),
            "plans[1].currencies.GBP",
            "\"GBP\" is not one of the catalog's currencies (USD, EUR, JPY)",
        ),
        (
            renamed("plans.currencies.JPY", "plans.currencies.USD"),
            line_of("[plans.currencies.JPY]"),
            "plans[1].currencies.USD",
            "USD is the catalog's first currency",
        ),
        (
            multi_broken("[addons.currencies.JPY]\nflat_price_cents = 4500\n", ""),
            line_of("flat_price_cents = 3100"),
            "addons[0].currencies.JPY",
            "give [addons.currencies.JPY] flat_price_cents",
        ),
        (
            multi_broken("\"0.5\"", "\"-0.5\""),
            line_of("[plans.currencies.JPY.prices.requests]"),
            "plans[1].currencies.JPY.prices.requests.tiers[0].unit_price_cents",
            "must not be negative",
        ),
        (
            multi_broken(
                "currencies = [\"USD\", \"EUR\", \"JPY\"]",
                "currencies = [\"USD\", \"eur\"]",
            ),
            2,
            "currencies[1]",
            "\"eur\" is not an ISO 4217 code",
        ),
        (
            multi_broken(
                "currencies = [\"USD\", \"EUR\", \"JPY\"]",
                "currencies = [\"USD\", \"EUR\", \"USD\"]",
            ),
            2,
            "currencies[2]",
            "\"USD\" is listed twice",
        ),
        (
            multi_broken("currencies = [\"USD\", \"EUR\", \"JPY\"]", "currencies = []"),
            2,
            "currencies",
            "needs at least one currency",
        ),
        (
            multi_broken(
                "currencies = [\"USD\", \"EUR\", \"JPY\"]",
                "currency = \"USD\"\ncurrencies = [\"USD\", \"EUR\", \"JPY\"]",
            ),
            2,
            "currency",
            "not both",
        ),
        (
            multi_broken("currencies = [\"USD\", \"EUR\", \"JPY\"]\n", ""),
            1,
            "currency",
            "is required",
        ),
    ];
    for (e, line, field, message) in cases {
        assert_eq!((e.line, e.field.as_str()), (line, field), "{e}");
        assert!(e.message.contains(message), "{e}");
        assert!(e.to_string().starts_with("multi.toml:"), "{e}");
    }
    // Format 1 has one currency.
    let e = parse_for_publish(
        "cat.toml",
        &MINIMAL.replace("currency = \"EUR\"", "currencies = [\"EUR\"]"),
    )
    .unwrap_err();
    assert_eq!(e.field, "currencies");
    assert!(e.message.contains("needs format = 2"), "{e}");
}

#[test]
fn a_diff_names_each_change_and_nothing_else() {
    let old = parse("cat.toml", MINIMAL).unwrap();
    assert_eq!(diff(&old, &old), []);
    let source = MINIMAL
        .replacen("flat_price_cents = 0", "flat_price_cents = 1500", 1)
        .replacen(r#"unit_price_cents = "0.5""#, r#"unit_price_cents = "0.75""#, 1)
        .replacen(r#"aggregation = "sum""#, r#"aggregation = "max""#, 1)
        .replacen(r#"display_name = "WAAP""#, r#"display_name = "WAAP Standard""#, 1)
        + r#"
[[plans]]
name = "pro"
title = "Pro"
usage_plan_type = "TEAM"
tenant_type = "ENTERPRISE"
flat_price_cents = 9900
offered = true
transition = { method = "WIZARD" }
"#;
    let new = parse("cat.toml", &source).unwrap();
    let changes = diff(&old, &new);
    let shown: Vec<(&str, &str, &str, Vec<String>)> = changes
        .iter()
        .map(|c| (c.kind.as_str(), c.what, c.name.as_str(), c.details.clone()))
        .collect();
    assert_eq!(
        shown,
        [
            (
                "changed",
                "plan",
                "basic",
                vec![
                    "fee: 0.00 EUR → 15.00 EUR".to_owned(),
                    "price of requests: per_unit 0.005 EUR → per_unit 0.0075 EUR".to_owned(),
                ]
            ),
            ("added", "plan", "pro", vec![]),
            (
                "changed",
                "add-on",
                "f5xc_waap_standard",
                vec!["name: WAAP → WAAP Standard".to_owned()]
            ),
            (
                "changed",
                "meter",
                "requests",
                vec!["aggregation: sum → max".to_owned()]
            ),
        ]
    );
    // And back: the new plan is removed, each change reversed.
    let back = diff(&new, &old);
    assert_eq!(back[1].kind, ChangeKind::Removed);
    assert_eq!(back[0].details[0], "fee: 15.00 EUR → 0.00 EUR");
}
