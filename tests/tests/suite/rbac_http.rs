//! Staff roles on `/admin`, custom roles and staff users; and the authorisation matrix: every
//! route of the table against every kind of caller, checked against an allowed set written
//! here independently of the policy table.

use functions::http::policy::{Policy, policy};
use functions::http::{Access, ROUTES, Route, RouteSpec};
use integration_tests::{Backend, Shop, TestServer, both_backends};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Customer,
    OtherCompanyBuyer,
    CompanyAdmin,
    Admin,
    CustomerManager,
    Viewer,
    Importer,
}

const CALLERS: [Caller; 8] = [
    Caller::Anonymous,
    Caller::Customer,
    Caller::OtherCompanyBuyer,
    Caller::CompanyAdmin,
    Caller::Admin,
    Caller::CustomerManager,
    Caller::Viewer,
    Caller::Importer,
];

fn under(path: &str, prefixes: &[&str]) -> bool {
    prefixes
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// Whether `caller` may use the route, as the product means it (not read from `policy.rs`).
fn expected(caller: Caller, spec: &RouteSpec) -> bool {
    let path = spec.path;
    let get = spec.method == "GET";
    let customer = matches!(
        caller,
        Caller::Customer | Caller::OtherCompanyBuyer | Caller::CompanyAdmin
    );
    match spec.access {
        Access::Public => true,
        Access::Identity => caller != Caller::Anonymous,
        Access::StoreSignup => customer,
        Access::Shopper if path.starts_with("/store/customers/me/company/members") => {
            caller == Caller::CompanyAdmin
        }
        Access::Shopper => customer,
        Access::Staff => {
            let transfer = under(
                path,
                &["/admin/customers/imports", "/admin/customers/exports"],
            );
            let own_profile = path == "/admin/users/me";
            match caller {
                Caller::Admin => true,
                Caller::Viewer => get || spec.route == Route::AdminPermissionCheck,
                Caller::CustomerManager => {
                    own_profile
                        || under(
                            path,
                            &[
                                "/admin/customers",
                                "/admin/customer-groups",
                                "/admin/companies",
                                "/admin/permission-grants",
                                "/admin/permissions",
                            ],
                        )
                }
                Caller::Importer => {
                    own_profile
                        || transfer
                        || (get
                            && under(
                                path,
                                &[
                                    "/admin/customers",
                                    "/admin/customer-groups",
                                    "/admin/companies",
                                ],
                            )
                            && !path.ends_with("/permissions"))
                }
                _ => false,
            }
        }
    }
}

/// Denied: a 403, or the bare 401 of missing or unusable credentials (a failed sign-in is a
/// typed 401 and means the route was reachable).
fn denied(status: u16, body: &Value) -> bool {
    status == 403 || (status == 401 && body.get("type").is_none())
}

fn concrete(path: &str) -> String {
    path.replace("{actor}", "customer")
        .replace("{provider}", "emailpass")
        .replace("{address_id}", "addr_matrix")
        .replace("{id}", "matrix_missing")
}

async fn authorisation_matrix(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let shop = Shop::new(&s).await;
    let (customer, _) = shop.sign_up("solo@example.com", "Solo").await;
    let (boss, boss_id) = shop.sign_up("boss@acme.example", "Boss").await;
    let (gus, gus_id) = shop.sign_up("gus@globex.example", "Gus").await;
    for (name, member, role) in [("Acme", &boss_id, "admin"), ("Globex", &gus_id, "buyer")] {
        let (_, c) = s.post("/admin/companies", json!({"name": name})).await;
        let id = c["company"]["id"].as_str().unwrap().to_owned();
        s.post(
            &format!("/admin/companies/{id}/customers"),
            json!({"add": [{"customer_id": member, "role": role}]}),
        )
        .await;
    }
    let mut tokens = Vec::new();
    for caller in CALLERS {
        let token = match caller {
            Caller::Anonymous => String::new(),
            Caller::Customer => customer.clone(),
            Caller::OtherCompanyBuyer => gus.clone(),
            Caller::CompanyAdmin => boss.clone(),
            Caller::Admin => s.token.clone(),
            Caller::CustomerManager => s.staff_token("cm@staff.test", &["customer_manager"]).await,
            Caller::Viewer => s.staff_token("viewer@staff.test", &["viewer"]).await,
            Caller::Importer => s.staff_token("importer@staff.test", &["importer"]).await,
        };
        tokens.push((caller, token));
    }
    let mut wrong = Vec::new();
    let mut checked = 0;
    for spec in ROUTES {
        // Signing out or in would change the callers' state; their access is covered above.
        if matches!(spec.route, Route::DeleteSession | Route::UpdateProvider) {
            continue;
        }
        let path = concrete(spec.path);
        let body = (spec.method != "GET" && spec.method != "DELETE").then(|| json!({}));
        for (caller, token) in &tokens {
            let bearer = format!("Bearer {token}");
            let mut headers = vec![("x-publishable-api-key", shop.key.as_str())];
            if !token.is_empty() {
                headers.push(("authorization", bearer.as_str()));
            }
            let reply = s
                .request(spec.method.as_str(), &path, body.clone(), &headers)
                .await;
            let allowed = !denied(reply.status, &reply.body);
            if allowed != expected(*caller, spec) {
                wrong.push(format!(
                    "{caller:?} {} {path}: got {} {}",
                    spec.method, reply.status, reply.body
                ));
            }
            checked += 1;
        }
    }
    assert!(checked > 500, "{checked}");
    assert!(
        wrong.is_empty(),
        "{} mismatches:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn every_staff_route_declares_a_permission() {
    for spec in ROUTES {
        let declared = policy(spec.route);
        match spec.access {
            Access::Staff if spec.route == Route::GetMe => {
                assert_eq!(declared, Policy::AnyStaff)
            }
            Access::Staff => assert!(
                matches!(declared, Policy::Requires(_)),
                "{:?} has no permission",
                spec.route
            ),
            _ => assert_eq!(declared, Policy::NotStaff, "{:?}", spec.route),
        }
    }
}

async fn custom_roles_and_staff_users(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let (_, roles) = s.get("/admin/roles").await;
    let ids: Vec<&str> = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["admin", "customer_manager", "viewer", "importer"]);

    // The first staff user is an admin.
    let (_, me) = s.get("/admin/users/me").await;
    assert_eq!(me["user"]["roles"], json!(["admin"]));
    let admin_id = me["user"]["id"].as_str().unwrap().to_owned();

    // Bad roles are refused with the reason.
    for body in [
        json!({"name": "x", "policies": ["customer:write"]}),
        json!({"name": "x", "policies": ["product:read"]}),
        json!({"name": "x", "policies": []}),
        json!({"name": "Viewer", "policies": ["customer:read"]}),
    ] {
        let (status, reply) = s.post("/admin/roles", body.clone()).await;
        assert_eq!(status, 400, "{body} → {reply}");
    }
    let (status, role) = s
        .post(
            "/admin/roles",
            json!({"name": "Group editor", "description": "Groups only", "policies": ["customer_group:*", "customer:read"]}),
        )
        .await;
    assert_eq!(status, 200, "{role}");
    let role_id = role["role"]["id"].as_str().unwrap().to_owned();
    assert!(role_id.starts_with("role_"));
    // Renaming onto another role's name (or a built-in one) is refused.
    let (status, _) = s
        .post(
            "/admin/roles",
            json!({"name": "Auditor", "policies": ["*:read"]}),
        )
        .await;
    assert_eq!(status, 200);
    for name in ["auditor", "Viewer"] {
        let (status, clash) = s
            .post(&format!("/admin/roles/{role_id}"), json!({"name": name}))
            .await;
        assert_eq!(status, 400, "{name}: {clash}");
    }
    let (_, kept) = s.get(&format!("/admin/roles/{role_id}")).await;
    assert_eq!(kept["role"]["name"], json!("Group editor"));

    // A user with the custom role: groups yes, customers read-only, nothing else.
    let token = s.staff_token("groups@staff.test", &[&role_id]).await;
    let (status, group) = {
        let r = s
            .call_as(
                &token,
                "POST",
                "/admin/customer-groups",
                Some(json!({"name": "VIP"})),
            )
            .await;
        (r.status, r.body)
    };
    assert_eq!(status, 200, "{group}");
    let r = s.call_as(&token, "GET", "/admin/customers", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call_as(
            &token,
            "POST",
            "/admin/customers",
            Some(json!({"email": "no@example.com"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["type"], json!("not_allowed"));
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("customer:create"),
        "{}",
        r.body
    );
    let (_, customers) = s.get("/admin/customers?email=no@example.com").await;
    assert_eq!(
        customers["count"],
        json!(0),
        "a denied request changes nothing"
    );

    // Changing the role takes effect on the next request.
    let (status, _) = s
        .post(
            &format!("/admin/roles/{role_id}"),
            json!({"policies": ["customer_group:read"]}),
        )
        .await;
    assert_eq!(status, 200);
    let r = s
        .call_as(
            &token,
            "POST",
            "/admin/customer-groups",
            Some(json!({"name": "VIP2"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // A held role cannot be deleted; built-ins cannot be changed.
    let (status, held) = s.delete(&format!("/admin/roles/{role_id}")).await;
    assert_eq!(status, 400, "{held}");
    assert_eq!(held["type"], json!("not_allowed"));
    let (status, _) = s.delete("/admin/roles/viewer").await;
    assert_eq!(status, 400);
    let (status, _) = s
        .post("/admin/roles/admin", json!({"policies": ["customer:read"]}))
        .await;
    assert_eq!(status, 400);

    // Users: list, change roles (unknown roles refused), then the role can go.
    let (_, users) = s.get("/admin/users").await;
    assert_eq!(users["count"], json!(2));
    let user_id = users["users"][1]["id"].as_str().unwrap().to_owned();
    let (status, _) = s
        .post(
            &format!("/admin/users/{user_id}"),
            json!({"roles": ["role_nope"]}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, changed) = s
        .post(
            &format!("/admin/users/{user_id}"),
            json!({"roles": ["viewer", "importer", "viewer"], "first_name": "Gro"}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["user"]["roles"], json!(["viewer", "importer"]));
    let (status, _) = s.delete(&format!("/admin/roles/{role_id}")).await;
    assert_eq!(status, 200);
    let (status, _) = s.get(&format!("/admin/roles/{role_id}")).await;
    assert_eq!(status, 404);

    // The last admin keeps the role.
    let (status, last) = s
        .post(
            &format!("/admin/users/{admin_id}"),
            json!({"roles": ["viewer"]}),
        )
        .await;
    assert_eq!(status, 400, "{last}");
    let (_, me) = s.get("/admin/users/me").await;
    assert_eq!(me["user"]["roles"], json!(["admin"]));

    // The local provider needs a password; a viewer cannot create users.
    let (status, _) = s
        .post(
            "/admin/users",
            json!({"email": "nopass@staff.test", "roles": ["viewer"]}),
        )
        .await;
    assert_eq!(status, 400);
    let r = s
        .call_as(
            &token,
            "POST",
            "/admin/users",
            Some(
                json!({"email": "x@staff.test", "password": "long enough pw", "roles": ["admin"]}),
            ),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
}

both_backends!(custom_roles_and_staff_users);

mod matrix {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn embedded() {
        super::authorisation_matrix(integration_tests::Backend::Embedded).await;
    }
}
