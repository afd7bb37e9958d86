//! `template.yaml` deploys exactly the route table: every API route has a function event with
//! the authorizer its access needs, and every function's binary exists.

use functions::http::{Access, ROUTES, Route};

fn template() -> String {
    std::fs::read_to_string(format!("{}/../template.yaml", env!("CARGO_MANIFEST_DIR")))
        .expect("template.yaml")
}

#[test]
fn every_route_is_deployed_with_the_right_authorizer() {
    let template = template();
    // Served only where the file store cannot sign URLs (the local folder) and the local issuer.
    let local_only = [
        Route::Health,
        Route::OpenApi,
        Route::Jwks,
        Route::ImportErrors,
        Route::DownloadExport,
    ];
    let mut deployed = 0;
    for spec in ROUTES.iter().filter(|s| !local_only.contains(&s.route)) {
        let auth = match spec.access {
            Access::Staff => "",
            Access::Public | Access::Identity => ", Auth: { Authorizer: NONE }",
            Access::Shopper | Access::StoreSignup => ", Auth: { Authorizer: CustomerJwt }",
        };
        let event = format!(
            "Properties: {{ ApiId: !Ref Api, Path: \"{}\", Method: {}{auth} }}",
            spec.path, spec.method
        );
        assert_eq!(
            template.matches(&event).count(),
            1,
            "{:?}: expected exactly one `{event}`",
            spec.route
        );
        deployed += 1;
    }
    let events = template.matches("Type: HttpApi").count();
    assert_eq!(
        events, deployed,
        "no route in the template beyond the table"
    );
}

#[test]
fn every_function_binary_exists() {
    let template = template();
    let binaries: Vec<&str> = template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Binary: "))
        .collect();
    assert!(binaries.len() > 40);
    for binary in binaries {
        let path = format!(
            "{}/../functions/src/bin/{binary}.rs",
            env!("CARGO_MANIFEST_DIR")
        );
        assert!(
            std::path::Path::new(&path).exists(),
            "{binary} has no {path}"
        );
    }
}

/// Every binary is declared with `test = false`: otherwise `cargo test` builds and links each
/// Lambda once more as a test target, which doubles the test build.
#[test]
fn every_binary_is_declared_without_a_test_target() {
    let manifest = std::fs::read_to_string(format!(
        "{}/../functions/Cargo.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("functions/Cargo.toml");
    let dir = format!("{}/../functions/src/bin", env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("bin folder") {
        let name = entry.expect("entry").file_name();
        let name = name.to_string_lossy();
        let Some(binary) = name.strip_suffix(".rs") else {
            continue;
        };
        let declared = format!("[[bin]]\nname = \"{binary}\"\ntest = false\n");
        assert!(
            manifest.contains(&declared),
            "{binary}: add `{declared}` to functions/Cargo.toml"
        );
        count += 1;
    }
    assert!(count > 70, "{count}");
}
