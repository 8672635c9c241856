//! `im-server admin hash-password` and the `[admin]` settings (contract §13). The protocol
//! itself is tested with socket.io-client in tests/js/admin.test.mjs, the page with the real
//! UI in tests/browser/admin-ui.test.mjs.

use std::io::Write;
use std::process::{Command, Stdio};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordVerifier};
use im_server::config::{ConfigSources, Settings};

fn hash_password(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_im-server"))
        .args(["admin", "hash-password"])
        .args(args)
        .env_clear()
        .current_dir(tempfile::tempdir().unwrap().path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run im-server");
    {
        let mut pipe = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            pipe.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn verifies(hash: &str, password: &str) -> bool {
    let parsed = PasswordHash::new(hash).expect("a PHC string");
    assert_eq!(parsed.algorithm.as_str(), "argon2id");
    PasswordVerifier::<str>::verify_password(&Argon2::default(), password.as_bytes(), hash).is_ok()
}

#[test]
fn hash_password_prints_an_argon2id_hash_of_the_password() {
    let (ok, out, err) = hash_password(&["--password", "ops pass ü"], None);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "only the hash on stdout: {out:?}");
    assert!(verifies(lines[0], "ops pass ü"));
    assert!(!verifies(lines[0], "ops pass"));
    assert!(
        !err.contains("ops pass"),
        "the password is never echoed: {err}"
    );

    let (_, again, _) = hash_password(&["--password", "ops pass ü"], None);
    assert_ne!(again, out, "a fresh salt each time");
}

#[test]
fn hash_password_reads_standard_input_without_its_line_ending() {
    let (ok, out, err) = hash_password(&[], Some("from-stdin-1\n"));
    assert!(ok, "{err}");
    assert!(verifies(out.trim_end(), "from-stdin-1"));
    assert!(!verifies(out.trim_end(), "from-stdin-1\n"));

    let (ok, _, err) = hash_password(&[], Some(""));
    assert!(!ok, "an empty password is refused");
    assert!(err.contains("empty"), "{err}");
}

fn validate(env: &[(&str, &str)]) -> Result<Settings, String> {
    let dir = tempfile::tempdir().unwrap();
    let loaded = Settings::load(&ConfigSources {
        config_path: None,
        dir: dir.path().to_path_buf(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
    .map_err(|e| e.to_string())?;
    loaded.settings.validate().map_err(|e| e.to_string())?;
    Ok(loaded.settings)
}

#[test]
fn admin_settings_are_checked_at_startup_naming_the_key() {
    let off = validate(&[]).unwrap();
    assert!(!off.admin.enabled(), "off without [admin]");
    assert!(off.admin.readonly, "read-only by default");

    let err = validate(&[("IM_ADMIN__USERNAME", "ops")]).unwrap_err();
    assert!(err.starts_with("admin.password_hash:"), "{err}");
    assert!(err.contains("hash-password"), "says how to make one: {err}");

    let err = validate(&[
        ("IM_ADMIN__USERNAME", "ops"),
        ("IM_ADMIN__PASSWORD_HASH", "plain-text-password"),
    ])
    .unwrap_err();
    assert!(err.starts_with("admin.password_hash:"), "{err}");
    assert!(!err.contains("plain-text-password"), "never echoed: {err}");

    // bcrypt, as Node @socket.io/admin-ui setups have them
    let hash = bcrypt::hash("ops-pass", 4).unwrap();
    let on = validate(&[
        ("IM_ADMIN__USERNAME", "ops"),
        ("IM_ADMIN__PASSWORD_HASH", &hash),
        ("IM_ADMIN__READONLY", "false"),
    ])
    .unwrap();
    assert!(on.admin.enabled());
    assert!(!on.admin.readonly);
    let shown = serde_json::to_string(&on.admin).unwrap();
    assert!(
        !shown.contains(&hash),
        "`im-server config` shows a fingerprint: {shown}"
    );
}
