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

/// Each function logs to a group of its own with a bounded retention (Lambda's own groups keep
/// logs for ever, personal data with them).
#[test]
fn every_function_keeps_its_logs_for_a_bounded_time() {
    let template = template();
    let lines: Vec<&str> = template.lines().collect();
    let functions: Vec<&str> = lines
        .windows(2)
        .filter(|w| w[1].trim() == "Type: AWS::Serverless::Function")
        .map(|w| w[0].trim().trim_end_matches(':'))
        .collect();
    assert!(functions.len() > 70, "{}", functions.len());
    for function in functions {
        let group = format!(
            "Properties: {{ LogGroupName: !Sub \"/aws/lambda/${{{function}}}\", RetentionInDays: !Ref LogRetentionDays }}"
        );
        assert_eq!(
            template.matches(&group).count(),
            1,
            "{function}: expected one `{group}`"
        );
    }
}

/// The routes that check a password or mint tokens get their own, smaller API Gateway
/// throttle: derived from the route table, so a new one cannot be forgotten.
#[test]
fn password_and_token_routes_are_throttled() {
    let template = template();
    let mut throttled = 0;
    for spec in ROUTES
        .iter()
        .filter(|s| s.path.starts_with("/auth/") && s.method == axum::http::Method::POST)
    {
        let setting = format!(
            "\"POST {}\": {{ ThrottlingRateLimit: !Ref AuthRateLimit, ThrottlingBurstLimit: !Ref AuthBurstLimit }}",
            spec.path
        );
        assert!(
            template.contains(&setting),
            "{:?}: add `{setting}`",
            spec.route
        );
        throttled += 1;
    }
    assert!(throttled >= 7, "{throttled}");
}

/// The bucket refuses plain HTTP, and CORS is open only to configured origins (no localhost
/// default that a production stack would inherit).
#[test]
fn the_bucket_is_tls_only_and_cors_origins_come_from_a_parameter() {
    let template = template();
    assert!(template.contains("Condition: { Bool: { \"aws:SecureTransport\": \"false\" } }"));
    assert!(
        template.contains(
            "AllowOrigins: !If [HasAllowedOrigins, !Ref AllowedOrigins, !Ref AWS::NoValue]"
        )
    );
    assert!(template.contains("AllowedOrigins: !Ref AllowedOrigins"));
    assert!(!template.contains("AllowOrigins: !Ref CallbackUrls"));
    assert!(!template.contains("AllowedOrigins: !Ref CallbackUrls"));
    let origins = template
        .split("  AllowedOrigins:\n")
        .nth(1)
        .and_then(|rest| {
            rest.split("\n  ")
                .find(|l| l.trim_start().starts_with("Default:"))
        })
        .unwrap_or_default();
    assert!(origins.contains("\"\""), "no default origin: {origins}");
}

/// `email_verified` is what proves an identity owns its email: a shopper cannot move its
/// account onto another address without that address's code, cannot write the flag itself
/// unless Google's mapping needs it, and then no unproven native user can exist.
#[test]
fn shoppers_cannot_mark_their_own_email_verified() {
    let template = template();
    assert!(template.contains("AttributesRequireVerificationBeforeUpdate: [email]"));
    assert!(
        template.contains("        - [email, given_name, family_name, name, phone_number]"),
        "without Google, the storefront client writes no email_verified"
    );
    assert!(template.contains("NoAutoConfirmWithGoogle:"));
    assert!(template.contains("- Assert: !Equals [!Ref AutoConfirmSignUps, \"false\"]"));
}

/// Both pools end earlier tokens when a password is reset through Cognito itself.
#[test]
fn both_pools_run_post_confirmation_on_resets() {
    let template = template();
    assert!(template.contains("PostConfirmation: !GetAtt CustomerPostConfirmationFunction.Arn"));
    assert!(template.contains("PostConfirmation: !GetAtt StaffPostConfirmationFunction.Arn"));
    assert!(template.contains("SourceArn: !GetAtt StaffUserPool.Arn"));
}
