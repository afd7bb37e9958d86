//! `/admin/customers` over HTTP against the local server, on both backends: Medusa's
//! acceptance checks (medusa-compat.md §8) and the bad-input rules.

use integration_tests::{Backend, TestServer, both_backends};
use serde_json::{Value, json};

async fn server(backend: Backend) -> TestServer {
    TestServer::start(backend).await.expect("backend available")
}

fn ids(list: &Value) -> Vec<String> {
    list["customers"]
        .as_array()
        .expect("customers array")
        .iter()
        .map(|c| c["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Check 1: four created, listed in creation order with a count.
async fn check_1_create_and_list_in_creation_order(backend: Backend) {
    let s = server(backend).await;
    let mut created = Vec::new();
    for i in 1..=4 {
        let c = s
            .create_customer(json!({"email": format!("test{i}@email.com")}))
            .await;
        assert_eq!(c["email"], json!(format!("test{i}@email.com")));
        created.push(c["id"].as_str().unwrap().to_owned());
    }
    let (status, list) = s.get("/admin/customers").await;
    assert_eq!(status, 200);
    assert_eq!(list["count"], json!(4));
    assert_eq!(
        (list["offset"].clone(), list["limit"].clone()),
        (json!(0), json!(50))
    );
    assert_eq!(ids(&list), created);
    let (_, desc) = s.get("/admin/customers?order=-created_at").await;
    let mut reversed = created.clone();
    reversed.reverse();
    assert_eq!(ids(&desc), reversed);
    let (_, page) = s.get("/admin/customers?limit=2&offset=1").await;
    assert_eq!(ids(&page), created[1..3].to_vec());
    assert_eq!(
        (
            page["count"].clone(),
            page["limit"].clone(),
            page["offset"].clone()
        ),
        (json!(4), json!(2), json!(1))
    );
}

/// Check 2: the create response echoes fields, ids and created_by are set, shapes are Medusa's.
async fn check_2_create_echoes_fields(backend: Backend) {
    let s = server(backend).await;
    let c = s
        .create_customer(json!({"first_name": "John", "last_name": "Doe", "email": "john@doe.com", "metadata": {"foo": "bar"}}))
        .await;
    assert_eq!(
        (
            c["first_name"].clone(),
            c["last_name"].clone(),
            c["email"].clone()
        ),
        (json!("John"), json!("Doe"), json!("john@doe.com"))
    );
    assert_eq!(c["metadata"], json!({"foo": "bar"}));
    let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "company_name",
            "first_name",
            "last_name",
            "email",
            "phone",
            "metadata",
            "has_account",
            "created_by",
            "created_at",
            "updated_at",
            "deleted_at"
        ]
    );
    let bare = s
        .create_customer(json!({"first_name": "No", "last_name": "Email"}))
        .await;
    let id = bare["id"].as_str().unwrap();
    assert!(id.starts_with("cus_") && id.len() == 30, "{id}");
    assert!(
        bare["created_by"]
            .as_str()
            .is_some_and(|u| u.starts_with("user_"))
    );
    assert_eq!(
        (
            bare["email"].clone(),
            bare["phone"].clone(),
            bare["has_account"].clone(),
            bare["deleted_at"].clone()
        ),
        (Value::Null, Value::Null, json!(false), Value::Null)
    );
    let created_at = bare["created_at"].as_str().unwrap();
    assert_eq!(created_at.len(), 24, "ISO with milliseconds: {created_at}");
    assert!(created_at.ends_with('Z'));
}

/// Checks 4 and 5: `q` is a case-insensitive substring search; `last_name` is exact.
async fn check_4_5_search_and_exact_filters(backend: Backend) {
    let s = server(backend).await;
    s.create_customer(
        json!({"email": "test1@email.com", "first_name": "Jane", "last_name": "Doe"}),
    )
    .await;
    s.create_customer(
        json!({"email": "test2@email.com", "first_name": "John", "last_name": "Doe"}),
    )
    .await;
    s.create_customer(json!({"email": "test3@email.com", "first_name": "Ann", "last_name": "Smith", "phone": "+4412"})).await;
    let (_, found) = s.get("/admin/customers?q=est2@").await;
    assert_eq!(found["count"], json!(1));
    assert_eq!(found["customers"][0]["email"], json!("test2@email.com"));
    let (_, found) = s.get("/admin/customers?q=do").await;
    assert_eq!(found["count"], json!(2), "Doe twice: {found}");
}

async fn check_4_5_search_counts(backend: Backend) {
    let s = server(backend).await;
    s.create_customer(json!({"email": "test1@email.com", "last_name": "Doe"}))
        .await;
    s.create_customer(json!({"email": "test2@email.com", "last_name": "Doe"}))
        .await;
    s.create_customer(json!({"email": "test3@email.com", "last_name": "Smith", "phone": "+4412"}))
        .await;
    for (q, expected) in [
        ("est2@", 1),
        ("DO", 2),
        ("EMAIL.COM", 3),
        ("4412", 1),
        ("zzz", 0),
    ] {
        let (status, found) = s.get(&format!("/admin/customers?q={}", urlencode(q))).await;
        assert_eq!(status, 200);
        assert_eq!(found["count"], json!(expected), "q={q}: {found}");
        assert_eq!(found["customers"].as_array().unwrap().len(), expected);
    }
    let (_, exact) = s.get("/admin/customers?last_name=Doe").await;
    assert_eq!(exact["count"], json!(2));
    let (_, exact) = s.get("/admin/customers?last_name=doe").await;
    assert_eq!(exact["count"], json!(0), "exact means exact");
    let (_, by_email) = s.get("/admin/customers?email=TEST3@email.com").await;
    assert_eq!(
        by_email["count"],
        json!(1),
        "emails match case-insensitively"
    );
    let (_, several) = s
        .get("/admin/customers?email[]=test1@email.com&email[]=test2@email.com&order=-email")
        .await;
    assert_eq!(several["count"], json!(2));
    assert_eq!(several["customers"][0]["email"], json!("test2@email.com"));
    let (_, none) = s.get("/admin/customers?has_account=true").await;
    assert_eq!(none["count"], json!(0));
    let (_, ordered) = s
        .get("/admin/customers?order=last_name&fields=id,last_name")
        .await;
    let names: Vec<&str> = ordered["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["last_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Doe", "Doe", "Smith"]);
    assert_eq!(
        ordered["customers"][0].as_object().unwrap().len(),
        2,
        "fields=id,last_name: {ordered}"
    );
    let (_, by_phone_order) = s.get("/admin/customers?order=-phone&limit=1").await;
    assert_eq!(by_phone_order["count"], json!(3));
}

fn urlencode(v: &str) -> String {
    form_urlencoded_byte_serialize(v)
}

fn form_urlencoded_byte_serialize(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Dates filter with Medusa's operators.
async fn created_at_ranges(backend: Backend) {
    let s = server(backend).await;
    let first = s.create_customer(json!({"email": "early@x.com"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second = s.create_customer(json!({"email": "late@x.com"})).await;
    let cut = second["created_at"].as_str().unwrap();
    let (_, after) = s
        .get(&format!(
            "/admin/customers?created_at[$gte]={}",
            urlencode(cut)
        ))
        .await;
    assert_eq!(ids(&after), vec![second["id"].as_str().unwrap().to_owned()]);
    let (_, before) = s
        .get(&format!(
            "/admin/customers?created_at[$lt]={}",
            urlencode(cut)
        ))
        .await;
    assert_eq!(ids(&before), vec![first["id"].as_str().unwrap().to_owned()]);
    let (status, bad) = s.get("/admin/customers?created_at[$gte]=tomorrow").await;
    assert_eq!(status, 400, "{bad}");
}

/// Check 7: updates, including the email, and partial updates keep other fields.
async fn check_7_update(backend: Backend) {
    let s = server(backend).await;
    let c = s.create_customer(json!({"email": "old@x.com", "first_name": "A", "last_name": "Doe", "metadata": {"keep": 1, "drop": 2}})).await;
    let path = format!("/admin/customers/{}", c["id"].as_str().unwrap());
    let (status, updated) = s
        .post(&path, json!({"first_name": "John", "last_name": "Smith", "email": "New@X.com", "metadata": {"drop": null, "add": true}}))
        .await;
    assert_eq!(status, 200, "{updated}");
    let u = &updated["customer"];
    assert_eq!(
        (
            u["first_name"].clone(),
            u["last_name"].clone(),
            u["email"].clone()
        ),
        (json!("John"), json!("Smith"), json!("New@X.com"))
    );
    assert_eq!(u["metadata"], json!({"keep": 1, "drop": null, "add": true}));
    assert!(
        u["updated_at"].as_str() > c["updated_at"].as_str() || u["updated_at"] == c["updated_at"]
    );
    let (_, partial) = s.post(&path, json!({"first_name": "Jane"})).await;
    assert_eq!(
        (
            partial["customer"]["first_name"].clone(),
            partial["customer"]["last_name"].clone()
        ),
        (json!("Jane"), json!("Smith"))
    );
    // The old email is free again, the new one taken (case-insensitively).
    s.create_customer(json!({"email": "old@x.com"})).await;
    let (status, dup) = s
        .post("/admin/customers", json!({"email": "new@x.com"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        dup,
        json!({"type": "invalid_data", "message": "Customer with email: new@x.com, has_account: false, already exists."})
    );
    let (status, missing) = s
        .post(
            "/admin/customers/cus_DOESNOTEXIST",
            json!({"first_name": "X"}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        missing,
        json!({"type": "not_found", "message": "Customer with id \"cus_DOESNOTEXIST\" not found"})
    );
    let (_, cleared) = s
        .post(&path, json!({"metadata": null, "phone": null}))
        .await;
    assert_eq!(cleared["customer"]["metadata"], Value::Null);
}

/// Check 8: retrieve, `fields`, and the 404.
async fn check_8_retrieve(backend: Backend) {
    let s = server(backend).await;
    let c = s
        .create_customer(json!({"email": "get@x.com", "first_name": "G"}))
        .await;
    let id = c["id"].as_str().unwrap();
    let (status, got) = s.get(&format!("/admin/customers/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["customer"], c);
    let (_, some) = s
        .get(&format!("/admin/customers/{id}?fields=id,email"))
        .await;
    assert_eq!(some, json!({"customer": {"id": id, "email": "get@x.com"}}));
    let (_, fewer) = s
        .get(&format!("/admin/customers/{id}?fields=-metadata,-phone"))
        .await;
    assert!(
        fewer["customer"].get("metadata").is_none() && fewer["customer"].get("email").is_some()
    );
    let (status, bad) = s
        .get(&format!("/admin/customers/{id}?fields=*orders"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        bad["message"],
        json!("Requested fields [orders] are not valid")
    );
    let (status, missing) = s.get("/admin/customers/cus_DOESNOTEXIST").await;
    assert_eq!(status, 404);
    assert_eq!(
        missing,
        json!({"type": "not_found", "message": "Customer with id: cus_DOESNOTEXIST not found"})
    );
}

/// Check 11: soft delete, idempotent, out of lists and counts, email freed.
async fn check_11_delete(backend: Backend) {
    let s = server(backend).await;
    let c = s.create_customer(json!({"email": "bye@x.com"})).await;
    s.create_customer(json!({"email": "stay@x.com"})).await;
    let id = c["id"].as_str().unwrap();
    let (status, body) = s.delete(&format!("/admin/customers/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"id": id, "object": "customer", "deleted": true})
    );
    let (status, _) = s.get(&format!("/admin/customers/{id}")).await;
    assert_eq!(status, 404);
    let (status, again) = s.delete(&format!("/admin/customers/{id}")).await;
    assert_eq!((status, again["deleted"].clone()), (200, json!(true)));
    let (_, list) = s.get("/admin/customers").await;
    assert_eq!(list["count"], json!(1));
    let (_, searched) = s.get("/admin/customers?q=bye").await;
    assert_eq!(searched["count"], json!(0));
    let (_, by_email) = s.get("/admin/customers?email=bye@x.com").await;
    assert_eq!(by_email["count"], json!(0));
    // The record is kept, soft-deleted.
    let stored = s
        .store
        .get(&shared::store::Key::new(format!("CUS#{id}"), "#PROFILE"))
        .await
        .unwrap()
        .expect("kept");
    assert!(stored["deleted_at"].is_string());
    s.create_customer(json!({"email": "bye@x.com"})).await;
}

async fn count(s: &TestServer) -> Value {
    s.get("/admin/customers").await.1["count"].clone()
}

/// Bad input: a clear 4xx in Medusa's shape, and nothing written.
async fn bad_input_is_rejected_and_changes_nothing(backend: Backend) {
    let s = server(backend).await;
    let c = s
        .create_customer(json!({"email": "keep@x.com", "first_name": "Keep"}))
        .await;
    let path = format!("/admin/customers/{}", c["id"].as_str().unwrap());
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"email": "not-an-email"}),
            "Invalid request: Invalid email address",
        ),
        (
            json!({"email": "x@y.com", "bogus": 1}),
            "Invalid request: Unrecognized fields: 'bogus'",
        ),
        (
            json!({"first_name": 42}),
            "Invalid request: Expected type: 'string' for field 'first_name', got: '42'",
        ),
        (
            json!({"metadata": "text"}),
            "Invalid request: Expected type: 'object' for field 'metadata', got: 'text'",
        ),
        (
            json!({"first_name": "x".repeat(256)}),
            "Invalid request: Field 'first_name' must be at most 255 characters",
        ),
        (
            json!([1, 2]),
            "Invalid request: Expected type: 'object' for field 'body', got: 'array'",
        ),
    ];
    for (body, message) in cases {
        for target in ["/admin/customers", path.as_str()] {
            let (status, err) = s.post(target, body.clone()).await;
            assert_eq!(status, 400, "{target} {body}: {err}");
            assert_eq!(
                err,
                json!({"type": "invalid_data", "message": message}),
                "{target} {body}"
            );
        }
    }
    let raw = |body: Vec<u8>| {
        s.client
            .post(format!("{}/admin/customers", s.base))
            .bearer_auth(&s.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let malformed = raw(b"{\"email\": ".to_vec()).await.unwrap();
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["type"], json!("invalid_data"));
    let mut huge = b"{\"first_name\": \"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
    huge.extend(b"\"}");
    let (status, body) = s.raw_post("/admin/customers", huge).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["type"], json!("invalid_data"));
    assert!(body["message"].as_str().unwrap().contains("larger than"));
    for query in [
        "limit=abc",
        "foo=bar",
        "order=bogus",
        "order=-nope",
        "offset=-1",
        "has_account=maybe",
        "a[b][c][d]=1",
        "fields=*orders",
        "created_at=2024",
    ] {
        let (status, err) = s.get(&format!("/admin/customers?{query}")).await;
        assert_eq!(status, 400, "{query}: {err}");
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{query}: {err}"
        );
    }
    let (_, limit) = s.get("/admin/customers?limit=abc").await;
    assert_eq!(
        limit["message"],
        json!("Invalid request: Expected type: 'number' for field 'limit', got: 'abc'")
    );
    let (_, order) = s.get("/admin/customers?order=bogus").await;
    assert_eq!(order["message"], json!("Order field bogus is not valid"));
    assert_eq!(count(&s).await, json!(1));
    let (_, unchanged) = s.get(&path).await;
    assert_eq!(unchanged["customer"], c);
}

/// Every admin route answers 401 `{"message":"Unauthorized"}` without a valid staff token.
async fn admin_routes_need_a_staff_token(backend: Backend) {
    let s = server(backend).await;
    let routes = [
        ("GET", "/admin/customers"),
        ("POST", "/admin/customers"),
        ("GET", "/admin/customers/cus_1"),
        ("POST", "/admin/customers/cus_1"),
        ("DELETE", "/admin/customers/cus_1"),
    ];
    for (method, path) in routes {
        let (status, body) = s.call(method, path, Some(json!({})), false).await;
        assert_eq!(
            (status, body),
            (401, json!({"message": "Unauthorized"})),
            "{method} {path}"
        );
        let garbage = s
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", s.base),
            )
            .bearer_auth("not.a.jwt")
            .send()
            .await
            .unwrap();
        assert_eq!(garbage.status(), 401);
    }
    let (status, login) = s
        .call(
            "POST",
            "/auth/user/emailpass",
            Some(json!({"email": integration_tests::ADMIN_EMAIL, "password": "wrong-password"})),
            false,
        )
        .await;
    assert_eq!(
        (status, login),
        (
            401,
            json!({"type": "unauthorized", "message": "Invalid email or password"})
        )
    );
    let (status, login) = s
        .call(
            "POST",
            "/auth/user/emailpass",
            Some(json!({"email": "nobody@x.com", "password": "whatever1"})),
            false,
        )
        .await;
    assert_eq!(
        (status, login),
        (
            401,
            json!({"type": "unauthorized", "message": "Invalid email or password"})
        )
    );
    let (status, _) = s.call("GET", "/health", None, false).await;
    assert_eq!(status, 200);
    let (status, unknown) = s.call("GET", "/admin/nothing-here", None, true).await;
    assert_eq!((status, unknown["type"].clone()), (404, json!("not_found")));
}

/// `q` (served by the search index from four characters on) finds exactly the customers whose
/// fields contain it, and follows updates and deletes.
async fn search_is_exact_and_follows_changes(backend: Backend) {
    let s = server(backend).await;
    let names = [
        "Ångström",
        "Doerty",
        "O'Brien",
        "van der Berg",
        "Smith-Jones",
        "Doe",
        "Doering",
        "Jo",
    ];
    let mut people = Vec::new();
    for (i, last) in names.iter().enumerate() {
        let c = s
            .create_customer(json!({
                "email": format!("user{i}.{}@shop{}.example", last.to_lowercase().replace(' ', ""), i % 3),
                "last_name": last,
                "company_name": if i % 2 == 0 { Value::from(format!("Firm {}", 100 + i)) } else { Value::Null },
                "phone": format!("+44 20 7946 0{i:03}"),
            }))
            .await;
        people.push(c);
    }
    let fields = ["email", "first_name", "last_name", "company_name", "phone"];
    let expected = |people: &[Value], q: &str| -> Vec<String> {
        let needle = q.to_lowercase();
        people
            .iter()
            .filter(|c| {
                fields.iter().any(|f| {
                    c[*f]
                        .as_str()
                        .is_some_and(|v| v.to_lowercase().contains(&needle))
                })
            })
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let queries = [
        "doer",
        "DOE",
        "ngstr",
        "ÅNGSTRÖM",
        "'bri",
        "der b",
        "shop1",
        "h-jo",
        "firm 10",
        "7946 0005",
        ".example",
        "@shop2.ex",
        "user7.jo@",
        "zzzz",
        "rty@",
    ];
    for q in queries {
        let (status, found) = s
            .get(&format!("/admin/customers?q={}&limit=100", urlencode(q)))
            .await;
        assert_eq!(status, 200, "{q}: {found}");
        assert_eq!(ids(&found), expected(&people, q), "q={q}");
        assert_eq!(found["count"], json!(expected(&people, q).len()), "q={q}");
    }
    // After an update the old value no longer matches and the new one does.
    let id = people[1]["id"].as_str().unwrap().to_owned();
    let (status, _) = s
        .post(
            &format!("/admin/customers/{id}"),
            json!({"last_name": "Quackenbush", "email": "quack@pond.example"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, old) = s.get("/admin/customers?q=doerty").await;
    assert_eq!(old["count"], json!(0), "{old}");
    let (_, new) = s.get("/admin/customers?q=kenbu").await;
    assert_eq!(ids(&new), vec![id.clone()]);
    // Stale index entries are removed, not merely filtered out.
    let stale = s
        .store
        .query(&shared::store::Query {
            sort: shared::store::SortCondition::BeginsWith("doerty".into()),
            ..shared::store::Query::new(shared::store::Index::Main, "SFX#do")
        })
        .await
        .unwrap();
    assert!(
        stale.items.is_empty(),
        "stale entries left: {:?}",
        stale.items
    );
    // Deleted customers are not found.
    s.delete(&format!("/admin/customers/{id}")).await;
    let (_, gone) = s.get("/admin/customers?q=kenbu").await;
    assert_eq!(gone["count"], json!(0));
    // Other filters and order apply to search results.
    let (_, ordered) = s
        .get("/admin/customers?q=.example&order=-last_name&limit=2&offset=1&fields=id,last_name")
        .await;
    assert_eq!(ordered["count"], json!(7));
    let lasts: Vec<&str> = ordered["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["last_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        lasts,
        ["van der Berg", "Smith-Jones"],
        "lower-cased code point order, descending"
    );
}

/// Keyset pagination: following `next_cursor` visits every match once, in order, whatever path
/// serves the query; a malformed or foreign cursor is a 400.
async fn cursor_pagination_visits_every_match_once(backend: Backend) {
    let s = server(backend).await;
    for i in 0..23 {
        s.create_customer(json!({
            "email": format!("page{:02}@{}.example", (i * 7) % 23, if i % 2 == 0 { "even" } else { "odd" }),
            "first_name": if i % 3 == 0 { "Trio" } else { "Solo" },
            "last_name": format!("Last{}", i % 5),
        }))
        .await;
    }
    let queries = [
        "",
        "order=-created_at",
        "order=email",
        "order=-last_name",
        "q=even.exa&order=-email",
        "first_name=Trio&order=last_name",
        "order=-phone",
    ];
    for query in queries {
        let sep = if query.is_empty() { "" } else { "&" };
        let (_, all) = s
            .get(&format!("/admin/customers?{query}{sep}limit=100"))
            .await;
        let expected = ids(&all);
        let mut seen = Vec::new();
        let mut cursor = String::new();
        for _ in 0..20 {
            let (status, page) = s
                .get(&format!(
                    "/admin/customers?{query}{sep}limit=4&cursor={cursor}"
                ))
                .await;
            assert_eq!(status, 200, "{query}: {page}");
            assert_eq!(page["count"], all["count"], "{query}: count is the total");
            seen.extend(ids(&page));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(seen, expected, "{query}");
    }
    let (status, bad) = s.get("/admin/customers?cursor=not-a-cursor").await;
    assert_eq!((status, bad["type"].clone()), (400, json!("invalid_data")));
    let (_, first) = s.get("/admin/customers?order=email&limit=2&cursor=").await;
    let foreign = first["next_cursor"].as_str().unwrap();
    let (status, bad) = s
        .get(&format!("/admin/customers?order=-email&cursor={foreign}"))
        .await;
    assert_eq!(status, 400, "{bad}");
    let (_, plain) = s.get("/admin/customers?limit=2").await;
    assert!(
        plain.get("next_cursor").is_none(),
        "Medusa's envelope unless asked"
    );
}

both_backends!(
    cursor_pagination_visits_every_match_once,
    search_is_exact_and_follows_changes,
    check_1_create_and_list_in_creation_order,
    check_2_create_echoes_fields,
    check_4_5_search_and_exact_filters,
    check_4_5_search_counts,
    created_at_ranges,
    check_7_update,
    check_8_retrieve,
    check_11_delete,
    bad_input_is_rejected_and_changes_nothing,
    admin_routes_need_a_staff_token,
);
