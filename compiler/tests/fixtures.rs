//! The fixture corpus: every configuration in `fixtures/pass` and `fixtures/seeds` (the flows of
//! the documents Semaphore is specified by) compiles; every one in `fixtures/fail` fails with
//! exactly the diagnostics in its `.stderr` file.
//!
//! After a deliberate change to a diagnostic, regenerate the expectations with
//! `SEMAPHORE_BLESS=1 cargo test -p semaphore-compiler --test fixtures` and review the diff.

use std::path::{Path, PathBuf};

use semaphore_compiler::compile_file;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn configs(folder: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(fixtures().join(folder))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "hcl"))
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no fixtures in {folder}");
    found
}

/// Diagnostics name files relative to the fixtures folder, so expectations hold on any machine.
fn relative(rendered: &str) -> String {
    rendered.replace(&format!("{}/", fixtures().display()), "")
}

#[test]
fn passing_fixtures_and_the_seeds_flows_compile() {
    let bless = std::env::var_os("SEMAPHORE_BLESS").is_some();
    for config in configs("pass").into_iter().chain(configs("seeds")) {
        let compiled = match compile_file(&config) {
            Ok(compiled) => compiled,
            Err(diagnostics) => {
                panic!("{} does not compile:\n{}", config.display(), relative(&diagnostics.rendered))
            }
        };
        // A passing fixture with a `.stderr` pins its warnings.
        let expected_path = config.with_extension("stderr");
        let warnings = relative(&compiled.warnings);
        if bless && !warnings.is_empty() && expected_path.exists() {
            std::fs::write(&expected_path, &warnings).unwrap();
        } else if let Ok(expected) = std::fs::read_to_string(&expected_path) {
            assert_eq!(warnings, expected, "warnings of {}", config.display());
        }
    }
}

#[test]
fn failing_fixtures_fail_with_their_diagnostics() {
    let bless = std::env::var_os("SEMAPHORE_BLESS").is_some();
    let mut mismatches = Vec::new();
    for config in configs("fail") {
        let rendered = match compile_file(&config) {
            Ok(_) => {
                mismatches.push(format!("{} compiled, but it should fail", config.display()));
                continue;
            }
            Err(diagnostics) => relative(&diagnostics.rendered),
        };
        let expected_path = config.with_extension("stderr");
        if bless {
            std::fs::write(&expected_path, &rendered).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != rendered {
            mismatches.push(format!(
                "{}:\n--- expected ({})\n{expected}\n--- found\n{rendered}",
                config.display(),
                expected_path.display()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}

#[test]
fn the_cli_exits_1_on_errors_and_0_otherwise() {
    let semaphore = env!("CARGO_BIN_EXE_semaphore");
    let check =
        |config: &Path| std::process::Command::new(semaphore).arg("check").arg(config).output().unwrap();

    let failed = check(&fixtures().join("fail/multiple_errors.hcl"));
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("(3 errors)"), "{stderr}");

    // One mistake from each phase (a proto, a service, types, names, the graph): all reported.
    let failed = check(&fixtures().join("fail/five_mistakes.hcl"));
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("(5 errors)"), "{stderr}");

    let passed = check(&fixtures().join("pass/language.hcl"));
    assert_eq!(passed.status.code(), Some(0), "{}", String::from_utf8_lossy(&passed.stderr));
    let stderr = String::from_utf8_lossy(&passed.stderr);
    assert!(
        stderr.contains("warning: `prometheus` configures the standalone daemon"),
        "warnings are shown: {stderr}"
    );
}
