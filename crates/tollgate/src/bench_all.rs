//! `tollgate bench all`: after the quota, ingest and year suites have
//! printed their own tables, one table of every figure the performance goals
//! name (see BENCHMARKS.md) beside its target, and whether it is met.

use std::time::Duration;

use crate::bench::{QuotaFigures, mib};
use crate::bench_ingest::IngestFigures;
use crate::bench_year::YearFigures;

/// Events in the period at which the report and start-up goals are stated.
const GOAL_EVENTS: usize = 10_000_000;
const MIB: f64 = 1024.0;

/// One line of the table.
struct Goal {
    name: String,
    measured: String,
    target: &'static str,
    /// `None`: a figure without a target, printed for context.
    met: Option<bool>,
}

fn goal(name: impl Into<String>, measured: String, target: &'static str, met: Option<bool>) -> Goal {
    Goal {
        name: name.into(),
        measured,
        target,
        met,
    }
}

/// The goals of `backend` ("sqlite" or "postgres") against the figures.
fn goals(backend: &str, q: &QuotaFigures, i: &IngestFigures, y: &YearFigures) -> Vec<Goal> {
    let sqlite = backend == "sqlite";
    let ratio = |rate: f64| if q.healthz > 0.0 { rate / q.healthz } else { 0.0 };
    let mut out = vec![
        goal(
            "GET quota/usage / GET /healthz",
            format!("{:.3} ({:.0}/s)", ratio(q.usage.rate), q.usage.rate),
            ">= 0.5",
            Some(ratio(q.usage.rate) >= 0.5),
        ),
        if sqlite {
            goal(
                "POST quota/reserve / GET /healthz",
                format!("{:.3} ({:.0}/s)", ratio(q.reserve.rate), q.reserve.rate),
                ">= 0.2",
                Some(ratio(q.reserve.rate) >= 0.2),
            )
        } else {
            goal(
                "POST quota/reserve / GET /healthz",
                format!("{:.3} ({:.0}/s)", ratio(q.reserve.rate), q.reserve.rate),
                ">= 0.1",
                Some(ratio(q.reserve.rate) >= 0.1),
            )
        },
        goal(
            "POST quota/reserve p99",
            format!("{:.2} ms (p50 {:.2})", q.reserve.p99_ms, q.reserve.p50_ms),
            if sqlite { "< 5 ms" } else { "-" },
            sqlite.then_some(q.reserve.p99_ms < 5.0),
        ),
        if sqlite {
            goal(
                "ingestion, events/s in batches of 1000",
                format!("{:.0}", i.ingest_rate),
                ">= 200,000",
                Some(i.ingest_rate >= 200_000.0),
            )
        } else {
            goal(
                "ingestion, events/s in batches of 1000",
                format!("{:.0}", i.ingest_rate),
                ">= 100,000",
                Some(i.ingest_rate >= 100_000.0),
            )
        },
        goal(
            "ingestion / raw INSERT of the same rows",
            format!("{:.3}", i.ingest_rate / i.raw_rate),
            ">= 0.5",
            Some(i.ingest_rate / i.raw_rate >= 0.5),
        ),
    ];
    for (name, l) in [("usage_details", i.details), ("current_usage", i.current)] {
        for (q, ms, target, bound) in [("p50", l.p50, "< 10 ms", 10.0), ("p99", l.p99, "< 30 ms", 30.0)] {
            out.push(goal(
                format!("{name} {q}"),
                format!("{ms:.1} ms"),
                target,
                Some(ms < bound),
            ));
        }
    }
    if let Some((page, l)) = i.pages.iter().max_by(|a, b| a.1.p50.total_cmp(&b.1.p50)) {
        out.push(goal(
            "slowest console page p50",
            format!("{:.1} ms ({page})", l.p50),
            "< 50 ms",
            Some(l.p50 < 50.0),
        ));
    }
    let idle = q.rss_idle.max(i.restart_rss_idle);
    out.push(goal(
        "RSS idle (fresh, and on the events' database)",
        mib(idle),
        "< 32 MiB",
        idle.map(|k| (k as f64) < 32.0 * MIB),
    ));
    let peak = q.rss_peak.max(i.rss_peak);
    out.push(goal(
        "RSS peak under the benchmark",
        mib(peak),
        "< 128 MiB",
        peak.map(|k| (k as f64) < 128.0 * MIB),
    ));
    out.push(goal(
        "start to ready on the events' database",
        format!("{:.0} ms", i.restart_ready_ms),
        "< 300 ms",
        Some(i.restart_ready_ms < 300.0),
    ));
    out.push(goal(
        "start to ready on a fresh database",
        format!("{:.0} ms", q.ready_ms),
        "-",
        None,
    ));
    out.push(goal(
        "year: ingestion, last month / first",
        format!("{:.2}", y.last_rate / y.first_rate),
        "-",
        None,
    ));
    out.push(goal(
        "year: database at the end",
        format!("{:.0} MiB", y.size as f64 / (MIB * MIB)),
        "-",
        None,
    ));
    if let Some(purge) = y.purge {
        out.push(goal(
            "year: deletion batch p99",
            format!("{:.1} ms", purge.p99),
            "-",
            None,
        ));
    }
    out.push(goal(
        "year: usage_details p50 / p99 at the end",
        format!("{:.1} / {:.1} ms", y.details.p50, y.details.p99),
        "-",
        None,
    ));
    out.push(goal(
        "year: current_usage p50 / p99 at the end",
        format!("{:.1} / {:.1} ms", y.current.p50, y.current.p99),
        "-",
        None,
    ));
    out
}

/// Prints the goals table.
pub(crate) fn print(
    backend: &str,
    quota: &QuotaFigures,
    ingest: &IngestFigures,
    year: &YearFigures,
    elapsed: Duration,
) {
    let goals = goals(backend, quota, ingest, year);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "tollgate bench all: {backend}, {cores} cores, {} events for the reports, a year of {} tenants \
         x {} months ({} events); whole run {:.0} s",
        ingest.events,
        year.tenants,
        year.months,
        year.ingested,
        elapsed.as_secs_f64()
    );
    if ingest.events < GOAL_EVENTS {
        println!(
            "note: the report and start-up goals are stated at {GOAL_EVENTS} events; this run had {}",
            ingest.events
        );
    }
    let width = goals.iter().map(|g| g.measured.len()).max().unwrap_or(0).max(8);
    println!("{:<46}  {:<width$}  {:<11}  met", "goal", "measured", "target");
    for g in &goals {
        let met = match g.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!("{:<46}  {:<width$}  {:<11}  {met}", g.name, g.measured, g.target);
    }
    let (met, total) = goals.iter().fold((0, 0), |(met, total), g| match g.met {
        Some(true) => (met + 1, total + 1),
        Some(false) => (met, total + 1),
        None => (met, total),
    });
    println!("{met} of {total} goals met");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Latency;
    use crate::bench::Measured;

    fn figures(usage: f64, ingest: f64) -> (QuotaFigures, IngestFigures, YearFigures) {
        let m = |rate| Measured {
            rate,
            p50_ms: 1.0,
            p99_ms: 4.0,
        };
        let l = Latency {
            p50: 5.0,
            p99: 20.0,
            max: 25.0,
        };
        (
            QuotaFigures {
                healthz: 1000.0,
                usage: m(usage),
                reserve: m(150.0),
                ready_ms: 20.0,
                rss_idle: Some(20 * 1024),
                rss_peak: Some(100 * 1024),
            },
            IngestFigures {
                events: GOAL_EVENTS,
                raw_rate: 400_000.0,
                ingest_rate: ingest,
                details: l,
                current: l,
                pages: vec![("/console/".into(), l)],
                rss_peak: Some(130 * 1024),
                restart_ready_ms: 100.0,
                restart_rss_idle: Some(10 * 1024),
            },
            YearFigures {
                tenants: 1,
                months: 2,
                ingested: 10,
                first_rate: 1.0,
                last_rate: 1.0,
                size: 0,
                purge: None,
                current: l,
                details: l,
            },
        )
    }

    fn verdict<'g>(goals: &'g [Goal], name: &str) -> &'g Goal {
        goals.iter().find(|g| g.name == name).expect(name)
    }

    #[test]
    fn each_figure_is_judged_against_its_backends_target() {
        let (q, i, y) = figures(500.0, 150_000.0);
        let sqlite = goals("sqlite", &q, &i, &y);
        let pg = goals("postgres", &q, &i, &y);
        assert_eq!(verdict(&sqlite, "GET quota/usage / GET /healthz").met, Some(true));
        // 0.15 of /healthz: short of SQLite's 0.2, past PostgreSQL's 0.1.
        assert_eq!(
            verdict(&sqlite, "POST quota/reserve / GET /healthz").met,
            Some(false)
        );
        assert_eq!(verdict(&pg, "POST quota/reserve / GET /healthz").met, Some(true));
        // p99 is a goal on SQLite only.
        assert_eq!(verdict(&sqlite, "POST quota/reserve p99").met, Some(true));
        assert_eq!(verdict(&pg, "POST quota/reserve p99").met, None);
        let ingestion = "ingestion, events/s in batches of 1000";
        assert_eq!(verdict(&sqlite, ingestion).met, Some(false));
        assert_eq!(verdict(&pg, ingestion).met, Some(true));
        // The larger peak of the two servers counts: 130 MiB.
        assert_eq!(verdict(&sqlite, "RSS peak under the benchmark").met, Some(false));
        // The larger idle figure counts: 20 MiB.
        assert_eq!(
            verdict(&sqlite, "RSS idle (fresh, and on the events' database)").measured,
            "20.0 MiB"
        );
        assert_eq!(verdict(&sqlite, "usage_details p99").met, Some(true));
        assert_eq!(
            verdict(&sqlite, "GET quota/usage / GET /healthz").measured,
            "0.500 (500/s)"
        );
    }

    #[test]
    fn latency_percentiles_are_nearest_rank() {
        let l = Latency::of((1..=100).rev().map(f64::from).collect());
        assert_eq!((l.p50, l.p99, l.max), (50.0, 99.0, 100.0));
        let one = Latency::of(vec![7.0]);
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        let ten = Latency::of((1..=10).map(f64::from).collect());
        assert_eq!((ten.p50, ten.p99), (5.0, 10.0));
    }
}
