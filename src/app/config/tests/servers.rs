//! The server sections mapped onto the adapters' configs: AMQP nodes and
//! queue type, Redis (one server or Sentinel) and SMTP.

use super::*;

#[test]
fn amqp_url_takes_the_nodes_of_a_cluster_and_the_queue_type() {
    let s = settings(&[
        (
            "AMQP_URL",
            "amqp://guest:guest@127.0.0.1:5701/%2f, amqp://guest:guest@127.0.0.1:5702/%2f,",
        ),
        ("AMQP_QUEUE_TYPE", "quorum"),
    ])
    .unwrap();
    let urls = split_urls(s.amqp_url.as_ref().unwrap().expose_secret());
    assert_eq!(urls.len(), 2);
    assert_eq!(urls[1], "amqp://guest:guest@127.0.0.1:5702/%2f");
    assert_eq!(s.amqp_queue_type, QueueType::Quorum);
    assert_eq!(settings(&[]).unwrap().amqp_queue_type, QueueType::Classic);
    // A bad item is named by position, its password never repeated.
    let err = settings(&[(
        "AMQP_URL",
        "amqp://u:0f3a9c7e5b1d@a/%2f,amqps://u:0f3a9c7e5b1d@b:99999/%2f",
    )])
    .unwrap_err();
    assert_eq!(err.var, "AMQP_URL");
    assert!(err.to_string().contains("item 2"), "{err}");
    assert!(!err.to_string().contains("0f3a9c7e5b1d"), "{err}");
}

#[test]
fn redis_and_smtp_defaults_follow_their_host() {
    let s = settings(&[
        ("REDIS_HOST", "redis"),
        ("SMTP_HOST", "mail"),
        ("SMTP_TLS", "none"),
    ])
    .unwrap();
    let redis = s.redis.unwrap();
    assert_eq!((redis.port, redis.state_db), (6379, 1));
    let smtp = s.smtp.unwrap();
    assert_eq!((smtp.port, smtp.tls), (25, SmtpTls::None));
    assert_eq!(smtp.timeout, std::time::Duration::from_secs(10));
}

#[test]
fn redis_sentinel_reads_the_sentinels_the_master_and_its_own_password() {
    let s = settings(&[
        SENTINELS,
        ("REDIS_SENTINEL_MASTER", "mymaster"),
        ("REDIS_SENTINEL_PASSWORD", "5b1d9f3a7c5e"),
        ("REDIS_PASSWORD", "9a3c7e1b5d"),
        ("REDIS_STATE_DB", "3"),
        ("REDIS_PORT", "6380"),
    ])
    .unwrap();
    let redis = s.redis.unwrap();
    let sentinel = redis.sentinel.clone().unwrap();
    assert_eq!(
        sentinel.sentinels,
        [
            ("10.0.0.1".to_owned(), 26379),
            ("sentinel-b".to_owned(), 26380),
            ("::1".to_owned(), 26381)
        ]
    );
    assert_eq!(sentinel.master, "mymaster");
    assert_eq!(sentinel.password.unwrap().expose_secret(), "5b1d9f3a7c5e");
    // The data nodes keep REDIS_PASSWORD and the database.
    assert_eq!(
        redis.password.as_ref().unwrap().expose_secret(),
        "9a3c7e1b5d"
    );
    assert_eq!(redis.state_db, 3);
    assert_eq!(
        redis.address(),
        "sentinel master mymaster via 10.0.0.1:26379,sentinel-b:26380,::1:26381"
    );
    let plain = settings(&[SENTINELS, ("REDIS_SENTINEL_MASTER", "m")]).unwrap();
    assert!(plain.redis.unwrap().sentinel.unwrap().password.is_none());
    let single = settings(&[("REDIS_HOST", "redis")]).unwrap().redis.unwrap();
    assert!(single.sentinel.is_none());
    assert_eq!(single.address(), "redis:6379");
}

#[test]
fn redis_sentinel_errors_name_the_variable() {
    let master = ("REDIS_SENTINEL_MASTER", "smap");
    let cases: [(&[(&str, &str)], &str); 9] = [
        (&[SENTINELS], "REDIS_SENTINEL_MASTER"),
        (
            &[SENTINELS, master, ("REDIS_HOST", "redis")],
            "REDIS_SENTINELS",
        ),
        (
            &[("REDIS_SENTINELS", "10.0.0.1"), master],
            "REDIS_SENTINELS",
        ),
        (
            &[("REDIS_SENTINELS", "10.0.0.1:0"), master],
            "REDIS_SENTINELS",
        ),
        (&[("REDIS_SENTINELS", "h:65536"), master], "REDIS_SENTINELS"),
        (&[("REDIS_SENTINELS", ":26379"), master], "REDIS_SENTINELS"),
        (&[("REDIS_SENTINELS", " , "), master], "REDIS_SENTINELS"),
        (&[master], "REDIS_SENTINEL_MASTER"),
        (
            &[("REDIS_HOST", "r"), ("REDIS_SENTINEL_PASSWORD", "x")],
            "REDIS_SENTINEL_PASSWORD",
        ),
    ];
    for (vars, var) in cases {
        let err = settings(vars).unwrap_err();
        assert_eq!(err.var, var, "{vars:?}: {err}");
        assert!(err.to_string().contains(var), "{err}");
    }
    let both = settings(&[SENTINELS, master, ("REDIS_HOST", "redis")]).unwrap_err();
    assert!(both.to_string().contains("REDIS_HOST"), "{both}");
    let bad = settings(&[SENTINELS, master, ("REDIS_STATE_DB", "16")]).unwrap_err();
    assert_eq!(bad.var, "REDIS_STATE_DB");
}

#[test]
fn the_smtp_timeout_is_bounded() {
    let mail = |t: &str| settings(&[("SMTP_HOST", "mail"), ("SMTP_TIMEOUT_SECS", t)]);
    let three = mail("3").unwrap().smtp.unwrap().timeout;
    assert_eq!(three, std::time::Duration::from_secs(3));
    for bad in ["0", "301", "ten"] {
        assert_eq!(mail(bad).unwrap_err().var, "SMTP_TIMEOUT_SECS", "{bad}");
    }
}
