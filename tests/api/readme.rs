//! The README's progress walk-through, run as written (its `sh` block, with
//! the port of a freshly started `smap-identity`), and its answers checked.

use std::process::Command;

use crate::process::Service;

/// The first ```sh block after `heading` in README.md.
fn sh_block_after(heading: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let from = readme
        .find(heading)
        .unwrap_or_else(|| panic!("no `{heading}` in README"));
    let rest = &readme[from..];
    let start = rest.find("```sh\n").expect("an sh block") + "```sh\n".len();
    let end = rest[start..].find("```").expect("its end");
    rest[start..start + end].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_progress_walk_through_works_as_written() {
    let service = Service::start(&[]).await;
    let script = sh_block_after("## Try the progress API")
        .replace("localhost:8080", &service.base.replace("http://", ""));
    assert!(script.contains("curl"), "{script}");

    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash").args(["-c", &script]).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The answers the README's comments promise, in order.
    let expected = [
        r#""status":"INITIALIZING""#,
        r#""status":"PROCESSING","total":3,"done":2,"errors":1,"percent":66.67"#,
        r#""COMPLETED""#,
        r#""field":"total""#,
        r#""status":"healthy""#,
        "events_published_total{routing_key=\"job.completed\"} 1",
    ];
    let mut at = 0;
    for needle in expected {
        let found = stdout[at..].find(needle).unwrap_or_else(|| {
            panic!("`{needle}` not in the walk-through's output after byte {at}:\n{stdout}")
        });
        at += found + needle.len();
    }
    let (_, lines) = service.stop().await;
    assert!(
        lines.iter().any(|l| l.contains("job.completed")),
        "the log shows the job.completed event"
    );
}

/// Runs `script` with bash in `dir`; its stdout.
async fn bash(script: String, dir: std::path::PathBuf) -> String {
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-c", &script])
            .current_dir(dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_account_walk_through_works_with_the_code_from_the_log() {
    let service = Service::start(&[]).await;
    let script = sh_block_after("## Try an account")
        .replace("localhost:8080", &service.base.replace("http://", ""));
    // The README reads the code from the log between two steps; so does this test.
    let (register, rest) = script
        .split_once("# The log now shows the e-mail")
        .expect("the step that reads the log");
    let dir = std::env::temp_dir().join(format!("smap-readme-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();

    let registered = bash(register.to_owned(), dir.clone()).await;
    assert!(
        registered.contains(r#""status":"unverified""#),
        "{registered}"
    );
    let code = service.code_from_log().await;
    // The rest of the walk-through, with the real code for the README's 123456.
    let json = register
        .lines()
        .find(|l| l.starts_with("JSON="))
        .expect("the JSON header variable");
    let rest = format!("{json}\n{}", rest.replace("123456", &code));
    let answers = bash(rest, dir.clone()).await;

    let expected = [
        r#""status":"active""#,
        r#""token":""#,
        r#""status":"trialing""#,
        r#""code":"free""#,
    ];
    let mut at = 0;
    for needle in expected {
        let found = answers[at..]
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` not in the answers after byte {at}:\n{answers}"));
        at += found + needle.len();
    }
    let jar = std::fs::read_to_string(dir.join("jar")).unwrap();
    assert!(
        jar.contains("smap_auth_token"),
        "the login cookie is in the jar"
    );
    let (_, lines) = service.stop().await;
    assert!(
        !lines.join("\n").contains("ann@example.com"),
        "the address is masked in the log"
    );
}
