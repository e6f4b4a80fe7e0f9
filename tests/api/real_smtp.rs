//! E-mails through a real SMTP server written by others: aiosmtpd (PyPI)
//! with its Maildir handler, started by the test on a port of its own; the
//! assertions read the files it writes.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use smap_identity::adapters::{
    bus::topology::EMAIL_ERRORS_QUEUE,
    mail::{SmtpConfig, SmtpTls},
};

use crate::{
    helpers::{PASSWORD, TestApp, spawn_app_with_settings},
    servers::free_port,
};

/// An aiosmtpd Maildir sink; killed when dropped.
pub use smap_identity::test_support::MaildirSink as Sink;

fn require_sink(port: u16, dir: &Path) -> Option<Sink> {
    let sink = Sink::start(port, dir);
    if sink.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("aiosmtpd did not start: scripts/services.sh install puts it in place");
        }
        eprintln!("SKIPPED: aiosmtpd is not installed (scripts/services.sh install)");
    }
    sink
}

/// The messages the sink wrote, waiting until `enough` are there.
async fn mails(dir: &Path, enough: usize, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    loop {
        let found: Vec<String> = std::fs::read_dir(dir.join("new"))
            .map(|entries| {
                entries
                    .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        if found.len() >= enough || Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn app_with_smtp(port: u16) -> TestApp {
    spawn_app_with_settings(|settings| {
        settings.smtp = Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "SMAP <no-reply@smap.test>".into(),
            timeout: Duration::from_secs(10),
        });
    })
    .await
}

fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("smap-maildir-{}", uuid::Uuid::new_v4().simple()))
}

#[tokio::test]
async fn a_registration_is_one_real_email_with_the_otp_in_its_language() {
    let (port, dir) = (free_port(), scratch());
    let Some(_sink) = require_sink(port, &dir) else {
        return;
    };
    let app = app_with_smtp(port).await;

    app.register_in("sink@example.com", PASSWORD, "vi").await;
    let otp = app.otp_for("sink@example.com").await;
    let first = mails(&dir, 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = mails(&dir, 2, Duration::ZERO).await;

    assert_eq!(first.len(), 1, "the e-mail arrived");
    assert_eq!(
        all.len(),
        1,
        "exactly one, though the event was dual-published"
    );
    let mail = &all[0];
    assert!(mail.contains("X-RcptTo: sink@example.com"), "{mail}");
    assert!(mail.contains("From: SMAP <no-reply@smap.test>"), "{mail}");
    assert!(
        mail.contains("Message-ID: <evt_") || mail.contains("Message-Id: <evt_"),
        "{mail}"
    );
    assert!(mail.contains(&otp), "the OTP is in the e-mail: {mail}");
    assert!(
        mail.contains("multipart/alternative"),
        "HTML and text parts: {mail}"
    );
    // The subject is the Vietnamese one, MIME-encoded.
    assert!(mail.contains("Subject: =?utf-8?"), "{mail}");
}

#[tokio::test]
async fn with_the_sink_down_the_email_is_dead_lettered_after_its_retries_and_later_mail_flows() {
    let (port, dir) = (free_port(), scratch());
    let Some(sink) = require_sink(port, &dir) else {
        return;
    };
    let app = app_with_smtp(port).await;
    drop(sink);

    let started = Instant::now();
    app.register("lost@example.com", PASSWORD).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut dead = None;
    while dead.is_none() && Instant::now() < deadline {
        dead = app.broker.try_take(EMAIL_ERRORS_QUEUE).unwrap();
        if dead.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let took = started.elapsed();
    let dead = dead.expect("dead-lettered after the retries");
    let _sink = Sink::start(port, &dir).expect("the sink restarts");
    app.register("found@example.com", PASSWORD).await;
    // The dual-published copy waited on the lease while the first copy
    // failed; once that one released it, the copy retries and, with the
    // sink back, sends the lost e-mail (once).
    let expected = if cfg!(feature = "legacy-fanout") {
        2
    } else {
        1
    };
    let delivered = mails(&dir, expected, Duration::from_secs(15)).await;
    let metrics = app.metrics().await;

    assert!(
        took >= Duration::from_secs(7),
        "three retries, 1 s + 2 s + 4 s: {took:?}"
    );
    assert_eq!(dead.properties.headers["x-retry-count"], 3);
    assert!(
        !dead.properties.headers["x-error"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(delivered.len(), expected);
    let to = |who: &str| {
        delivered
            .iter()
            .filter(|m| m.contains(&format!("X-RcptTo: {who}")))
            .count()
    };
    assert_eq!(to("found@example.com"), 1);
    assert_eq!(to("lost@example.com"), expected - 1);
    assert!(
        metrics.contains("emails_failed_total{reason=\"smtp\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("emails_processed_total{outcome=\"sent\"}"));
}
