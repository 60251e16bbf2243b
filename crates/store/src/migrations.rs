//! Embedded migrations: one source tree (`migrations/`) for both engines, so
//! the binary needs no files at run time and no database at build time.
//!
//! The engines differ in a few spellings (how an auto-incrementing key is
//! declared, how a credit note's name is made from a time). Those are written once in the SQL as `{{NAME}}` placeholders
//! and rendered per engine by [`Engine::render`]. A rendered migration is
//! byte-identical to what earlier versions embedded per engine, so databases
//! they migrated keep matching checksums (tested below).

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};

/// Every migration, in order: (version, description, SQL with placeholders).
const STEPS: &[(i64, &str, &str)] = &[
    (1, "foundation", include_str!("../migrations/0001_foundation.sql")),
    (2, "billing", include_str!("../migrations/0002_billing.sql")),
    (3, "metering", include_str!("../migrations/0003_metering.sql")),
    (4, "invoicing", include_str!("../migrations/0004_invoicing.sql")),
    (
        5,
        "daily usage",
        include_str!("../migrations/0005_daily_usage.sql"),
    ),
    (6, "hardening", include_str!("../migrations/0006_hardening.sql")),
    (7, "refunds", include_str!("../migrations/0007_refunds.sql")),
    (
        8,
        "operator tokens",
        include_str!("../migrations/0008_operator_tokens.sql"),
    ),
    (
        9,
        "billing due",
        include_str!("../migrations/0009_billing_due.sql"),
    ),
    (
        10,
        "payment providers",
        include_str!("../migrations/0010_payment_providers.sql"),
    ),
    (
        11,
        "credit notes",
        include_str!("../migrations/0011_credit_notes.sql"),
    ),
    (12, "dunning", include_str!("../migrations/0012_dunning.sql")),
    (13, "webhooks", include_str!("../migrations/0013_webhooks.sql")),
    (
        14,
        "usage alerts",
        include_str!("../migrations/0014_usage_alerts.sql"),
    ),
    (
        15,
        "add-on history",
        include_str!("../migrations/0015_addon_history.sql"),
    ),
    (
        16,
        "catalog moves",
        include_str!("../migrations/0016_catalog_moves.sql"),
    ),
    (
        17,
        "event properties",
        include_str!("../migrations/0017_event_properties.sql"),
    ),
    (
        18,
        "distinct values per period",
        include_str!("../migrations/0018_distinct_periods.sql"),
    ),
    (
        19,
        "tenant tax",
        include_str!("../migrations/0019_tenant_tax.sql"),
    ),
    (20, "credits", include_str!("../migrations/0020_credits.sql")),
    (
        21,
        "tenant currency",
        include_str!("../migrations/0021_tenant_currency.sql"),
    ),
    (
        22,
        "console sessions",
        include_str!("../migrations/0022_console_sessions.sql"),
    ),
    (
        23,
        "quota version",
        include_str!("../migrations/0023_quota_version.sql"),
    ),
    (
        24,
        "event retention",
        include_str!("../migrations/0024_event_retention.sql"),
    ),
];

/// The storage engine a migration is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// The engine's spelling of each placeholder.
    fn spellings(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Sqlite => &[
                ("{{SEQUENCE_PRIMARY_KEY}}", "INTEGER PRIMARY KEY AUTOINCREMENT"),
                (
                    "{{CREDIT_NOTE_NAME}}",
                    "'cn-' || strftime('%Y-%m', numbered.started_at / 1000000, 'unixepoch') || '-' || \
                     printf('%04d', numbered.seq)",
                ),
            ],
            Self::Postgres => &[
                (
                    "{{SEQUENCE_PRIMARY_KEY}}",
                    "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                ),
                (
                    "{{CREDIT_NOTE_NAME}}",
                    "'cn-' || to_char(to_timestamp(numbered.started_at / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM') \
                     || '-' || CASE WHEN numbered.seq < 10000 THEN lpad(numbered.seq::text, 4, '0') \
                     ELSE numbered.seq::text END",
                ),
            ],
        }
    }

    /// `sql` with every placeholder spelt for this engine.
    fn render(self, sql: &str) -> String {
        let mut out = sql.to_owned();
        for (placeholder, spelling) in self.spellings() {
            out = out.replace(placeholder, spelling);
        }
        debug_assert!(!out.contains("{{"), "a placeholder has no spelling for {self:?}");
        out
    }

    /// The migrator for this engine.
    pub(crate) fn migrator(self) -> Migrator {
        let migrations = STEPS
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    AssertSqlSafe(self.render(sql)).into_sql_str(),
                    false,
                )
            })
            .collect::<Vec<_>>();
        Migrator {
            migrations: Cow::Owned(migrations),
            ..Migrator::DEFAULT
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The checksums databases migrated by earlier versions recorded (SHA-384
    /// of the SQL each engine ran). A migration that renders differently
    /// would make `sqlx` refuse to open those databases. Every migration is
    /// listed: once released, a migration is never edited, only followed.
    #[test]
    fn rendered_migrations_match_what_existing_databases_recorded() {
        let same = [
            (
                1,
                "efc2a3e7c2a23256af389bf06d68dd06cb0b76149ad46656c97b0d734d4e8e0cfb726b7decabf9771e0f5e00e9cc22e6",
            ),
            (
                3,
                "5d8ffbd47c88c171cb21e3628e01555df92dbda14e278efeb0a786cc23d35491bc3a759c0a18567ead93730a8591f491",
            ),
            (
                4,
                "10b9f6b53b320a9816ddeb09fadbde32952abaa3ede9a3e34ac30693fddd9d853c6edeb2cfa5592cfc050654e3350343",
            ),
            (
                5,
                "19d01383aed89934cb960b81302881151b2c2d864d919c5e6632c6816bf2684f4368bd5912179784e95ed475a46dc5a5",
            ),
            (
                6,
                "1bc158fece0de2a266ca29ade72a97c9587c13f1bd3c3ba372b37651e784ab820efc70555e1d9b3ad8ba5c523b2d7f15",
            ),
            (
                7,
                "22b72eff0fae6f98172141ab6fb9a3bfba456088da424c141185a85dd791c649d4bbdb7753c4333940e84be4677245ba",
            ),
            (
                8,
                "1e8247ac154e96151f91e94ede5e8981b7a8ba937081642f0602dde88ea45a99d5ff678ab08ef0691ca9c20917e68d9b",
            ),
            (
                9,
                "098430408b0fd9ffc1096ed8d712bc8f653f2d96217fa39383a66a798a10ff1ed149577966e9ca7dc0d34ed553b88a17",
            ),
            (
                10,
                "b83abb7a1ac4c28e23f8a3750dac5fd9a604011da7878af713be6697cf44f7dc1e6ab822e538d23a3ebd5fc4c18bf922",
            ),
            (
                12,
                "e5c457258a634be594ca49f240579321f61372acd8dc6d01f42f7c472b3fe3ef4d55a2e4516b53df431fa02c35adbb7a",
            ),
            (
                14,
                "814e818bafdc0b1186a0e497cb12ac95ee03dc1fd012a67da060d9db0d851c6d871e6dbfe88c7a6101e7c1bdcf609b9f",
            ),
            (
                15,
                "f860f5d1cb8326577c335881adb6d6a91752f59be8476c306a721a4cf37574de82a434f3ccbae7dac49d46b836af6fea",
            ),
            (
                16,
                "9ae20c25a4e53299463e5746c3207fd359e9dcd64fdce675c04080e59756c16c3ebb3bdac22a8b18157d881ed2f5757e",
            ),
            (
                17,
                "d889256aa67805b9457733c7d6e4a6488d602f98872e0015ba85b648f61eaefe947cde189c005b4319f6f74fa7d4d25a",
            ),
            (
                18,
                "79ceedddb0e86078516ebb222b8690d2ca0d278ba9c0db4dd837212dee757215ae6667ca08ff271293bb5f95189ef57f",
            ),
            (
                19,
                "4e50261107bea586cad532a5598aca66bafcea1274ead1b15a448bc05fbba1c2a5ce1df0bed219c19fc4cb99f0f7c9d4",
            ),
            (
                21,
                "2deaa27d448c0724c7863617ec40dc67c6142e9d0acc5b74a16ec97172e66ad6103d5091cd6e088b5306ec5f1d1ba1e4",
            ),
            (
                22,
                "70364462d84e07195f584c3a586824b60a06d9031c2c79258f815bce173edf3c8c2f3a116db526501e6d480c49291f64",
            ),
            (
                23,
                "d116473d9e30004a9235e48805dd885d3b0c2f34fab1ca4fe3a52b8e728e4ff75cf9e87b7e38e2ee399a1688e1fd2476",
            ),
            (
                24,
                "d426139f51601b21ff421993db5c1c13301032d547bc9fad531e168e930f033cc46be5d3074699c0b9002d77207f525f",
            ),
        ];
        // Migrations that render differently per engine (placeholders).
        let per_engine = [
            (
                2,
                Engine::Sqlite,
                "aee8ddbceb87f9a1d5925ce71f1e91b1bfacada993b9a5a03a7f0bebc15b278809155dcaf4122b4cd70c6a3b09151c19",
            ),
            (
                2,
                Engine::Postgres,
                "c63833cb9a1b8484d97c36bcd224a33c6f89a754e9e0c57aec6b0d7da4a60461b8333f5b2013f25443041f9f24cfccf2",
            ),
            (
                11,
                Engine::Sqlite,
                "04f724b994d16a5411332814e1edd449e063c940ed46c867e2bc668aea25f2843ef3795b220cbe1753c711481009980a",
            ),
            (
                11,
                Engine::Postgres,
                "f70c29d6614320aef0685af84d567b52b00b4f3651a63220ed5ac2b842f8fe4f9ca4ededab6ca373fb85768865614e24",
            ),
            (
                13,
                Engine::Sqlite,
                "042ffa1ce1deb7c0869031afd63199d5d295aa565db6f93578ea6884b291e9ed126b2b40d42997290416329ac26f9670",
            ),
            (
                13,
                Engine::Postgres,
                "6292991d1409376c65352f8f148df8e69418d8b0b9030d3333fb2c2fa3220580b0aa3d55ac2bc5c0ad38039ef754703e",
            ),
            (
                20,
                Engine::Sqlite,
                "1665f6e881da7312189ed8719d35c2a8755ae3f187f330db2e7c56c208e6260c44ab4c1b0dc0b1b010d287b08706a2fd",
            ),
            (
                20,
                Engine::Postgres,
                "80f61c20d4dc14bc6616138cbd17873bfe54d9ffd20c89f0aa1606d1c1b60dac9a524f61dbc8190975c91aab1a5a4a66",
            ),
        ];
        assert_eq!(
            same.len() + 4,
            STEPS.len(),
            "a new migration's checksum is frozen here when it is added"
        );
        for engine in [Engine::Sqlite, Engine::Postgres] {
            let migrator = engine.migrator();
            let sums: Vec<(i64, String)> = migrator.iter().map(|m| (m.version, hex(&m.checksum))).collect();
            for (version, sum) in same {
                assert!(
                    sums.contains(&(version, sum.to_owned())),
                    "{engine:?} migration {version} changed: {sums:?}"
                );
            }
            for (version, _, sum) in per_engine.iter().filter(|(_, e, _)| *e == engine) {
                assert!(
                    sums.contains(&(*version, (*sum).to_owned())),
                    "{engine:?} migration {version} changed: {sums:?}"
                );
            }
        }
    }

    #[test]
    fn every_placeholder_has_a_spelling_on_every_engine() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            for (version, _, sql) in STEPS {
                assert!(
                    !engine.render(sql).contains("{{"),
                    "{engine:?} migration {version}"
                );
            }
        }
    }
}
