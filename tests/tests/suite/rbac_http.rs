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

/// A role with these policies, made by the admin; returns its id.
async fn role(s: &TestServer, name: &str, policies: &[&str]) -> String {
    let (status, body) = s
        .post("/admin/roles", json!({"name": name, "policies": policies}))
        .await;
    assert_eq!(status, 200, "{body}");
    body["role"]["id"].as_str().unwrap().to_owned()
}

fn secret_key_header(token: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{token}:"))
    )
}

/// Nobody hands out more than they hold: not by editing their own (or anyone's) roles, not by
/// making a role, not by minting a secret key. Each refusal is a 403 that changes nothing.
async fn nobody_hands_out_more_than_they_hold(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let (_, me) = s.get("/admin/users/me").await;
    let admin_id = me["user"]["id"].as_str().unwrap().to_owned();
    let user_manager = role(&s, "User manager", &["user:*", "role:read"]).await;
    let role_editor = role(&s, "Role editor", &["role:*", "customer:read"]).await;
    let key_maker = role(&s, "Key maker", &["api_key:*", "customer:read"]).await;
    let denied = |reply: &integration_tests::Reply, what: &str| {
        assert_eq!(reply.status, 403, "{what}: {}", reply.body);
        assert_eq!(reply.body["type"], json!("not_allowed"), "{what}");
    };

    // user:update makes nobody an admin, itself included, and brings no admin down.
    let token = s.staff_token("users@staff.test", &[&user_manager]).await;
    let own_id = s.call_as(&token, "GET", "/admin/users/me", None).await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, users_before) = s.get("/admin/users").await;
    for (path, body) in [
        (
            format!("/admin/users/{own_id}"),
            json!({"roles": ["admin"]}),
        ),
        (
            format!("/admin/users/{own_id}"),
            json!({"roles": [user_manager, role_editor]}),
        ),
        (
            format!("/admin/users/{admin_id}"),
            json!({"roles": ["viewer"]}),
        ),
        (
            "/admin/users".to_owned(),
            json!({"email": "boss@staff.test", "password": "supersecret", "roles": ["admin"]}),
        ),
    ] {
        let reply = s.call_as(&token, "POST", &path, Some(body.clone())).await;
        denied(&reply, &format!("{path} {body}"));
    }
    let (_, users_after) = s.get("/admin/users").await;
    assert_eq!(users_after, users_before, "no user changed or created");
    // What it holds, it may give.
    let peer = s
        .call_as(
            &token,
            "POST",
            "/admin/users",
            Some(json!({"email": "peer@staff.test", "password": "supersecret", "roles": [user_manager]})),
        )
        .await;
    assert_eq!(peer.status, 200, "{}", peer.body);

    // role:update widens no role, its own least of all; role:create makes no `*:*` role.
    let token = s.staff_token("roles@staff.test", &[&role_editor]).await;
    let (_, roles_before) = s.get("/admin/roles").await;
    for (path, body) in [
        (
            "/admin/roles".to_owned(),
            json!({"name": "God", "policies": ["*:*"]}),
        ),
        (
            "/admin/roles".to_owned(),
            json!({"name": "Readers", "policies": ["*:read"]}),
        ),
        (
            format!("/admin/roles/{role_editor}"),
            json!({"policies": ["*:*"]}),
        ),
        (
            format!("/admin/roles/{role_editor}"),
            json!({"description": "mine"}),
        ),
        (
            format!("/admin/roles/{user_manager}"),
            json!({"policies": ["role:read"]}),
        ),
        (
            format!("/admin/roles/{key_maker}"),
            json!({"policies": ["customer:read", "api_key:*", "customer:*"]}),
        ),
    ] {
        let reply = s.call_as(&token, "POST", &path, Some(body.clone())).await;
        denied(&reply, &format!("{path} {body}"));
    }
    let (_, roles_after) = s.get("/admin/roles").await;
    assert_eq!(roles_after, roles_before, "no role changed or created");
    // A typo is still a 400; what it holds, it may grant.
    let typo = s
        .call_as(
            &token,
            "POST",
            "/admin/roles",
            Some(json!({"name": "T", "policies": ["customer:write"]})),
        )
        .await;
    assert_eq!(typo.status, 400, "{}", typo.body);
    let fine = s
        .call_as(
            &token,
            "POST",
            "/admin/roles",
            Some(json!({"name": "Readers", "policies": ["customer:read", "role:read"]})),
        )
        .await;
    assert_eq!(fine.status, 200, "{}", fine.body);

    // A secret key acts with its maker's policies, shown on the key, not as admin.
    let token = s.staff_token("keys@staff.test", &[&key_maker]).await;
    let made = s
        .call_as(
            &token,
            "POST",
            "/admin/api-keys",
            Some(json!({"title": "ERP", "type": "secret"})),
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    assert_eq!(
        made.body["api_key"]["policies"],
        json!(["api_key:*", "customer:read"])
    );
    let key = secret_key_header(made.body["api_key"]["token"].as_str().unwrap());
    let as_key = |method: &'static str, path: &'static str, body: Option<Value>| {
        let key = key.clone();
        let s = &s;
        async move {
            s.request(method, path, body, &[("authorization", &key)])
                .await
        }
    };
    assert_eq!(as_key("GET", "/admin/customers", None).await.status, 200);
    denied(
        &as_key(
            "POST",
            "/admin/customers",
            Some(json!({"email": "k@example.com"})),
        )
        .await,
        "a key-maker's key creates customers",
    );
    denied(
        &as_key(
            "POST",
            "/admin/users",
            Some(json!({"email": "k@staff.test", "password": "supersecret", "roles": ["admin"]})),
        )
        .await,
        "a key-maker's key creates an admin",
    );
    let (_, customers) = s.get("/admin/customers").await;
    assert_eq!(customers["count"], json!(0));
    // The admin's own key still does what the admin does.
    let (_, admins) = s
        .post("/admin/api-keys", json!({"title": "Ops", "type": "secret"}))
        .await;
    assert_eq!(admins["api_key"]["policies"], json!(["*:*"]));
    let admin_key = secret_key_header(admins["api_key"]["token"].as_str().unwrap());
    let created = s
        .request(
            "POST",
            "/admin/customers",
            Some(json!({"email": "ops@example.com"})),
            &[("authorization", &admin_key)],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    // The admin may change anything, its own role included.
    let (status, _) = s
        .post(
            &format!("/admin/users/{own_id}"),
            json!({"roles": ["viewer"]}),
        )
        .await;
    assert_eq!(status, 200);
}

/// A token signed by the API's own key (as a compromised or external issuer would sign) still
/// cannot make its bearer a secret key or an admin: claims name only customers and staff users,
/// and roles come from the store.
async fn token_claims_make_no_key_and_no_admin(backend: Backend) {
    use shared::auth::tokens::{SigningKey, TokenIssuer};
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let (_, key) = s
        .post("/admin/api-keys", json!({"title": "ERP", "type": "secret"}))
        .await;
    let key_id = key["api_key"]["id"].as_str().unwrap().to_owned();
    let viewer = s.staff_token("viewer@staff.test", &["viewer"]).await;
    let signer = TokenIssuer::new(
        SigningKey::load_or_create(&s.data_dir.join("jwt-signing-key.json")).unwrap(),
        "customer-module-test",
        3600,
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let forge = |base: &str, changes: Value| {
        let mut claims = integration_tests::claims(base).as_object().unwrap().clone();
        for name in ["exp", "iat", "iss", "jti"] {
            claims.remove(name);
        }
        for (k, v) in changes.as_object().unwrap() {
            claims.insert(k.clone(), v.clone());
        }
        signer.sign(claims, now, 3600).unwrap()
    };
    let create = |token: String| {
        let s = &s;
        async move {
            s.call_as(
                &token,
                "POST",
                "/admin/customers",
                Some(json!({"email": "forged@example.com"})),
            )
            .await
        }
    };
    for (name, token) in [
        (
            "api-key naming a real key",
            forge(
                &s.token,
                json!({"actor_type": "api-key", "actor_id": key_id}),
            ),
        ),
        (
            "api-key from a viewer",
            forge(&viewer, json!({"actor_type": "api-key"})),
        ),
        (
            "admin actor type",
            forge(&viewer, json!({"actor_type": "admin"})),
        ),
    ] {
        let reply = create(token.clone()).await;
        assert_eq!(reply.status, 401, "{name}: {}", reply.body);
        let session = s.call_as(&token, "POST", "/auth/session", None).await;
        assert_eq!(session.status, 401, "{name} session: {}", session.body);
    }
    let claimed = forge(
        &viewer,
        json!({"roles": ["admin"], "app_metadata": {"roles": ["admin"]}}),
    );
    let reply = create(claimed).await;
    assert_eq!(
        reply.status, 403,
        "roles claimed in a token: {}",
        reply.body
    );
    let (_, customers) = s.get("/admin/customers").await;
    assert_eq!(customers["count"], json!(0), "nothing written");
}

both_backends!(
    custom_roles_and_staff_users,
    nobody_hands_out_more_than_they_hold,
    token_claims_make_no_key_and_no_admin
);

mod matrix {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn embedded() {
        super::authorisation_matrix(integration_tests::Backend::Embedded).await;
    }
}
