//! The operations files hold: `/metrics` passes `promtool check metrics`,
//! `docs/ops/alerts.yml` passes `promtool check rules` and its unit tests,
//! every alert links to a runbook section that exists, every metric the
//! dashboard and the alerts query is one the service exports (a fresh
//! process included), and made-up methods and paths cannot add series.

use std::{
    collections::BTreeSet,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};
use smap_identity::adapters::redis::{RedisClients, RedisHealth};
use smap_identity::ports::HealthIndicator;

use crate::{
    helpers::{Switchable, spawn_app_configured},
    process::Service,
    servers::redis,
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// promtool from `PROMTOOL` (set by scripts/test.sh), or the place
/// `scripts/services.sh install` unpacks it to.
fn promtool() -> Option<PathBuf> {
    let path = std::env::var_os("PROMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/smap-identity-tools/usr/bin/promtool"));
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("promtool not found at {path:?}: scripts/services.sh install unpacks it");
    }
    eprintln!("SKIPPED: promtool not found; run scripts/services.sh install");
    None
}

fn run_promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let Some(promtool) = promtool() else {
        return (true, String::new());
    };
    let mut child = Command::new(promtool)
        .args(args)
        .current_dir(repo("docs/ops"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// `/metrics` after the service did a bit of everything: a registration
/// (publish, e-mail), a failed publish, a project to its finish line, the
/// health checks, and (with Redis) the Redis memory gauges.
async fn exercised_metrics() -> String {
    let down = Arc::new(AtomicBool::new(false));
    let switch = down.clone();
    // Direct delivery: the failed publish shows in the request's answer and
    // in `event_publish_failures_total` at once.
    let app = spawn_app_configured(
        |settings| settings.event_delivery = smap_identity::app::config::EventDelivery::Direct,
        move |adapters| {
            adapters.publisher = Arc::new(Switchable {
                inner: adapters.publisher.clone(),
                down: switch,
            });
        },
    )
    .await;
    assert_eq!(
        app.register("metrics@example.com", "correct horse battery")
            .await
            .status()
            .as_u16(),
        201
    );
    down.store(true, Ordering::SeqCst);
    assert_eq!(
        app.register("metrics-down@example.com", "correct horse battery")
            .await
            .status()
            .as_u16(),
        503
    );
    down.store(false, Ordering::SeqCst);
    assert_eq!(app.init_project("metrics-1").await.status().as_u16(), 201);
    app.set_total("metrics-1", json!({"total": 1, "status": "PROCESSING"}))
        .await;
    let done = app
        .mark_item("metrics-1", json!({"is_error": false, "item_id": "only"}))
        .await;
    assert_eq!(done.status().as_u16(), 200);
    let client = reqwest::Client::new();
    client
        .get(format!("{}/health", app.address))
        .send()
        .await
        .unwrap();
    if let Some(redis) = redis() {
        let clients = RedisClients::connect(&redis).await.unwrap();
        assert!(
            RedisHealth::new(clients.state.clone(), redis.state_db)
                .check()
                .await
                .healthy
        );
    }
    // The e-mail consumer runs in the background.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.unwrap()
}

/// The metric families `/metrics` declares (`# TYPE name kind`).
fn families(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Metric names in a PromQL expression: identifiers right before a label
/// selector `{` or a range `[` (how every query in docs/ops is written).
fn metric_names(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut names = Vec::new();
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        let ident = b.is_ascii_alphanumeric() || b == b'_' || b == b':';
        match (ident, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                let rest = expr[i..].trim_start();
                let inside_braces = expr[..s].matches('{').count() > expr[..s].matches('}').count();
                if (rest.starts_with('{') || rest.starts_with('[')) && !inside_braces {
                    names.push(expr[s..i].to_owned());
                }
                start = None;
            }
            _ => {}
        }
    }
    names
}

/// A histogram's `_bucket`/`_sum`/`_count` series belong to its family.
fn family_of(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_output_passes_promtool_check_metrics() {
    let metrics = exercised_metrics().await;
    for family in [
        "http_requests_total",
        "http_request_duration_seconds",
        "events_published_total",
        "event_publish_failures_total",
        "event_publish_duration_seconds",
        "emails_processed_total",
        "emails_failed_total",
        "email_dead_letters_total",
        "email_consumer_errors_total",
        "projects_completed_total",
        "dependency_up",
    ] {
        assert!(
            families(&metrics).contains(family),
            "no {family}:\n{metrics}"
        );
    }
    assert!(metrics.contains("# HELP events_published_total "));
    let (ok, report) = run_promtool(&["check", "metrics"], Some(&metrics));
    assert!(ok, "promtool check metrics:\n{report}\n{metrics}");
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let (ok, report) = run_promtool(&["check", "rules", "alerts.yml"], None);
    assert!(ok, "{report}");
    let (ok, report) = run_promtool(&["test", "rules", "alerts.test.yml"], None);
    assert!(ok, "{report}");
}

/// The alert rules as (name, expr, labels, annotations).
fn alerts() -> Vec<(String, String, Value, Value)> {
    let text = std::fs::read_to_string(repo("docs/ops/alerts.yml")).unwrap();
    // Parse YAML through serde_json's data model: the rules file is plain.
    let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
    doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .map(|r| {
            (
                r["alert"].as_str().unwrap().to_owned(),
                r["expr"].as_str().unwrap().to_owned(),
                r["labels"].clone(),
                r["annotations"].clone(),
            )
        })
        .collect()
}

/// GitHub's heading anchors: lower case, spaces to `-`, punctuation dropped.
fn anchors(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

#[test]
fn every_alert_has_a_severity_a_summary_and_a_runbook_section_that_exists() {
    let alerts = alerts();
    let names: BTreeSet<&str> = alerts.iter().map(|a| a.0.as_str()).collect();
    for needed in [
        "SmapIdentityDown",
        "RedisMemoryHigh",
        "EventPublishLatencyHigh",
        "EventPublishFailures",
        "EmailDeadLetterQueueGrowing",
        "EmailConsumerFailures",
    ] {
        assert!(names.contains(needed), "no {needed} alert");
    }
    for (name, _, labels, annotations) in &alerts {
        let severity = labels["severity"].as_str().unwrap_or_default();
        assert!(
            ["critical", "warning"].contains(&severity),
            "{name}: {severity}"
        );
        assert!(
            !annotations["summary"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{name}"
        );
        let runbook = annotations["runbook_url"].as_str().unwrap_or_default();
        let (file, anchor) = runbook.split_once('#').unwrap_or_else(|| panic!("{name}"));
        let text = std::fs::read_to_string(repo(file))
            .unwrap_or_else(|e| panic!("{name}: runbook {file}: {e}"));
        assert!(
            anchors(&text).contains(anchor),
            "{name}: no section #{anchor} in {file}"
        );
    }
}

/// Every metric name the dashboard's panels and the alert rules query.
fn queried_metrics() -> BTreeSet<String> {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("docs/ops/grafana-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().unwrap();
    let mut queried = BTreeSet::new();
    for panel in panels {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "no metric found in `{expr}`");
            queried.extend(names);
        }
    }
    for (name, expr, ..) in alerts() {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{name}: no metric found in `{expr}`");
        // `up` is Prometheus' own series about the scrape.
        queried.extend(names.into_iter().filter(|n| n != "up"));
    }
    queried
}

/// The queried metrics whose family is not in `exported`; the Redis
/// gauges are left out without a Redis to sample.
fn not_exported(queried: &BTreeSet<String>, exported: &BTreeSet<String>) -> Vec<String> {
    queried
        .iter()
        .filter(|name| {
            let family = family_of(name);
            let skipped = family.starts_with("redis_") && redis().is_none();
            !skipped && !exported.contains(family)
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_the_alerts_query_is_exported() {
    let exported = families(&exercised_metrics().await);
    let queried = queried_metrics();
    // What the issue asks the dashboard to show is there.
    for needed in [
        "events_published_total",
        "event_publish_duration_seconds_bucket",
        "event_publish_failures_total",
        "emails_processed_total",
        "emails_failed_total",
        "http_requests_total",
        "http_request_duration_seconds_bucket",
    ] {
        assert!(
            queried.contains(needed),
            "the dashboard does not query {needed}"
        );
    }
    let missing = not_exported(&queried, &exported);
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\n{exported:?}"
    );
}

/// `/metrics` of the real binary, the first request it ever answers.
async fn first_scrape(service: &Service) -> String {
    let response = reqwest::get(format!("{}/metrics", service.base))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.unwrap()
}

/// The variables that point a process at the test Redis, if there is one.
fn redis_env() -> Vec<(&'static str, String)> {
    redis()
        .map(|r| vec![("REDIS_HOST", r.host), ("REDIS_PORT", r.port.to_string())])
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_process_exports_every_metric_the_dashboard_and_the_alerts_query() {
    let redis_env = redis_env();
    let env: Vec<(&str, &str)> = redis_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let service = Service::listening(&env).await;
    let first = first_scrape(&service).await;
    let queried = queried_metrics();
    // `dependency_up` and the Redis gauges are sampled health checks: the
    // first sample runs at start-up, and may finish just after the first
    // scrape; give it 2 s. Every other family is there at once.
    let sampled = |name: &str| name.starts_with("dependency_up") || name.starts_with("redis_");
    let missing: Vec<String> = not_exported(&queried, &families(&first))
        .into_iter()
        .filter(|name| !sampled(name))
        .collect();
    assert!(
        missing.is_empty(),
        "missing from the first scrape: {missing:?}\n{first}"
    );
    let started = std::time::Instant::now();
    let mut later = first;
    while !not_exported(&queried, &families(&later)).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "missing 2 s after start-up: {:?}\n{later}",
            not_exported(&queried, &families(&later))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        later = first_scrape(&service).await;
    }
    eprintln!(
        "fresh process: {} queried families, all exported; health samples after {:?}",
        queried
            .iter()
            .map(|n| family_of(n))
            .collect::<BTreeSet<_>>()
            .len(),
        started.elapsed()
    );
    let (ok, report) = run_promtool(&["check", "metrics"], Some(&later));
    assert!(ok, "promtool check metrics:\n{report}\n{later}");
}

/// The distinct values of `label` on the series of `family`.
fn label_values(metrics: &str, family: &str, label: &str) -> BTreeSet<String> {
    let needle = format!("{label}=\"");
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .filter_map(|l| {
            let at = l.find(&needle)? + needle.len();
            let end = l[at..].find('"')? + at;
            Some(l[at..end].to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_and_paths_share_one_label_value() {
    // A process of its own: its label values are only this test's.
    let service = Service::start(&[]).await;
    let client = reqwest::Client::new();
    for i in 1..=200 {
        let method = reqwest::Method::from_bytes(format!("FOO{i}").as_bytes()).unwrap();
        let response = client
            .request(method, format!("{}/plans", service.base))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{}", response.status());
        let response = client
            .get(format!("{}/made-up/path-{i}", service.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404);
    }
    let metrics = first_scrape(&service).await;
    let methods = label_values(&metrics, "http_requests_total", "method");
    let routes = label_values(&metrics, "http_requests_total", "route");
    let series = metrics
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .count();
    eprintln!(
        "after 200 made-up methods and 200 unknown paths: {} method values {methods:?}, {} route values {routes:?}, {series} http_requests_total series",
        methods.len(),
        routes.len()
    );
    // GET (the probe, the paths), the made-up methods as one value.
    assert_eq!(
        methods,
        BTreeSet::from(["GET".to_owned(), "_OTHER".to_owned()])
    );
    // /live (the start-up probe), the /metrics series from start-up, the
    // 200 paths as one `unmatched`, and /plans: a route's template labels
    // any method on its path (the made-up ones answer 405 there).
    assert_eq!(
        routes,
        BTreeSet::from(["/live", "/metrics", "/plans", "unmatched"].map(str::to_owned))
    );
    assert!(series <= 5, "{series} series:\n{metrics}");
}

#[test]
fn metric_names_are_read_from_promql() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{route=~"/a.*"}[5m]))) / x[1m]"#
        ),
        ["http_request_duration_seconds_bucket", "x"]
    );
    assert_eq!(metric_names("up{job=\"smap-identity\"} == 0"), ["up"]);
}
