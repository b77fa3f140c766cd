//! The tallied figures ([`super::tally`]) in the Prometheus text format, line for line as the
//! Prometheus exporter writes its own (a unit test renders the same requests both ways).

use std::fmt::Write;

use super::{
    DURATION_BUCKETS, OUTCOME_COUNT, OUTCOMES, REQUEST_DURATION_SECONDS, REQUESTS_TOTAL,
    VERIFY_CACHE_TOTAL,
    tally::{BUCKETS, Totals, VERIFY_CACHE_KINDS},
};

/// `# HELP` of [`REQUESTS_TOTAL`].
pub(super) const REQUESTS_HELP: &str = "Requests to the MCP endpoint, by outcome.";
/// `# HELP` of [`REQUEST_DURATION_SECONDS`].
pub(super) const DURATION_HELP: &str = "Time to answer a request to the MCP endpoint, by outcome.";
/// `# HELP` of [`VERIFY_CACHE_TOTAL`].
pub(super) const VERIFY_CACHE_HELP: &str =
    "Verified-token cache look-ups, by layer (local, shared) and result (hit, miss).";

/// The labels of a `mcp_auth_verify_cache_total` series by kind (local miss, local hit, shared
/// miss, shared hit).
pub(super) fn verify_cache_labels(kind: usize) -> (&'static str, &'static str) {
    (
        if kind < 2 { "local" } else { "shared" },
        if kind % 2 == 1 { "hit" } else { "miss" },
    )
}

/// Appends the families of `totals` to `out`. A family, and a series in it, appears once it
/// has counted something, as a series appears in the exporter once first recorded.
pub(super) fn write(totals: &Totals, out: &mut String) {
    let requests = (0..OUTCOME_COUNT).filter(|&i| totals.requests(i) > 0);
    family(
        out,
        REQUESTS_TOTAL,
        REQUESTS_HELP,
        "counter",
        requests,
        |out, i| {
            let _ = match OUTCOMES[i] {
                (outcome, Some(reason)) => writeln!(
                    out,
                    "{REQUESTS_TOTAL}{{outcome=\"{outcome}\",reason=\"{reason}\"}} {}",
                    totals.requests(i)
                ),
                (outcome, None) => writeln!(
                    out,
                    "{REQUESTS_TOTAL}{{outcome=\"{outcome}\"}} {}",
                    totals.requests(i)
                ),
            };
        },
    );

    let histograms =
        (0..OUTCOME_COUNT).filter(|&i| (0..BUCKETS).any(|bucket| totals.count(i, bucket) > 0));
    family(
        out,
        REQUEST_DURATION_SECONDS,
        DURATION_HELP,
        "histogram",
        histograms,
        |out, i| {
            let outcome = OUTCOMES[i].0;
            let name = REQUEST_DURATION_SECONDS;
            let mut count = 0u64;
            let mut nanos = 0u128;
            for bucket in 0..BUCKETS {
                count += totals.count(i, bucket);
                nanos += u128::from(totals.nanos(i, bucket));
                let _ = match DURATION_BUCKETS.get(bucket) {
                    Some(le) => writeln!(
                        out,
                        "{name}_bucket{{outcome=\"{outcome}\",le=\"{le}\"}} {count}"
                    ),
                    None => writeln!(
                        out,
                        "{name}_bucket{{outcome=\"{outcome}\",le=\"+Inf\"}} {count}"
                    ),
                };
            }
            let seconds = nanos as f64 / 1e9;
            let _ = writeln!(out, "{name}_sum{{outcome=\"{outcome}\"}} {seconds}");
            let _ = writeln!(out, "{name}_count{{outcome=\"{outcome}\"}} {count}");
        },
    );

    let lookups = (0..VERIFY_CACHE_KINDS).filter(|&kind| totals.verify_cache(kind) > 0);
    family(
        out,
        VERIFY_CACHE_TOTAL,
        VERIFY_CACHE_HELP,
        "counter",
        lookups,
        |out, kind| {
            let (layer, result) = verify_cache_labels(kind);
            let _ = writeln!(
                out,
                "{VERIFY_CACHE_TOTAL}{{layer=\"{layer}\",result=\"{result}\"}} {}",
                totals.verify_cache(kind)
            );
        },
    );
}

/// A family: its `# HELP` and `# TYPE` lines, each series, and the blank line the exporter
/// ends a family with. Nothing when it has no series.
fn family(
    out: &mut String,
    name: &str,
    help: &str,
    kind: &str,
    series: impl Iterator<Item = usize>,
    mut write_series: impl FnMut(&mut String, usize),
) {
    let mut series = series.peekable();
    if series.peek().is_none() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for index in series {
        write_series(out, index);
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, sync::PoisonError, time::Duration};

    use metrics::{Unit, describe_counter, describe_histogram};

    use super::*;
    use crate::metrics::{
        durations_histogram, requests_counter, tally, tally::tests::TURN, verify_cache_counter,
    };

    /// A family's lines, as a set (the exporter writes series in hash order), with each sum
    /// rounded: the exporter adds the durations up in floating point one by one, the tally in
    /// whole nanoseconds.
    fn lines(text: &str, family: &str) -> BTreeSet<String> {
        let mut lines = BTreeSet::new();
        let mut inside = false;
        for line in text.lines() {
            if line.starts_with("# HELP ") {
                inside = line.starts_with(&format!("# HELP {family} "));
            }
            if inside && !line.is_empty() {
                lines.insert(match line.split_once("_sum{") {
                    Some(_) => {
                        let (series, value) = line.rsplit_once(' ').unwrap();
                        let value: f64 = value.parse().unwrap();
                        format!("{series} {value:.9}")
                    }
                    None => line.to_owned(),
                });
            }
        }
        lines
    }

    /// The same requests, counted by the tally and recorded into a Prometheus recorder built as
    /// `install_recorder` builds it: the same families, series, buckets, counts and sums.
    #[test]
    fn the_tallies_render_as_the_exporter_renders_the_same_requests() {
        let _turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(REQUEST_DURATION_SECONDS.into()),
                DURATION_BUCKETS,
            )
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        // Every outcome (both `unauthorized` reasons share a histogram), durations on and
        // around the bounds, and every cache look-up kind.
        let mut requests = Vec::new();
        for (i, bound) in tally::BOUNDS_NANOS.iter().enumerate() {
            let outcome = i % OUTCOME_COUNT;
            requests.extend([
                (outcome, bound - 1),
                (outcome, *bound),
                (outcome, bound + 1),
            ]);
        }
        requests.extend([(0, 0), (1, 123_456_789_012), (2, 42)]);
        let before = Totals::now();
        metrics::with_local_recorder(&recorder, || {
            describe_counter!(REQUESTS_TOTAL, REQUESTS_HELP);
            describe_histogram!(REQUEST_DURATION_SECONDS, Unit::Seconds, DURATION_HELP);
            describe_counter!(VERIFY_CACHE_TOTAL, VERIFY_CACHE_HELP);
            for &(outcome, nanos) in &requests {
                let histogram = if outcome == 2 { 1 } else { outcome };
                tally::request(outcome, histogram, nanos);
                requests_counter(outcome).increment(1);
                durations_histogram(histogram).record(Duration::from_nanos(nanos).as_secs_f64());
            }
            for kind in 0..VERIFY_CACHE_KINDS {
                for _ in 0..=kind {
                    tally::verify_cache(kind);
                    verify_cache_counter(kind).increment(1);
                }
            }
        });
        let mut ours = String::new();
        write(&Totals::now().since(&before), &mut ours);
        let theirs = handle.render();
        for family in [REQUESTS_TOTAL, REQUEST_DURATION_SECONDS, VERIFY_CACHE_TOTAL] {
            let (a, b) = (lines(&ours, family), lines(&theirs, family));
            assert!(a.len() > 3, "{family} missing:\n{ours}");
            assert_eq!(a, b, "{family}:\nours:\n{ours}\nthe exporter's:\n{theirs}");
        }
        // Families end with a blank line, as the exporter's do.
        assert!(ours.ends_with("\n\n") && ours.matches("\n\n").count() == 3);
    }

    #[test]
    fn nothing_counted_writes_nothing() {
        let _turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Totals::now();
        let mut out = String::new();
        write(&now.since(&now), &mut out);
        assert_eq!(out, "");
    }
}
