//! The local server's data folder holds password hashes, the signing key, customer files and
//! (only when asked for) reset tokens: it is private to the owner, and reset tokens stay out of
//! files by default.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use integration_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, temp_dir, test_config};
use serde_json::{Value, json};

/// Starts the local server the way `cargo run` does (it opens the store itself) and signs in.
async fn start(data_dir: &Path, dev_event_log: bool) -> (String, String) {
    let mut config = test_config(data_dir.to_path_buf());
    config.dev_event_log = dev_event_log;
    let (ready, addr) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let result = functions::server::run(config, move |addr| {
            let _ = ready.send(addr);
        })
        .await;
        if let Err(e) = result {
            eprintln!("server stopped: {e}");
        }
    });
    let base = format!("http://{}", addr.await.expect("server started"));
    let client = shared::ports::http_client();
    let signed_in: Value = client
        .post(format!("{base}/auth/user/emailpass"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("sign-in sent")
        .json()
        .await
        .expect("json");
    let token = signed_in["token"].as_str().expect("token").to_owned();
    (base, token)
}

async fn request_reset(base: &str) {
    let status = shared::ports::http_client()
        .post(format!("{base}/auth/user/emailpass/reset-password"))
        .json(&json!({"identifier": ADMIN_EMAIL}))
        .send()
        .await
        .expect("sent")
        .status();
    assert_eq!(status.as_u16(), 201);
}

/// Every folder `0700` and every file `0600` below `dir`; returns how many files it saw.
fn assert_private(dir: &Path) -> usize {
    let mode = std::fs::metadata(dir)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    let mut files = 0;
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files += assert_private(&path);
        } else {
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
            files += 1;
        }
    }
    files
}

#[tokio::test]
async fn every_file_under_the_data_folder_is_private() {
    let data_dir = temp_dir("private-data");
    // A folder and an event log left open by an earlier version are closed too.
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data_dir.join("events.ndjson"), "").unwrap();
    std::fs::set_permissions(
        data_dir.join("events.ndjson"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    let (base, token) = start(&data_dir, true).await;
    request_reset(&base).await;
    // An import writes the uploaded file (customers' personal data) and its error report.
    let response = shared::ports::http_client()
        .post(format!("{base}/admin/customers/imports"))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body("email,first_name\nbad-email,Jo\nok@example.com,Ok\n")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 202);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    assert!(data_dir.join("store.redb").exists());
    let events = std::fs::read_to_string(data_dir.join("events.ndjson")).unwrap();
    assert!(events.contains("auth.password_reset"), "{events}");
    let files = assert_private(&data_dir);
    assert!(
        files >= 4,
        "store, key, event log and the upload: saw {files}"
    );
}

#[tokio::test]
async fn reset_tokens_stay_out_of_files_unless_asked_for() {
    let data_dir = temp_dir("no-event-log");
    let (base, _) = start(&data_dir, false).await;
    request_reset(&base).await;
    assert!(
        !data_dir.join("events.ndjson").exists(),
        "the reset token was written to a file"
    );
}
